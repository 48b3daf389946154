package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/store"
)

// waitLimit bounds every wait for something the code under test must do; reaching it is a
// failure, never the expected path.
const waitLimit = 10 * time.Second

// trace records, in order, the calls made on both fakes (for tests that care about order).
type trace struct {
	mu  sync.Mutex
	ops []string
}

func (t *trace) add(op string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.ops = append(t.ops, op)
	t.mu.Unlock()
}

func (t *trace) get() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.ops)
}

// fakeQueue hands out its backlog in order. A waiting Fetch (wait > 0) on an empty backlog
// blocks until ctx ends; a non-waiting one returns at once.
type fakeQueue struct {
	mu       sync.Mutex
	backlog  []queue.Message
	fetchErr error // returned by every Fetch when set
	acks     [][]int64
	nacks    [][]int64
	trace    *trace

	acked    chan []int64  // every Ack call
	idle     chan struct{} // closed when a waiting Fetch first finds the backlog empty
	idleOnce sync.Once
}

func newFakeQueue(msgs ...queue.Message) *fakeQueue {
	return &fakeQueue{backlog: msgs, acked: make(chan []int64, 1000), idle: make(chan struct{})}
}

func (q *fakeQueue) Fetch(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	q.mu.Lock()
	if q.fetchErr != nil {
		q.mu.Unlock()
		return nil, q.fetchErr
	}
	n := min(max, len(q.backlog))
	msgs := slices.Clone(q.backlog[:n])
	q.backlog = q.backlog[n:]
	q.mu.Unlock()
	if wait > 0 {
		q.trace.add(fmt.Sprintf("fetch(%d, wait)=%d", max, n))
	} else {
		q.trace.add(fmt.Sprintf("fetch(%d, nowait)=%d", max, n))
	}
	if n == 0 && wait > 0 {
		q.idleOnce.Do(func() { close(q.idle) })
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return msgs, nil
}

func (q *fakeQueue) Ack(_ context.Context, ids []int64) error {
	ids = slices.Clone(ids)
	q.mu.Lock()
	q.acks = append(q.acks, ids)
	q.mu.Unlock()
	q.trace.add(fmt.Sprintf("ack(%d)", len(ids)))
	q.acked <- ids
	return nil
}

func (q *fakeQueue) Nack(_ context.Context, ids []int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.nacks = append(q.nacks, slices.Clone(ids))
	return nil
}

func (q *fakeQueue) ackCalls() [][]int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.acks)
}

func (q *fakeQueue) nackCalls() [][]int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.nacks)
}

// waitAck waits for the next Ack call and returns its ids.
func (q *fakeQueue) waitAck(t *testing.T) []int64 {
	t.Helper()
	select {
	case ids := <-q.acked:
		return ids
	case <-time.After(waitLimit):
		t.Fatal("no Ack call")
		return nil
	}
}

func (q *fakeQueue) Enqueue(context.Context, []queue.Entry) error { return nil }
func (q *fakeQueue) PendingEventIDs(context.Context, func(string)) error {
	return nil
}
func (q *fakeQueue) Stats(context.Context) (queue.Stats, error) { return queue.Stats{}, nil }
func (q *fakeQueue) Ping(context.Context) error                 { return nil }
func (q *fakeQueue) Close() error                               { return nil }

// insertCall is one InsertBatch call as the fake saw it.
type insertCall struct {
	ids []string
	at  time.Time
}

// fakeStore is idempotent on EventID like the real stores.
type fakeStore struct {
	mu      sync.Mutex
	stored  map[string]bool
	inserts []insertCall
	letters []store.DeadLetter
	dlCalls int
	trace   *trace

	// fail, when set, decides whether an InsertBatch call fails.
	fail func(batch []event.Event) error
	// dlErr is returned by DeadLetter when set (nothing is kept then).
	dlErr error
	// started and release, when set, make InsertBatch report that it started and then
	// block until release is closed; ctxErrAfterRelease records ctx.Err() at that point.
	started            chan struct{}
	release            chan struct{}
	ctxErrAfterRelease error
}

func newFakeStore(already ...string) *fakeStore {
	st := &fakeStore{stored: map[string]bool{}}
	for _, id := range already {
		st.stored[id] = true
	}
	return st
}

func (s *fakeStore) InsertBatch(ctx context.Context, events []event.Event, _ time.Time) (int, int, error) {
	s.mu.Lock()
	s.inserts = append(s.inserts, insertCall{ids: eventIDs(events), at: time.Now()})
	s.mu.Unlock()
	s.trace.add(fmt.Sprintf("insert(%d)", len(events)))
	if s.started != nil {
		s.started <- struct{}{}
		<-s.release
		s.mu.Lock()
		s.ctxErrAfterRelease = ctx.Err()
		s.mu.Unlock()
	}
	if s.fail != nil {
		if err := s.fail(events); err != nil {
			return 0, 0, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inserted, dups := 0, 0
	for _, e := range events {
		if s.stored[e.EventID] {
			dups++
			continue
		}
		s.stored[e.EventID] = true
		inserted++
	}
	return inserted, dups, nil
}

func (s *fakeStore) DeadLetter(_ context.Context, letters []store.DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dlCalls++
	if s.dlErr != nil {
		return s.dlErr
	}
	s.letters = append(s.letters, letters...)
	return nil
}

func (s *fakeStore) insertCalls() []insertCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.inserts)
}

func (s *fakeStore) insertIDs() [][]string {
	var out [][]string
	for _, c := range s.insertCalls() {
		out = append(out, c.ids)
	}
	return out
}

func (s *fakeStore) deadLetters() []store.DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.letters)
}

func (s *fakeStore) Count(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.stored)), nil
}
func (s *fakeStore) DeadLetterCount(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.letters)), nil
}
func (s *fakeStore) RecentEventIDs(context.Context, time.Time, int, func(string, time.Time)) error {
	return nil
}
func (s *fakeStore) Ping(context.Context) error { return nil }
func (s *fakeStore) Close() error               { return nil }

// --- helpers ---

func eventIDs(events []event.Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.EventID
	}
	return ids
}

// msg returns a buffer entry holding a valid encoded event.
func msg(t *testing.T, id int64, eventID string, attempts int) queue.Message {
	t.Helper()
	e := event.Event{
		EventID: eventID, EventType: "checkout.completed", UserID: "user_1", SessionID: "sess_1",
		Timestamp: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), Priority: 2,
		Payload:    []byte(`{"amount":12.5}`),
		ReceivedAt: time.Date(2024, 1, 15, 10, 30, 1, 0, time.UTC),
	}
	data, err := event.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return queue.Message{ID: id, EventID: eventID, Data: data, Attempts: attempts}
}

// backlog returns n entries with ids 1..n and event ids evt_1..evt_n.
func backlog(t *testing.T, n int) []queue.Message {
	msgs := make([]queue.Message, n)
	for i := range msgs {
		msgs[i] = msg(t, int64(i+1), fmt.Sprintf("evt_%d", i+1), 0)
	}
	return msgs
}

func newPool(t *testing.T, cfg Config, q queue.Queue, st store.EventStore) *Pool {
	t.Helper()
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 4 * time.Millisecond
	}
	p := New(cfg, q, st, slog.New(slog.DiscardHandler))
	t.Cleanup(p.acks.Wait) // no ack goroutine outlives its test
	return p
}

// storedRecorder collects OnStored calls.
type storedRecorder struct {
	mu    sync.Mutex
	calls [][]string
}

func (r *storedRecorder) hook(events []event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, eventIDs(events))
}

func (r *storedRecorder) get() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

type wantStats struct{ processed, duplicates, failed, deadLettered, batches int64 }

func checkStats(t *testing.T, p *Pool, want wantStats) {
	t.Helper()
	got := wantStats{
		processed: p.Stats.Processed.Load(), duplicates: p.Stats.Duplicates.Load(),
		failed: p.Stats.Failed.Load(), deadLettered: p.Stats.DeadLettered.Load(),
		batches: p.Stats.Batches.Load(),
	}
	if got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

func sorted(ids []int64) []int64 {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// --- tests ---

func TestProcessStoresOnceAndAcks(t *testing.T) {
	q := newFakeQueue()
	st := newFakeStore("evt_2") // evt_2 is a redelivery of an event already stored
	p := newPool(t, Config{}, q, st)
	msgs := []queue.Message{msg(t, 11, "evt_1", 0), msg(t, 12, "evt_2", 1), msg(t, 13, "evt_3", 0)}

	var rec storedRecorder
	var stored []event.Event
	p.OnStored = func(events []event.Event) {
		rec.hook(events)
		stored = slices.Clone(events)
		if n := len(q.ackCalls()); n != 0 {
			t.Errorf("OnStored called after %d acks, want before any", n)
		}
	}
	var batches int
	p.OnBatch = func(events []event.Event, took time.Duration) {
		batches++
		if len(events) != 3 || took < 0 {
			t.Errorf("OnBatch(%d events, %v)", len(events), took)
		}
	}

	p.Process(context.Background(), msgs)

	if got, want := st.insertIDs(), [][]string{{"evt_1", "evt_2", "evt_3"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("InsertBatch calls = %v, want %v", got, want)
	}
	// The stored events are the buffer entries decoded, unchanged.
	for i, e := range stored {
		data, err := event.Marshal(&e)
		if err != nil || string(data) != string(msgs[i].Data) {
			t.Errorf("stored event %d encodes as %s (%v), want %s", i, data, err, msgs[i].Data)
		}
	}
	if got := q.waitAck(t); !slices.Equal(sorted(got), []int64{11, 12, 13}) {
		t.Errorf("acked %v, want [11 12 13]", got)
	}
	p.acks.Wait()
	if n := len(q.ackCalls()); n != 1 {
		t.Errorf("%d Ack calls, want 1", n)
	}
	if n := len(q.nackCalls()); n != 0 {
		t.Errorf("%d Nack calls, want 0", n)
	}
	if st.dlCalls != 0 {
		t.Errorf("%d DeadLetter calls, want 0", st.dlCalls)
	}
	if got := rec.get(); !slices.EqualFunc(got, [][]string{{"evt_1", "evt_2", "evt_3"}}, slices.Equal) {
		t.Errorf("OnStored calls = %v", got)
	}
	if batches != 1 {
		t.Errorf("OnBatch called %d times, want 1", batches)
	}
	checkStats(t, p, wantStats{processed: 2, duplicates: 1, batches: 1})
	if p.Stats.LastBatchSize.Load() != 3 || p.Stats.LastProcessedAt.Load() == 0 {
		t.Errorf("LastBatchSize = %d, LastProcessedAt = %d", p.Stats.LastBatchSize.Load(), p.Stats.LastProcessedAt.Load())
	}
}

func TestProcessRetriesThenStores(t *testing.T) {
	q := newFakeQueue()
	st := newFakeStore()
	failures := 2
	st.fail = func([]event.Event) error {
		if failures > 0 {
			failures--
			return errors.New("database is locked")
		}
		return nil
	}
	p := newPool(t, Config{MaxAttempts: 4}, q, st)

	p.Process(context.Background(), []queue.Message{msg(t, 1, "evt_1", 0), msg(t, 2, "evt_2", 0)})

	want := [][]string{{"evt_1", "evt_2"}, {"evt_1", "evt_2"}, {"evt_1", "evt_2"}}
	if got := st.insertIDs(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("InsertBatch calls = %v, want %v", got, want)
	}
	if got := q.waitAck(t); !slices.Equal(sorted(got), []int64{1, 2}) {
		t.Errorf("acked %v, want [1 2]", got)
	}
	if st.dlCalls != 0 {
		t.Errorf("%d DeadLetter calls, want 0", st.dlCalls)
	}
	checkStats(t, p, wantStats{processed: 2, failed: 2, batches: 1})
}

func TestProcessRetriesThenIsolatesFailingEvent(t *testing.T) {
	const maxAttempts = 4
	q := newFakeQueue()
	st := newFakeStore()
	// Any write that contains evt_bad fails; the error names the size of the write so that
	// the test can tell which attempt's error was kept.
	st.fail = func(batch []event.Event) error {
		if slices.Contains(eventIDs(batch), "evt_bad") {
			return fmt.Errorf("CHECK constraint failed (write of %d)", len(batch))
		}
		return nil
	}
	p := newPool(t, Config{MaxAttempts: maxAttempts, BackoffBase: time.Millisecond, BackoffMax: 4 * time.Millisecond}, q, st)
	var rec storedRecorder
	p.OnStored = rec.hook
	bad := msg(t, 2, "evt_bad", 2)
	msgs := []queue.Message{msg(t, 1, "evt_a", 0), bad, msg(t, 3, "evt_c", 1)}

	p.Process(context.Background(), msgs)

	calls := st.insertCalls()
	var got [][]string
	for _, c := range calls {
		got = append(got, c.ids)
	}
	all := []string{"evt_a", "evt_bad", "evt_c"}
	want := [][]string{all, all, all, all, {"evt_a"}, {"evt_bad"}, {"evt_c"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("InsertBatch calls = %v, want %d whole-batch attempts then each event alone: %v", got, maxAttempts, want)
	}
	// Backoff before retry n is at least half of min(1ms<<(n-1), 4ms).
	for n := 1; n < maxAttempts; n++ {
		gap := calls[n].at.Sub(calls[n-1].at)
		if min := min(time.Millisecond<<(n-1), 4*time.Millisecond) / 2; gap < min {
			t.Errorf("retry %d came %v after the previous attempt, want at least %v", n, gap, min)
		}
	}

	letters := st.deadLetters()
	if len(letters) != 1 {
		t.Fatalf("dead letters = %+v, want only evt_bad", letters)
	}
	l := letters[0]
	if l.EventID != "evt_bad" || string(l.Data) != string(bad.Data) || l.FailedAt.IsZero() {
		t.Errorf("dead letter = %+v", l)
	}
	if l.Error != "CHECK constraint failed (write of 1)" {
		t.Errorf("dead letter error = %q, want the error of the event's own write", l.Error)
	}
	if want := bad.Attempts + maxAttempts; l.Attempts != want {
		t.Errorf("dead letter attempts = %d, want %d", l.Attempts, want)
	}
	if got := q.waitAck(t); !slices.Equal(sorted(got), []int64{1, 2, 3}) {
		t.Errorf("acked %v, want [1 2 3]", got)
	}
	if n := len(q.nackCalls()); n != 0 {
		t.Errorf("%d Nack calls, want 0", n)
	}
	if got := rec.get(); !slices.EqualFunc(got, [][]string{{"evt_a"}, {"evt_c"}}, slices.Equal) {
		t.Errorf("OnStored calls = %v, want [[evt_a] [evt_c]]", got)
	}
	checkStats(t, p, wantStats{processed: 2, failed: maxAttempts, deadLettered: 1, batches: 2})
}

func TestProcessSingleEventKeepsFailing(t *testing.T) {
	q := newFakeQueue()
	st := newFakeStore()
	st.fail = func([]event.Event) error { return errors.New("disk I/O error") }
	p := newPool(t, Config{MaxAttempts: 3}, q, st)

	p.Process(context.Background(), []queue.Message{msg(t, 7, "evt_1", 1)})

	// A batch of one is not tried alone again.
	if n := len(st.insertCalls()); n != 3 {
		t.Errorf("%d InsertBatch calls, want 3", n)
	}
	letters := st.deadLetters()
	if len(letters) != 1 || letters[0].EventID != "evt_1" || letters[0].Error != "disk I/O error" || letters[0].Attempts != 4 {
		t.Errorf("dead letters = %+v", letters)
	}
	if got := q.waitAck(t); !slices.Equal(got, []int64{7}) {
		t.Errorf("acked %v, want [7]", got)
	}
	checkStats(t, p, wantStats{failed: 3, deadLettered: 1})
}

func TestProcessUndecodableIsDeadLetteredAtOnce(t *testing.T) {
	garbage := queue.Message{ID: 5, EventID: "evt_g", Data: []byte("not json {"), Attempts: 1}
	noID := queue.Message{ID: 6, Data: []byte(`{"eventType":"x"}`)}

	t.Run("alone", func(t *testing.T) {
		q := newFakeQueue()
		st := newFakeStore()
		p := newPool(t, Config{}, q, st)
		p.Process(context.Background(), []queue.Message{garbage, noID})

		if n := len(st.insertCalls()); n != 0 {
			t.Errorf("%d InsertBatch calls, want none", n)
		}
		letters := st.deadLetters()
		if len(letters) != 2 {
			t.Fatalf("dead letters = %+v, want 2", letters)
		}
		g, n := letters[0], letters[1]
		if g.EventID != "evt_g" || string(g.Data) != string(garbage.Data) || g.Attempts != 2 || g.FailedAt.IsZero() ||
			!strings.HasPrefix(g.Error, "undecodable buffer entry: ") {
			t.Errorf("dead letter for garbage = %+v", g)
		}
		if n.EventID != "" || string(n.Data) != string(noID.Data) || n.Attempts != 1 || n.Error != "undecodable buffer entry" {
			t.Errorf("dead letter for entry without id = %+v", n)
		}
		if got := q.waitAck(t); !slices.Equal(sorted(got), []int64{5, 6}) {
			t.Errorf("acked %v, want [5 6]", got)
		}
		checkStats(t, p, wantStats{deadLettered: 2})
	})

	t.Run("with good events", func(t *testing.T) {
		q := newFakeQueue()
		st := newFakeStore()
		// Even a store that is failing does not hold up the undecodable entry.
		st.fail = func([]event.Event) error { return errors.New("down") }
		p := newPool(t, Config{MaxAttempts: 1}, q, st)
		p.Process(context.Background(), []queue.Message{msg(t, 1, "evt_1", 0), garbage})

		if got := st.insertIDs(); !slices.EqualFunc(got, [][]string{{"evt_1"}}, slices.Equal) {
			t.Errorf("InsertBatch calls = %v, want only evt_1", got)
		}
		letters := st.deadLetters()
		if len(letters) != 2 || letters[0].EventID != "evt_g" || !strings.HasPrefix(letters[0].Error, "undecodable") ||
			letters[1].EventID != "evt_1" || letters[1].Error != "down" {
			t.Errorf("dead letters = %+v", letters)
		}
		q.waitAck(t)
		checkStats(t, p, wantStats{failed: 1, deadLettered: 2})
	})
}

func TestProcessDeadLettersOverDeliveredEntry(t *testing.T) {
	q := newFakeQueue()
	st := newFakeStore()
	p := newPool(t, Config{MaxDeliveries: 3}, q, st)
	ok := msg(t, 1, "evt_ok", 2)    // under the limit: stored
	poison := msg(t, 2, "evt_p", 3) // at the limit: a valid event, but not stored
	worse := msg(t, 3, "evt_w", 9)  // far past it
	p.Process(context.Background(), []queue.Message{ok, poison, worse})

	if got := st.insertIDs(); !slices.EqualFunc(got, [][]string{{"evt_ok"}}, slices.Equal) {
		t.Errorf("InsertBatch calls = %v, want only evt_ok", got)
	}
	letters := st.deadLetters()
	if len(letters) != 2 {
		t.Fatalf("dead letters = %+v, want 2", letters)
	}
	for i, m := range []queue.Message{poison, worse} {
		l := letters[i]
		want := fmt.Sprintf("delivered %d times without being acknowledged", m.Attempts)
		if l.EventID != m.EventID || string(l.Data) != string(m.Data) || l.Error != want || l.Attempts != m.Attempts || l.FailedAt.IsZero() {
			t.Errorf("dead letter %d = %+v, want error %q", i, l, want)
		}
	}
	if got := q.waitAck(t); !slices.Equal(sorted(got), []int64{1, 2, 3}) {
		t.Errorf("acked %v, want [1 2 3]", got)
	}
	checkStats(t, p, wantStats{processed: 1, deadLettered: 2, batches: 1})
}

func TestProcessDeadLetterWriteFails(t *testing.T) {
	q := newFakeQueue()
	st := newFakeStore()
	st.fail = func(batch []event.Event) error {
		if slices.Contains(eventIDs(batch), "evt_bad") {
			return errors.New("constraint")
		}
		return nil
	}
	st.dlErr = errors.New("dead-letter table is read-only")
	p := newPool(t, Config{MaxAttempts: 2}, q, st)
	garbage := queue.Message{ID: 3, Data: []byte("}")}
	p.Process(context.Background(), []queue.Message{msg(t, 1, "evt_ok", 0), msg(t, 2, "evt_bad", 0), garbage})

	if st.dlCalls != 1 {
		t.Errorf("%d DeadLetter calls, want 1", st.dlCalls)
	}
	nacks := q.nackCalls()
	if len(nacks) != 1 || !slices.Equal(sorted(nacks[0]), []int64{2, 3}) {
		t.Errorf("Nack calls = %v, want one with [2 3]", nacks)
	}
	if got := q.waitAck(t); !slices.Equal(got, []int64{1}) {
		t.Errorf("acked %v, want only the stored entry [1]", got)
	}
	p.acks.Wait()
	if n := len(q.ackCalls()); n != 1 {
		t.Errorf("%d Ack calls, want 1", n)
	}
	checkStats(t, p, wantStats{processed: 1, failed: 2, batches: 1})
}

// runUntilIdle runs p until the fake queue's backlog is drained and a worker waits for more,
// then cancels and returns once Run did.
func runUntilIdle(t *testing.T, p *Pool, q *fakeQueue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-q.idle:
	case err := <-done:
		t.Fatalf("Run returned %v before the backlog was drained", err)
	case <-time.After(waitLimit):
		t.Fatal("backlog not drained")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunCombinesBacklog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backlog int
		want    []string
	}{
		{"backlog", 7, []string{
			// Three full batches (MaxCombine) make one write; the rest is a partial batch,
			// written without waiting for more.
			"fetch(2, wait)=2", "fetch(2, nowait)=2", "fetch(2, nowait)=2", "insert(6)",
			"fetch(2, wait)=1", "insert(1)",
			"fetch(2, wait)=0",
		}},
		{"runs dry while combining", 3, []string{
			"fetch(2, wait)=2", "fetch(2, nowait)=1", "insert(3)",
			"fetch(2, wait)=0",
		}},
		{"nothing more", 2, []string{
			"fetch(2, wait)=2", "fetch(2, nowait)=0", "insert(2)",
			"fetch(2, wait)=0",
		}},
		{"partial batch", 1, []string{
			"fetch(2, wait)=1", "insert(1)",
			"fetch(2, wait)=0",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &trace{}
			q := newFakeQueue(backlog(t, tc.backlog)...)
			st := newFakeStore()
			q.trace, st.trace = tr, tr
			p := newPool(t, Config{BatchSize: 2, MaxCombine: 3, Concurrency: 1, BatchTimeout: time.Hour}, q, st)

			runUntilIdle(t, p, q)

			var got []string
			for _, op := range tr.get() {
				if !strings.HasPrefix(op, "ack") { // acks run concurrently: order not fixed
					got = append(got, op)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("calls:\n got %q\nwant %q", got, tc.want)
			}
			var acked []int64
			for _, c := range q.ackCalls() { // Run waited for every ack
				acked = append(acked, c...)
			}
			var want []int64
			for id := range int64(tc.backlog) {
				want = append(want, id+1)
			}
			if !slices.Equal(sorted(acked), want) {
				t.Errorf("acked %v, want %v", sorted(acked), want)
			}
			if p.Stats.Processed.Load() != int64(tc.backlog) {
				t.Errorf("Processed = %d, want %d", p.Stats.Processed.Load(), tc.backlog)
			}
		})
	}
}

func TestRunWaitsForBatchInFlight(t *testing.T) {
	q := newFakeQueue(backlog(t, 2)...)
	st := newFakeStore()
	st.started = make(chan struct{}, 1)
	st.release = make(chan struct{})
	p := newPool(t, Config{BatchSize: 10, Concurrency: 2, BatchTimeout: time.Hour}, q, st)
	var rec storedRecorder
	p.OnStored = rec.hook

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	select {
	case <-st.started:
	case <-time.After(waitLimit):
		t.Fatal("InsertBatch not called")
	}
	select { // the other worker waits for entries
	case <-q.idle:
	case <-time.After(waitLimit):
		t.Fatal("the second worker did not fetch")
	}
	cancel()
	// Run must not return while the write is blocked. This can only be checked over a
	// window; a Run that did not wait would return well within it.
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a batch was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	if n := len(q.ackCalls()); n != 0 {
		t.Fatalf("%d acks before the write finished", n)
	}

	close(st.release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after the write finished")
	}
	if st.ctxErrAfterRelease != nil {
		t.Errorf("the write's context was cancelled with Run's: %v", st.ctxErrAfterRelease)
	}
	// Run returned only after the batch was stored and acknowledged.
	if got := rec.get(); !slices.EqualFunc(got, [][]string{{"evt_1", "evt_2"}}, slices.Equal) {
		t.Errorf("OnStored calls = %v", got)
	}
	if got := q.ackCalls(); len(got) != 1 || !slices.Equal(sorted(got[0]), []int64{1, 2}) {
		t.Errorf("Ack calls when Run returned = %v, want one with [1 2]", got)
	}
	if n := len(st.insertCalls()); n != 1 {
		t.Errorf("%d InsertBatch calls, want 1", n)
	}
	checkStats(t, p, wantStats{processed: 2, batches: 1})
}

func TestRunReturnsWhenQueueCloses(t *testing.T) {
	q := newFakeQueue()
	q.fetchErr = fmt.Errorf("fetch: %w", queue.ErrClosed)
	p := newPool(t, Config{Concurrency: 3}, q, newFakeStore())
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after the queue closed")
	}
}

func TestStatsAcrossMixedBatch(t *testing.T) {
	q := newFakeQueue()
	st := newFakeStore("evt_dup")
	st.fail = func(batch []event.Event) error {
		if slices.Contains(eventIDs(batch), "evt_bad") {
			return errors.New("constraint")
		}
		return nil
	}
	p := newPool(t, Config{MaxAttempts: 3, MaxDeliveries: 4}, q, st)
	var rec storedRecorder
	p.OnStored = rec.hook
	msgs := []queue.Message{
		msg(t, 1, "evt_new", 0),
		msg(t, 2, "evt_dup", 1),
		msg(t, 3, "evt_bad", 0),
		{ID: 4, Data: []byte("garbage")},
		msg(t, 5, "evt_poison", 4),
	}
	p.Process(context.Background(), msgs)

	if got := q.waitAck(t); !slices.Equal(sorted(got), []int64{1, 2, 3, 4, 5}) {
		t.Errorf("acked %v, want all", got)
	}
	// 3 failed whole-batch attempts; then evt_new and evt_dup are each stored alone.
	checkStats(t, p, wantStats{processed: 1, duplicates: 1, failed: 3, deadLettered: 3, batches: 2})
	if got := rec.get(); !slices.EqualFunc(got, [][]string{{"evt_new"}, {"evt_dup"}}, slices.Equal) {
		t.Errorf("OnStored calls = %v", got)
	}
	if n, _ := st.DeadLetterCount(context.Background()); n != 3 {
		t.Errorf("%d dead letters, want 3", n)
	}

	// A second batch adds to the counters.
	p.Process(context.Background(), []queue.Message{msg(t, 6, "evt_more", 0), msg(t, 7, "evt_new", 1)})
	q.waitAck(t)
	checkStats(t, p, wantStats{processed: 2, duplicates: 2, failed: 3, deadLettered: 3, batches: 3})
	if p.Stats.LastBatchSize.Load() != 2 {
		t.Errorf("LastBatchSize = %d, want 2", p.Stats.LastBatchSize.Load())
	}
}

func TestBackoff(t *testing.T) {
	p := New(Config{BackoffBase: 10 * time.Millisecond, BackoffMax: time.Second}, nil, nil, nil)
	for n := 1; n <= 64; n++ {
		d := min(10*time.Millisecond<<min(n-1, 20), time.Second)
		for range 50 {
			if got := p.backoff(n); got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, got, d/2, d)
			}
		}
	}
	// A shift that overflows is capped too.
	p = New(Config{BackoffBase: 1 << 62, BackoffMax: time.Second}, nil, nil, nil)
	if got := p.backoff(3); got < time.Second/2 || got > time.Second {
		t.Errorf("backoff with overflow = %v", got)
	}
}

// Each event that fails on its own is dead-lettered with its own error, not the last one's.
func TestProcessDeadLettersEachWithItsOwnError(t *testing.T) {
	q := newFakeQueue()
	st := newFakeStore()
	st.fail = func(batch []event.Event) error {
		if len(batch) > 1 {
			return errors.New("batch refused")
		}
		if id := batch[0].EventID; id != "evt_ok" {
			return errors.New("error of " + id)
		}
		return nil
	}
	p := newPool(t, Config{MaxAttempts: 2}, q, st)
	p.Process(context.Background(), []queue.Message{msg(t, 1, "evt_a", 0), msg(t, 2, "evt_ok", 0), msg(t, 3, "evt_b", 0)})
	q.waitAck(t)
	got := map[string]string{}
	for _, l := range st.deadLetters() {
		got[l.EventID] = l.Error
	}
	if len(got) != 2 || got["evt_a"] != "error of evt_a" || got["evt_b"] != "error of evt_b" {
		t.Errorf("dead-letter errors = %v", got)
	}
}

// An event handed over in memory is stored as it is: Data is not decoded again (here it
// could not be), and the result is what decoding a good Data would have given.
func TestProcessUsesHandedOverEvent(t *testing.T) {
	q := newFakeQueue()
	st := newFakeStore()
	p := newPool(t, Config{}, q, st)
	good := msg(t, 21, "evt_mem", 0)
	var want event.Event
	if err := event.Unmarshal(good.Data, &want); err != nil {
		t.Fatal(err)
	}
	handed := good
	handed.Data = []byte("not an encoded event")
	handed.Event = &want
	var stored []event.Event
	p.OnStored = func(events []event.Event) { stored = slices.Clone(events) }

	p.Process(context.Background(), []queue.Message{handed})

	if len(stored) != 1 || !reflect.DeepEqual(stored[0], want) {
		t.Fatalf("stored %+v, want %+v", stored, want)
	}
	if dl := st.deadLetters(); len(dl) != 0 {
		t.Errorf("dead-lettered %d entries, want none: the handed-over event needs no decoding", len(dl))
	}
	if acks := q.waitAck(t); !slices.Equal(acks, []int64{21}) {
		t.Errorf("acked %v, want [21]", acks)
	}
}
