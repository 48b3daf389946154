package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/metrics"
	"github.com/evp-dev/evp/internal/queue"
)

// memQueue is a queue.Queue that keeps the last entries in memory and answers at once, so
// that a benchmark measures the HTTP path without the buffer's cost. It keeps a ring of
// recent entries (the memory stays flat however long the benchmark runs) and hands
// nothing to workers.
type memQueue struct {
	mu    sync.Mutex
	ring  [1024]queue.Entry
	next  int
	total int64
}

func (q *memQueue) Enqueue(_ context.Context, entries []queue.Entry) error {
	q.mu.Lock()
	for _, e := range entries {
		q.ring[q.next] = e
		q.next = (q.next + 1) % len(q.ring)
	}
	q.total += int64(len(entries))
	q.mu.Unlock()
	return nil
}

func (q *memQueue) Fetch(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	return nil, nil
}
func (q *memQueue) Ack(context.Context, []int64) error                          { return nil }
func (q *memQueue) Nack(context.Context, []int64) error                         { return nil }
func (q *memQueue) PendingEventIDs(context.Context, func(eventID string)) error { return nil }
func (q *memQueue) Ping(context.Context) error                                  { return nil }
func (q *memQueue) Close() error                                                { return nil }
func (q *memQueue) Stats(context.Context) (queue.Stats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queue.Stats{TotalEnqueued: q.total}, nil
}

// memQueueServer is the ingestion path as evp wires it for the embedded buffer (API keys
// checked by accounts.KeyAuth over the SQLite accounts store, the local dedup window with
// its default bound, Prometheus metrics, logging at info level), but over memQueue.
func memQueueServer(b *testing.B) (*Server, string) {
	b.Helper()
	ctx := context.Background()
	acc, err := accounts.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { acc.Close() })
	plain, _, err := accounts.CreateAPIKey(ctx, acc, accounts.NewKey{Name: "bench", Prefix: "evp_"})
	if err != nil {
		b.Fatal(err)
	}
	w := dedup.New(10 * time.Minute)
	w.MaxIDs = 1_000_000
	s := New(Deps{
		Ingestion: IngestionDeps{Queue: &memQueue{}, Dedup: dedup.Local{W: w}},
		Auth:      AuthDeps{Keys: accounts.NewKeyAuth(acc, 60*time.Second)},
		Serving: ServingDeps{
			Log:     slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Metrics: metrics.New(),
		},
	})
	s.SetReady(true)
	return s, plain
}

// BenchmarkPostEventMemQueue measures one single-event request through Server.Handler
// (middleware, auth, body, decode, validation, dedup, in-flight claim, encoding, metrics,
// response) with a buffer that costs nothing; as many requests in parallel as GOMAXPROCS.
// The request and response writer are reused so that the harness costs little: what is
// left is the handler's work, not net/http's parsing.
func BenchmarkPostEventMemQueue(b *testing.B) {
	s, key := memQueueServer(b)
	h := s.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		var body []byte
		rd := bytes.NewReader(nil)
		req := httptest.NewRequest("POST", "/api/v1/events", nil)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", key)
		w := &discardWriter{h: http.Header{}}
		req.Body = io.NopCloser(rd)
		for pb.Next() {
			body = benchEvent(body[:0], benchSeq.Add(1))
			rd.Reset(body)
			req.ContentLength = int64(len(body))
			w.reset()
			h.ServeHTTP(w, req)
			if w.code != http.StatusAccepted {
				b.Errorf("status %d: %s", w.code, w.body)
				return
			}
		}
	})
}

// discardWriter is a reusable http.ResponseWriter that keeps the status and the body.
type discardWriter struct {
	h    http.Header
	code int
	body []byte
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.code, w.body = 0, w.body[:0]
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// BenchmarkPostEventLoopback sends single events over keep-alive connections to a real
// net/http server on 127.0.0.1, client and server in this process, against the same server
// answering with a no-op handler: the ratio of the two is what the single-event bar asks.
// The client's CPU is in both figures.
func BenchmarkPostEventLoopback(b *testing.B) {
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
	b.Run("noop", func(b *testing.B) { loopback(b, noop, "evp_bench") })
	b.Run("evp", func(b *testing.B) {
		s, key := memQueueServer(b)
		loopback(b, s.Handler(), key)
	})
}

func loopback(b *testing.B, h http.Handler, key string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	const conns = 32
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	b.Cleanup(client.CloseIdleConnections)
	url := "http://" + ln.Addr().String() + "/api/v1/events"
	b.ReportAllocs()
	b.SetParallelism((conns + 1) / 2) // RunParallel multiplies by GOMAXPROCS (2 here)
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		var body []byte
		rd := bytes.NewReader(nil)
		for pb.Next() {
			body = benchEvent(body[:0], benchSeq.Add(1))
			rd.Reset(body)
			req, err := http.NewRequest("POST", url, rd)
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("x-api-key", key)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// reportCPU reports the process's CPU time (user and system) per operation from now until
// the returned function runs: on a shared machine a steadier figure than ns/op, which
// counts time spent waiting for a core.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
