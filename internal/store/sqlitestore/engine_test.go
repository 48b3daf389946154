package sqlitestore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// crash stops the store as a killed process would: no last feed, seal or write.
func (s *Store) crash() {
	s.stopAnalytics()
	s.rdb.Close()
	s.wdb.Close()
}

// corpusQueries are ranges over storetest.Corpus's three hours: whole, cut at both ends,
// and each filter.
func corpusQueries(evs []event.Event) []store.AnalyticsQuery {
	first := evs[0].Timestamp.Truncate(time.Hour)
	return []store.AnalyticsQuery{
		{Start: first, End: first.Add(4 * time.Hour), Bucket: time.Hour},
		{Start: first.Add(17 * time.Minute), End: first.Add(3*time.Hour + 41*time.Minute), Bucket: 2 * time.Minute},
		{Start: first, End: first.Add(4 * time.Hour), Bucket: 30 * time.Minute, EventType: "click"},
		{Start: first.Add(time.Hour), End: first.Add(2 * time.Hour), Bucket: time.Minute, UserID: "USER_01"},
	}
}

// checkCorpus compares s's answers with brute force over evs.
func checkCorpus(t *testing.T, s *Store, evs []event.Event, when string) {
	t.Helper()
	answer := func(q store.AnalyticsQuery) (store.AnalyticsResult, error) {
		return s.Analytics(context.Background(), q)
	}
	storetest.MatchExpect(t, when, answer, corpusQueries(evs), evs)
}

// After a crash the store answers exactly: from the blocks it persisted, and the events
// after their watermark fed again.
func TestAnalyticsAfterACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	s.stopAnalytics()
	evs := storetest.Corpus(6000, 12)
	insert(t, s, evs[:4000], 4000, 0)
	if err := s.feed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.seal(ctx, true); err != nil { // persisted: 4000 events
		t.Fatal(err)
	}
	insert(t, s, evs[4000:], 2000, 0) // stored, in no block
	checkCorpus(t, s, evs, "before the crash")
	s.crash()

	again := openStore(t, dir)
	var w int64
	if err := again.rdb.QueryRow(`SELECT value FROM counters WHERE name = 'blocks_seq'`).Scan(&w); err != nil || w != 4000 {
		t.Fatalf("watermark %d (%v), want 4000: the last 2000 events must come from the events table", w, err)
	}
	checkCorpus(t, again, evs, "after the crash")
}

// Two processes on one store each answer from every stored event, whichever stored it;
// one of them persists at a time, and a third starts from what was persisted.
func TestTwoProcesses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openStore(t, dir), openStore(t, dir)
	evs := storetest.Corpus(4000, 13)
	insert(t, a, evs[:2000], 2000, 0)
	insert(t, b, evs[2000:3000], 1000, 0)
	for _, s := range []*Store{a, b} {
		if err := s.feed(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.seal(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	insert(t, a, evs[3000:], 1000, 0)
	checkCorpus(t, a, evs, "process a")
	checkCorpus(t, b, evs, "process b")
	// b takes the lease when a's runs out, and writes its own state whole.
	if _, err := b.wdb.Exec(`UPDATE analytics_lease SET until = 0`); err != nil {
		t.Fatal(err)
	}
	if err := b.seal(ctx, true); err != nil {
		t.Fatal(err)
	}
	var owner string
	if err := b.rdb.QueryRow(`SELECT owner FROM analytics_lease`).Scan(&owner); err != nil || owner != b.an.owner {
		t.Fatalf("lease owner %q (%v), want b's %q", owner, err, b.an.owner)
	}
	a.crash()
	b.crash()
	checkCorpus(t, openStore(t, dir), evs, "a third process")
}

// A start that feeds many events says so in the log; damaged blocks are rebuilt from the
// events.
func TestStartLogsAndRebuilds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	evs := storetest.Corpus(3000, 14)
	insert(t, s, evs, 3000, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlitedb.Open(dir+"/events.db", sqlitedb.SyncNormal, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE analytics_block SET data = x'00'`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	defer func(v int64) { logReplayAbove = v }(logReplayAbove)
	logReplayAbove = 1000
	var buf bytes.Buffer
	again, err := OpenLogged(ctx, dir, sqlitedb.SyncNormal, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	out := buf.String()
	for _, want := range []string{"analytics blocks unreadable", "reading stored events into the analytics engine", "events=3000", "analytics engine ready"} {
		if !strings.Contains(out, want) {
			t.Fatalf("start log lacks %q:\n%s", want, out)
		}
	}
	checkCorpus(t, again, evs, "after the rebuild")
}

// A retention cut-off applied in memory but not yet written is applied again at the next
// start: the persisted block of the cut hour still holds deleted events.
func TestRetentionAfterACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	s.stopAnalytics()
	evs := storetest.Corpus(4000, 15)
	insert(t, s, evs, 4000, 0)
	if err := s.feed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.seal(ctx, true); err != nil {
		t.Fatal(err)
	}
	// Another process's retention: the cut-off, then the deletes.
	cut := evs[0].Timestamp.Truncate(time.Hour).Add(70*time.Minute + 30*time.Second)
	for _, q := range []string{`INSERT INTO counters(name, value) VALUES ('retention_cutoff', ?)`, `DELETE FROM events WHERE ts < ?`} {
		if _, err := s.wdb.Exec(q, cut.UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	var kept []event.Event
	for _, e := range evs {
		if !e.Timestamp.Before(cut) {
			kept = append(kept, e)
		}
	}
	checkCorpus(t, s, kept, "cut-off applied in memory")
	s.crash()
	checkCorpus(t, openStore(t, dir), kept, "after a crash before it was written")
}

// epoch is 1970-01-01T00:00:00Z, Unix ns 0.
var epoch = time.Unix(0, 0).UTC()

// epochEvents returns events at and before the epoch (negative Unix ns) and one at
// event.MinTime: a user whose newest event is exactly at 0, one a nanosecond before it, one
// whose newest event in an hour is of another type than the query's (read from the events
// table to the nanosecond), and one with events on both sides of a query's minute edge.
func epochEvents() []event.Event {
	at := []struct {
		user, typ string
		ts        time.Time
	}{
		{"u_epoch", "click", epoch},
		{"u_epoch", "click", epoch.Add(-90 * time.Minute)},
		{"u_neg", "click", epoch.Add(-time.Nanosecond)},
		{"u_neg", "view", epoch.Add(-30 * time.Minute)},
		{"u_late", "click", epoch.Add(-40*time.Minute + 15*time.Second + 123)}, // 23:20:15
		{"u_late", "view", epoch.Add(-20 * time.Minute)},                       // 23:40
		{"u_late", "click", epoch.Add(-110 * time.Minute)},                     // 22:10
		{"u_edge", "view", epoch.Add(-110*time.Minute + time.Second)},          // 22:10:01
		{"u_edge", "view", epoch.Add(-70 * time.Minute)},                       // 22:50
		{"u_old", "click", event.MinTime.Add(10 * time.Minute)},
		{"u_old", "view", event.MinTime},
	}
	out := make([]event.Event, len(at))
	for i, a := range at {
		out[i] = event.Event{EventID: fmt.Sprintf("e%d", i), EventType: a.typ, UserID: a.user,
			SessionID: fmt.Sprintf("s%d", i%3), Timestamp: a.ts, ReceivedAt: base}
	}
	return out
}

func epochQueries() []store.AnalyticsQuery {
	old := event.MinTime
	return []store.AnalyticsQuery{
		{Start: epoch.Add(-2 * time.Hour), End: epoch.Add(time.Hour), Bucket: time.Hour},
		{Start: epoch.Add(-115 * time.Minute), End: epoch.Add(-85 * time.Minute), Bucket: 5 * time.Minute}, // inside hour 22
		{Start: epoch.Add(-95 * time.Minute), End: epoch.Add(5 * time.Minute), Bucket: 5 * time.Minute},
		{Start: old, End: old.Add(time.Hour), Bucket: time.Hour},
		{Start: epoch.Add(-2 * time.Hour), End: epoch.Add(time.Hour), Bucket: time.Hour, UserID: "U_"},
		{Start: epoch.Add(-95 * time.Minute), End: epoch.Add(5 * time.Minute), Bucket: 5 * time.Minute, UserID: "e"},
		{Start: epoch.Add(-2 * time.Hour), End: epoch.Add(time.Hour), Bucket: time.Hour, EventType: "click"},
		{Start: epoch.Add(-115 * time.Minute), End: epoch.Add(-5 * time.Minute), Bucket: 5 * time.Minute, EventType: "click"},
		{Start: old, End: old.Add(time.Hour), Bucket: 30 * time.Minute, EventType: "click", UserID: "OLD"},
	}
}

// Events at and before 1970 (negative Unix ns) and at event.MinTime answer as brute force
// does, to the nanosecond, from the head, from sealed blocks and after a restart.
func TestEpochEvents(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	evs := epochEvents()
	insert(t, s, evs, len(evs), 0)
	check := func(s *Store, when string) {
		t.Helper()
		for _, q := range epochQueries() {
			got, err := s.Analytics(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if err := storetest.Compare(got, storetest.Expect(evs, q), true); err != nil {
				t.Errorf("%s, %+v: %v", when, q, err)
			}
		}
	}
	check(s, "in the head")
	if err := s.seal(ctx, true); err != nil {
		t.Fatal(err)
	}
	check(s, "sealed")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openStore(t, dir), "after a restart")
}

// A process started after a crash waits for the dead one's lease to run out, keeping what
// it seals meanwhile, then writes it; a clean Close hands the lease over at once.
func TestLeaseOfACrashedProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	evs := storetest.Corpus(3000, 16)
	insert(t, s, evs[:1000], 1000, 0)
	if err := s.feed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.seal(ctx, true); err != nil { // s holds the lease
		t.Fatal(err)
	}
	s.crash()

	again := openStore(t, dir)
	again.stopAnalytics()
	insert(t, again, evs[1000:], 2000, 0)
	if err := again.feed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.seal(ctx, true); err != nil { // the dead process's lease: nothing written
		t.Fatal(err)
	}
	watermark := func() int64 {
		var w int64
		if err := again.rdb.QueryRow(`SELECT value FROM counters WHERE name = 'blocks_seq'`).Scan(&w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := watermark(); w != 1000 {
		t.Fatalf("watermark %d while another process holds the lease, want 1000", w)
	}
	if _, err := again.wdb.Exec(`UPDATE analytics_lease SET until = 0`); err != nil { // it runs out
		t.Fatal(err)
	}
	if err := again.seal(ctx, false); err != nil {
		t.Fatal(err)
	}
	if w := watermark(); w != 3000 {
		t.Fatalf("watermark %d once the lease is taken, want 3000", w)
	}
	again.crash()
	third := openStore(t, dir)
	checkCorpus(t, third, evs, "after the blocks sealed while waiting were written")
	if _, err := third.wdb.Exec(`UPDATE analytics_lease SET until = 0`); err != nil { // again's runs out
		t.Fatal(err)
	}
	if err := third.seal(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlitedb.Open(dir+"/events.db", sqlitedb.SyncNormal, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var until int64
	if err := db.QueryRow(`SELECT until FROM analytics_lease`).Scan(&until); err != nil || until != 0 {
		t.Fatalf("lease held until %d after Close (%v)", until, err)
	}
}
