package sqlitestore

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/blocks"
	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	es := events(0, 12000) // one event a second from base: 12000 s, about 3.3 hours
	for i := range es {
		if i%4 == 0 {
			es[i].EventType = "click"
		}
	}
	for i := 0; i < len(es); i += 1000 {
		insert(t, s, es[i:i+1000], 1000, 0)
	}
	cutoff := base.Add(7300 * time.Second) // keeps events 7300.. (event i has time base+i s)
	n, err := s.Prune(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	kept := es[7300:]
	if n != 7300 {
		t.Fatalf("Prune deleted %d events, want 7300", n)
	}
	if c := count(t, s); c != int64(len(kept)) {
		t.Fatalf("Count = %d after prune, want %d", c, len(kept))
	}
	want := map[string]int64{}
	for _, e := range kept {
		want[e.EventType]++
	}
	if got, _ := s.CountByType(ctx); !maps.Equal(got, want) {
		t.Fatalf("CountByType = %v, want %v", got, want)
	}
	var rawLeft int64
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM events WHERE ts < ?`, cutoff.UnixNano()).Scan(&rawLeft); err != nil {
		t.Fatal(err)
	}
	if rawLeft != 0 {
		t.Fatalf("%d events older than the cutoff remain", rawLeft)
	}
	// Analytics over the whole span agree with what is left.
	startMin := cutoff.Unix()/60 + 1 // first whole minute after the cutoff
	q := store.AnalyticsQuery{Start: time.Unix(startMin*60, 0), End: time.Unix(base.Add(12000*time.Second).Unix()/60*60, 0), Bucket: time.Minute}
	res, err := s.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var wantTotal int64
	for _, e := range kept {
		if !e.Timestamp.Before(q.Start) && e.Timestamp.Before(q.End) {
			wantTotal++
		}
	}
	if res.TotalEvents != wantTotal {
		t.Fatalf("analytics after prune: %d events, want %d", res.TotalEvents, wantTotal)
	}
	// The engine forgot the hours before the cut-off, and so did the persisted blocks.
	if err := s.seal(ctx, true); err != nil {
		t.Fatal(err)
	}
	if n := s.an.eng.Snapshot().Events(); n != len(kept) {
		t.Fatalf("the analytics engine holds %d events after prune, want %d", n, len(kept))
	}
	var oldBlocks int64
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM analytics_block WHERE hour < ?`, blocks.HourOf(cutoff.UnixNano())).Scan(&oldBlocks); err != nil {
		t.Fatal(err)
	}
	if oldBlocks != 0 {
		t.Fatalf("%d analytics blocks older than the cut-off's hour remain", oldBlocks)
	}
	// Pruning again finds nothing.
	if n, err := s.Prune(ctx, cutoff); err != nil || n != 0 {
		t.Fatalf("second Prune = %d, %v", n, err)
	}
}

// The hour retention cuts into is counted again from the events left there, whether it was
// sealed or in the head, also after a restart.
func TestRetentionRecountsCutHour(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(4, 4))
	all := randomEvents(rng, 0, 6000, 40, 0, t0, 3*time.Hour)
	insert(t, s, all, len(all), 0)
	if err := s.seal(ctx, true); err != nil { // the cut hour's block holds what retention deletes
		t.Fatal(err)
	}
	cutoff := t0.Add(80*time.Minute + 30*time.Second) // 11:20:30
	if _, err := s.Prune(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	var kept []event.Event
	for _, e := range all {
		if !e.Timestamp.Before(cutoff) {
			kept = append(kept, e)
		}
	}
	check := func(s *Store, when string) {
		t.Helper()
		for _, q := range []store.AnalyticsQuery{
			{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour), Bucket: 10 * time.Minute},           // the cut hour, whole
			{Start: t0.Add(80 * time.Minute), End: t0.Add(100 * time.Minute), Bucket: 5 * time.Minute}, // minutes from the cut one
			{Start: t0, End: t0.Add(3 * time.Hour), Bucket: time.Hour},
		} {
			got, err := s.Analytics(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if err := storetest.Compare(got, storetest.Expect(kept, q), false); err != nil {
				t.Errorf("%s, %s-%s: %v", when, q.Start.Format("15:04"), q.End.Format("15:04"), err)
			}
		}
	}
	check(s, "after the prune")
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openStore(t, dir), "after a restart")
}

// Retention takes the names only deleted events held out of the dictionaries, in memory
// and on disk, and the analytics stay exact, also after a restart.
func TestRetentionForgetsNames(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(5, 5))
	all := randomEvents(rng, 0, 6000, 300, 50, t0, 3*time.Hour)
	for i := range all { // every hour its own users
		all[i].UserID = fmt.Sprintf("%s@%d", all[i].UserID, all[i].Timestamp.Sub(t0)/time.Hour)
	}
	names := func(s *Store) (mem, disk int) {
		t.Helper()
		if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM analytics_name WHERE kind = 0`).Scan(&disk); err != nil {
			t.Fatal(err)
		}
		return len(s.an.eng.Snapshot().Dicts().Users.Names()), disk
	}
	insert(t, s, all, len(all), 0)
	if err := s.feed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.seal(ctx, true); err != nil {
		t.Fatal(err)
	}
	if mem, disk := names(s); mem < 800 || disk != mem {
		t.Fatalf("before retention %d user names in memory and %d on disk, want about 900", mem, disk)
	}
	cutoff := t0.Add(2*time.Hour + 10*time.Minute)
	if _, err := s.Prune(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	var kept []event.Event
	users := map[string]bool{}
	for _, e := range all {
		if !e.Timestamp.Before(cutoff) {
			kept = append(kept, e)
			users[e.UserID] = true
		}
	}
	if mem, disk := names(s); mem != len(users) || disk != len(users) {
		t.Fatalf("after retention %d user names in memory and %d on disk, want %d", mem, disk, len(users))
	}
	var qs []store.AnalyticsQuery
	for _, user := range []string{"", "user_1", "user_7@2"} {
		qs = append(qs, store.AnalyticsQuery{Start: t0, End: t0.Add(3 * time.Hour), Bucket: 10 * time.Minute, UserID: user})
	}
	check := func(s *Store, when string) {
		t.Helper()
		answer := func(q store.AnalyticsQuery) (store.AnalyticsResult, error) { return s.Analytics(ctx, q) }
		storetest.MatchExpect(t, when, answer, qs, kept)
	}
	check(s, "after retention")
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	check(s, "after a restart")
	if mem, disk := names(s); mem != len(users) || disk != len(users) {
		t.Fatalf("after a restart %d user names in memory and %d on disk, want %d", mem, disk, len(users))
	}
}

// Retention never lets a later event take the seq of one it deleted (SQLite numbers a row
// one past the largest left): the engine and other processes feed by seq, and would skip
// it. Here the newest row is the oldest event.
func TestRetentionKeepsSeqsIncreasing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(6, 6))
	insert(t, s, randomEvents(rng, 0, 500, 20, 10, t0.Add(time.Hour), time.Hour), 500, 0)
	old := randomEvents(rng, 500, 3, 20, 10, t0, time.Minute) // late, and stored last
	insert(t, s, old, 3, 0)
	if err := s.feed(ctx); err != nil {
		t.Fatal(err)
	}
	cut := t0.Add(30 * time.Minute)
	if _, err := s.Prune(ctx, cut); err != nil {
		t.Fatal(err)
	}
	later := randomEvents(rng, 600, 50, 20, 10, t0.Add(90*time.Minute), 10*time.Minute)
	insert(t, s, later, 50, 0)
	q := store.AnalyticsQuery{Start: t0, End: t0.Add(3 * time.Hour), Bucket: time.Hour}
	got, err := s.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM events WHERE ts >= ?`, cut.UnixNano()).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 550 || got.TotalEvents != total {
		t.Fatalf("analytics count %d events, the table %d after the cut-off; want 550", got.TotalEvents, total)
	}
}
