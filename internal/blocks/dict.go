package blocks

import (
	"sync"
	"sync/atomic"
)

// Dict numbers strings densely from 0 in the order it first sees them: user ids and event
// types, shared by every block, so that a block holds small integers and a query adds
// counts into arrays. An id never changes and a name is never removed (a store persists
// the names in order and reads them back with Load); Engine.Compact replaces dictionaries
// whose names are mostly unused by smaller ones. Safe for concurrent use.
type Dict struct {
	mu    sync.RWMutex
	ids   map[string]uint32
	names []string
	limit int    // the most names ID numbers; 0: no limit
	other string // the name ID gives a new name the id of past the limit
	// refused counts the names ID gave other's id to.
	refused atomic.Int64
}

// NewDict returns an empty dictionary with no limit.
func NewDict() *Dict { return &Dict{ids: map[string]uint32{}} }

// Limit bounds the names ID numbers to n: past them, ID gives every new name the id of
// other (numbering other, if it is new, past n). Memory then stays bounded whatever names
// arrive, and the events of the names refused are counted under other.
func (d *Dict) Limit(n int, other string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limit, d.other = n, other
}

// empty returns an empty dictionary with d's limit.
func (d *Dict) empty() *Dict {
	e := NewDict()
	e.limit, e.other = d.limit, d.other
	return e
}

// Refused is how many times ID gave a new name other's id (see Limit).
func (d *Dict) Refused() int64 { return d.refused.Load() }

// Lumped reports whether some names' ids were refused and counted under other's: since
// this dictionary was made (Refused), or before (other is numbered: loaded or renumbered
// from a dictionary that refused names).
func (d *Dict) Lumped() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, other := d.ids[d.other]
	return d.refused.Load() > 0 || d.limit > 0 && other
}

// ID returns name's id, numbering it when it is new (see Limit for when it is not).
func (d *Dict) ID(name string) uint32 {
	d.mu.RLock()
	id, ok := d.ids[name]
	d.mu.RUnlock()
	if ok {
		return id
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.ids[name]; ok {
		return id
	}
	if d.limit > 0 && len(d.names) >= d.limit && name != d.other {
		d.refused.Add(1)
		if id, ok := d.ids[d.other]; ok {
			return id
		}
		name = d.other
	}
	id = uint32(len(d.names))
	d.ids[name] = id
	d.names = append(d.names, name)
	return id
}

// Lookup returns name's id, if it has one.
func (d *Dict) Lookup(name string) (uint32, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	id, ok := d.ids[name]
	return id, ok
}

// Names returns the names numbered so far, names[id]; the slice is shared and must not be
// changed (later names are appended past its length, never into it).
func (d *Dict) Names() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.names[:len(d.names):len(d.names)]
}

// Load numbers names from the dictionary's current length on, in order: how a store reads
// back the names it persisted. A name already numbered, or repeated, is an error of the
// store's: Load then numbers none of them and returns false.
func (d *Dict) Load(names []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if _, ok := d.ids[name]; ok || seen[name] {
			return false
		}
		seen[name] = true
	}
	for _, name := range names {
		d.ids[name] = uint32(len(d.names))
		d.names = append(d.names, name)
	}
	return true
}

// Dicts are the two dictionaries blocks refer to.
type Dicts struct {
	Users, Types *Dict
}

// The dictionaries' bounds: the distinct user ids and event types of the stored events
// that analytics tell apart (about 100 bytes of memory a user id). Past them, the events
// of new user ids count as those of one user, OtherUsers, which no answer lists among its
// top users and no filter matches; those of new types count as type OtherTypes. Neither
// name is a valid user id or event type.
const (
	MaxUsers   = 5_000_000
	MaxTypes   = 100_000
	OtherUsers = ""
	OtherTypes = "(other)"
)

// dictNameBytes is about how much memory a dictionary's name takes (measured with 17-byte
// names: 97).
const dictNameBytes = 100

// NewDicts returns empty dictionaries bounded by MaxUsers and MaxTypes.
func NewDicts() Dicts {
	d := Dicts{Users: NewDict(), Types: NewDict()}
	d.Users.Limit(MaxUsers, OtherUsers)
	d.Types.Limit(MaxTypes, OtherTypes)
	return d
}
