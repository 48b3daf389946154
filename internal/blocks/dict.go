package blocks

import "sync"

// Dict numbers strings densely from 0 in the order it first sees them: user ids and event
// types, shared by every block, so that a block holds small integers and a query adds
// counts into arrays. An id never changes and a name is never removed (a store persists
// the names in order and reads them back with Load); Engine.Compact replaces dictionaries
// whose names are mostly unused by smaller ones. Safe for concurrent use.
type Dict struct {
	mu    sync.RWMutex
	ids   map[string]uint32
	names []string
}

// NewDict returns an empty dictionary.
func NewDict() *Dict { return &Dict{ids: map[string]uint32{}} }

// ID returns name's id, numbering it when it is new.
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

// NewDicts returns empty dictionaries.
func NewDicts() Dicts { return Dicts{Users: NewDict(), Types: NewDict()} }
