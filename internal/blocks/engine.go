package blocks

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/evp-dev/evp/internal/store"
)

// Engine holds the analytics of a store's events: a sealed block for each hour that has one,
// and a head of the events no block holds yet (the open hours, and events that came late
// for a sealed one). It keeps nothing on disk: the store persists what Seal returns, puts
// persisted blocks back with Install, and gives Add the events it stores, in the order it
// commits them, after each commit.
//
// Queries read one snapshot, published whole after each change, so an answer never counts
// an event in one figure and not in another; they take no lock and never wait for a writer.
type Engine struct {
	d       Dicts
	mu      sync.Mutex // writers: Add, Seal, Install, Drop
	heads   map[int64]*headHour
	lastSeq int64 // the highest Seq given to Add
	snap    atomic.Pointer[Snapshot]
}

// Snapshot is the engine's state at one moment. It never changes.
type Snapshot struct {
	d      Dicts
	blocks map[int64]*Block // sealed, by hour
	heads  []*headView      // the head, by hour
}

// NewEngine returns an engine with no events, numbering ids with d.
func NewEngine(d Dicts) *Engine {
	e := &Engine{d: d, heads: map[int64]*headHour{}}
	e.snap.Store(&Snapshot{d: d, blocks: map[int64]*Block{}})
	return e
}

// Snapshot returns the current state.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Query answers q from the current state.
func (e *Engine) Query(q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	return e.Snapshot().Query(q)
}

// Query answers q from the snapshot (see Query).
func (s *Snapshot) Query(q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	parts := make([]part, 0, len(s.blocks)+len(s.heads))
	for _, blk := range s.blocks {
		parts = append(parts, blk)
	}
	for _, v := range s.heads {
		parts = append(parts, v)
	}
	return query(parts, s.d, q)
}

// HourBefore returns the newest hour before before (Unix hours) that may hold events of the
// user and of the session (each when not empty): a sealed hour holding both (the session by
// its hash: a collision only adds an hour), or a head hour (not searched). ok is false when
// there is none. decided is false when the snapshot cannot tell where a user's events
// are: the dictionary counted some users' events under one name (Dict.Lumped).
func (s *Snapshot) HourBefore(user, session string, before int64) (hour int64, ok, decided bool) {
	var id uint32
	if user != "" {
		if s.d.Users.Lumped() {
			return 0, false, false
		}
		var known bool
		if id, known = s.d.Users.Lookup(user); !known {
			return 0, false, true
		}
	}
	var hash uint64
	if session != "" {
		hash = xxhash.Sum64String(session)
	}
	for h, blk := range s.blocks {
		if h >= before || ok && h <= hour {
			continue
		}
		if _, in := blk.userRow(id); user != "" && !in {
			continue
		}
		if _, in := slices.BinarySearch(blk.sessionHashes, hash); session != "" && !in {
			continue
		}
		hour, ok = h, true
	}
	for _, v := range s.heads {
		if v.hour < before && (!ok || v.hour > hour) {
			hour, ok = v.hour, true
		}
	}
	return hour, ok, true
}

// Dicts returns the dictionaries the snapshot's blocks and head are numbered with.
func (s *Snapshot) Dicts() Dicts { return s.d }

// Block returns the snapshot's sealed block of hour, or nil.
func (s *Snapshot) Block(hour int64) *Block { return s.blocks[hour] }

// Blocks returns the snapshot's sealed blocks by hour (a copy of the map).
func (s *Snapshot) Blocks() map[int64]*Block { return maps.Clone(s.blocks) }

// Check reports an error when a sealed block numbers users or types the dictionaries do
// not hold (blocks a store read back that do not go with its names).
func (s *Snapshot) Check() error {
	users, types := len(s.d.Users.Names()), len(s.d.Types.Names())
	for h, blk := range s.blocks {
		if !blk.within(users, types) {
			return fmt.Errorf("blocks: the block of hour %d numbers users or types the dictionaries do not hold", h)
		}
	}
	return nil
}

// Bytes is about how much memory the snapshot's blocks, head and dictionaries take: data
// the garbage collector cannot free while the engine lives.
func (s *Snapshot) Bytes() int64 {
	n := int64(len(s.d.Users.Names())+len(s.d.Types.Names())) * dictNameBytes
	for _, blk := range s.blocks {
		n += blk.bytes()
	}
	for _, v := range s.heads {
		n += v.bytes()
	}
	return n
}

// Events is how many events the snapshot holds.
func (s *Snapshot) Events() int {
	n := 0
	for _, blk := range s.blocks {
		n += blk.Events
	}
	for _, v := range s.heads {
		n += len(v.entries)
	}
	return n
}

// Add adds events, which become visible to queries together once Add returns. An event it
// refuses (one of more types in an hour than a block numbers) leaves the others added.
func (e *Engine) Add(evs []Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var firstErr error
	for _, ev := range evs {
		h := Hour(ev.Time)
		hh := e.heads[h]
		if hh == nil {
			hh = newHeadHour(e.d, h)
			e.heads[h] = hh
		}
		if err := hh.add(ev); err != nil && firstErr == nil {
			firstErr = err
		}
		e.lastSeq = max(e.lastSeq, ev.Seq)
	}
	e.publish(nil, nil)
	return firstErr
}

// Advance records that the events up to seq were all given to Add (some may have been left
// out by the store, as retention's to delete).
func (e *Engine) Advance(seq int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastSeq = max(e.lastSeq, seq)
}

// Replace makes evs the whole of hour: its sealed block and head are dropped, and evs go
// to the head (retention trimming the hour its cut-off falls in).
func (e *Engine) Replace(hour int64, evs []Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	hh := newHeadHour(e.d, hour)
	for _, ev := range evs {
		if err := hh.add(ev); err != nil {
			return err
		}
	}
	delete(e.heads, hour)
	if len(hh.entries) > 0 {
		e.heads[hour] = hh
	}
	e.publish(nil, func(h int64) bool { return h == hour })
	return nil
}

// LastSeq is the highest Seq given to Add.
func (e *Engine) LastSeq() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastSeq
}

// Watermark is the highest seq such that every event given to Add with a Seq up to it is in
// a sealed block (the head holds none of them): a store that has persisted every block Seal
// returned may, after a restart, Install them and Add only the events after it.
func (e *Engine) Watermark() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.lastSeq
	for _, hh := range e.heads {
		w = min(w, hh.firstSeq-1)
	}
	return w
}

// HeadHour describes an hour the head holds events of.
type HeadHour struct {
	Hour   int64
	Events int // in the head
	Sealed int // in the hour's sealed block
}

// HeadHours returns the hours the head holds events of, oldest first: what a store may
// seal.
func (e *Engine) HeadHours() []HeadHour {
	e.mu.Lock()
	defer e.mu.Unlock()
	blocks := e.Snapshot().blocks
	out := make([]HeadHour, 0, len(e.heads))
	for _, h := range slices.Sorted(maps.Keys(e.heads)) {
		hh := HeadHour{Hour: h, Events: len(e.heads[h].entries)}
		if blk := blocks[h]; blk != nil {
			hh.Sealed = blk.Events
		}
		out = append(out, hh)
	}
	return out
}

// Seal seals the events of hour that the head holds, with the hour's sealed block if it has
// one, into a block of the next version, and returns it for the store to persist; queries
// then read the new block. Events that arrive for the hour meanwhile stay in the head. The
// heavy part (sorting the hour's events) runs without the writers' lock. It returns nil
// when the head holds nothing of the hour, or when the hour was dropped, installed or
// sealed by another call meanwhile.
func (e *Engine) Seal(hour int64) (*Block, error) {
	e.mu.Lock()
	hh := e.heads[hour]
	if hh == nil {
		e.mu.Unlock()
		return nil, nil
	}
	v, d := hh.view(), e.d
	old := e.Snapshot().blocks[hour]
	e.mu.Unlock()

	b := NewBuilder(d, hour)
	version := uint64(1)
	if old != nil {
		if err := b.AddBlock(old); err != nil {
			return nil, err
		}
		version = old.Version + 1
	}
	v.addToBuilder(b)
	blk, err := b.Seal(version)
	if err != nil {
		return nil, err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.heads[hour] != hh || e.Snapshot().blocks[hour] != old {
		return nil, nil // dropped, installed, sealed or renumbered meanwhile: this block is stale
	}
	// Keep what came after the view.
	rest := newHeadHour(e.d, hour)
	for i := len(v.entries); i < len(hh.entries); i++ {
		rest.appendFrom(hh, i)
	}
	if len(rest.entries) == 0 {
		delete(e.heads, hour)
	} else {
		e.heads[hour] = rest
	}
	e.publish(map[int64]*Block{hour: blk}, nil)
	return blk, nil
}

// Install puts blocks a store persisted back (at start, before any Compact: they are
// numbered with the dictionaries the engine was made with), replacing any older version
// of their hours.
func (e *Engine) Install(blks ...*Block) {
	e.mu.Lock()
	defer e.mu.Unlock()
	add := map[int64]*Block{}
	cur := e.Snapshot().blocks
	for _, blk := range blks {
		if old := cur[blk.Hour]; old == nil || old.Version < blk.Version {
			if o := add[blk.Hour]; o == nil || o.Version < blk.Version {
				add[blk.Hour] = blk
			}
		}
	}
	e.publish(add, nil)
}

// Drop forgets every hour before hour, sealed or not (retention).
func (e *Engine) Drop(hour int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for h := range e.heads {
		if h < hour {
			delete(e.heads, h)
		}
	}
	e.publish(nil, func(h int64) bool { return h < hour })
}

// publish stores a new snapshot: the current blocks with add put in and those drop names
// taken out, and a view of every head hour. Called with mu held.
func (e *Engine) publish(add map[int64]*Block, drop func(hour int64) bool) {
	cur := e.Snapshot()
	blocks := cur.blocks
	if len(add) > 0 || drop != nil {
		blocks = maps.Clone(cur.blocks)
		maps.Copy(blocks, add)
		if drop != nil {
			maps.DeleteFunc(blocks, func(h int64, _ *Block) bool { return drop(h) })
		}
	}
	e.publishBlocks(blocks)
}

// publishBlocks stores a new snapshot of blocks and a view of every head hour. Called
// with mu held.
func (e *Engine) publishBlocks(blocks map[int64]*Block) {
	heads := make([]*headView, 0, len(e.heads))
	for _, h := range slices.Sorted(maps.Keys(e.heads)) {
		heads = append(heads, e.heads[h].view())
	}
	e.snap.Store(&Snapshot{d: e.d, blocks: blocks, heads: heads})
}
