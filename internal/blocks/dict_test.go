package blocks

import (
	"fmt"
	"slices"
	"sync"
	"testing"
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
