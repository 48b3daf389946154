package sqlitestore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
)

// The in-memory per-user counts are reused while nothing changes, and are read again when a
// late event lands in a cached hour (built by another process), and after retention.
func TestUserCacheFollowsChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openStore(t, dir), openStore(t, dir) // two processes on one store
	es := events(0, 6000)                        // one a second from 04:05:06: about 100 minutes
	for i := range es {
		es[i].UserID = fmt.Sprintf("u%d", i%10)
	}
	insert(t, a, es, 6000, 0)
	if err := a.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	from := base.Truncate(time.Minute).Add(time.Minute) // minute edges around whole hour 05:00
	to := from.Add(2 * time.Hour)
	startMin, endMin := unixMinute(from.UnixNano()), unixMinute(to.UnixNano())
	top := func(s *Store) []store.TopUser {
		t.Helper()
		got, err := s.topUsersNow(ctx, startMin, endMin)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := map[string]int64{}
	for _, e := range es {
		if !e.Timestamp.Before(from) && e.Timestamp.Before(to) {
			want[e.UserID]++
		}
	}
	got := top(a)
	if len(got) != 10 {
		t.Fatalf("top users: %v, want all 10", got)
	}
	for _, tu := range got {
		if tu.EventCount != want[tu.UserID] {
			t.Errorf("%s: %d events, want %d", tu.UserID, tu.EventCount, want[tu.UserID])
		}
	}
	<-a.mem.warmed // the start's warm-up reads units too
	loads := a.users.loads
	top(a)
	if a.users.loads != loads {
		t.Fatalf("an unchanged range read %d units again, want 0", a.users.loads-loads)
	}

	// A late user at 04:30-04:41 (minutes at the range's first edge), stored and built by the
	// other process.
	var late []event.Event
	for i := 0; i < 700; i++ {
		e := testEvent(10000 + i)
		e.UserID, e.Timestamp = "late", base.Truncate(time.Hour).Add(30*time.Minute+time.Duration(i)*time.Second)
		late = append(late, e)
	}
	insert(t, b, late, 700, 0)
	if err := b.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	loads = a.users.loads
	if got := top(a); got[0].UserID != "late" || got[0].EventCount != 700 {
		t.Fatalf("after a late user: top is %v, want late with 700", got[0])
	}
	if n := a.users.loads - loads; n != 12 {
		t.Errorf("after a late user %d units were read again, want the 12 minutes it changed", n)
	}

	if _, err := b.Prune(ctx, to.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := top(a); len(got) != 0 {
		t.Fatalf("after retention removed everything: top users %v, want none", got)
	}
}

// A start reads the per-user counts of the last 7 days, so that the first 7-day query reads
// no past hour again (a warm-up of the last day only would leave some 150 hours to read).
func TestUserCacheWarmsSevenDays(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(ctx, dir, sqlitedb.SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var es []event.Event
	for i := 0; i < 600; i++ { // ten hours of events six days ago
		e := testEvent(i)
		e.Timestamp = now.Add(-6*24*time.Hour + time.Duration(i)*time.Minute)
		es = append(es, e)
	}
	insert(t, a, es, 600, 0)
	if err := a.Close(); err != nil { // Close builds the rollups
		t.Fatal(err)
	}
	b := openStore(t, dir)
	<-b.mem.warmed
	loads := b.users.loads
	end := time.Now().Truncate(time.Minute).Add(time.Minute)
	got, err := b.Analytics(ctx, store.AnalyticsQuery{Start: end.Add(-7 * 24 * time.Hour), End: end, Bucket: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.TopUsers) != 7 || got.TotalEvents != 600 {
		t.Fatalf("7 days: %d events, %d top users; want 600 and 7", got.TotalEvents, len(got.TopUsers))
	}
	if n := b.users.loads - loads; n > 2 { // the clock may have reached a new minute or two
		t.Fatalf("the first 7-day query read %d minutes and hours, want none but new minutes", n)
	}
}
