package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
	"github.com/evp-dev/evp/internal/testutil/ferret"
)

var ctx = context.Background()

func batch(from, to int) []event.Event {
	var out []event.Event
	for i := from; i < to; i++ {
		out = append(out, storetest.Event(i))
	}
	return out
}

var whole = store.AnalyticsQuery{Start: storetest.Event(0).Timestamp.Truncate(time.Hour), Bucket: time.Hour}

func total(t *testing.T, s *Store) int64 {
	t.Helper()
	q := whole
	q.End = q.Start.Add(2 * time.Hour)
	res, err := s.Analytics(ctx, q)
	if err != nil {
		t.Fatalf("Analytics: %v", err)
	}
	return res.TotalEvents
}

// crashAfterInsert stores events as a call with token tok would have just before it died:
// registered as pending, events inserted, nothing counted.
func crashAfterInsert(t *testing.T, s *Store, evs []event.Event, tok string) {
	t.Helper()
	if _, err := s.pending.InsertOne(ctx, bson.D{{Key: "_id", Value: tok}}); err != nil {
		t.Fatal(err)
	}
	docs := make([]any, len(evs))
	for i, e := range evs {
		docs[i] = eventDoc{ID: e.EventID, EventID: e.EventID, EventType: e.EventType, UserID: e.UserID, SessionID: e.SessionID,
			Timestamp: e.Timestamp, TsNs: e.Timestamp.UnixNano(), ReceivedAt: e.ReceivedAt, ProcessedAt: time.Now(), BT: tok}
	}
	if _, err := s.events.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
}

func oldToken(writer string) string {
	return fmt.Sprintf("%016x-%s-%d", uint64(time.Now().Add(-time.Hour).UnixNano()), writer, 1)
}

func pending(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.pending.CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func insertOK(t *testing.T, s *Store, evs []event.Event, wantIns, wantDup int) {
	t.Helper()
	ins, dup, err := s.InsertBatch(ctx, evs, time.Now())
	if err != nil || ins != wantIns || dup != wantDup {
		t.Fatalf("InsertBatch = %d, %d, %v; want %d, %d", ins, dup, err, wantIns, wantDup)
	}
}

// A writer died after inserting its events and before counting them: the redelivered batch
// finds them pending and counts them, once.
func TestCrashBeforeRollupIsFinishedOnRedelivery(t *testing.T) {
	s, _ := openTest(t)
	crashAfterInsert(t, s, batch(0, 40), oldToken("deadwriter0000001"))
	insertOK(t, s, batch(20, 60), 20, 20) // overlaps: 20 of the dead writer's events come back
	if got := total(t, s); got != 60 {
		t.Fatalf("total = %d, want 60 (the dead writer's 40 counted by the recovery)", got)
	}
	if p := pending(t, s); p != 0 {
		t.Fatalf("%d calls still pending", p)
	}
	insertOK(t, s, batch(0, 60), 0, 60)
	if got := total(t, s); got != 60 {
		t.Fatalf("total after another redelivery = %d, want 60", got)
	}
}

// A writer died after counting and before clearing its marks: the guard keeps the recovery
// from counting again.
func TestCrashAfterRollupDoesNotCountTwice(t *testing.T) {
	s, _ := openTest(t)
	tok := oldToken("deadwriter0000002")
	evs := batch(0, 30)
	crashAfterInsert(t, s, evs, tok)
	counts := map[rollupKey]int64{}
	for _, e := range evs {
		counts[rollupKey{unixMinute(e.Timestamp.UnixNano()), e.EventType}]++
	}
	if _, err := s.applyCounts(ctx, tok, counts); err != nil {
		t.Fatal(err)
	}
	if got := total(t, s); got != 30 {
		t.Fatalf("total before redelivery = %d, want 30", got)
	}
	insertOK(t, s, evs, 0, 30)
	if got := total(t, s); got != 30 {
		t.Fatalf("total after redelivery = %d, want 30 (counted twice?)", got)
	}
	if p := pending(t, s); p != 0 {
		t.Fatalf("%d calls still pending", p)
	}
}

// Another process's fresh pending batch is left to it; once old enough the sweep of any
// process finishes it.
func TestYoungForeignPendingLeftThenSwept(t *testing.T) {
	srv := ferret.Start(t)
	s := openOn(t, srv, "evptest")
	tok := fmt.Sprintf("%016x-%s-%d", uint64(time.Now().UnixNano()), "otherwriter00001", 7)
	crashAfterInsert(t, s, batch(0, 10), tok)
	insertOK(t, s, batch(0, 10), 0, 10)
	if got, p := total(t, s), pending(t, s); got != 0 || p != 1 {
		t.Fatalf("total %d, pending calls %d; want 0 and 1 (a live writer's batch is not taken over)", got, p)
	}
	o, err := Open(ctx, Options{URI: srv.URI(), Database: "evptest", RecoverAfter: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, p := total(t, s), pending(t, s); got != 10 || p != 0 {
		t.Fatalf("after the sweep: total %d, pending %d; want 10 and 0", got, p)
	}
	if err := o.Sweep(ctx); err != nil || total(t, s) != 10 {
		t.Fatalf("a second sweep changed the total to %d (%v)", total(t, s), err)
	}
}

// Two writers (two processes) store overlapping batches at once: every event is stored once
// and the distinct counts merge both writers' sketches (each writes only its own sketch
// documents, so they never race). The exact counts are not checked here: FerretDB applies
// $inc as a read, a change in Go and a write, so two concurrent $inc on one rollup document
// can lose one, where MongoDB applies a single-document update atomically. Counts are
// checked with concurrent writers taking turns (below) and in the contract suite.
func TestTwoWritersAtOnce(t *testing.T) {
	srv := ferret.Start(t)
	a, b := openOn(t, srv, "evptest"), openOn(t, srv, "evptest")
	if a.writer == b.writer {
		t.Fatal("two stores share a writer id")
	}
	expected := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 2 {
		for k := 0; k < 4; k++ {
			lo := (k*25 + w*10) % 100
			for i := lo; i < lo+30; i++ {
				expected[storetest.Event(i).EventID] = true
			}
		}
	}
	for w, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 4; k++ {
				lo := (k*25 + w*10) % 100
				if _, _, err := s.InsertBatch(ctx, batch(lo, lo+30), time.Now()); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n, err := a.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	cur, err := a.events.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	want := 0
	for _, id := range ids {
		if expected[id] {
			want++
		}
	}
	if int64(len(ids)) != n || want != len(ids) || len(ids) != len(expected) {
		t.Fatalf("Count %d, %d documents, %d of them expected, want %d", n, len(ids), want, len(expected))
	}
	q := whole
	q.End = q.Start.Add(2 * time.Hour)
	res, err := b.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.UniqueUsers != 7 || res.UniqueSessions != 3 {
		t.Fatalf("analytics: users %d (7), sessions %d (3)", res.UniqueUsers, res.UniqueSessions)
	}
	var sk []sketchDoc
	cur, err = a.sketch.Find(ctx, bson.D{{Key: "k", Value: "h"}})
	if err != nil || cur.All(ctx, &sk) != nil || len(sk) != 2 {
		t.Fatalf("hour sketch documents: %d (%v); want one per writer", len(sk), err)
	}
}

func TestIndexes(t *testing.T) {
	s, _ := openTest(t)
	// Open twice: index creation is idempotent.
	if err := s.ensureIndexes(ctx, 0); err != nil {
		t.Fatalf("second ensureIndexes: %v", err)
	}
	specs, err := s.events.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sp := range specs {
		names = append(names, sp.Name)
	}
	for _, want := range []string{"_id_", "timestamp_1_eventType_1", "userId_1_timestamp_1", "receivedAt_-1", "bt_1"} {
		if !slices.Contains(names, want) {
			t.Errorf("events indexes %v lack %s", names, want)
		}
	}
}

// Two writers take turns on overlapping batches: every event is counted once, whichever
// writer stored it.
func TestTwoWritersTakingTurns(t *testing.T) {
	srv := ferret.Start(t)
	a, b := openOn(t, srv, "evptest"), openOn(t, srv, "evptest")
	ranges := [][2]int{{0, 30}, {20, 50}, {10, 60}, {50, 80}, {0, 80}}
	for i, r := range ranges {
		s := []*Store{a, b}[i%2]
		if _, _, err := s.InsertBatch(ctx, batch(r[0], r[1]), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if ta, tb := total(t, a), total(t, b); ta != 80 || tb != 80 {
		t.Fatalf("totals %d and %d, want 80", ta, tb)
	}
}

// FerretDB does not implement expireAfterSeconds, so the TTL indexes are checked as models.
func TestRetentionIndexes(t *testing.T) {
	plan := (&Store{}).indexPlan(30)
	var ttl []int32
	for _, ci := range plan {
		for _, m := range ci.models {
			if isTTL(m) {
				ttl = append(ttl, *ttlSeconds(m))
			}
		}
	}
	if len(ttl) != 3 || ttl[0] != 30*86400 || ttl[1] != 30*86400 || ttl[2] != 30*86400 {
		t.Fatalf("TTL indexes for 30 days: %v", ttl)
	}
	for _, ci := range (&Store{}).indexPlan(0) {
		for _, m := range ci.models {
			if isTTL(m) {
				t.Fatalf("TTL index %s without retention", *indexName(m))
			}
		}
	}
}

func TestShardEventsNeedsMongos(t *testing.T) {
	s, _ := openTest(t)
	if err := ShardEvents(ctx, s.Client(), "evptest"); !errors.Is(err, ErrNotMongos) {
		t.Fatalf("ShardEvents on FerretDB = %v, want ErrNotMongos", err)
	}
}

// A dead server fails calls after the selection timeout instead of hanging; the store works
// again once the server is back.
func TestDeadServerFailsThenRecovers(t *testing.T) {
	srv := ferret.Start(t)
	s, err := Open(ctx, Options{URI: srv.URI(), Database: "evptest", ServerSelectionTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	insertOK(t, s, batch(0, 10), 10, 0)
	srv.Stop()
	if _, _, err := s.InsertBatch(ctx, batch(10, 20), time.Now()); err == nil {
		t.Fatal("InsertBatch succeeded with the server stopped")
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with the server stopped")
	}
	srv.Restart()
	var ins int
	for attempt := 0; attempt < 50; attempt++ {
		if ins, _, err = s.InsertBatch(ctx, batch(10, 20), time.Now()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("InsertBatch after restart: %v", err)
	}
	if got := total(t, s); got != 20 {
		t.Fatalf("total = %d (last call inserted %d), want 20", got, ins)
	}
}
