// Package queuetest is the behavioural contract of queue.Queue as a reusable test suite:
// every implementation (the embedded SQLite buffer, a Redis one) runs the same Run.
package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/queue"
)

// Storage opens a queue over one backing store. The suite calls it again after closing the
// queue it returned, and the new queue must see the same data: that is how it simulates a
// restart. Close may be called more than once on a queue; the suite ignores the error of
// the second call.
type Storage func() (queue.Queue, error)

// Options adapts the suite to a queue whose guarantees are weaker than the default ones.
// The zero value is the full contract.
type Options struct {
	// Unordered is for a queue that hands out entries first in, first out only within parts
	// of the buffer (the streams of a partitioned queue), not across the whole of it. The
	// checks of one global order then become checks that the same entries were handed out,
	// each exactly once, in an order that keeps the order of each part when Partition is
	// set. Every other check stays.
	Unordered bool
	// Partition names the part an event id goes to; used only with Unordered. Nil: the
	// suite checks no order at all.
	Partition func(eventID string) int
}

// Run runs the contract suite. newStorage is called once per subtest and must return an
// opener over fresh, empty storage; it should register its own clean-up with t.Cleanup.
func Run(t *testing.T, newStorage func(t *testing.T) Storage) {
	RunOptions(t, Options{}, newStorage)
}

// RunOptions is Run with the contract adapted by opts.
func RunOptions(t *testing.T, opts Options, newStorage func(t *testing.T) Storage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"EnqueueFetchInOrder", testEnqueueFetchInOrder},
		{"FetchRespectsMax", testFetchRespectsMax},
		{"FetchEmptyWaits", testFetchEmptyWaits},
		{"FetchSkipsInFlight", testFetchSkipsInFlight},
		{"FetchWakesOnEnqueue", testFetchWakesOnEnqueue},
		{"FetchContextCancel", testFetchContextCancel},
		{"ConcurrentFetchersDisjoint", testConcurrentFetchersDisjoint},
		{"AckRemoves", testAckRemoves},
		{"NackRedelivers", testNackRedelivers},
		{"RestartRedeliversUnacked", testRestartRedeliversUnacked},
		{"Stats", testStats},
		{"PendingEventIDs", testPendingEventIDs},
		{"Ping", testPing},
		{"Closed", testClosed},
		{"FetchWhileClosing", testFetchWhileClosing},
		{"ConcurrentEnqueue", testConcurrentEnqueue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, storage: newStorage(t), opts: opts}
			tc.fn(t, h)
		})
	}
}

// fetchWait is how long the suite lets Fetch wait for entries that are already there or
// about to be; a correct queue answers long before.
const fetchWait = 2 * time.Second

type harness struct {
	t       *testing.T
	storage Storage
	opts    Options
}

// order returns the entries es in the order the queue must hand them out, given that it
// handed out msgs first (a prefix of the whole delivery). With one global order that is es
// itself. For an Unordered queue it is es rearranged to follow msgs where the contract
// allows: the i-th message takes the first entry not yet taken of its own part (with
// Partition) or the entry of its own event id (without), so that a message handed out out
// of its part's order, twice, or not from es at all is compared with an entry it does not
// match. Entries no message took follow in their order in es.
func (h *harness) order(es []queue.Entry, msgs []queue.Message) []queue.Entry {
	if !h.opts.Unordered {
		return es
	}
	key := func(eventID string) string { return "e:" + eventID }
	if h.opts.Partition != nil {
		key = func(eventID string) string { return fmt.Sprintf("p:%d", h.opts.Partition(eventID)) }
	}
	byKey := map[string][]int{} // indexes into es not yet taken, per key, in order
	for i, e := range es {
		k := key(e.EventID)
		byKey[k] = append(byKey[k], i)
	}
	taken := make([]bool, len(es))
	next := 0 // first index of es that may not be taken yet
	take := func(i int) queue.Entry {
		taken[i] = true
		return es[i]
	}
	out := make([]queue.Entry, 0, len(es))
	for _, m := range msgs {
		if len(out) == len(es) {
			break
		}
		k := key(m.EventID)
		if q := byKey[k]; len(q) > 0 {
			byKey[k] = q[1:]
			out = append(out, take(q[0]))
			continue
		}
		for taken[next] {
			next++
		}
		out = append(out, take(next)) // a mismatch: the caller's check reports it
		k = key(es[next].EventID)
		byKey[k] = slices.DeleteFunc(byKey[k], func(i int) bool { return i == next })
	}
	for i := range es {
		if !taken[i] {
			out = append(out, es[i])
		}
	}
	return out
}

// open opens a queue on the harness's storage and closes it when the test ends.
func (h *harness) open() queue.Queue {
	h.t.Helper()
	q, err := h.storage()
	if err != nil {
		h.t.Fatalf("open queue: %v", err)
	}
	if q == nil {
		h.t.Fatal("open queue: returned nil")
	}
	h.t.Cleanup(func() { q.Close() })
	return q
}

// reopen closes q and opens the same storage again, as after a restart.
func (h *harness) reopen(q queue.Queue) queue.Queue {
	h.t.Helper()
	if err := q.Close(); err != nil {
		h.t.Fatalf("close before reopen: %v", err)
	}
	return h.open()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// entries returns n entries named prefix-0 .. prefix-(n-1), with binary data that includes
// NUL and non-UTF-8 bytes.
func entries(prefix string, n int) []queue.Entry {
	out := make([]queue.Entry, n)
	for i := range out {
		id := fmt.Sprintf("%s-%d", prefix, i)
		out[i] = queue.Entry{EventID: id, Data: dataFor(id)}
	}
	return out
}

func dataFor(eventID string) []byte {
	return append([]byte{0x00, 0xff, 0xfe, '{'}, []byte(`"eventId":"`+eventID+`"}`)...)
}

func enqueue(t *testing.T, ctx context.Context, q queue.Queue, es []queue.Entry) {
	t.Helper()
	if err := q.Enqueue(ctx, es); err != nil {
		t.Fatalf("Enqueue(%d entries): %v", len(es), err)
	}
}

// fetchN fetches until it holds exactly n messages; it fails the test if a Fetch returns
// more than asked for or none within fetchWait.
func fetchN(t *testing.T, ctx context.Context, q queue.Queue, n int) []queue.Message {
	t.Helper()
	var out []queue.Message
	for len(out) < n {
		want := n - len(out)
		msgs, err := q.Fetch(ctx, want, fetchWait)
		if err != nil {
			t.Fatalf("Fetch after %d of %d messages: %v", len(out), n, err)
		}
		if len(msgs) > want {
			t.Fatalf("Fetch(max=%d) returned %d messages", want, len(msgs))
		}
		if len(msgs) == 0 {
			t.Fatalf("fetched %d of %d messages, then Fetch returned none within %v", len(out), n, fetchWait)
		}
		out = append(out, msgs...)
	}
	return out
}

// expectNone asserts that Fetch hands out nothing within wait.
func expectNone(t *testing.T, ctx context.Context, q queue.Queue, wait time.Duration) {
	t.Helper()
	msgs, err := q.Fetch(ctx, 100, wait)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Fetch returned %d messages (first %q), want none", len(msgs), msgs[0].EventID)
	}
}

func checkMessage(t *testing.T, m queue.Message, wantEventID string, wantAttempts int) {
	t.Helper()
	if m.EventID != wantEventID {
		t.Errorf("message %d: EventID = %q, want %q", m.ID, m.EventID, wantEventID)
	}
	if want := dataFor(wantEventID); !bytes.Equal(m.Data, want) {
		t.Errorf("message %d (%s): Data = %q, want %q", m.ID, m.EventID, m.Data, want)
	}
	if m.Attempts != wantAttempts {
		t.Errorf("message %d (%s): Attempts = %d, want %d", m.ID, m.EventID, m.Attempts, wantAttempts)
	}
}

func ids(msgs []queue.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func eventIDs(msgs []queue.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.EventID
	}
	return out
}

func stats(t *testing.T, ctx context.Context, q queue.Queue) queue.Stats {
	t.Helper()
	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

func checkStats(t *testing.T, ctx context.Context, q queue.Queue, length, pending, total int64) {
	t.Helper()
	s := stats(t, ctx, q)
	if s.Length != length || s.Pending != pending || s.TotalEnqueued != total {
		t.Errorf("Stats = {Length:%d Pending:%d TotalEnqueued:%d}, want {Length:%d Pending:%d TotalEnqueued:%d}",
			s.Length, s.Pending, s.TotalEnqueued, length, pending, total)
	}
}

func pendingIDs(t *testing.T, ctx context.Context, q queue.Queue) []string {
	t.Helper()
	var out []string
	if err := q.PendingEventIDs(ctx, func(id string) { out = append(out, id) }); err != nil {
		t.Fatalf("PendingEventIDs: %v", err)
	}
	sort.Strings(out)
	return out
}

func testEnqueueFetchInOrder(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	es := entries("order", 10)
	enqueue(t, ctx, q, es[:4]) // two calls: order holds across them too
	enqueue(t, ctx, q, es[4:])
	msgs := fetchN(t, ctx, q, len(es))
	want := h.order(es, msgs)
	seen := map[int64]bool{}
	for i, m := range msgs {
		checkMessage(t, m, want[i].EventID, 0)
		if seen[m.ID] {
			t.Errorf("message id %d handed out twice", m.ID)
		}
		seen[m.ID] = true
	}
}

func testFetchRespectsMax(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	es := entries("max", 5)
	enqueue(t, ctx, q, es)
	first, err := q.Fetch(ctx, 2, fetchWait)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(first) == 0 || len(first) > 2 {
		t.Fatalf("Fetch(max=2) with 5 entries returned %d messages, want 1 or 2", len(first))
	}
	rest := fetchN(t, ctx, q, len(es)-len(first))
	all := append(first, rest...)
	if got, want := eventIDs(all), eventIDs(toMessages(h.order(es, all))); !slices.Equal(got, want) {
		t.Errorf("event ids = %v, want %v", got, want)
	}
	if msgs, err := q.Fetch(ctx, 0, 10*time.Millisecond); err != nil || len(msgs) != 0 {
		t.Errorf("Fetch(max=0) = %d messages, %v; want none, nil", len(msgs), err)
	}
}

func toMessages(es []queue.Entry) []queue.Message {
	out := make([]queue.Message, len(es))
	for i, e := range es {
		out[i] = queue.Message{EventID: e.EventID, Data: e.Data}
	}
	return out
}

func testFetchEmptyWaits(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	const wait = 300 * time.Millisecond
	start := time.Now()
	msgs, err := q.Fetch(ctx, 10, wait)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Fetch on an empty queue: %v, want nil error", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Fetch on an empty queue returned %d messages", len(msgs))
	}
	// About wait: not an immediate return, and not stuck far beyond it. The bounds are
	// loose so that a backend with millisecond timers passes.
	if elapsed < wait*2/3 {
		t.Errorf("Fetch on an empty queue returned after %v, want about %v", elapsed, wait)
	}
	if elapsed > wait+5*time.Second {
		t.Errorf("Fetch on an empty queue returned after %v, want about %v", elapsed, wait)
	}
}

func testFetchSkipsInFlight(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	enqueue(t, ctx, q, entries("inflight", 3))
	fetchN(t, ctx, q, 3)
	// All three are in flight: nothing to hand out until they are acked, nacked or claimed.
	expectNone(t, ctx, q, 200*time.Millisecond)
}

func testFetchWakesOnEnqueue(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	const wait = 5 * time.Second
	type result struct {
		msgs    []queue.Message
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		msgs, err := q.Fetch(ctx, 10, wait)
		done <- result{msgs, err, time.Since(start)}
	}()
	// Give the fetch time to start waiting, so that the enqueue has to wake it. The
	// assertions below hold whether or not it was waiting already.
	time.Sleep(200 * time.Millisecond)
	es := entries("wake", 1)
	enqueue(t, ctx, q, es)
	r := <-done
	if r.err != nil {
		t.Fatalf("Fetch: %v", r.err)
	}
	if len(r.msgs) != 1 {
		t.Fatalf("Fetch returned %d messages after %v, want the 1 enqueued while it waited", len(r.msgs), r.elapsed)
	}
	checkMessage(t, r.msgs[0], es[0].EventID, 0)
	if r.elapsed >= wait-time.Second {
		t.Errorf("Fetch returned after %v: it was not woken by the enqueue (wait %v)", r.elapsed, wait)
	}
}

func testFetchContextCancel(t *testing.T, h *harness) {
	q := h.open()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const wait = 5 * time.Second
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		msgs, err := q.Fetch(ctx, 10, wait)
		if err == nil && len(msgs) > 0 {
			err = fmt.Errorf("got %d messages from an empty queue", len(msgs))
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it wait; the assertions hold either way
	cancel()
	err := <-done
	if elapsed := time.Since(start); elapsed >= wait-time.Second {
		t.Errorf("Fetch returned %v after cancel, want promptly (wait %v)", elapsed, wait)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch after cancel: %v, want nil or context.Canceled", err)
	}
}

// collect runs fetchers goroutines that fetch (without acking) until want messages were
// handed out in total or the context ends, and returns every message handed out.
func collect(ctx context.Context, q queue.Queue, fetchers, want int) ([]queue.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		mu      sync.Mutex
		all     []queue.Message
		firstEr error
		wg      sync.WaitGroup
	)
	for range fetchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				n := len(all)
				mu.Unlock()
				if n >= want || ctx.Err() != nil {
					return
				}
				msgs, err := q.Fetch(ctx, 7, 100*time.Millisecond)
				mu.Lock()
				if err != nil && ctx.Err() == nil && firstEr == nil {
					firstEr = err
				}
				all = append(all, msgs...)
				mu.Unlock()
				if err != nil {
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return all, firstEr
	}
	if len(all) < want {
		return all, fmt.Errorf("handed out %d of %d messages before %v", len(all), want, context.Cause(ctx))
	}
	return all, nil
}

// checkExactlyOnce asserts that msgs hold every entry of es once, with its data.
func checkExactlyOnce(t *testing.T, msgs []queue.Message, es []queue.Entry) {
	t.Helper()
	byEvent := map[string]int{}
	byID := map[int64]string{}
	for _, m := range msgs {
		byEvent[m.EventID]++
		if prev, ok := byID[m.ID]; ok {
			t.Errorf("message id %d handed out twice (%s, %s)", m.ID, prev, m.EventID)
		}
		byID[m.ID] = m.EventID
		if !bytes.Equal(m.Data, dataFor(m.EventID)) {
			t.Errorf("message %d (%s): Data = %q", m.ID, m.EventID, m.Data)
		}
	}
	missing, dup := 0, 0
	for _, e := range es {
		switch n := byEvent[e.EventID]; {
		case n == 0:
			if missing++; missing <= 5 {
				t.Errorf("entry %s never handed out", e.EventID)
			}
		case n > 1:
			if dup++; dup <= 5 {
				t.Errorf("entry %s handed out %d times", e.EventID, n)
			}
		}
	}
	if len(msgs) != len(es) {
		t.Errorf("handed out %d messages for %d entries (%d missing, %d duplicated)", len(msgs), len(es), missing, dup)
	}
}

func testConcurrentFetchersDisjoint(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	es := entries("disjoint", 400)
	enqueue(t, ctx, q, es)
	msgs, err := collect(ctx, q, 4, len(es))
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, msgs, es)
}

func testConcurrentEnqueue(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	const writers, perWriter = 16, 200
	var all []queue.Entry
	for w := range writers {
		all = append(all, entries(fmt.Sprintf("w%02d", w), perWriter)...)
	}
	// Fetchers run while the writers write, so that fetches race the commits.
	type result struct {
		msgs []queue.Message
		err  error
	}
	fetched := make(chan result, 1)
	go func() {
		msgs, err := collect(ctx, q, 4, len(all))
		fetched <- result{msgs, err}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range all[w*perWriter : (w+1)*perWriter] {
				if err := q.Enqueue(ctx, []queue.Entry{e}); err != nil {
					errs <- fmt.Errorf("Enqueue(%s): %w", e.EventID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r := <-fetched
	if r.err != nil {
		t.Fatal(r.err)
	}
	checkExactlyOnce(t, r.msgs, all)
	expectNone(t, ctx, q, 100*time.Millisecond)
	checkStats(t, ctx, q, writers*perWriter, writers*perWriter, writers*perWriter)
}

func testAckRemoves(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	es := entries("ack", 3)
	enqueue(t, ctx, q, es)
	msgs := fetchN(t, ctx, q, 3)
	if err := q.Ack(ctx, ids(msgs)); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := q.Ack(ctx, nil); err != nil {
		t.Fatalf("Ack(nil): %v", err)
	}
	expectNone(t, ctx, q, 100*time.Millisecond)
	checkStats(t, ctx, q, 0, 0, 3)

	q = h.reopen(q)
	expectNone(t, ctx, q, 200*time.Millisecond)
	checkStats(t, ctx, q, 0, 0, 3)
	if got := pendingIDs(t, ctx, q); len(got) != 0 {
		t.Errorf("PendingEventIDs after acking everything = %v, want none", got)
	}
}

func testNackRedelivers(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	es := entries("nack", 2)
	enqueue(t, ctx, q, es)
	msgs := fetchN(t, ctx, q, 2)
	es = h.order(es, msgs)
	checkMessage(t, msgs[0], es[0].EventID, 0)
	checkMessage(t, msgs[1], es[1].EventID, 0)
	if err := q.Nack(ctx, []int64{msgs[0].ID}); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	again := fetchN(t, ctx, q, 1)
	if again[0].ID != msgs[0].ID {
		t.Errorf("redelivered message id %d, want %d", again[0].ID, msgs[0].ID)
	}
	checkMessage(t, again[0], es[0].EventID, 1)
	if err := q.Nack(ctx, []int64{again[0].ID}); err != nil {
		t.Fatalf("second Nack: %v", err)
	}
	third := fetchN(t, ctx, q, 1)
	checkMessage(t, third[0], es[0].EventID, 2)
	// The second entry is still in flight: nacking the first did not release it.
	expectNone(t, ctx, q, 100*time.Millisecond)
	checkStats(t, ctx, q, 2, 2, 2)
	if err := q.Ack(ctx, []int64{third[0].ID, msgs[1].ID}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	checkStats(t, ctx, q, 0, 0, 2)
}

func testRestartRedeliversUnacked(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	es := entries("restart", 4)
	enqueue(t, ctx, q, es)
	msgs := fetchN(t, ctx, q, 3) // es[3] is never fetched
	es = h.order(es, msgs)
	if err := q.Ack(ctx, []int64{msgs[1].ID}); err != nil {
		t.Fatalf("Ack: %v", err)
	}

	q = h.reopen(q) // es[0] and es[2] were in flight, es[3] waiting
	got := fetchN(t, ctx, q, 3)
	sort.Slice(got, func(i, j int) bool { return got[i].EventID < got[j].EventID })
	want := []string{es[0].EventID, es[2].EventID, es[3].EventID}
	slices.Sort(want)
	if !slices.Equal(eventIDs(got), want) {
		t.Fatalf("after restart fetched %v, want %v", eventIDs(got), want)
	}
	for i, m := range got {
		if m.EventID != want[i] || !bytes.Equal(m.Data, dataFor(want[i])) {
			t.Errorf("after restart message %d = %s %q", m.ID, m.EventID, m.Data)
		}
	}
	expectNone(t, ctx, q, 100*time.Millisecond)
	checkStats(t, ctx, q, 3, 3, 4)
}

func testStats(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	s := stats(t, ctx, q)
	if s != (queue.Stats{}) {
		t.Errorf("Stats of a new queue = %+v, want all zero", s)
	}
	enqueue(t, ctx, q, entries("stats", 5))
	checkStats(t, ctx, q, 5, 0, 5)
	msgs := fetchN(t, ctx, q, 2)
	checkStats(t, ctx, q, 5, 2, 5)
	if err := q.Ack(ctx, []int64{msgs[0].ID}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	checkStats(t, ctx, q, 4, 1, 5)
	if err := q.Nack(ctx, []int64{msgs[1].ID}); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	checkStats(t, ctx, q, 4, 0, 5)

	q = h.reopen(q)
	checkStats(t, ctx, q, 4, 0, 5) // TotalEnqueued survives the restart
	enqueue(t, ctx, q, entries("stats-after", 2))
	checkStats(t, ctx, q, 6, 0, 7)
	msgs = fetchN(t, ctx, q, 6)
	checkStats(t, ctx, q, 6, 6, 7)
	if err := q.Ack(ctx, ids(msgs)); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	checkStats(t, ctx, q, 0, 0, 7)
}

func testPendingEventIDs(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	if got := pendingIDs(t, ctx, q); len(got) != 0 {
		t.Errorf("PendingEventIDs of a new queue = %v, want none", got)
	}
	es := entries("pending", 4)
	enqueue(t, ctx, q, es)
	msgs := fetchN(t, ctx, q, 2) // pending-0, pending-1 in flight; 2 and 3 waiting
	es = h.order(es, msgs)
	if err := q.Ack(ctx, []int64{msgs[1].ID}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	want := []string{es[0].EventID, es[2].EventID, es[3].EventID}
	slices.Sort(want) // pendingIDs sorts
	if got := pendingIDs(t, ctx, q); !slices.Equal(got, want) {
		t.Errorf("PendingEventIDs = %v, want %v", got, want)
	}
	q = h.reopen(q)
	if got := pendingIDs(t, ctx, q); !slices.Equal(got, want) {
		t.Errorf("PendingEventIDs after restart = %v, want %v", got, want)
	}
}

func testPing(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	if err := q.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testClosed(t *testing.T, h *harness) {
	ctx := testCtx(t)
	q := h.open()
	enqueue(t, ctx, q, entries("closed", 2))
	msgs := fetchN(t, ctx, q, 1)
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(method string, err error) {
		t.Helper()
		if !errors.Is(err, queue.ErrClosed) {
			t.Errorf("%s on a closed queue: %v, want queue.ErrClosed", method, err)
		}
	}
	check("Enqueue", q.Enqueue(ctx, entries("late", 1)))
	_, err := q.Fetch(ctx, 10, 100*time.Millisecond)
	check("Fetch", err)
	check("Ack", q.Ack(ctx, ids(msgs)))
	check("Nack", q.Nack(ctx, ids(msgs)))
	check("PendingEventIDs", q.PendingEventIDs(ctx, func(string) {}))
	_, err = q.Stats(ctx)
	check("Stats", err)
	check("Ping", q.Ping(ctx))

	// Nothing was lost or added by the calls on the closed queue.
	q = h.open()
	if got, want := pendingIDs(t, ctx, q), []string{"closed-0", "closed-1"}; !slices.Equal(got, want) {
		t.Errorf("PendingEventIDs after reopen = %v, want %v", got, want)
	}
}

// testFetchWhileClosing: a Fetch waiting when the queue is closed returns ErrClosed.
func testFetchWhileClosing(t *testing.T, h *harness) {
	q := h.open()
	done := make(chan error, 1)
	go func() {
		_, err := q.Fetch(context.Background(), 10, 10*time.Second)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it wait; the assertion holds either way
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Fetch waiting during Close: %v, want queue.ErrClosed", err)
	}
}
