package redisqueue

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// records is a slog.Handler that keeps every record, for tests that check a log line.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }

func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// find returns the attributes of the records of level whose message starts with msg.
func (h *records) find(level slog.Level, msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.recs {
		if r.Level != level || !strings.HasPrefix(r.Message, msg) {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, attrs)
	}
	return out
}

// waitResets waits until q has found n resets (its watcher runs every WatchEvery).
func waitResets(t *testing.T, q *Queue, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for q.Resets() < n {
		if time.Now().After(deadline) {
			t.Fatalf("Resets() = %d after 20 s, want %d", q.Resets(), n)
		}
		time.Sleep(10 * time.Millisecond) // poll: the watcher works on its own clock
	}
}

// A Redis without persistence killed with a backlog and restarted empty: the queue's
// watcher finds the stream gone, logs an error naming it, counts the reset and reports it
// in Degraded, instead of making the group again without a word; then it goes on working
// and does not report the same reset twice.
func TestResetAfterRedisRestart(t *testing.T) {
	srv := testutil.StartRedisServer(t)
	logs := &records{}
	ctx := context.Background()
	q := open(t, Options{URL: srv.URL(), Consumer: "w", WatchEvery: 20 * time.Millisecond, Log: slog.New(logs)})
	if err := q.Enqueue(ctx, entries("lost", 100)); err != nil {
		t.Fatal(err)
	}
	if err := q.Degraded(); err != nil || q.Resets() != 0 {
		t.Fatalf("before the restart: Degraded %v, Resets %d", err, q.Resets())
	}

	srv.Restart()
	waitResets(t, q, 1)

	var reset *ResetError
	if err := q.Degraded(); !errors.As(err, &reset) || reset.Stream != q.Key() || reset.Found != FoundNoStream {
		t.Fatalf("Degraded() = %v, want the stream %s reported lost", err, q.Key())
	}
	if msg := reset.Error(); !strings.Contains(msg, q.Key()) || !strings.Contains(msg, "lost") {
		t.Errorf("reset message %q does not name the stream and the loss", msg)
	}
	errs := logs.find(slog.LevelError, "buffer stream or group vanished")
	if len(errs) != 1 || errs[0]["stream"] != q.Key() || errs[0]["found"] != FoundNoStream {
		t.Errorf("error log lines %v, want one naming %s", errs, q.Key())
	}

	if err := q.Enqueue(ctx, entries("after", 10)); err != nil {
		t.Fatal(err)
	}
	got := fetchAll(t, q, 10, time.Second)
	if len(got) != 10 || !strings.HasPrefix(got[0].EventID, "after-") {
		t.Fatalf("fetched %d after the restart (first %+v), want the 10 new entries", len(got), got)
	}
	if err := q.Ack(ctx, ids(got)); err != nil {
		t.Fatal(err)
	}
	if err := q.watchOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := q.Resets(); n != 1 {
		t.Errorf("Resets() = %d after more checks, want 1", n)
	}
}

// A group deleted under a worker is found by the worker's next Fetch (NOGROUP), reported
// as a lost group (the stream still there), and made again reading the stream from its
// first entry, so nothing in the stream is lost.
func TestResetOfGroupFoundByFetch(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	logs := &records{}
	q := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "w", WatchEvery: time.Hour, Log: slog.New(logs)})
	if err := q.Enqueue(ctx, entries("kept", 5)); err != nil {
		t.Fatal(err)
	}
	if err := c.XGroupDestroy(ctx, q.Key(), DefaultGroup).Err(); err != nil {
		t.Fatal(err)
	}
	got := fetchAll(t, q, 5, time.Second)
	if len(got) != 5 {
		t.Fatalf("fetched %d of the 5 entries after the group was made again", len(got))
	}
	var reset *ResetError
	if q.Resets() != 1 || !errors.As(q.Degraded(), &reset) || reset.Found != FoundNoGroup || reset.Group != DefaultGroup {
		t.Fatalf("Resets %d, Degraded %v; want the group reported, the stream not lost", q.Resets(), q.Degraded())
	}
	if errs := logs.find(slog.LevelError, "buffer stream or group vanished"); len(errs) != 1 || errs[0]["found"] != FoundNoGroup {
		t.Errorf("error log lines %v", errs)
	}
}

// Degraded reports a reset only for ResetHold.
func TestResetHold(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	q := open(t, Options{Client: c, KeyPrefix: prefix, WatchEvery: time.Hour, ResetHold: time.Minute})
	q.lastReset.Store(&ResetError{Stream: q.Key(), At: time.Now().Add(-59 * time.Second)})
	if q.Degraded() == nil {
		t.Error("a reset 59 s ago with a hold of 1 min not reported")
	}
	q.lastReset.Store(&ResetError{Stream: q.Key(), At: time.Now().Add(-61 * time.Second)})
	if err := q.Degraded(); err != nil {
		t.Errorf("a reset 61 s ago with a hold of 1 min still reported: %v", err)
	}
}

// The marker consumer is neither pruned nor listed among the group's consumers.
func TestMarkerHidden(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "a", WatchEvery: time.Hour})
	q.Close()
	// Prune everything idle for more than 1 ms that holds nothing.
	time.Sleep(5 * time.Millisecond) // let the marker's idle time pass 1 ms
	q2 := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "b", PruneIdle: time.Millisecond, WatchEvery: time.Hour})
	cs, err := c.XInfoConsumers(ctx, q2.Key(), DefaultGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	markers := 0
	for _, ci := range cs {
		if isMarker(ci.Name) {
			markers++
		}
	}
	if markers != 1 {
		t.Fatalf("consumers after prune %v, want the marker kept", cs)
	}
	groups, err := q2.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, ci := range g.Consumers {
			if isMarker(ci.Name) {
				t.Errorf("Groups lists the marker %s", ci.Name)
			}
		}
	}
	if q2.Resets() != 0 {
		t.Errorf("a reopen counted %d resets", q2.Resets())
	}
}

// Every process on the stream reports a reset once, whichever made the group again, and
// the new group keeps a single marker.
func TestResetSeenByEveryProcess(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	var qs []*Queue
	for _, name := range []string{"a", "b", "c"} {
		qs = append(qs, open(t, Options{Client: c, KeyPrefix: prefix, Consumer: name, WatchEvery: time.Hour}))
	}
	if err := c.Del(ctx, qs[0].Key()).Err(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for i, q := range qs {
			if err := q.watchOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if q.Resets() != 1 {
				t.Errorf("round %d: process %d counted %d resets, want 1", round, i, q.Resets())
			}
			want := map[bool]string{true: FoundNoStream, false: FoundMarker}[i == 0]
			if r := q.LastReset(); r == nil || r.Found != want {
				t.Errorf("process %d found %+v, want %q", i, r, want)
			}
		}
	}
	cs, err := c.XInfoConsumers(ctx, qs[0].Key(), DefaultGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	var markers []string
	for _, ci := range cs {
		if isMarker(ci.Name) {
			markers = append(markers, ci.Name)
		}
	}
	if len(markers) != 1 {
		t.Errorf("markers in the new group: %v, want one", markers)
	}
}
