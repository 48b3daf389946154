package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/testutil"
)

// startRole runs one role in this process and returns its base URL.
func startRole(t *testing.T, role Role, vars map[string]string) string {
	t.Helper()
	cfg, _, err := config.Load("evp", nil, func(k string) string { return vars[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, role, cfg, Options{Version: "test", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnListen: func(a string) { addr <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s stopped with %v", role, err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("%s did not start: %v", role, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30 s", role)
	}
	return ""
}

// TestSplitRolesOverRedisStreams runs `evp api` and `evp worker` as separate roles sharing
// a Redis stream: events accepted by the API are stored by the worker, and a repeat is a
// duplicate through the Redis dedup keys.
func TestSplitRolesOverRedisStreams(t *testing.T) {
	url := testutil.RedisURL()
	prefix := testutil.RedisPrefix(t, testutil.Redis(t))
	dir := t.TempDir()
	vars := map[string]string{
		"EVP_DATA_DIR": dir, "PORT": "0", "SERVER_HOST": "127.0.0.1", "REDIS_URL": url,
		"EVP_STREAM": prefix + "events_stream", "EVP_REDIS_PREFIX": prefix, "WORKER_BATCH_TIMEOUT_MS": "20",
		"EVP_STORE_SYNC": "normal",
	}
	apiURL := startRole(t, RoleAPI, vars)
	workerURL := startRole(t, RoleWorker, vars)
	api := &instance{t: t, url: apiURL, dir: dir, key: createKey(t, dir)}
	wrk := &instance{t: t, url: workerURL, dir: dir, key: api.key}

	// The worker serves probes, metrics and reading routes, not ingestion.
	if r := wrk.do("POST", "/api/v1/events", mustJSON(t, ev("w-1", "click")), nil); r.status != 405 || r.header.Get("Allow") != "GET" {
		t.Errorf("worker ingestion: %d (Allow %q), want 405 allowing GET only", r.status, r.header.Get("Allow"))
	}
	if r := wrk.do("GET", "/api/health", nil, nil); r.status != 200 || r.body["services"].(map[string]any)["redis"] == nil {
		t.Errorf("worker health: %d %s", r.status, r.raw)
	}

	// A live tail on the API sees what it buffers in the Redis stream, once each.
	tailed := liveTail(t, api, "?eventType=purchase")
	var events []any
	for i := 0; i < 250; i++ {
		events = append(events, ev(fmt.Sprintf("r-%d", i), "purchase"))
	}
	r := api.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": events}), nil)
	if r.status != 202 || r.data()["accepted"] != 250.0 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	if ids := tailed(250); len(ids) != 250 || ids["r-0"] != 1 || ids["r-249"] != 1 {
		t.Errorf("the live tail saw %d distinct events of 250", len(ids))
	}
	r = api.do("POST", "/api/v1/events", mustJSON(t, ev("r-7", "purchase")), nil)
	if r.status != 200 || r.data()["duplicate"] != true {
		t.Fatalf("repeat through Redis dedup: %d %s", r.status, r.raw)
	}
	api.waitStored(250)
	api.waitBufferEmpty()
	r = wrk.do("GET", "/api/metrics/stream", nil, nil)
	d := r.data()
	groups, _ := d["groups"].([]any)
	if r.status != 200 || d["backend"] != "redis" || d["stream"] != prefix+"events_stream" || d["totalEnqueued"] != 250.0 || len(groups) != 1 ||
		d["partitions"] != 1.0 || fmt.Sprint(d["streams"]) != "["+prefix+"events_stream]" {
		t.Fatalf("stream: %d %s", r.status, r.raw)
	}
	g := groups[0].(map[string]any)
	if g["name"] != "evp-workers-group" || g["pending"] != 0.0 || g["lag"] != 0.0 || len(g["consumers"].([]any)) == 0 {
		t.Errorf("group: %v", g)
	}
	if r := api.do("GET", "/api/v1/events/stats", nil, nil); r.data()["totalIngested"] != 250.0 {
		t.Errorf("totalIngested = %v, want 250", r.data()["totalIngested"])
	}
}

// TestRedisDownAnswers503 runs evp on a Redis of its own, kills that Redis, and checks that
// ingestion answers 503 with Retry-After and that /api/health names Redis as down.
func TestRedisDownAnswers503(t *testing.T) {
	rs := testutil.StartRedisServer(t)
	url, dir := rs.URL(), t.TempDir()

	base := startRole(t, RoleAll, map[string]string{"EVP_DATA_DIR": dir, "PORT": "0", "SERVER_HOST": "127.0.0.1",
		"REDIS_URL": url, "WORKER_BATCH_TIMEOUT_MS": "20", "EVP_STORE_SYNC": "normal"})
	in := &instance{t: t, url: base, dir: dir, key: createKey(t, dir)}
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("up-1", "click")), nil); r.status != 202 {
		t.Fatalf("with Redis up: %d %s", r.status, r.raw)
	}
	in.waitStored(1)

	rs.Kill()
	r := in.do("POST", "/api/v1/events", mustJSON(t, ev("down-1", "click")), nil)
	if r.status != 503 || r.errorCode() != "SERVICE_UNAVAILABLE" || r.header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: %d %s (Retry-After %q), want 503 with Retry-After", r.status, r.raw, r.header.Get("Retry-After"))
	}
	r = in.do("GET", "/api/health", nil, nil)
	redisHealth, _ := r.body["services"].(map[string]any)["redis"].(map[string]any)
	if r.status != 503 || r.body["status"] != "unhealthy" || redisHealth["status"] != "down" {
		t.Fatalf("health with Redis down: %d %s", r.status, r.raw)
	}
	if s, _ := r.body["services"].(map[string]any)["eventStore"].(map[string]any); s["status"] != "up" {
		t.Errorf("event store reported %v, want up", s)
	}
}

// liveTail opens GET /api/v1/events/live on in and waits until it is open; the function it
// returns reads n events from it (within 5 s) and counts them by id.
func liveTail(t *testing.T, in *instance, query string) func(n int) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", in.url+"/api/v1/events/live"+query, nil)
	req.Header.Set("x-api-key", in.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("live tail: %v %v", res, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	rd := bufio.NewReader(res.Body)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("live tail opened with %q, %v", line, err)
	}
	return func(n int) map[string]int {
		ids := map[string]int{}
		deadline := time.AfterFunc(5*time.Second, cancel)
		defer deadline.Stop()
		for got := 0; got < n; {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Errorf("live tail ended after %d events: %v", got, err)
				return ids
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var e struct{ EventID string }
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					t.Fatalf("live tail data %q: %v", data, err)
				}
				ids[e.EventID]++
				got++
			}
		}
		return ids
	}
}
