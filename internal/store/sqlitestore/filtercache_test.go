package sqlitestore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// Filtered analytics reuse the partial results of unchanged minutes and hours, and compute
// again those that a late event (stored by another process) or retention changed. The same
// with the event digest answering every hour, and answering from hour 05 on (the earlier
// minutes from the events table): both must see the other process's late event and
// retention.
func TestFilterCacheFollowsChanges(t *testing.T) {
	for _, mode := range []string{"events", "digest", "digest-from-05"} {
		t.Run(mode, func(t *testing.T) { testFilterCacheFollowsChanges(t, mode) })
	}
}

func testFilterCacheFollowsChanges(t *testing.T, mode string) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openStore(t, dir), openStore(t, dir)
	types := []string{"click", "page_view", "login"}
	var all []event.Event
	add := func(s *Store, es []event.Event) {
		t.Helper()
		if _, _, err := s.InsertBatch(ctx, es, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.BuildRollups(ctx); err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	es := events(0, 9000) // one a second from 04:05:06: 2.5 hours
	for i := range es {
		es[i].EventType, es[i].UserID = types[i%3], fmt.Sprintf("user_%d", (i*7)%40)
	}
	add(a, es)
	switch mode {
	case "events":
		a.digestOff()
	case "digest-from-05":
		a.digestFrom(t, floorDiv(base.Unix(), 3600)+1)
	}
	from := base.Truncate(time.Minute).Add(4 * time.Minute) // 04:09-06:39: minute edges, hour 05
	q := store.AnalyticsQuery{Start: from, End: from.Add(150 * time.Minute), Bucket: 10 * time.Minute, EventType: "click", UserID: "USER_1"}
	check := func(step string) {
		t.Helper()
		got, err := a.Analytics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := storetest.Expect(all, q)
		if err := storetest.Compare(got, want, false); err != nil || got.UniqueUsers != want.UniqueUsers {
			t.Fatalf("%s: %v (users %d, want %d)", step, err, got.UniqueUsers, want.UniqueUsers)
		}
		if want.TotalEvents == 0 {
			t.Fatalf("%s: the query matches no events; the test needs some", step)
		}
	}
	<-a.mem.warmed
	check("first query")
	loads := a.filters.loads
	check("repeated")
	if n := a.filters.loads - loads; n != 0 && mode == "events" {
		t.Errorf("a repeated query computed %d partial results again, want 0", n)
	}

	// A late click by user_1 at 05:30, stored and built by the other process.
	late := testEvent(50000)
	late.EventType, late.UserID, late.Timestamp = "click", "user_1", base.Truncate(time.Hour).Add(85*time.Minute)
	add(b, []event.Event{late})
	loads = a.filters.loads
	check("after a late event")
	if n := a.filters.loads - loads; n != 1 && mode == "events" {
		t.Errorf("after a late event in hour 05 %d partial results were computed again, want 1", n)
	}

	// Retention cuts into the first edge minute's hour (04:30).
	cutoff := base.Truncate(time.Hour).Add(30*time.Minute + 20*time.Second)
	if _, err := b.Prune(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	var kept []event.Event
	for _, e := range all {
		if !e.Timestamp.Before(cutoff) {
			kept = append(kept, e)
		}
	}
	all = kept
	check("after retention")
}
