package dedup

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for one test goroutine.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestWindow returns a window whose clock is c, starting at a fixed time.
func newTestWindow(span time.Duration) (*Window, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	w := New(span)
	w.now = c.now
	w.current = c.t
	return w, c
}

func seen(w *Window, ids ...string) []bool {
	out := make([]bool, len(ids))
	w.Seen(ids, out)
	return out
}

const span = 9 * time.Second // a whole number of generation steps: step = 1 s

// maxKeep is the longest an id may be remembered: one step beyond the span.
const maxKeep = span + span/(generations-1)

func TestSeenAdd(t *testing.T) {
	w, _ := newTestWindow(span)
	if got := seen(w, "a", "b", "c"); !slices.Equal(got, []bool{false, false, false}) {
		t.Fatalf("empty window: Seen = %v, want all false", got)
	}
	w.Add("a", "b")
	if got := seen(w, "a", "b", "c"); !slices.Equal(got, []bool{true, true, false}) {
		t.Errorf("after Add(a, b): Seen = %v, want [true true false]", got)
	}
	w.Add("a")
	if n := w.Len(); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
	if got := seen(w); len(got) != 0 {
		t.Errorf("Seen of no ids = %v", got)
	}
}

func TestExpiry(t *testing.T) {
	step := span / (generations - 1)
	// Whatever the position of the Add within its generation, the id is remembered for
	// the whole span and forgotten by maxKeep.
	for _, offset := range []time.Duration{0, 1, step / 3, step / 2, step - 1} {
		t.Run(fmt.Sprint(offset), func(t *testing.T) {
			w, c := newTestWindow(span)
			c.advance(offset)
			w.Add("a")
			added := c.t

			c.t = added.Add(span / 2)
			if got := seen(w, "a"); !got[0] {
				t.Fatalf("forgotten at age %v", c.t.Sub(added))
			}
			c.t = added.Add(span - 1)
			if got := seen(w, "a"); !got[0] {
				t.Fatalf("forgotten at age %v, within the span %v", c.t.Sub(added), span)
			}
			c.t = added.Add(maxKeep + 1)
			if got := seen(w, "a"); got[0] {
				t.Fatalf("still remembered at age %v, beyond %v", c.t.Sub(added), maxKeep)
			}
			if n := w.Len(); n != 0 {
				t.Errorf("Len after expiry = %d, want 0", n)
			}
		})
	}
}

func TestAddRefreshes(t *testing.T) {
	w, c := newTestWindow(span)
	w.Add("a")
	c.advance(5 * time.Second)
	w.Add("a") // a client retry accepted again
	c.advance(span - time.Second)
	if got := seen(w, "a"); !got[0] {
		t.Errorf("forgotten %v after the second Add", span-time.Second)
	}
}

func TestAddAt(t *testing.T) {
	w, c := newTestWindow(span)
	now := c.t
	w.AddAt("too-old", now.Add(-span-time.Millisecond))
	w.AddAt("old", now.Add(-span/2))
	w.AddAt("just-now", now.Add(-time.Millisecond))
	w.AddAt("future", now.Add(time.Second)) // a clock step between processes
	if got := seen(w, "too-old", "old", "just-now", "future"); !slices.Equal(got, []bool{false, true, true, true}) {
		t.Fatalf("Seen after AddAt = %v, want [false true true true]", got)
	}
	if n := w.Len(); n != 3 {
		t.Errorf("Len = %d, want 3 (the id older than the span is ignored)", n)
	}

	// "old" keeps its age: it expires span after it was accepted, not span after AddAt.
	at := now.Add(-span / 2)
	c.t = at.Add(span - 1)
	if got := seen(w, "old"); !got[0] {
		t.Errorf("AddAt id forgotten at age %v, within the span", c.t.Sub(at))
	}
	c.t = at.Add(maxKeep + 1)
	if got := seen(w, "old", "just-now"); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("at age %v of old: Seen(old, just-now) = %v, want [false true]", c.t.Sub(at), got)
	}
}

func TestAddAtEveryAge(t *testing.T) {
	// An id rebuilt with AddAt behaves as if it had been added at its time: remembered
	// until its age reaches the span, gone once it passes maxKeep.
	for age := time.Duration(0); age < span; age += 250 * time.Millisecond {
		w, c := newTestWindow(span)
		c.advance(300 * time.Millisecond) // not aligned with the generations
		at := c.t.Add(-age)
		w.AddAt("x", at)
		c.t = at.Add(span - time.Millisecond)
		if got := seen(w, "x"); !got[0] {
			t.Errorf("AddAt at age %v: forgotten at age %v", age, c.t.Sub(at))
		}
		c.t = at.Add(maxKeep + time.Millisecond)
		if got := seen(w, "x"); got[0] {
			t.Errorf("AddAt at age %v: still remembered at age %v", age, c.t.Sub(at))
		}
	}
}

func TestRotationAfterLongIdle(t *testing.T) {
	w, c := newTestWindow(span)
	w.Add("a")
	c.advance(100*span + 300*time.Millisecond)
	if got := seen(w, "a"); got[0] {
		t.Fatal("id remembered after 100 spans idle")
	}
	if n := w.Len(); n != 0 {
		t.Fatalf("Len after long idle = %d, want 0", n)
	}
	// The window works normally afterwards.
	w.Add("b")
	added := c.t
	c.t = added.Add(span - 1)
	if got := seen(w, "a", "b"); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("after idle: Seen(a, b) at age %v of b = %v, want [false true]", c.t.Sub(added), got)
	}
	c.t = added.Add(maxKeep + 1)
	if got := seen(w, "b"); got[0] {
		t.Errorf("after idle: b still remembered at age %v", c.t.Sub(added))
	}

	// An idle of a few steps only ages the ids; it does not drop them.
	w.Add("c")
	c.advance(5 * time.Second)
	if got := seen(w, "c"); !got[0] {
		t.Error("c forgotten after 5 s idle")
	}
}

func TestConcurrent(t *testing.T) {
	w := New(time.Minute)
	const goroutines, perG = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]bool, 1)
			for i := range perG {
				id := fmt.Sprintf("g%d-%d", g, i)
				w.Seen([]string{id}, buf)
				if buf[0] {
					t.Errorf("%s seen before it was added", id)
				}
				w.Add(id)
			}
		}()
	}
	wg.Wait()
	if n := w.Len(); n != goroutines*perG {
		t.Errorf("Len = %d, want %d", n, goroutines*perG)
	}
	ids := []string{"g0-0", "g7-499", "g3-250", "nope"}
	if got := seen(w, ids...); !slices.Equal(got, []bool{true, true, true, false}) {
		t.Errorf("Seen(%v) = %v", ids, got)
	}
}

func TestWindowMaxIDsForgetsOldestFirst(t *testing.T) {
	w, c := newTestWindow(10 * time.Minute)
	w.MaxIDs = 250
	for i := 0; i < 200; i++ {
		w.Add(fmt.Sprintf("old-%d", i))
	}
	c.advance(2 * time.Minute) // the next ids land in a newer generation
	for i := 0; i < 100; i++ {
		w.Add(fmt.Sprintf("new-%d", i))
	}
	// The 50 oldest go, one by one; the rest of their generation stays.
	if n := w.Len(); n != 250 {
		t.Fatalf("window holds %d ids, want 250 (the bound)", n)
	}
	ids := []string{"old-0", "old-49", "old-50", "old-199", "new-0", "new-99"}
	if got := seen(w, ids...); !slices.Equal(got, []bool{false, false, true, true, true, true}) {
		t.Fatalf("Seen(%v) = %v, want the 50 oldest forgotten", ids, got)
	}
}

// With the bound reached in a single generation (50,000 events/s fill a million in 20 s, a
// generation of the default 10 minute window lasts 67 s), each new id forgets the oldest
// one: the window keeps the newest MaxIDs instead of starting afresh.
func TestWindowMaxIDsInOneGeneration(t *testing.T) {
	w, c := newTestWindow(10 * time.Minute)
	w.MaxIDs = 1000
	for i := range 5000 {
		w.Add(fmt.Sprint(i))
		if i%100 == 0 {
			c.advance(time.Millisecond)
		}
		if n, want := w.Len(), min(i+1, 1000); n != want {
			t.Fatalf("after %d ids the window holds %d, want %d", i+1, n, want)
		}
	}
	got := seen(w, "0", "3999", "4000", "4500", "4999")
	if !slices.Equal(got, []bool{false, false, true, true, true}) {
		t.Errorf("Seen(0, 3999, 4000, 4500, 4999) = %v, want the newest 1000 (4000-4999)", got)
	}
	// An id inside the window and the bound is found however many ids came and went
	// before it.
	w.Add("x")
	for i := range 999 {
		w.Add(fmt.Sprint("y", i))
	}
	if got := seen(w, "x"); !got[0] {
		t.Error("x forgotten while 999 newer ids are within the bound of 1000")
	}
	w.Add("z")
	if got := seen(w, "x", "y0", "z"); !slices.Equal(got, []bool{false, true, true}) {
		t.Errorf("one more id: Seen(x, y0, z) = %v, want the oldest (x) gone only", got)
	}
}

// The bound goes through generations oldest first, whatever order they were filled in.
func TestWindowMaxIDsAcrossGenerations(t *testing.T) {
	w, c := newTestWindow(span) // step 1 s
	w.MaxIDs = 30
	now := c.t
	for i := range 10 {
		w.AddAt(fmt.Sprint("b", i), now.Add(-3*time.Second)) // older
	}
	for i := range 10 {
		w.AddAt(fmt.Sprint("c", i), now)
	}
	for i := range 10 {
		w.AddAt(fmt.Sprint("a", i), now.Add(-6*time.Second)) // oldest, added last
	}
	w.Add("d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11")
	// 42 ids, bound 30: the 10 "a" and the first two "b" go.
	if n := w.Len(); n != 30 {
		t.Fatalf("Len = %d, want 30", n)
	}
	ids := []string{"a0", "a9", "b0", "b1", "b2", "b9", "c0", "d11"}
	if got := seen(w, ids...); !slices.Equal(got, []bool{false, false, false, false, true, true, true, true}) {
		t.Errorf("Seen(%v) = %v", ids, got)
	}
}

// Expired ids leave the map a few at a time as ids are added, also while newer ones live.
func TestWindowSweepsExpired(t *testing.T) {
	w, c := newTestWindow(span)
	for i := range 100 {
		w.Add(fmt.Sprint("old", i))
	}
	c.advance(5 * time.Second)
	for i := range 100 {
		w.Add(fmt.Sprint("mid", i))
	}
	c.advance(5 * time.Second) // old expired, mid live
	if got := seen(w, "old0", "old99", "mid0"); !slices.Equal(got, []bool{false, false, true}) {
		t.Fatalf("Seen(old0, old99, mid0) = %v", got)
	}
	for i := range 10 {
		w.Add(fmt.Sprint("new", i))
	}
	if n := w.Len(); n != 110 {
		t.Errorf("Len = %d, want 110", n)
	}
	w.mu.Lock()
	held, pending := len(w.byKey), len(w.expired)
	w.mu.Unlock()
	if held != 110 || pending != 0 {
		t.Errorf("map holds %d ids (want 110), %d expired lists left (want 0)", held, pending)
	}
	// An expired id added again is new.
	if got := seen(w, "old5"); got[0] {
		t.Fatal("old5 seen")
	}
	w.Add("old5")
	if got := seen(w, "old5"); !got[0] {
		t.Error("old5 not seen after it was added again")
	}
}

// A model check: distinct ids added at increasing times, under a bound. What the window
// holds must be the newest ids, at most MaxIDs of them, with every id younger than the span
// among the newest MaxIDs, and none older than maxKeep.
func TestWindowNewestSuffix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, maxIDs := range []int{0, 1, 7, 50, 300} {
		w, c := newTestWindow(span)
		w.MaxIDs = maxIDs
		var ids []string
		var at []time.Time
		for i := range 2000 {
			c.advance(time.Duration(rng.IntN(40)) * time.Millisecond)
			if rng.IntN(200) == 0 {
				c.advance(time.Duration(rng.IntN(15)) * time.Second)
			}
			id := fmt.Sprint("e", i)
			ids, at = append(ids, id), append(at, c.t)
			w.Add(id)
			if i%97 != 0 {
				continue
			}
			got := seen(w, ids...)
			first := slices.Index(got, true)
			if first < 0 {
				first = len(ids)
			}
			for j := first; j < len(ids); j++ {
				if !got[j] {
					t.Fatalf("MaxIDs %d, after %d ids: %s forgotten, %s held: not the newest", maxIDs, i+1, ids[j], ids[first])
				}
			}
			held := len(ids) - first
			if maxIDs > 0 && held > maxIDs {
				t.Fatalf("MaxIDs %d: %d held", maxIDs, held)
			}
			if n := w.Len(); n != held {
				t.Fatalf("MaxIDs %d: Len = %d, %d seen", maxIDs, n, held)
			}
			for j := range ids {
				age := c.t.Sub(at[j])
				inBound := maxIDs == 0 || j >= len(ids)-maxIDs
				if age < span && inBound && !got[j] {
					t.Fatalf("MaxIDs %d: %s forgotten at age %v, within the span and the bound", maxIDs, ids[j], age)
				}
				if age > maxKeep && got[j] {
					t.Fatalf("MaxIDs %d: %s held at age %v", maxIDs, ids[j], age)
				}
			}
		}
	}
}
