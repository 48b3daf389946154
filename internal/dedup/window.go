// Package dedup remembers recently accepted event ids so that a client's retry within the
// dedup window is answered as a duplicate instead of being buffered again.
package dedup

import (
	"hash/maphash"
	"sync"
	"time"
)

// generations splits the window: an id is forgotten between span and
// span*(1+1/(generations-1)) after it was added, and expiry needs no timestamp per id, only
// the generation it was added in.
const generations = 10

// Window is an in-process dedup window. Safe for concurrent use.
//
// Each generation lists its ids in the order they were added. A map from a 64-bit hash of
// an id to where the id is listed gives a check one lookup; the id found there is compared
// with the one asked about, so two ids with the same hash are never mistaken for each
// other (the later one is kept in a second map, by its text). The bound forgets ids from
// the front of the oldest list, and the lists of expired generations are swept a little at
// each Add, so that neither a rotation nor the bound makes a long pause.
type Window struct {
	span time.Duration
	now  func() time.Time
	// MaxIDs bounds memory: past it the oldest ids are forgotten early, one by one (oldest
	// generation first, within one in the order added), so the window is span or the last
	// MaxIDs ids, whichever is shorter. A repeat older than that is buffered again and the
	// store's unique event id keeps it from being stored twice. Zero means no bound. Set
	// before use.
	MaxIDs int
	seed   maphash.Seed
	weak   func(string) uint64 // a hash for tests, with collisions; nil: seed's

	mu      sync.Mutex
	byHash  map[uint64]ref       // hash of an id -> where the id is listed
	byID    map[string]ref       // ids whose hash byHash holds for another id
	newest  uint64               // the newest generation; live ones are newest-generations+1..newest
	current time.Time            // start of the newest generation
	gens    [generations]genList // generation g's list is gens[g%generations] while g is live
	live    int                  // ids in live generations
	expired []genList            // lists of expired generations, not yet swept
}

// ref is where an id is listed: its generation (low 32 bits: they wrap after 2^32
// generations, over 15 years with the shortest window evp allows) and its position in
// that generation's list, counted from the list's first id ever.
type ref uint64

func makeRef(gen uint64, pos uint32) ref { return ref(uint64(pos)<<32 | gen&0xffffffff) }
func (r ref) gen() uint32                { return uint32(r) }
func (r ref) pos() uint32                { return uint32(r >> 32) }

// genList is one generation's ids in the order added. An entry whose id has since moved
// to a newer generation (or was forgotten) is stale: no map refers to it.
type genList struct {
	gen  uint64
	ids  []string // ids[head:] are still to be handled
	head int
	base uint32 // the position of ids[0]
	n    int    // ids in this generation
}

// pop returns the next id in the list and its ref, and forgets the list's hold on it.
func (l *genList) pop() (string, ref) {
	id, r := l.ids[l.head], makeRef(l.gen, l.base+uint32(l.head))
	l.ids[l.head] = ""
	l.head++
	switch {
	case l.head == len(l.ids):
		l.ids, l.base, l.head = l.ids[:0], l.base+uint32(l.head), 0
	case l.head >= 1024 && 2*l.head >= len(l.ids): // keep the slice at most twice its content
		n := copy(l.ids, l.ids[l.head:])
		clear(l.ids[n:])
		l.ids, l.base, l.head = l.ids[:n], l.base+uint32(l.head), 0
	}
	return id, r
}

// New returns a window that remembers ids for at least span.
func New(span time.Duration) *Window {
	w := &Window{span: span, now: time.Now, byHash: map[uint64]ref{}, seed: maphash.MakeSeed()}
	w.newest = generations // so that every live generation number is positive
	for g := w.newest - generations + 1; g <= w.newest; g++ {
		w.gens[g%generations].gen = g
	}
	w.current = w.now()
	return w
}

func (w *Window) hash(id string) uint64 {
	if w.weak != nil {
		return w.weak(id)
	}
	return maphash.String(w.seed, id)
}

func (w *Window) step() time.Duration { return w.span / (generations - 1) }

func (w *Window) isLive(r ref) bool { return uint32(w.newest)-r.gen() < generations }

// idAt returns the id a live ref points to.
func (w *Window) idAt(r ref) string {
	l := &w.gens[r.gen()%generations]
	if i := int(r.pos() - l.base); i >= l.head && i < len(l.ids) {
		return l.ids[i]
	}
	return "" // not reached: a ref in a map points to an id still listed
}

// rotate starts the generations due by now; their oldest ones expire. Called with mu held.
func (w *Window) rotate(now time.Time) {
	step := w.step()
	for n := 0; now.Sub(w.current) >= step && n <= generations; n++ {
		w.newest++
		w.current = w.current.Add(step)
		l := &w.gens[w.newest%generations] // generation newest-generations: expired now
		w.live -= l.n
		if l.head < len(l.ids) {
			w.expired = append(w.expired, *l)
		}
		*l = genList{gen: w.newest}
	}
	if now.Sub(w.current) >= step { // idle for longer than the whole window
		w.current = now
	}
	if w.live == 0 && len(w.byHash)+len(w.byID) > 0 { // every id held has expired: start afresh
		w.byHash, w.byID = map[uint64]ref{}, nil
		w.expired = nil
		for i := range w.gens {
			l := &w.gens[i]
			*l = genList{gen: l.gen, base: l.base + uint32(len(l.ids))}
		}
	}
}

// find returns where id is listed, if it is in a live generation.
func (w *Window) find(h uint64, id string) (r ref, byID bool, ok bool) {
	if r, ok := w.byHash[h]; ok && w.isLive(r) && w.idAt(r) == id {
		return r, false, true
	}
	if len(w.byID) > 0 {
		if r, ok := w.byID[id]; ok && w.isLive(r) {
			return r, true, true
		}
	}
	return 0, false, false
}

// Seen reports for each id whether it was added within the window, writing into seen
// (which must be as long as ids).
func (w *Window) Seen(ids []string, seen []bool) {
	w.mu.Lock()
	w.rotate(w.now())
	for i, id := range ids {
		_, _, seen[i] = w.find(w.hash(id), id)
	}
	w.mu.Unlock()
}

// Add remembers ids as accepted now.
func (w *Window) Add(ids ...string) {
	w.mu.Lock()
	w.rotate(w.now())
	for _, id := range ids {
		w.put(id, w.newest)
	}
	w.bound()
	w.sweep(2*len(ids) + 16)
	w.mu.Unlock()
}

// put records id in live generation g unless it is in g or a newer one already. Called
// with mu held.
func (w *Window) put(id string, g uint64) {
	h := w.hash(id)
	old, inByID, ok := w.find(h, id)
	if ok {
		if old.gen() == uint32(g) || uint32(w.newest)-old.gen() < uint32(w.newest-g) { // as new or newer
			return
		}
		w.gens[old.gen()%generations].n--
		w.live--
	}
	l := &w.gens[g%generations]
	r := makeRef(g, l.base+uint32(len(l.ids)))
	l.ids = append(l.ids, id)
	l.n++
	w.live++
	if cur, taken := w.byHash[h]; !inByID && (!taken || ok && cur == old || !w.isLive(cur)) {
		w.byHash[h] = r
		if !ok && len(w.byID) > 0 {
			delete(w.byID, id) // an expired entry
		}
		return
	}
	// Another live id has the same hash (or this one is kept by text already).
	if w.byID == nil {
		w.byID = map[string]ref{}
	}
	w.byID[id] = r
}

// forget deletes id from the maps if they still refer to it at r. Called with mu held.
func (w *Window) forget(id string, r ref) bool {
	h := w.hash(id)
	if cur, ok := w.byHash[h]; ok && cur == r {
		delete(w.byHash, h)
		return true
	}
	if len(w.byID) > 0 {
		if cur, ok := w.byID[id]; ok && cur == r {
			delete(w.byID, id)
			return true
		}
	}
	return false
}

// bound forgets the oldest ids while the window holds more than MaxIDs. Called with mu
// held.
func (w *Window) bound() {
	if w.MaxIDs <= 0 {
		return
	}
	for g := w.newest - generations + 1; w.live > w.MaxIDs && g <= w.newest; g++ {
		l := &w.gens[g%generations]
		for l.n > 0 && w.live > w.MaxIDs {
			if w.forget(l.pop()) {
				l.n--
				w.live--
			}
		}
	}
}

// sweep deletes up to budget entries of expired generations from the maps. Called with mu
// held.
func (w *Window) sweep(budget int) {
	for budget > 0 && len(w.expired) > 0 {
		l := &w.expired[0]
		for ; budget > 0 && l.head < len(l.ids); budget-- {
			w.forget(l.pop())
		}
		if l.head == len(l.ids) {
			w.expired[0] = genList{}
			w.expired = w.expired[1:]
		}
	}
}

// AddAt remembers an id accepted at an earlier time (used to rebuild the window after a
// restart); ids older than the window are ignored.
func (w *Window) AddAt(id string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	w.rotate(now)
	age := now.Sub(at)
	if age > w.span {
		return
	}
	g := 0
	if at.Before(w.current) {
		g = 1 + int(w.current.Sub(at)/w.step())
	}
	if g >= generations {
		g = generations - 1
	}
	w.put(id, w.newest-uint64(g))
	w.bound()
	w.sweep(16)
}

// Len returns how many ids the window holds.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live
}
