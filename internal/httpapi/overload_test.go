package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/logqueue"
)

// A buffer at its bound (EVP_BUFFER_MAX_BYTES) refuses events: single events and batches
// get 503 with Retry-After and a message naming the bound, never a 202.
func TestFullBufferAnswers503(t *testing.T) {
	q, err := logqueue.Open(context.Background(), t.TempDir(), logqueue.Options{MaxBytes: 64 << 10, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s := inflightServer(q, 0)
	var last string
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatalf("100 batches of 10 KiB accepted by a 64 KiB buffer")
		}
		var evs []string
		for j := range 10 {
			evs = append(evs, string(eventBody(fmt.Sprintf("b%d-%d", i, j), 1000)))
		}
		rec := postTo(s, "/api/v1/events/batch", []byte(`{"events":[`+strings.Join(evs, ",")+`]}`), "", false)
		if rec.Code == 202 {
			continue
		}
		check503(t, "batch into a full buffer", rec, "EVP_BUFFER_MAX_BYTES")
		last = errorOf(t, rec).Message
		break
	}
	if !strings.Contains(last, "buffer is full") {
		t.Errorf("message %q, want it to say the buffer is full", last)
	}
	check503(t, "event into a full buffer", postTo(s, "/api/v1/events", eventBody("single", 20<<10), "", false), "EVP_BUFFER_MAX_BYTES")
}

// fullUnique is a UniqueQueue at its bound.
type fullUnique struct{}

func (fullUnique) EnqueueUnique(context.Context, []queue.Entry) ([]bool, error) {
	return nil, fmt.Errorf("redisqueue: append: %w: stream s holds 1000 entries of at most 1000 (EVP_STREAM_MAX_LEN)", queue.ErrFull)
}

// The one-step dedup and append (Redis) maps a full buffer to 503 the same way.
func TestFullUniqueQueueAnswers503(t *testing.T) {
	s := New(Deps{Ingestion: IngestionDeps{Queue: &memQueue{}, UniqueQueue: fullUnique{}, Dedup: dedup.Local{W: dedup.New(time.Minute)}},
		Auth: AuthDeps{Keys: staticKeys{}}, Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	s.SetReady(true)
	check503(t, "event", postTo(s, "/api/v1/events", eventBody("u1", 10), "", false), "EVP_STREAM_MAX_LEN")
	check503(t, "batch", postTo(s, "/api/v1/events/batch", []byte(`{"events":[`+string(eventBody("u2", 10))+`]}`), "", false), "EVP_STREAM_MAX_LEN")
}

// statsQueue is memQueue whose Stats and Ping fail with the errors given.
type statsQueue struct {
	memQueue
	statsErr, pingErr error
}

func (q *statsQueue) Stats(context.Context) (queue.Stats, error) { return queue.Stats{}, q.statsErr }
func (q *statsQueue) Ping(context.Context) error                 { return q.pingErr }

// The status and metrics routes answer 503 with Retry-After naming the buffer while it is
// unreachable (its error says so, or it does not answer a ping either); a failure of a
// buffer that answers stays a 500 with the route's code.
func TestStatusRoutesWhileBufferDown(t *testing.T) {
	refused := fmt.Errorf("redisqueue: stats: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	odd := errors.New("redisqueue: stats: WRONGTYPE Operation against a key holding the wrong kind of value")
	for _, tc := range []struct {
		name              string
		statsErr, pingErr error
		down              bool
	}{
		{"connection refused", refused, refused, true},
		{"pool timeout, ping fails", errors.New("redis: connection pool timeout"), refused, true},
		{"closed", queue.ErrClosed, nil, true},
		{"answers but fails", odd, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &statsQueue{statsErr: tc.statsErr, pingErr: tc.pingErr}
			s := New(Deps{Ingestion: IngestionDeps{Queue: q, Dedup: dedup.Local{W: dedup.New(time.Minute)}},
				Auth:    AuthDeps{Keys: staticKeys{}},
				Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
				Reading: ReadingDeps{
					Stream: describeFunc(func(ctx context.Context) (queue.Description, error) {
						_, err := q.Stats(ctx)
						return queue.Description{}, err
					}),
					Processing: func(context.Context) (ProcessingStats, error) { return ProcessingStats{}, nil },
				}})
			s.SetReady(true)
			for path, code := range map[string]string{
				"/api/metrics": "METRICS_ERROR", "/api/metrics/ingestion": "METRICS_ERROR",
				"/api/v1/events/stats": "STATS_ERROR", "/api/metrics/stream": "STREAM_ERROR",
			} {
				rec := getWithKey(s, path)
				if tc.down {
					check503(t, path, rec, "ingestion buffer is unavailable")
				} else if e := errorOf(t, rec); rec.Code != 500 || e.Code != code {
					t.Errorf("%s: %d %s, want 500 %s", path, rec.Code, rec.Body, code)
				}
			}
		})
	}
}

// The event store unreachable behind /api/metrics is a 503 naming it.
func TestMetricsWhileStoreDown(t *testing.T) {
	s := New(Deps{Ingestion: IngestionDeps{Queue: &memQueue{}, Dedup: dedup.Local{W: dedup.New(time.Minute)}},
		Auth: AuthDeps{Keys: staticKeys{}}, Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Reading: ReadingDeps{Processing: func(context.Context) (ProcessingStats, error) {
			return ProcessingStats{}, fmt.Errorf("count: %w", context.DeadlineExceeded)
		}}})
	s.SetReady(true)
	check503(t, "/api/metrics", getWithKey(s, "/api/metrics"), "event store is unavailable")
}

func getWithKey(s *Server, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("x-api-key", "evp_bench")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}
