package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// bigBatch is a batch of n events with ids prefix-0.. whose payloads are pad bytes each.
func bigBatch(t *testing.T, prefix string, n, pad int) []byte {
	var events []any
	for i := range n {
		e := ev(fmt.Sprintf("%s-%d", prefix, i), "purchase")
		e["payload"] = map[string]any{"pad": strings.Repeat("p", pad)}
		events = append(events, e)
	}
	return mustJSON(t, map[string]any{"events": events})
}

// check503 checks that r is 503 SERVICE_UNAVAILABLE with Retry-After and a message that
// contains want.
func check503(t *testing.T, what string, r reply, want string) {
	t.Helper()
	e, _ := r.body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if r.status != 503 || r.errorCode() != "SERVICE_UNAVAILABLE" || r.header.Get("Retry-After") == "" || !strings.Contains(msg, want) {
		t.Errorf("%s: %d %s (Retry-After %q), want 503 SERVICE_UNAVAILABLE with Retry-After naming %q", what, r.status, r.raw, r.header.Get("Retry-After"), want)
	}
}

// bufferHealth returns evp's health status and the buffer's entry in it.
func bufferHealth(in *instance) (int, string, map[string]any) {
	r := in.do("GET", "/api/health", nil, nil)
	status, _ := r.body["status"].(string)
	services, _ := r.body["services"].(map[string]any)
	b, _ := services["buffer"].(map[string]any)
	return r.status, status, b
}

// With EVP_BUFFER_MAX_BYTES reached (the workers held up: the test holds the store's write
// lock), batches get 503 with Retry-After naming the bound, /api/health says the buffer is
// full (degraded, 200), the fill gauge shows it; once the workers catch up ingestion works
// again and every accepted event is stored.
func TestBufferBoundRefusesAndRecovers(t *testing.T) {
	dir := t.TempDir()
	in := start(t, dir, map[string]string{"EVP_BUFFER_MAX_BYTES": "4MiB"})
	ctx := context.Background()
	lock, err := openEvents(t, dir).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	// Inserts wait for the lock (the store's busy timeout is longer than this test needs).
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var accepted int64
	var refused reply
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatal("10 batches of 1 MB accepted into a 4 MiB buffer")
		}
		r := in.do("POST", "/api/v1/events/batch", bigBatch(t, fmt.Sprintf("full%d", i), 500, 2000), nil)
		if r.status == 202 {
			accepted += 500
			continue
		}
		refused = r
		break
	}
	check503(t, "batch into a full buffer", refused, "EVP_BUFFER_MAX_BYTES")
	code, status, buf := bufferHealth(in)
	if errText, _ := buf["error"].(string); code != 200 || status != "degraded" || buf["status"] != "degraded" ||
		!strings.Contains(errText, "buffer full: ") || !strings.Contains(errText, "of 4.0 MiB") {
		t.Errorf("health with the buffer full: %d %s, buffer %v; want degraded naming the bound", code, status, buf)
	}
	m := in.do("GET", "/metrics", nil, nil)
	if ratio := gaugeValue(string(m.raw), "evp_buffer_fill_ratio"); ratio <= 0.5 || ratio > 1 {
		t.Errorf("evp_buffer_fill_ratio %v with the buffer full, want above 0.5", ratio)
	}

	if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, status, _ := bufferHealth(in); status == "healthy" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the buffer still full a minute after the workers were let go")
		}
		time.Sleep(50 * time.Millisecond) // the workers drain it
	}
	if r := in.do("POST", "/api/v1/events/batch", bigBatch(t, "after", 10, 100), nil); r.status != 202 {
		t.Fatalf("batch once the workers caught up: %d %s", r.status, r.raw)
	}
	in.waitStored(accepted + 10)
}

// gaugeValue reads a gauge without labels from Prometheus text; -2 when it is absent.
func gaugeValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -2
}

// EVP_INFLIGHT_MAX_BYTES reaches the API: while one request holds the whole bound (its
// declared body not yet sent), another gets 503 naming it.
func TestInflightBoundWired(t *testing.T) {
	in := start(t, "", map[string]string{"EVP_INFLIGHT_MAX_BYTES": "1MiB", "EVP_MAX_BODY_BYTES": "1048576"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Declares 1,000,000 bytes, sends a few: the server reserves for the whole body.
	fmt.Fprintf(conn, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-api-key: %s\r\nContent-Length: 1000000\r\n\r\n{\"eventId\":", in.key)
	deadline := time.Now().Add(10 * time.Second)
	// Each try has an id of its own: one sent before the server has read the holder's header
	// is accepted, and the same id would then be a duplicate.
	for try := 0; ; try++ {
		r := in.do("POST", "/api/v1/events", mustJSON(t, ev(fmt.Sprintf("small-%d", try), "click")), nil)
		if r.status == 503 {
			check503(t, "an event while another request holds the bound", r, "EVP_INFLIGHT_MAX_BYTES")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an event while another request holds the bound: %d %s, want 503", r.status, r.raw)
		}
		time.Sleep(20 * time.Millisecond) // until the server has read the first request's header
	}
	conn.Close()
	deadline = time.Now().Add(10 * time.Second)
	for try := 0; ; try++ {
		r := in.do("POST", "/api/v1/events", mustJSON(t, ev(fmt.Sprintf("after-%d", try), "click")), nil)
		if r.status == 202 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an event once the holder is gone: %d %s, want 202", r.status, r.raw)
		}
		time.Sleep(20 * time.Millisecond) // until the server has seen the connection close
	}
}

// With the buffer's disk full, ingestion answers 503 and /api/health says the buffer is
// degraded with the reason; once space is freed ingestion works again, and every event
// answered 202 is stored (acknowledgements that failed meanwhile are delivered again).
func TestDiskFullHealthAndRecovery(t *testing.T) {
	dir := t.TempDir()
	testutil.Tmpfs(t, filepath.Join(dir, "buffer"), 8<<20)
	filler := filepath.Join(dir, "buffer", "filler")
	if err := os.WriteFile(filler, make([]byte, 7<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	in := start(t, dir, map[string]string{"EVP_CLAIM_IDLE": "1s"})
	var accepted int64
	var refused reply
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("100 batches of 100 KB accepted with 1 MiB left on the disk")
		}
		r := in.do("POST", "/api/v1/events/batch", bigBatch(t, fmt.Sprintf("disk%d", i), 100, 1000), nil)
		if r.status == 202 {
			accepted += 100
			continue
		}
		refused = r
		break
	}
	check503(t, "batch onto a full disk", refused, "")
	code, status, buf := bufferHealth(in)
	if errText, _ := buf["error"].(string); code != 200 || status != "degraded" || buf["status"] != "degraded" ||
		!strings.Contains(errText, syscall.ENOSPC.Error()) {
		t.Errorf("health with the disk full: %d %s, buffer %v; want the buffer degraded, saying the disk is full", code, status, buf)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if r := in.do("POST", "/api/v1/events/batch", bigBatch(t, "freed", 10, 100), nil); r.status != 202 {
		t.Fatalf("batch once space is freed: %d %s", r.status, r.raw)
	}
	if _, status, buf := bufferHealth(in); status != "healthy" {
		t.Errorf("health once a write succeeded: %s, buffer %v", status, buf)
	}
	in.waitStored(accepted + 10)
}

// While the Redis buffer is down, the status and metrics routes answer 503 with
// Retry-After naming the buffer, not 500.
func TestStatusRoutesWhileRedisDown(t *testing.T) {
	rs := testutil.StartRedisServer(t)
	dir := t.TempDir()
	in := start(t, dir, map[string]string{"REDIS_URL": rs.URL()})
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("up-1", "click")), nil); r.status != 202 {
		t.Fatalf("with Redis up: %d %s", r.status, r.raw)
	}
	in.waitStored(1)
	for _, path := range []string{"/api/metrics", "/api/metrics/ingestion", "/api/v1/events/stats", "/api/metrics/stream"} {
		if r := in.do("GET", path, nil, nil); r.status != 200 {
			t.Fatalf("%s with Redis up: %d %s", path, r.status, r.raw)
		}
	}

	rs.Kill()
	for _, path := range []string{"/api/metrics", "/api/metrics/ingestion", "/api/v1/events/stats", "/api/metrics/stream"} {
		check503(t, path+" with Redis down", in.do("GET", path, nil, nil), "ingestion buffer is unavailable")
	}
}
