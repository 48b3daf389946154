package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/testutil"
)

// instance is one evp (role all) running in this test process on 127.0.0.1:0.
type instance struct {
	t    testing.TB
	url  string
	dir  string
	key  string
	logs *syncBuffer // evp's log (text format)
	stop func() error
}

// start runs evp on dir (a new temp dir when empty) and waits until it accepts requests.
// With -short the test skips: evp serves on a port with its workers, files and fsyncs.
func start(t testing.TB, dir string, env map[string]string) *instance {
	t.Helper()
	testutil.SkipShort(t, "runs evp")
	if dir == "" {
		dir = t.TempDir()
	}
	vars := map[string]string{
		"EVP_DATA_DIR": dir, "PORT": "0", "SERVER_HOST": "127.0.0.1",
		"WORKER_BATCH_TIMEOUT_MS": "20", "EVP_BUFFER_SYNC": "normal", "EVP_STORE_SYNC": "normal",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, _, err := config.Load("evp", nil, func(k string) string { return vars[k] }, io.Discard, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrCh := make(chan string, 1)
	done := make(chan error, 1)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	go func() {
		done <- Run(ctx, RoleAll, cfg, Options{Version: "test", Log: log, OnListen: func(a string) { addrCh <- a }})
	}()
	in := &instance{t: t, dir: dir, logs: logs}
	select {
	case a := <-addrCh:
		in.url = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("evp did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("evp did not start within 30 s")
	}
	stopped := false
	in.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = in.stop() }) // the tests that stop evp themselves check the error
	in.key = createKey(t, dir)
	return in
}

func createKey(t testing.TB, dir string) string {
	t.Helper()
	st, err := accounts.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	plain, _, err := st.CreateAPIKey(context.Background(), "test", "evp_", nil)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (in *instance) do(method, path string, body []byte, hdr map[string]string) reply {
	in.t.Helper()
	req, err := http.NewRequest(method, in.url+path, bytes.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("x-api-key", in.key)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body) // r.raw keeps a body that is not JSON
	return r
}

func (r reply) errorCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r reply) data() map[string]any {
	d, _ := r.body["data"].(map[string]any)
	return d
}

func ev(id, typ string) map[string]any {
	e := map[string]any{"eventType": typ, "userId": "user_1", "sessionId": "sess_1",
		"timestamp": "2024-01-15T10:30:00.123Z", "metadata": map[string]any{"source": "web"}, "payload": map[string]any{"n": 1}}
	if id != "" {
		e["eventId"] = id
	}
	return e
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitStored polls /api/metrics until the store holds want events.
func (in *instance) waitStored(want int64) {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got int64
	for time.Now().Before(deadline) {
		r := in.do("GET", "/api/metrics", nil, nil)
		if r.status == 200 {
			p := r.data()["processing"].(map[string]any)
			got = int64(p["totalEvents"].(float64))
			if got == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.t.Fatalf("store holds %d events, want %d", got, want)
}

// waitBufferEmpty polls /api/metrics until the buffer holds nothing, acknowledged or
// pending (workers acknowledge asynchronously, just after storing).
func (in *instance) waitBufferEmpty() {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var q map[string]any
	for time.Now().Before(deadline) {
		r := in.do("GET", "/api/metrics", nil, nil)
		q, _ = r.data()["queue"].(map[string]any)
		if q != nil && q["streamLength"] == 0.0 && q["pendingMessages"] == 0.0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.t.Fatalf("buffer not empty: %v", q)
}

func openEvents(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(dir, "events.db"), sqlitedb.SyncNormal, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestIngestStoreAndCount(t *testing.T) {
	in := start(t, "", nil)

	r := in.do("POST", "/api/v1/events", mustJSON(t, ev("e2e-1", "page_view")), map[string]string{"X-Request-Id": "my-req-1"})
	if r.status != 202 || r.data()["eventId"] != "e2e-1" || r.data()["accepted"] != true || r.data()["duplicate"] != false {
		t.Fatalf("single event: %d %s", r.status, r.raw)
	}
	if got := r.header.Get("X-Request-Id"); got != "my-req-1" {
		t.Errorf("X-Request-Id = %q, want the client's my-req-1", got)
	}
	r = in.do("POST", "/api/v1/events", mustJSON(t, ev("e2e-1", "page_view")), nil)
	if r.status != 200 || r.data()["duplicate"] != true || r.data()["accepted"] != false {
		t.Fatalf("repeat: %d %s", r.status, r.raw)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id generated")
	}

	// A generated id, and a batch with a repeat inside it and one of the earlier event.
	r = in.do("POST", "/api/v1/events", mustJSON(t, ev("", "click")), nil)
	genID, _ := r.data()["eventId"].(string)
	if r.status != 202 || !strings.HasPrefix(genID, "evt_") {
		t.Fatalf("generated id: %d %s", r.status, r.raw)
	}
	events := []any{ev("e2e-1", "page_view")}
	for i := 0; i < 100; i++ {
		events = append(events, ev(fmt.Sprintf("b-%d", i), "purchase"))
	}
	events = append(events, ev("b-7", "purchase"))
	r = in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": events}), nil)
	d := r.data()
	if r.status != 202 || d["accepted"] != 100.0 || d["duplicates"] != 2.0 || d["total"] != 102.0 || len(d["eventIds"].([]any)) != 100 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}

	in.waitStored(102)
	r = in.do("GET", "/api/v1/events/stats", nil, nil)
	if r.status != 200 || r.data()["totalIngested"] != 102.0 {
		t.Fatalf("stats: %d %s", r.status, r.raw)
	}

	db := openEvents(t, in.dir)
	var typ, user, sess, meta, payload string
	var ts, received, processed int64
	var prio int
	err := db.QueryRow(`SELECT event_type, user_id, session_id, ts, metadata, payload, priority, received_at, processed_at FROM events WHERE event_id = 'e2e-1'`).
		Scan(&typ, &user, &sess, &ts, &meta, &payload, &prio, &received, &processed)
	if err != nil {
		t.Fatal(err)
	}
	wantTS := time.Date(2024, 1, 15, 10, 30, 0, 123e6, time.UTC).UnixNano()
	if typ != "page_view" || user != "user_1" || sess != "sess_1" || ts != wantTS || meta != `{"source":"web"}` || payload != `{"n":1}` || prio != 1 {
		t.Errorf("stored row: %s %s %s %d %s %s %d", typ, user, sess, ts, meta, payload, prio)
	}
	if received == 0 || processed < received {
		t.Errorf("received_at %d, processed_at %d", received, processed)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 102 {
		t.Errorf("events table has %d rows, want 102", n)
	}
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestBadInputNeverReachesTheStore(t *testing.T) {
	in := start(t, "", map[string]string{"EVP_MAX_BODY_BYTES": "4096"})
	good := mustJSON(t, ev("good-1", "click"))
	bad := ev("", "click")
	delete(bad, "userId")
	bad["timestamp"] = "yesterday"
	big := ev("", "click")
	big["payload"] = map[string]any{"pad": strings.Repeat("x", 5000)}

	cases := []struct {
		name   string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		code   string
		paths  []string
	}{
		{"missing key", "/api/v1/events", good, map[string]string{"x-api-key": ""}, 401, "MISSING_API_KEY", nil},
		{"unknown key", "/api/v1/events", good, map[string]string{"x-api-key": "evp_nope"}, 401, "INVALID_API_KEY", nil},
		{"text body", "/api/v1/events", good, map[string]string{"Content-Type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE", nil},
		{"no content type", "/api/v1/events", good, map[string]string{"Content-Type": ""}, 415, "UNSUPPORTED_MEDIA_TYPE", nil},
		{"brotli", "/api/v1/events", good, map[string]string{"Content-Encoding": "br"}, 415, "UNSUPPORTED_MEDIA_TYPE", nil},
		{"malformed", "/api/v1/events", []byte(`{"eventType":`), nil, 400, "INVALID_JSON", nil},
		{"empty", "/api/v1/events", []byte(``), nil, 400, "INVALID_JSON", nil},
		{"not gzip", "/api/v1/events", good, map[string]string{"Content-Encoding": "gzip"}, 400, "INVALID_JSON", nil},
		{"fields", "/api/v1/events", mustJSON(t, bad), nil, 400, "VALIDATION_ERROR", []string{"userId", "timestamp"}},
		{"too large", "/api/v1/events", mustJSON(t, big), nil, 413, "PAYLOAD_TOO_LARGE", nil},
		{"gzip bomb", "/api/v1/events", gz(t, mustJSON(t, big)), map[string]string{"Content-Encoding": "gzip"}, 413, "PAYLOAD_TOO_LARGE", nil},
		{"batch all-or-nothing", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": []any{ev("ok-1", "a"), bad, ev("ok-2", "a"), 5}}), nil,
			400, "VALIDATION_ERROR", []string{"events[1].userId", "events[1].timestamp", "events[3]"}},
		{"batch empty", "/api/v1/events/batch", []byte(`{"events":[]}`), nil, 400, "VALIDATION_ERROR", []string{"events"}},
		{"unknown route", "/api/v1/nothing", good, nil, 404, "NOT_FOUND", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := in.do("POST", c.path, c.body, c.hdr)
			if r.status != c.status || r.errorCode() != c.code || r.body["success"] != false {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, c.status, c.code)
			}
			if c.paths != nil {
				details, _ := r.body["error"].(map[string]any)["details"].([]any)
				var got []string
				for _, d := range details {
					got = append(got, d.(map[string]any)["path"].(string))
				}
				if strings.Join(got, ",") != strings.Join(c.paths, ",") {
					t.Errorf("details paths = %v, want %v", got, c.paths)
				}
			}
		})
	}

	// A gzip body within the limit is accepted.
	r := in.do("POST", "/api/v1/events", gz(t, good), map[string]string{"Content-Encoding": "gzip"})
	if r.status != 202 {
		t.Fatalf("gzip: %d %s", r.status, r.raw)
	}
	in.waitStored(1)
	var n int
	if err := openEvents(t, in.dir).QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("store has %d events after bad input, want only the 1 good one", n)
	}
}

func TestDedupSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	in := start(t, dir, nil)
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("restart-1", "click")), nil); r.status != 202 {
		t.Fatalf("first: %d %s", r.status, r.raw)
	}
	in.waitStored(1)
	if err := in.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	in2 := start(t, dir, nil)
	in2.key = in.key
	r := in2.do("POST", "/api/v1/events", mustJSON(t, ev("restart-1", "click")), nil)
	if r.status != 200 || r.data()["duplicate"] != true {
		t.Fatalf("after restart: %d %s, want 200 duplicate", r.status, r.raw)
	}
	r = in2.do("GET", "/api/v1/events/stats", nil, nil)
	if r.data()["totalIngested"] != 1.0 {
		t.Fatalf("totalIngested after restart = %v, want 1", r.data()["totalIngested"])
	}
}

func TestStoreFailureRetriesThenDeadLetters(t *testing.T) {
	dir := t.TempDir()
	// A trigger makes the store refuse one event type: a real SQLite error on every attempt.
	db, err := sqlitedb.Open(filepath.Join(dir, "events.db"), sqlitedb.SyncNormal, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := start(t, dir, nil)
	if _, err := db.Exec(`CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_type = 'poison'
		BEGIN SELECT RAISE(ABORT, 'poisoned event refused'); END`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	batch := []any{ev("ok-1", "click"), ev("bad-1", "poison"), ev("ok-2", "click"), ev("ok-3", "click")}
	if r := in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": batch}), nil); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	in.waitStored(3)
	deadline := time.Now().Add(20 * time.Second)
	var dlq map[string]any
	for time.Now().Before(deadline) {
		r := in.do("GET", "/api/metrics", nil, nil)
		if r.data()["errors"].(map[string]any)["dlqEvents"] == 1.0 {
			dlq = r.data()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dlq == nil {
		t.Fatal("the poisoned event never reached the dead-letter queue")
	}
	if failed := dlq["errors"].(map[string]any)["failedEvents"].(float64); failed < 3 {
		t.Errorf("failedEvents = %v, want at least 3 (one per attempt)", failed)
	}
	var id, reason string
	var attempts int
	var data []byte
	if err := openEvents(t, dir).QueryRow(`SELECT event_id, error, attempts, data FROM events_dlq`).Scan(&id, &reason, &attempts, &data); err != nil {
		t.Fatal(err)
	}
	if id != "bad-1" || !strings.Contains(reason, "poisoned event refused") || attempts != 3 || !bytes.Contains(data, []byte(`"eventType":"poison"`)) {
		t.Errorf("dead letter: id=%s attempts=%d reason=%q data=%s", id, attempts, reason, data)
	}
	// Dead-lettered entries leave the buffer.
	in.waitBufferEmpty()
}

func TestHealthAndReadiness(t *testing.T) {
	in := start(t, "", nil)
	r := in.do("GET", "/api/health", nil, nil)
	if r.status != 200 || r.body["status"] != "healthy" {
		t.Fatalf("health: %d %s", r.status, r.raw)
	}
	services := r.body["services"].(map[string]any)
	for _, name := range []string{"buffer", "eventStore", "accountStore"} {
		s, ok := services[name].(map[string]any)
		if !ok || s["status"] != "up" {
			t.Errorf("service %s: %v", name, services[name])
		}
	}
	if r := in.do("GET", "/api/ready", nil, nil); r.status != 200 || r.body["ready"] != true {
		t.Errorf("ready: %d %s", r.status, r.raw)
	}
	if r := in.do("GET", "/api/live", nil, nil); r.status != 200 || r.body["live"] != true {
		t.Errorf("live: %d %s", r.status, r.raw)
	}
	in.do("POST", "/api/v1/events", mustJSON(t, ev("h-1", "click")), nil)
	in.waitStored(1)
	in.waitBufferEmpty()
	if r := in.do("GET", "/api/metrics/stream", nil, nil); r.status != 200 || r.data()["backend"] != "embedded" ||
		r.data()["totalEnqueued"] != 1.0 || r.data()["length"] != 0.0 || len(r.data()["groups"].([]any)) != 1 ||
		r.data()["partitions"] != 1.0 || fmt.Sprint(r.data()["streams"]) != "[buffer]" {
		t.Errorf("stream: %d %s", r.status, r.raw)
	}
}

func TestSplitRolesRefusedOnEmbeddedBackends(t *testing.T) {
	cfg, _, err := config.Load("evp", nil, func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []Role{RoleAPI, RoleWorker} {
		err := CheckRole(role, cfg)
		if err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("%s on embedded backends: %v, want a refusal naming REDIS_URL", role, err)
		}
	}
	if err := CheckRole(RoleAll, cfg); err != nil {
		t.Errorf("all on embedded backends: %v", err)
	}
}

// Concurrent requests carrying the same eventId: exactly one is accepted, the others are
// duplicates, and totalIngested equals what is stored.
func TestConcurrentRepeatsAcceptedOnce(t *testing.T) {
	in := start(t, "", nil)
	const ids, copies = 30, 8
	type result struct {
		id     int
		status int
	}
	results := make(chan result, ids*copies)
	var wg sync.WaitGroup
	for i := 0; i < ids; i++ {
		for c := 0; c < copies; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := mustJSON(t, ev(fmt.Sprintf("same-%d", i), "click"))
				path := "/api/v1/events"
				if c%2 == 1 {
					body = mustJSON(t, map[string]any{"events": []any{ev(fmt.Sprintf("same-%d", i), "click")}})
					path = "/api/v1/events/batch"
				}
				r := in.do("POST", path, body, nil)
				status := r.status
				if path == "/api/v1/events/batch" && status == 202 && r.data()["accepted"] == 0.0 {
					status = 200 // a batch of one duplicate
				}
				results <- result{i, status}
			}()
		}
	}
	wg.Wait()
	close(results)
	accepted := make([]int, ids)
	for r := range results {
		switch r.status {
		case 202:
			accepted[r.id]++
		case 200:
		default:
			t.Fatalf("status %d", r.status)
		}
	}
	for i, n := range accepted {
		if n != 1 {
			t.Errorf("same-%d accepted %d times, want 1", i, n)
		}
	}
	in.waitStored(ids)
	if r := in.do("GET", "/api/v1/events/stats", nil, nil); r.data()["totalIngested"] != float64(ids) {
		t.Errorf("totalIngested = %v, want %d", r.data()["totalIngested"], ids)
	}
}

func TestPrometheusMetrics(t *testing.T) {
	in := start(t, "", map[string]string{"EVP_METRICS_TOKEN": "scrape-me"})
	var events []any
	for i := 0; i < 40; i++ {
		events = append(events, ev(fmt.Sprintf("m-%d", i), "purchase"))
	}
	events = append(events, ev("m-0", "purchase"))
	if r := in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": events}), nil); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	in.waitStored(40)
	in.waitBufferEmpty()
	if r := in.do("GET", "/metrics", nil, nil); r.status != 401 {
		t.Fatalf("/metrics without the token: %d, want 401", r.status)
	}
	r := in.do("GET", "/metrics", nil, map[string]string{"Authorization": "Bearer scrape-me"})
	if r.status != 200 {
		t.Fatalf("/metrics: %d %s", r.status, r.raw)
	}
	text := string(r.raw)
	for _, want := range []string{
		"evp_events_ingested_total 40\n",
		"evp_events_duplicate_total 1\n",
		"evp_events_stored_total 40\n",
		`evp_events_processed_total{event_type="purchase"} 40` + "\n",
		"evp_queue_length 0\n",
		"evp_queue_pending 0\n",
		`evp_http_request_duration_seconds_count{method="POST",route="POST /api/v1/events/batch",status="202"} 1` + "\n",
		"evp_worker_batch_size_count",
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
