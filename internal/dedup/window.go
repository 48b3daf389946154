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
// It remembers an id by a 128-bit hash keyed with a random seed of the process, never by
// its text: 24 bytes an id that the garbage collector never scans, where strings cost about
// 100 and a pointer each. Two ids are taken for each other only if all 128 bits agree, by
// chance (about 10^-33 for a new id against a million held; clients cannot aim at it
// without the seed), and then the later one would be answered as a duplicate. Each
// generation lists its keys in the order they were added, and a map from a key to where it
// is listed gives a check one lookup. The bound forgets keys from the front of the oldest
// list, and the lists of expired generations are swept a little at each Add, so that
// neither a rotation nor the bound makes a long pause.
type Window struct {
	span time.Duration
	now  func() time.Time
	// MaxIDs bounds memory: past it the oldest ids are forgotten early, one by one (oldest
	// generation first, within one in the order added), so the window is span or the last
	// MaxIDs ids, whichever is shorter. A repeat older than that is buffered again and the
	// store's unique event id keeps it from being stored twice. Zero means no bound. Set
	// before use.
	MaxIDs int
	seeds  [2]maphash.Seed

	mu      sync.Mutex
	byKey   map[key]ref          // key of an id -> where it is listed
	newest  uint64               // the newest generation; live ones are newest-generations+1..newest
	current time.Time            // start of the newest generation
	gens    [generations]genList // generation g's list is gens[g%generations] while g is live
	live    int                  // ids in live generations
	expired []genList            // lists of expired generations, not yet swept
}

// key is an id's 128-bit hash.
type key [2]uint64

// ref is where an id is listed: its generation (low 32 bits: they wrap after 2^32
// generations, over 15 years with the shortest window evp allows) and its position in
// that generation's list, counted from the list's first id ever.
type ref uint64

func makeRef(gen uint64, pos uint32) ref { return ref(uint64(pos)<<32 | gen&0xffffffff) }
func (r ref) gen() uint32                { return uint32(r) }

// genList is one generation's keys in the order added. An entry whose id has since moved
// to a newer generation (or was forgotten) is stale: the map no longer refers to it.
type genList struct {
	gen  uint64
	keys []key // keys[head:] are still to be handled
	head int
	base uint32 // the position of keys[0]
	n    int    // ids in this generation
}

// pop returns the next key in the list and its ref, and forgets the list's hold on it.
func (l *genList) pop() (key, ref) {
	k, r := l.keys[l.head], makeRef(l.gen, l.base+uint32(l.head))
	l.head++
	switch {
	case l.head == len(l.keys):
		l.keys, l.base, l.head = l.keys[:0], l.base+uint32(l.head), 0
	case l.head >= 1024 && 2*l.head >= len(l.keys): // keep the slice at most twice its content
		n := copy(l.keys, l.keys[l.head:])
		l.keys, l.base, l.head = l.keys[:n], l.base+uint32(l.head), 0
	}
	return k, r
}

// New returns a window that remembers ids for at least span.
func New(span time.Duration) *Window {
	w := &Window{span: span, now: time.Now, byKey: map[key]ref{}, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	w.newest = generations // so that every live generation number is positive
	for g := w.newest - generations + 1; g <= w.newest; g++ {
		w.gens[g%generations].gen = g
	}
	w.current = w.now()
	return w
}

func (w *Window) key(id string) key {
	return key{maphash.String(w.seeds[0], id), maphash.String(w.seeds[1], id)}
}

func (w *Window) step() time.Duration { return w.span / (generations - 1) }

func (w *Window) isLive(r ref) bool { return uint32(w.newest)-r.gen() < generations }

// rotate starts the generations due by now; their oldest ones expire. Called with mu held.
func (w *Window) rotate(now time.Time) {
	step := w.step()
	for n := 0; now.Sub(w.current) >= step && n <= generations; n++ {
		w.newest++
		w.current = w.current.Add(step)
		l := &w.gens[w.newest%generations] // generation newest-generations: expired now
		w.live -= l.n
		if l.head < len(l.keys) {
			w.expired = append(w.expired, *l)
		}
		*l = genList{gen: w.newest}
	}
	if now.Sub(w.current) >= step { // idle for longer than the whole window
		w.current = now
	}
	if w.live == 0 && len(w.byKey) > 0 { // every id held has expired: start afresh
		w.byKey = map[key]ref{}
		w.expired = nil
		for i := range w.gens {
			l := &w.gens[i]
			*l = genList{gen: l.gen, base: l.base + uint32(len(l.keys))}
		}
	}
}

// find returns where the id of key k is listed, if it is in a live generation.
func (w *Window) find(k key) (ref, bool) {
	r, ok := w.byKey[k]
	return r, ok && w.isLive(r)
}

// Seen reports for each id whether it was added within the window, writing into seen
// (which must be as long as ids).
func (w *Window) Seen(ids []string, seen []bool) {
	w.mu.Lock()
	w.rotate(w.now())
	for i, id := range ids {
		_, seen[i] = w.find(w.key(id))
	}
	w.mu.Unlock()
}

// Add remembers ids as accepted now.
func (w *Window) Add(ids ...string) {
	w.mu.Lock()
	w.rotate(w.now())
	for _, id := range ids {
		w.put(w.key(id), w.newest)
	}
	w.bound()
	w.sweep(2*len(ids) + 16)
	w.mu.Unlock()
}

// put records key k in live generation g unless it is in g or a newer one already. Called
// with mu held.
func (w *Window) put(k key, g uint64) {
	old, ok := w.find(k)
	if ok {
		if old.gen() == uint32(g) || uint32(w.newest)-old.gen() < uint32(w.newest-g) { // as new or newer
			return
		}
		w.gens[old.gen()%generations].n--
		w.live--
	}
	l := &w.gens[g%generations]
	w.byKey[k] = makeRef(g, l.base+uint32(len(l.keys)))
	l.keys = append(l.keys, k)
	l.n++
	w.live++
}

// forget deletes k from the map if it still refers to it at r. Called with mu held.
func (w *Window) forget(k key, r ref) bool {
	if cur, ok := w.byKey[k]; ok && cur == r {
		delete(w.byKey, k)
		return true
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
		for ; budget > 0 && l.head < len(l.keys); budget-- {
			w.forget(l.pop())
		}
		if l.head == len(l.keys) {
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
	w.put(w.key(id), w.newest-uint64(g))
	w.bound()
	w.sweep(16)
}

// Len returns how many ids the window holds.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live
}
