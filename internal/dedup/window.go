// Package dedup remembers recently accepted event ids so that a client's retry within the
// dedup window is answered as a duplicate instead of being buffered again.
package dedup

import (
	"sync"
	"time"
)

// generations splits the window: an id is forgotten between span and
// span*(1+1/(generations-1)) after it was added, and expiry costs dropping one map
// instead of scanning entries.
const generations = 10

// Window is an in-process dedup window. Safe for concurrent use.
type Window struct {
	span time.Duration
	now  func() time.Time
	// MaxIDs bounds memory: past it the oldest generations are forgotten early, so the
	// window is span or the last MaxIDs ids, whichever is shorter. A repeat older than that
	// is buffered again and the store's unique event id keeps it from being stored twice.
	// Zero means no bound. Set before use.
	MaxIDs int

	mu      sync.Mutex
	gens    [generations]map[string]struct{} // gens[0] is the newest
	current time.Time                        // start of gens[0]
}

// New returns a window that remembers ids for at least span.
func New(span time.Duration) *Window {
	w := &Window{span: span, now: time.Now}
	for i := range w.gens {
		w.gens[i] = map[string]struct{}{}
	}
	w.current = w.now()
	return w
}

func (w *Window) step() time.Duration { return w.span / (generations - 1) }

// rotate drops generations older than the window. Called with mu held.
func (w *Window) rotate(now time.Time) {
	step := w.step()
	for n := 0; now.Sub(w.current) >= step && n <= generations; n++ {
		copy(w.gens[1:], w.gens[:generations-1])
		w.gens[0] = map[string]struct{}{}
		w.current = w.current.Add(step)
	}
	if now.Sub(w.current) >= step { // idle for longer than the whole window
		w.current = now
	}
}

// Seen reports for each id whether it was added within the window, writing into seen
// (which must be as long as ids).
func (w *Window) Seen(ids []string, seen []bool) {
	w.mu.Lock()
	w.rotate(w.now())
	for i, id := range ids {
		seen[i] = w.has(id)
	}
	w.mu.Unlock()
}

func (w *Window) has(id string) bool {
	for _, g := range w.gens {
		if _, ok := g[id]; ok {
			return true
		}
	}
	return false
}

// Add remembers ids as accepted now.
func (w *Window) Add(ids ...string) {
	w.mu.Lock()
	w.rotate(w.now())
	for _, id := range ids {
		w.gens[0][id] = struct{}{}
	}
	w.bound()
	w.mu.Unlock()
}

// bound drops the oldest ids while the window holds more than MaxIDs. Called with mu held.
func (w *Window) bound() {
	if w.MaxIDs <= 0 {
		return
	}
	n := 0
	for _, g := range w.gens {
		n += len(g)
	}
	for i := generations - 1; i > 0 && n > w.MaxIDs; i-- {
		if len(w.gens[i]) > 0 {
			n -= len(w.gens[i])
			w.gens[i] = map[string]struct{}{}
		}
	}
	if n > w.MaxIDs { // one generation alone is over the bound: start it afresh
		w.gens[0] = map[string]struct{}{}
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
	w.gens[g][id] = struct{}{}
	w.bound()
}

// Len returns how many ids the window holds.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, g := range w.gens {
		n += len(g)
	}
	return n
}
