package worker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// outageStore is a fakeStore that can be down: every write and ping fails.
type outageStore struct {
	*fakeStore
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (s *outageStore) InsertBatch(ctx context.Context, events []event.Event, at time.Time) (int, int, error) {
	if s.down.Load() {
		return 0, 0, errDown
	}
	return s.fakeStore.InsertBatch(ctx, events, at)
}

func (s *outageStore) Ping(context.Context) error {
	if s.down.Load() {
		return errDown
	}
	return nil
}

// touchQueue records Touch calls.
type touchQueue struct {
	*fakeQueue
	mu      sync.Mutex
	touched [][]int64
}

func (q *touchQueue) Touch(_ context.Context, ids []int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.touched = append(q.touched, slices.Clone(ids))
	return nil
}

func (q *touchQueue) touches() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.touched)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// A store outage holds the batch (touching its entries) instead of dead-lettering it, pauses
// fetching, and stores everything once the store answers again.
func TestStoreOutageHoldsBatch(t *testing.T) {
	st := &outageStore{fakeStore: newFakeStore()}
	st.down.Store(true)
	q := &touchQueue{fakeQueue: newFakeQueue(backlog(t, 5)...)}
	p := newPool(t, Config{BatchSize: 5, Concurrency: 1}, q, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the held batch is touched", func() bool { return q.touches() >= 3 })
	if !p.storeDown.Load() {
		t.Error("storeDown not set during the outage")
	}
	if len(st.deadLetters()) != 0 || len(q.ackCalls()) != 0 || len(q.nackCalls()) != 0 {
		t.Fatalf("during the outage: %d dead letters, %d acks, %d nacks; want none",
			len(st.deadLetters()), len(q.ackCalls()), len(q.nackCalls()))
	}
	for _, ids := range q.touched {
		if !slices.Equal(ids, []int64{1, 2, 3, 4, 5}) {
			t.Fatalf("touched %v, want the held batch", ids)
		}
	}
	st.down.Store(false)
	acked := q.waitAck(t)
	if !slices.Equal(acked, []int64{1, 2, 3, 4, 5}) || len(st.deadLetters()) != 0 {
		t.Fatalf("after the outage: acked %v, dead letters %v", acked, st.deadLetters())
	}
}

// Stopping during an outage gives the batch back to the buffer, not to the dead letters.
func TestStopDuringOutageNacks(t *testing.T) {
	st := &outageStore{fakeStore: newFakeStore()}
	st.down.Store(true)
	q := &touchQueue{fakeQueue: newFakeQueue(backlog(t, 3)...)}
	p := newPool(t, Config{BatchSize: 3, Concurrency: 1}, q, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	waitFor(t, "the held batch is touched", func() bool { return q.touches() >= 1 })
	cancel()
	<-done
	nacks := q.nackCalls()
	if len(nacks) != 1 || !slices.Equal(nacks[0], []int64{1, 2, 3}) || len(st.deadLetters()) != 0 || len(q.ackCalls()) != 0 {
		t.Fatalf("stopped in an outage: nacks %v, dead letters %d, acks %d; want the batch nacked only",
			nacks, len(st.deadLetters()), len(q.ackCalls()))
	}
}
