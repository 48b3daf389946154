package logqueue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/queuetest"
)

func TestContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Storage {
		dir := t.TempDir()
		return func() (queue.Queue, error) {
			q, err := Open(context.Background(), dir, Options{})
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return q, nil
		}
	})
}

func open(t testing.TB, dir string, opts Options) *Queue {
	t.Helper()
	q, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first := open(t, dir, Options{})

	second, err := Open(ctx, dir, Options{})
	if err == nil {
		second.Close()
		t.Fatal("second Open of a directory in use succeeded")
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
		t.Errorf("second Open: %q, want an error naming %s as in use", err, dir)
	}

	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	third, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := third.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := third.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestClaimIdle(t *testing.T) {
	const idle = 200 * time.Millisecond
	ctx := context.Background()
	q := open(t, t.TempDir(), Options{ClaimIdle: idle})
	data := []byte("payload-a")
	if err := q.Enqueue(ctx, []queue.Entry{{EventID: "a", Data: data}}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	first, err := q.Fetch(ctx, 10, time.Second)
	if err != nil || len(first) != 1 {
		t.Fatalf("Fetch = %d messages, %v; want 1", len(first), err)
	}
	fetchedAt := time.Now()

	// Within the claim timeout the entry stays with its first consumer.
	got, err := q.Fetch(ctx, 10, 0)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(got) != 0 && time.Since(fetchedAt) < idle {
		t.Fatalf("entry in flight for %v redelivered before the claim timeout %v", time.Since(fetchedAt), idle)
	}

	time.Sleep(idle + 50*time.Millisecond) // the behaviour under test is time-based
	got, err = q.Fetch(ctx, 10, 0)
	if err != nil {
		t.Fatalf("Fetch after the claim timeout: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("Fetch after the claim timeout = %d messages, want the idle entry", len(got))
	}
	if got[0].ID != first[0].ID || got[0].EventID != "a" || !bytes.Equal(got[0].Data, data) {
		t.Errorf("claimed %+v, want id %d event a data %q", got[0], first[0].ID, data)
	}
	s, _ := q.Stats(ctx)
	if s.Pending != 1 || s.Length != 1 {
		t.Errorf("Stats after claim = %+v, want Length 1 Pending 1", s)
	}

	// The claim restarted its clock: not handed out a third time straight away.
	if again, _ := q.Fetch(ctx, 10, 0); len(again) != 0 && time.Since(fetchedAt) < 2*idle {
		t.Errorf("claimed entry handed out again at once")
	}

	// An ack by the new consumer ends it.
	if err := q.Ack(ctx, []int64{got[0].ID}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	time.Sleep(idle + 50*time.Millisecond)
	if again, err := q.Fetch(ctx, 10, 0); err != nil || len(again) != 0 {
		t.Errorf("Fetch after ack = %d messages, %v; want none", len(again), err)
	}
}

// TestEnqueueRacingClose checks the promise of submit: an Enqueue that fails stored
// nothing, and one that succeeded is stored, also when Close runs concurrently.
func TestEnqueueRacingClose(t *testing.T) {
	ctx := context.Background()
	for round := range 10 {
		dir := t.TempDir()
		q := open(t, dir, Options{NoFsync: true})
		const writers = 8
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			ok       = map[string]bool{}
			failed   = map[string]bool{}
			started  atomic.Int64
			otherErr error
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					id := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					started.Add(1)
					err := q.Enqueue(ctx, []queue.Entry{{EventID: id, Data: []byte(id)}})
					mu.Lock()
					switch {
					case err == nil:
						ok[id] = true
					case errors.Is(err, queue.ErrClosed):
						failed[id] = true
					default:
						otherErr = err
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
		for started.Load() < 200 {
			time.Sleep(time.Millisecond) // wait for the writers to be busy
		}
		if err := q.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wg.Wait()
		if otherErr != nil {
			t.Fatalf("Enqueue racing Close: %v, want nil or ErrClosed", otherErr)
		}

		q = open(t, dir, Options{})
		stored := map[string]bool{}
		if err := q.PendingEventIDs(ctx, func(id string) { stored[id] = true }); err != nil {
			t.Fatalf("PendingEventIDs: %v", err)
		}
		for id := range ok {
			if !stored[id] {
				t.Errorf("round %d: Enqueue(%s) returned nil but the entry is not stored", round, id)
			}
		}
		for id := range failed {
			if stored[id] {
				t.Errorf("round %d: Enqueue(%s) returned ErrClosed but the entry was stored", round, id)
			}
		}
		if len(stored) != len(ok) {
			t.Errorf("round %d: %d entries stored, %d enqueues succeeded", round, len(stored), len(ok))
		}
		q.Close()
		if t.Failed() {
			return
		}
	}
}

// TestSubmitTakesAnswerBeforeWriterExit pins the race behind TestEnqueueRacingClose
// deterministically: the writer answers a request and exits before the caller looks.
// The answer must win over "writer gone".
func TestSubmitTakesAnswerBeforeWriterExit(t *testing.T) {
	for i := range 200 {
		q := &Queue{
			reqs:       make(chan *writeReq), // unbuffered: the writer has the request once submit's send returns
			closed:     make(chan struct{}),
			writerDone: make(chan struct{}),
		}
		go func() {
			r := <-q.reqs
			r.done <- nil // committed
			close(q.writerDone)
		}()
		if err := q.submit(context.Background(), &writeReq{entries: []queue.Entry{{EventID: "x"}}}); err != nil {
			t.Fatalf("iteration %d: the writer committed the request, submit returned %v", i, err)
		}
	}
}

// benchData is an encoded event of typical size.
var benchData = []byte(`{"eventId":"evt_01JD2ZQ7K3M4N5P6Q7R8S9T0VW","eventType":"page_view","userId":"user_12345",` +
	`"sessionId":"sess_67890","timestamp":"2026-01-02T03:04:05.678Z","metadata":{"ua":"Mozilla/5.0","ip":"203.0.113.7"},` +
	`"payload":{"path":"/pricing","ref":"newsletter"},"priority":1,"receivedAt":"2026-01-02T03:04:05.701Z"}`)

// BenchmarkEnqueue is the API's case: one entry per call from many goroutines at once, so
// that the writer's group commit shows (one fsync for many calls).
func BenchmarkEnqueue(b *testing.B) {
	q := open(b, b.TempDir(), Options{})
	ctx := context.Background()
	b.SetParallelism(32) // 32 callers per CPU, like concurrent HTTP requests
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := []queue.Entry{{EventID: "evt_bench", Data: benchData}}
		for pb.Next() {
			if err := q.Enqueue(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkEnqueueBatch100 is one caller enqueuing batches of 100 entries.
func BenchmarkEnqueueBatch100(b *testing.B) {
	q := open(b, b.TempDir(), Options{})
	ctx := context.Background()
	batch := make([]queue.Entry, 100)
	for i := range batch {
		batch[i] = queue.Entry{EventID: fmt.Sprintf("evt_bench_%03d", i), Data: benchData}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Enqueue(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkEnqueueFetchAckNoFsync is the buffer's CPU cost per entry without the disk's
// fsync latency: batches of 100 appended, fetched and acknowledged.
func BenchmarkEnqueueFetchAckNoFsync(b *testing.B) {
	q := open(b, b.TempDir(), Options{NoFsync: true})
	ctx := context.Background()
	batch := make([]queue.Entry, 100)
	for i := range batch {
		batch[i] = queue.Entry{EventID: fmt.Sprintf("evt_bench_%03d", i), Data: benchData}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Enqueue(ctx, batch); err != nil {
			b.Fatal(err)
		}
		msgs, err := q.Fetch(ctx, 100, time.Second)
		if err != nil || len(msgs) != 100 {
			b.Fatalf("Fetch: %d, %v", len(msgs), err)
		}
		ids := make([]int64, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		if err := q.Ack(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "entries/s")
}
