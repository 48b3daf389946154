package dedup

import (
	"fmt"
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
	if n := w.Len(); n > 250 || n != 100 {
		t.Fatalf("window holds %d ids, want the 100 newest (bound 250)", n)
	}
	if got := seen(w, "new-99", "old-0"); !got[0] || got[1] {
		t.Fatalf("seen new-99=%v old-0=%v, want true false", got[0], got[1])
	}
}
