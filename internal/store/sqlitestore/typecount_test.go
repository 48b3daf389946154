package sqlitestore

import (
	"context"
	"maps"
	"testing"
)

func TestCountByType(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	es := events(0, 130) // 130 rows: two 50-row chunks and 30 single inserts
	for i := range es {
		if i%3 == 0 {
			es[i].EventType = "click"
		}
	}
	insert(t, s, es[:70], 70, 0)
	// A redelivery overlapping the first write counts only the new rows.
	insert(t, s, es, 60, 70)
	want := map[string]int64{}
	for _, e := range es {
		want[e.EventType]++
	}
	got, err := s.CountByType(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("CountByType = %v, want %v", got, want)
	}
	// Kept across a reopen (they are rows, not memory).
	s.Close()
	s2 := openStore(t, dir)
	if got, _ := s2.CountByType(context.Background()); !maps.Equal(got, want) {
		t.Fatalf("after reopen CountByType = %v, want %v", got, want)
	}
}
