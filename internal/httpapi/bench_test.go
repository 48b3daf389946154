package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/queue/logqueue"
)

type staticKeys struct{}

func (staticKeys) Authenticate(ctx context.Context, plain string) (accounts.APIKey, error) {
	if plain != "evp_bench" {
		return accounts.APIKey{}, accounts.ErrInvalidKey
	}
	return accounts.APIKey{ID: "key_bench"}, nil
}

func (staticKeys) MarkUsed(accounts.APIKey) {}

// benchServer is the ingestion path with a real embedded buffer; only key lookup is static.
func benchServer(b *testing.B, noFsync bool) *Server {
	b.Helper()
	q, err := logqueue.Open(context.Background(), b.TempDir(), logqueue.Options{NoFsync: noFsync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	s := New(Deps{Ingestion: IngestionDeps{Queue: q, Dedup: dedup.Local{W: dedup.New(10 * time.Minute)}}, Auth: AuthDeps{Keys: staticKeys{}},
		Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	s.SetReady(true)
	return s
}

var benchSeq atomic.Int64

func benchEvent(buf []byte, id int64) []byte {
	buf = append(buf, `{"eventId":"bench-`...)
	buf = strconv.AppendInt(buf, id, 10)
	buf = append(buf, `","eventType":"page_view","userId":"user_`...)
	buf = strconv.AppendInt(buf, id%10000, 10)
	buf = append(buf, `","sessionId":"sess_`...)
	buf = strconv.AppendInt(buf, id%50000, 10)
	buf = append(buf, `","timestamp":"2024-01-15T10:30:00.123Z","metadata":{"source":"web","browser":"chrome","version":"1.2.3"},"payload":{"page":"/products/42","referrer":"https://example.com/search?q=shoes","durationMs":1234}}`...)
	return buf
}

func post(b *testing.B, h http.Handler, path string, body []byte) {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", "evp_bench")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusAccepted {
		b.Errorf("status %d: %s", w.Code, w.Body)
	}
}

// BenchmarkPostBatch100 measures auth, decode, validate, dedup and durable append of
// 100-event batches, several requests in parallel so that group commit takes effect.
func BenchmarkPostBatch100(b *testing.B) {
	for _, name := range []string{"fsync", "nofsync"} {
		b.Run(name, func(b *testing.B) {
			h := benchServer(b, name == "nofsync").Handler()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				var body []byte
				for pb.Next() {
					body = append(body[:0], `{"events":[`...)
					for i := 0; i < 100; i++ {
						if i > 0 {
							body = append(body, ',')
						}
						body = benchEvent(body, benchSeq.Add(1))
					}
					body = append(body, "]}"...)
					post(b, h, "/api/v1/events/batch", body)
				}
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkPostEvent measures single-event requests, 64 in parallel.
func BenchmarkPostEvent(b *testing.B) {
	for _, name := range []string{"fsync", "nofsync"} {
		b.Run(name, func(b *testing.B) {
			h := benchServer(b, name == "nofsync").Handler()
			b.ReportAllocs()
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				var body []byte
				for pb.Next() {
					body = benchEvent(body[:0], benchSeq.Add(1))
					post(b, h, "/api/v1/events", body)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func ExampleServer_Routes() {
	s := New(Deps{})
	for _, r := range s.Routes()[:2] {
		fmt.Println(r)
	}
	// Output:
	// GET /api/health
	// GET /api/live
}
