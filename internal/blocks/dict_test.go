package blocks

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

func TestDict(t *testing.T) {
	d := NewDict()
	if a, b, a2 := d.ID("a"), d.ID("b"), d.ID("a"); a != 0 || b != 1 || a2 != 0 {
		t.Fatalf("ids a=%d b=%d a again=%d, want 0 1 0", a, b, a2)
	}
	if id, ok := d.Lookup("b"); !ok || id != 1 {
		t.Errorf("Lookup(b) = %d, %v", id, ok)
	}
	if _, ok := d.Lookup("c"); ok {
		t.Error("Lookup of a name never numbered succeeded")
	}
	names := d.Names()
	d.ID("c")
	if !slices.Equal(names, []string{"a", "b"}) || !slices.Equal(d.Names(), []string{"a", "b", "c"}) {
		t.Errorf("Names: %q then %q", names, d.Names())
	}

	// A store reads its names back in order; a repeated one is refused.
	e := NewDict()
	if !e.Load([]string{"a", "b"}) || !e.Load([]string{"c"}) || e.ID("c") != 2 {
		t.Errorf("Load: names %q", e.Names())
	}
	if e.Load([]string{"d", "a"}) || e.Load([]string{"e", "e"}) || len(e.Names()) != 3 {
		t.Errorf("Load of a name already numbered or repeated: names %q", e.Names())
	}
}

func TestDictConcurrent(t *testing.T) {
	d := NewDict()
	var wg sync.WaitGroup
	ids := make([][]uint32, 4)
	for g := range ids {
		wg.Go(func() {
			for i := range 1000 {
				ids[g] = append(ids[g], d.ID(fmt.Sprint(i)))
				_ = d.Names()
			}
		})
	}
	wg.Wait()
	for g := range ids {
		if !slices.Equal(ids[g], ids[0]) {
			t.Fatalf("goroutine %d saw other ids", g)
		}
	}
	for i, name := range d.Names() {
		if id, _ := d.Lookup(name); int(id) != i {
			t.Fatalf("name %q at %d has id %d", name, i, id)
		}
	}
}

// Past its limit a dictionary numbers no new name: they all get other's id.
func TestDictLimit(t *testing.T) {
	d := NewDict()
	d.Limit(2, "(other)")
	a, b, c, e := d.ID("a"), d.ID("b"), d.ID("c"), d.ID("e")
	if a != 0 || b != 1 || c != 2 || e != 2 || d.ID("a") != 0 {
		t.Fatalf("ids a=%d b=%d c=%d e=%d", a, b, c, e)
	}
	if !slices.Equal(d.Names(), []string{"a", "b", "(other)"}) || d.Refused() != 2 {
		t.Fatalf("names %q, %d refused; want a, b, (other) and 2", d.Names(), d.Refused())
	}
	if _, ok := d.Lookup("c"); ok {
		t.Error("a refused name has an id of its own")
	}
}

// An engine whose user dictionary is full counts the events of new users exactly, under
// one user that no answer lists and no filter matches; Compact keeps the limit.
func TestEngineUserLimit(t *testing.T) {
	evs := storetest.Corpus(3000, 6)
	d := NewDicts()
	d.Users.Limit(50, OtherUsers)
	e := NewEngine(d)
	if err := e.Add(toEvents(evs)); err != nil {
		t.Fatal(err)
	}
	for _, h := range e.HeadHours()[1:] {
		if _, err := e.Seal(h.Hour); err != nil {
			t.Fatal(err)
		}
	}
	known := map[string]bool{}
	for _, name := range e.Snapshot().Dicts().Users.Names() {
		known[name] = true
	}
	if len(known) != 51 || !known[OtherUsers] {
		t.Fatalf("%d user names, want 50 and OtherUsers", len(known))
	}
	first := evs[0].Timestamp.Truncate(time.Hour)
	q := store.AnalyticsQuery{Start: first, End: first.Add(5 * time.Hour), Bucket: time.Hour}
	check := func(stage string) {
		t.Helper()
		got, err := e.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		want := storetest.Expect(evs, q)
		sameTypes := slices.EqualFunc(got.EventsByType, want.EventsByType, func(x, y store.TypeCount) bool { return x.EventType == y.EventType && x.Count == y.Count })
		if got.TotalEvents != want.TotalEvents || !sameTypes || got.UniqueUsers != 51 {
			t.Fatalf("%s: %d events by type %v, %d users; want %d, %v, 51", stage, got.TotalEvents, got.EventsByType, got.UniqueUsers, want.TotalEvents, want.EventsByType)
		}
		for _, u := range got.TopUsers {
			if !known[u.UserID] || u.UserID == OtherUsers {
				t.Fatalf("%s: top user %q", stage, u.UserID)
			}
		}
		for _, ev := range evs {
			if !known[ev.UserID] {
				q := q
				q.UserID = ev.UserID
				if res, err := e.Query(q); err != nil || res.TotalEvents != 0 {
					t.Fatalf("%s: the events of %s, a user past the limit: %d, %v", stage, ev.UserID, res.TotalEvents, err)
				}
				return
			}
		}
		t.Fatal("no user past the limit")
	}
	check("full")
	e.Drop(Hour(evs[len(evs)-1].Timestamp)) // all but the last hour
	if !e.Compact(false) {
		t.Fatal("nothing compacted")
	}
	if lim := e.Snapshot().Dicts().Users.limit; lim != 50 {
		t.Fatalf("after Compact the limit is %d", lim)
	}
}

// A dictionary that lumped names under other says so, also once loaded again (its refusal
// count then starts from zero).
func TestDictLumped(t *testing.T) {
	d := NewDict()
	d.Limit(2, "~other")
	d.ID("a")
	d.ID("b")
	if d.Lumped() {
		t.Fatal("lumped before any refusal")
	}
	d.ID("c")
	if !d.Lumped() {
		t.Fatal("not lumped after a refusal")
	}
	again := NewDict()
	again.Limit(2, "~other")
	if !again.Load(d.Names()) || !again.Lumped() || again.Refused() != 0 {
		t.Fatalf("loaded again: lumped %v, refused %d", again.Lumped(), again.Refused())
	}
}
