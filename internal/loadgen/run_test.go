package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// fakeEVP imitates evp's ingestion answers: it decodes with the real decoder, rejects every
// rejectEvery-th request with 400 VALIDATION_ERROR, reports repeated eventIds as
// duplicates, and "stores" accepted events a few at a time each time /api/metrics is read.
type fakeEVP struct {
	t           *testing.T
	key         string
	rejectEvery int
	storeStep   int64
	lose        int64 // accepted events never stored
	forgetDups  bool  // accept repeated eventIds again (a dedup window that dropped them) but store them once
	withQueue   bool  // /api/metrics reports the buffer

	mu             sync.Mutex
	requests       int
	seen           map[string]bool
	accepted       int64
	duplicates     int64
	rejected       int64 // requests
	rejectedEvents int64
	stored         int64 // totalEvents, starts above 0
	metricsReads   int
	gzipped        int
}

func newFake(t *testing.T, rejectEvery int) *fakeEVP {
	return &fakeEVP{t: t, key: "evp_test", rejectEvery: rejectEvery, storeStep: 700, seen: map[string]bool{}, stored: 1234}
}

func (f *fakeEVP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("x-api-key") != f.key {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"success":false,"error":{"code":"INVALID_API_KEY","message":"no"}}`)
		return
	}
	switch r.URL.Path {
	case "/api/metrics":
		f.mu.Lock()
		f.metricsReads++
		// The store catches up step by step, so the wait has to poll more than once.
		f.stored += max(0, min(f.storeStep, f.accepted+1234-f.lose-f.stored))
		n, buffered := f.stored, max(0, f.accepted+1234-f.lose-f.stored)
		f.mu.Unlock()
		queue := ""
		if f.withQueue {
			queue = fmt.Sprintf(`,"queue":{"streamLength":%d,"consumerGroups":1,"pendingMessages":0}`, buffered)
		}
		fmt.Fprintf(w, `{"success":true,"data":{"ingestion":{"rate":0,"totalIngested":0},"processing":{"totalEvents":%d,"eventsPerSecond":0},"errors":{"failedEvents":0,"dlqEvents":0}%s}}`, n, queue)
		return
	case "/api/v1/events", "/api/v1/events/batch":
	default:
		http.NotFound(w, r)
		return
	}
	var src io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			f.t.Errorf("bad gzip: %v", err)
			return
		}
		src = zr
	}
	body, _ := io.ReadAll(src)
	var events []event.Event
	var err error
	single := r.URL.Path == "/api/v1/events"
	if single {
		var ev event.Event
		ev, err = event.DecodeOne(body, time.Now())
		events = []event.Event{ev}
	} else {
		events, err = event.DecodeBatch(body, time.Now())
	}
	if err != nil {
		f.t.Errorf("loadgen sent an invalid body: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Content-Encoding") == "gzip" {
		f.gzipped++
	}
	f.requests++
	w.Header().Set("Content-Type", "application/json")
	if f.rejectEvery > 0 && f.requests%f.rejectEvery == 0 {
		f.rejected++
		f.rejectedEvents += int64(len(events))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"success":false,"error":{"code":"VALIDATION_ERROR","message":"validation failed","details":[{"path":"events[0].timestamp","reason":"bad"}]}}`)
		return
	}
	acc, dup := 0, 0
	for _, ev := range events {
		if f.seen[ev.EventID] && f.forgetDups {
			acc++
			f.lose++ // accepted, but the store already holds this eventId
			continue
		}
		if f.seen[ev.EventID] {
			dup++
			continue
		}
		f.seen[ev.EventID] = true
		acc++
	}
	f.accepted += int64(acc)
	f.duplicates += int64(dup)
	if single {
		if dup > 0 {
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, `{"success":true,"data":{"eventId":%q,"accepted":false,"duplicate":true,"message":"Event already processed (duplicate)"}}`, events[0].EventID)
		} else {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"success":true,"data":{"eventId":%q,"accepted":true,"duplicate":false,"message":"Event accepted for processing"}}`, events[0].EventID)
		}
		return
	}
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"success":true,"data":{"accepted":%d,"duplicates":%d,"total":%d,"eventIds":[],"message":"Batch processed successfully"}}`, acc, dup, acc+dup)
}

func testConfig(url string) Config {
	cfg := Defaults()
	cfg.URL, cfg.Key = url, "evp_test"
	cfg.Duration = 0
	cfg.Users, cfg.Sessions = 50, 100
	cfg.WaitTimeout = time.Minute
	return cfg
}

func checkAgainstFake(t *testing.T, rep *Report, f *fakeEVP, count int64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if rep.Events.Sent+rep.Events.Missed != count {
		t.Errorf("sent %d + missed %d events, want %d", rep.Events.Sent, rep.Events.Missed, count)
	}
	if rep.Events.Accepted != f.accepted {
		t.Errorf("report: %d accepted, server accepted %d", rep.Events.Accepted, f.accepted)
	}
	if rep.Events.Duplicates != f.duplicates {
		t.Errorf("report: %d duplicates, server saw %d", rep.Events.Duplicates, f.duplicates)
	}
	if rep.Events.Rejected != f.rejectedEvents || rep.Requests.Failed != f.rejected {
		t.Errorf("report: %d rejected events in %d requests, server rejected %d in %d", rep.Events.Rejected, rep.Requests.Failed, f.rejectedEvents, f.rejected)
	}
	if got := rep.RequestsByStatus["400"]; got != f.rejected {
		t.Errorf("report: %d answers 400, server sent %d", got, f.rejected)
	}
	if got := rep.ErrorsByCode["VALIDATION_ERROR"]; got != f.rejected {
		t.Errorf("report: %d VALIDATION_ERROR, server sent %d", got, f.rejected)
	}
	if rep.Events.Unanswered != 0 || rep.Events.Accepted+rep.Events.Duplicates+rep.Events.Rejected != rep.Events.Sent {
		t.Errorf("accepted %d + duplicates %d + rejected %d != sent %d, or %d unanswered", rep.Events.Accepted, rep.Events.Duplicates,
			rep.Events.Rejected, rep.Events.Sent, rep.Events.Unanswered)
	}
	if rep.Requests.OK+rep.Requests.Failed != rep.Requests.Sent || int64(f.requests) != rep.Requests.Sent {
		t.Errorf("requests: ok %d + failed %d, sent %d; server counted %d; errors %v", rep.Requests.OK, rep.Requests.Failed, rep.Requests.Sent, f.requests, rep.ErrorsByCode)
	}
	if rep.Latency.Count != rep.Requests.Sent {
		t.Errorf("latency histogram holds %d requests, sent %d", rep.Latency.Count, rep.Requests.Sent)
	}
	e := rep.EndToEnd
	if !e.Measured || !e.Reached || e.StoredEvents != f.accepted || e.EventsPerSec <= 0 || e.Error != "" {
		t.Errorf("end to end %+v; want reached with %d stored", e, f.accepted)
	}
	if f.metricsReads < 3 {
		t.Errorf("/api/metrics read %d times; the store needed several polls to catch up", f.metricsReads)
	}
}

func TestRunBatchesClosedLoopCountsWhatTheServerSaid(t *testing.T) {
	t.Run("raw client", func(t *testing.T) { testRunBatchesClosedLoop(t, false) })
	t.Run("net/http", func(t *testing.T) { testRunBatchesClosedLoop(t, true) })
}

func testRunBatchesClosedLoop(t *testing.T, netHTTP bool) {
	f := newFake(t, 7)
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Concurrency, cfg.Batch, cfg.Count, cfg.DupRatio = 4, 50, 10_000, 0.05
	cfg.NetHTTP = netHTTP
	var progress bytes.Buffer
	cfg.Progress, cfg.ProgressInterval = &syncWriter{w: &progress}, 10*time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstFake(t, rep, f, cfg.Count)
	if rep.Requests.Sent != 200 || rep.Events.Missed != 0 {
		t.Errorf("sent %d requests, missed %d events; want 200 and 0", rep.Requests.Sent, rep.Events.Missed)
	}
	if f.rejected == 0 || f.duplicates == 0 {
		t.Fatalf("the fake rejected %d requests and saw %d duplicates; the test needs both", f.rejected, f.duplicates)
	}
	if rep.Events.DuplicatesSent < rep.Events.Duplicates/2 {
		t.Errorf("%d events sent with a reused id, %d reported as duplicates", rep.Events.DuplicatesSent, rep.Events.Duplicates)
	}
	if rep.Mode != "closed" || rep.Endpoint != srv.URL+"/api/v1/events/batch" || rep.LatencyFrom != "request start" {
		t.Errorf("mode %q endpoint %q latencyFrom %q", rep.Mode, rep.Endpoint, rep.LatencyFrom)
	}
	// The httptest server runs in this process: found from the port and sampled.
	if !rep.Server.Measured || rep.Server.PID != os.Getpid() || rep.Server.PeakRSSMB <= 0 {
		t.Errorf("server %+v; want this process (pid %d) measured", rep.Server, os.Getpid())
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accepted " + inum(f.accepted), "400: " + inum(f.rejected), "VALIDATION_ERROR: " + inum(f.rejected), "p99.9", "end to end", "RSS peak"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if js, err := json.Marshal(rep); err != nil || !bytes.Contains(js, []byte(`"acceptedEventsPerSec"`)) {
		t.Errorf("JSON report: %v %s", err, js)
	}
}

func TestRunSingleEventsOpenLoopWithGzip(t *testing.T) {
	f := newFake(t, 11)
	// Small steps: on a loaded machine many open-loop starts are missed, and even a few
	// accepted events must take several polls to be stored.
	f.storeStep = 5
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Rate, cfg.Batch, cfg.Count, cfg.DupRatio, cfg.Gzip = 5000, 1, 600, 0.1, true
	cfg.MaxInflight = 64 // missed starts are allowed for; connection storms are not needed
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstFake(t, rep, f, cfg.Count)
	if f.rejected == 0 || f.duplicates == 0 {
		t.Fatalf("the fake rejected %d requests and saw %d duplicates; the test needs both", f.rejected, f.duplicates)
	}
	if got := rep.RequestsByStatus["200"]; got != f.duplicates {
		t.Errorf("%d answers 200, want one per duplicate (%d)", got, f.duplicates)
	}
	if f.gzipped != f.requests {
		t.Errorf("%d of %d requests gzipped", f.gzipped, f.requests)
	}
	if rep.Mode != "open" || rep.LatencyFrom != "scheduled start" || rep.Endpoint != srv.URL+"/api/v1/events" {
		t.Errorf("mode %q latencyFrom %q endpoint %q", rep.Mode, rep.LatencyFrom, rep.Endpoint)
	}
}

func TestRunEndsTheWaitWhenTheBufferIsEmptyButEventsAreMissing(t *testing.T) {
	f := newFake(t, 0)
	f.lose, f.withQueue = 5, true
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Concurrency, cfg.Batch, cfg.Count, cfg.DupRatio = 2, 100, 3000, 0
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := rep.EndToEnd
	if rep.Events.Accepted != 3000 || !e.Measured || e.Reached || e.Shortfall != 5 || e.StoredEvents != 2995 ||
		!strings.Contains(e.Error, "5 events fewer") || e.EventsPerSec <= 0 {
		t.Fatalf("accepted %d, end to end %+v; want 3000 accepted, a shortfall of 5 and 2995 stored", rep.Events.Accepted, e)
	}
	var text bytes.Buffer
	_ = rep.WriteText(&text)
	if !strings.Contains(text.String(), "INCOMPLETE") {
		t.Errorf("text report does not flag the shortfall:\n%s", text.String())
	}
}

// Repeats accepted again because the server's dedup window dropped their ids are stored
// once: the run is complete, and the report says why fewer events were stored.
func TestRunExplainsRepeatsStoredOnce(t *testing.T) {
	f := newFake(t, 0)
	f.forgetDups, f.withQueue = true, true
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Concurrency, cfg.Batch, cfg.Count, cfg.DupRatio = 2, 50, 3000, 0.1
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := rep.EndToEnd
	if f.lose == 0 || !e.Reached || e.RepeatsStoredOnce != f.lose || e.Shortfall != 0 || e.Error != "" {
		t.Fatalf("%d repeats accepted again; end to end %+v, want reached with repeatsStoredOnce %d", f.lose, e, f.lose)
	}
	var text bytes.Buffer
	_ = rep.WriteText(&text)
	if strings.Contains(text.String(), "INCOMPLETE") || !strings.Contains(text.String(), "stored once") {
		t.Errorf("text report:\n%s", text.String())
	}

	// More missing than repeats: still incomplete.
	f2 := newFake(t, 0)
	f2.forgetDups, f2.withQueue, f2.lose = true, true, 7
	srv2 := httptest.NewServer(f2)
	defer srv2.Close()
	cfg.URL = srv2.URL
	if rep, err = Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if rep.EndToEnd.Reached || rep.EndToEnd.Shortfall == 0 {
		t.Fatalf("7 events lost beyond the repeats: end to end %+v, want a shortfall", rep.EndToEnd)
	}
}

func TestRunCountsTransportErrorsAndSkipsEndToEndWithoutMetrics(t *testing.T) {
	// A server without /api/metrics that drops every third connection.
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			http.NotFound(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		n++
		drop := n%3 == 0
		mu.Unlock()
		if drop {
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"success":true,"data":{"accepted":true}}`)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Concurrency, cfg.Batch, cfg.Count = 1, 10, 300
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests.Sent != 30 || rep.Requests.Failed != 10 || rep.RequestsByStatus["transport"] != 10 || rep.Events.Accepted != 200 {
		t.Errorf("requests %+v events %+v by status %v; want 30 sent, 10 transport failures, 200 accepted", rep.Requests, rep.Events, rep.RequestsByStatus)
	}
	// The server answered none of the dropped requests: their events are unanswered, not
	// rejected (it may have taken them).
	if rep.Events.Rejected != 0 || rep.Events.Unanswered != 100 {
		t.Errorf("events %+v; want 0 rejected and 100 unanswered", rep.Events)
	}
	var text bytes.Buffer
	_ = rep.WriteText(&text)
	if !strings.Contains(text.String(), "rejected 0, unanswered 100") {
		t.Errorf("text report:\n%s", text.String())
	}
	if rep.EndToEnd.Measured || !strings.Contains(rep.EndToEnd.Error, "404") {
		t.Errorf("end to end %+v; want not measured, naming the 404", rep.EndToEnd)
	}
}

func TestFindListenerPIDAndReadProc(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	pid, err := FindListenerPID(port)
	if err != nil || pid != os.Getpid() {
		t.Fatalf("FindListenerPID(%d) = %d, %v; want %d", port, pid, err, os.Getpid())
	}
	s, err := ReadProc(pid)
	if err != nil || s.RSSBytes <= 0 || s.HWMBytes < s.RSSBytes || s.CPU < 0 {
		t.Fatalf("ReadProc = %+v, %v", s, err)
	}
	srv.Close()
	if _, err := FindListenerPID(port); err == nil {
		t.Fatalf("FindListenerPID found a listener on closed port %d", port)
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	for flag, mut := range map[string]func(*Config){
		"--url":           func(c *Config) { c.URL = "localhost:3001" },
		"--key":           func(c *Config) { c.Key = "" },
		"--batch":         func(c *Config) { c.Batch = 1001 },
		"--dup-ratio":     func(c *Config) { c.DupRatio = 1.5 },
		"--concurrency":   func(c *Config) { c.Concurrency = 0 },
		"--duration":      func(c *Config) { c.Duration = -time.Second },
		"--payload-bytes": func(c *Config) { c.PayloadBytes = -1 },
	} {
		cfg := testConfig("http://127.0.0.1:1")
		cfg.Duration = time.Second
		mut(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: Validate() = %v", flag, err)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestClosedLoopWaitsAfter503(t *testing.T) {
	// A server whose buffer stays full: every request answers 503 with Retry-After: 1
	// (/api/metrics too, so the report's end-to-end part is skipped).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"success":false,"error":{"code":"SERVICE_UNAVAILABLE","message":"the ingestion buffer is full"}}`)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Concurrency, cfg.Batch, cfg.Duration = 2, 10, 1500*time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Each worker sends at 0 s and after its 1 s pause, then the 1.5 s are over: a worker
	// that did not pause would send hundreds.
	if rep.Requests.Sent > 3*int64(cfg.Concurrency) || rep.RequestsByStatus["503"] != rep.Requests.Sent || rep.Requests.Sent < 2 {
		t.Errorf("sent %d requests, %v by status; want at most %d, all 503", rep.Requests.Sent, rep.RequestsByStatus, 3*cfg.Concurrency)
	}
}
