package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/queue"
)

// gateQueue is memQueue whose Enqueue of the event id "hold" waits until release is
// closed, after closing entered: a request that holds its body in the middle of the path.
type gateQueue struct {
	memQueue
	entered, release chan struct{}
}

func newGateQueue() *gateQueue {
	return &gateQueue{entered: make(chan struct{}), release: make(chan struct{})}
}

func (q *gateQueue) Enqueue(ctx context.Context, entries []queue.Entry) error {
	if len(entries) > 0 && entries[0].EventID == "hold" {
		close(q.entered)
		<-q.release
	}
	return q.memQueue.Enqueue(ctx, entries)
}

// waitEntered waits until the holding request is in Enqueue, or fails with its answer.
func waitEntered(t *testing.T, q *gateQueue, held <-chan int) {
	t.Helper()
	select {
	case <-q.entered:
	case code := <-held:
		t.Fatalf("the holding request was answered %d before it reached the buffer", code)
	}
}

// eventBody is a single event whose payload pads it to about size bytes.
func eventBody(id string, size int) []byte {
	return []byte(`{"eventId":"` + id + `","eventType":"click","userId":"u1","sessionId":"s1","timestamp":"2024-01-15T10:30:00Z","payload":{"pad":"` +
		strings.Repeat("x", size) + `"}}`)
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// postTo posts body with the test key; encoding, when set, is its Content-Encoding, and
// unknownLength sends it without a Content-Length (as a chunked body arrives).
func postTo(s *Server, path string, body []byte, encoding string, unknownLength bool) *httptest.ResponseRecorder {
	var rd io.Reader = bytes.NewReader(body)
	if unknownLength {
		rd = io.MultiReader(rd)
	}
	req := httptest.NewRequest("POST", path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", "evp_bench")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// errorOf decodes the error envelope of an answer.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	var env struct{ Error errorBody }
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	return env.Error
}

// check503 checks an answer is 503 SERVICE_UNAVAILABLE with Retry-After and a message
// that contains want.
func check503(t *testing.T, what string, rec *httptest.ResponseRecorder, want string) {
	t.Helper()
	e := errorOf(t, rec)
	if rec.Code != 503 || e.Code != "SERVICE_UNAVAILABLE" || rec.Header().Get("Retry-After") == "" || !strings.Contains(e.Message, want) {
		t.Errorf("%s: %d %s (Retry-After %q), want 503 SERVICE_UNAVAILABLE with Retry-After naming %q",
			what, rec.Code, rec.Body, rec.Header().Get("Retry-After"), want)
	}
}

func inflightServer(q queue.Queue, bound int64) *Server {
	s := New(Deps{Ingestion: IngestionDeps{Queue: q, Dedup: dedup.Local{W: dedup.New(time.Minute)}, InflightMaxBytes: bound},
		Auth: AuthDeps{Keys: staticKeys{}}, Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	s.SetReady(true)
	return s
}

// Request bodies in flight are bounded in bytes: while one request holds most of
// EVP_INFLIGHT_MAX_BYTES, a body whose length is known and does not fit waits, then gets
// 503 with Retry-After; one that fits is taken; and once the holder is done the refused one
// is taken too. Nothing stays reserved afterwards.
func TestInflightBoundRefusesPastIt(t *testing.T) {
	q := newGateQueue()
	s := inflightServer(q, 512<<10)
	held := make(chan int, 1)
	go func() { held <- postTo(s, "/api/v1/events", eventBody("hold", 150<<10), "", false).Code }()
	waitEntered(t, q, held) // holds about 3 x 150 KiB of 512 KiB

	second := eventBody("second", 30<<10)
	check503(t, "a 30 KiB event past the bound", postTo(s, "/api/v1/events", second, "", false), "EVP_INFLIGHT_MAX_BYTES")
	batch := []byte(`{"events":[` + string(eventBody("in-batch", 30<<10)) + `]}`)
	check503(t, "a 30 KiB batch past the bound", postTo(s, "/api/v1/events/batch", batch, "", false), "EVP_INFLIGHT_MAX_BYTES")
	if rec := postTo(s, "/api/v1/events", eventBody("small", 100), "", false); rec.Code != 202 {
		t.Errorf("a small event within the bound: %d %s, want 202", rec.Code, rec.Body)
	}

	close(q.release)
	if code := <-held; code != 202 {
		t.Fatalf("the holding request: %d, want 202", code)
	}
	if rec := postTo(s, "/api/v1/events", second, "", false); rec.Code != 202 {
		t.Errorf("the refused event once there is room: %d %s, want 202", rec.Code, rec.Body)
	}
	if used := s.budget.Used(); used != 0 {
		t.Errorf("%d bytes still reserved after every request was answered", used)
	}
}

// A body whose length is not known in advance (gzip, chunked) is counted as it grows: a
// gzip body a few hundred bytes long on the wire that inflates past the room left is
// refused, and taken once the room is there.
func TestInflightBoundCountsGrowingBodies(t *testing.T) {
	big := eventBody("grows", 400<<10)
	for _, tc := range []struct {
		name     string
		body     []byte
		encoding string
		unknown  bool
	}{
		{"gzip", gzipped(t, big), "gzip", false},
		{"chunked", big, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newGateQueue()
			s := inflightServer(q, 1<<20)
			held := make(chan int, 1)
			go func() { held <- postTo(s, "/api/v1/events", eventBody("hold", 100<<10), "", false).Code }()
			waitEntered(t, q, held) // holds about 300 KiB of 1 MiB

			check503(t, tc.name+" body past the room left", postTo(s, "/api/v1/events", tc.body, tc.encoding, tc.unknown), "EVP_INFLIGHT_MAX_BYTES")
			close(q.release)
			<-held
			if rec := postTo(s, "/api/v1/events", tc.body, tc.encoding, tc.unknown); rec.Code != 202 {
				t.Errorf("%s body alone: %d %s, want 202", tc.name, rec.Code, rec.Body)
			}
			if used := s.budget.Used(); used != 0 {
				t.Errorf("%d bytes still reserved after every request was answered", used)
			}
		})
	}
}

// A request that finds no room waits for it: a release wakes it and it is taken.
func TestInflightBoundWaitsBriefly(t *testing.T) {
	q := newGateQueue()
	s := inflightServer(q, 512<<10)
	held := make(chan int, 1)
	go func() { held <- postTo(s, "/api/v1/events", eventBody("hold", 150<<10), "", false).Code }()
	waitEntered(t, q, held)
	second := make(chan int, 1)
	go func() { second <- postTo(s, "/api/v1/events", eventBody("waits", 30<<10), "", false).Code }()
	for deadline := time.Now().Add(10 * time.Second); s.budget.waiters.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("a request past the bound did not wait for room")
		}
		time.Sleep(time.Millisecond) // until the second request waits for room
	}
	close(q.release)
	if code := <-held; code != 202 {
		t.Fatalf("holding request: %d", code)
	}
	if code := <-second; code != 202 {
		t.Errorf("the waiting request after the release: %d, want 202", code)
	}
}

// Bad requests give back what they reserved.
func TestInflightBoundReleasedOnErrors(t *testing.T) {
	s := inflightServer(&memQueue{}, 1<<20)
	for _, tc := range []struct {
		body     []byte
		encoding string
	}{
		{[]byte(`{"eventType":`), ""},
		{[]byte(`{"eventType":"x"}`), ""}, // no userId
		{[]byte("not gzip"), "gzip"},
		{bytes.Repeat([]byte("x"), 6<<20), ""}, // too large
	} {
		if rec := postTo(s, "/api/v1/events", tc.body, tc.encoding, false); rec.Code < 400 || rec.Code >= 500 {
			t.Errorf("%.20q: %d, want a 4xx", tc.body, rec.Code)
		}
	}
	if used := s.budget.Used(); used != 0 {
		t.Errorf("%d bytes still reserved after refused requests", used)
	}
}
