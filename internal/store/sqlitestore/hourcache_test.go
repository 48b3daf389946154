package sqlitestore

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// Unfiltered queries reuse the figures of whole past hours while nothing changes, and read
// an hour again when late events land in it (stored and built by another process) and
// after retention cuts into it; every answer matches a brute-force computation.
func TestHourCacheFollowsChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openStore(t, dir), openStore(t, dir) // two processes on one store
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(9, 9))
	var all []event.Event
	add := func(s *Store, n int, from, span time.Duration) {
		t.Helper()
		es := randomEvents(rng, len(all), n, 200, 700, t0.Add(from), span)
		insert(t, s, es, n, 0)
		if err := s.BuildRollups(ctx); err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	add(a, 6000, 0, 5*time.Hour)
	q := store.AnalyticsQuery{Start: t0.Add(17 * time.Minute), End: t0.Add(4*time.Hour + 47*time.Minute), Bucket: 30 * time.Minute}
	check := func(step string, wantLoads int) {
		t.Helper()
		loads := a.hours.loads
		got, err := a.Analytics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := storetest.Expect(all, q)
		if err := storetest.Compare(got, want, false); err != nil {
			t.Errorf("%s: %v", step, err)
		}
		if n := a.hours.loads - loads; n != wantLoads {
			t.Errorf("%s: %d whole hours read from the database, want %d", step, n, wantLoads)
		}
	}
	check("first", 3) // 11:00-14:00 whole; the edges are minutes
	check("again", 0)
	add(b, 50, 2*time.Hour+10*time.Minute, 5*time.Minute) // late events in 12:10-12:15
	check("after late events in one hour", 1)
	// Retention at 11:30 cuts into the first whole hour.
	cutoff := t0.Add(90 * time.Minute)
	if _, err := b.Prune(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	kept := all[:0:0]
	for _, e := range all {
		if !e.Timestamp.Before(cutoff) {
			kept = append(kept, e)
		}
	}
	all = kept
	check("after retention", 1)
}
