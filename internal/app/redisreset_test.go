package app

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// evp on a Redis without persistence: the start logs a warning saying so; when that Redis
// is killed and comes back empty, /api/health reports redis degraded, naming the stream
// that vanished, /metrics counts the reset, and ingestion goes on.
func TestRedisResetReported(t *testing.T) {
	srv := testutil.StartRedisServer(t)
	in := start(t, "", map[string]string{"REDIS_URL": srv.URL(), "EVP_METRICS_TOKEN": "m"})
	if logs := in.logs.String(); !strings.Contains(logs, "level=WARN msg=\"redis persistence is off") {
		t.Errorf("no warning about persistence in the start's log:\n%s", logs)
	}
	var events []any
	for i := range 20 {
		events = append(events, ev(fmt.Sprintf("before-%d", i), "click"))
	}
	if r := in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": events}), nil); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	in.waitStored(20)
	if r := in.do("GET", "/api/health", nil, nil); r.status != 200 || r.body["status"] != "healthy" {
		t.Fatalf("health before the restart: %d %s", r.status, r.raw)
	}

	srv.Restart()
	deadline := time.Now().Add(20 * time.Second)
	var r reply
	var redis map[string]any
	for {
		r = in.do("GET", "/api/health", nil, nil)
		services, _ := r.body["services"].(map[string]any)
		redis, _ = services["redis"].(map[string]any)
		if redis != nil && redis["status"] == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health 20 s after Redis came back empty: %d %s", r.status, r.raw)
		}
		time.Sleep(50 * time.Millisecond) // poll: the buffer checks its stream every second
	}
	if msg, _ := redis["error"].(string); r.status != 200 || r.body["status"] != "degraded" ||
		!strings.Contains(msg, "stream events_stream") || !strings.Contains(msg, "vanished") {
		t.Errorf("health after the reset: %d %s", r.status, r.raw)
	}
	if !strings.Contains(in.logs.String(), "level=ERROR msg=\"buffer stream or group vanished\"") {
		t.Errorf("no error logged for the reset")
	}
	m := in.do("GET", "/metrics", nil, map[string]string{"Authorization": "Bearer m"})
	if !strings.Contains(string(m.raw), "evp_buffer_resets_total 1\n") {
		t.Errorf("/metrics lacks evp_buffer_resets_total 1")
	}
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("after-1", "click")), nil); r.status != 202 {
		t.Fatalf("event after the reset: %d %s", r.status, r.raw)
	}
	in.waitStored(21)
}
