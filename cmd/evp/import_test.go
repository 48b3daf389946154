package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// listEvents returns GET /api/v1/events of the evp at url, each event as the fields an
// import carries (not receivedAt, source, processedAt), in the order listed.
func listEvents(t *testing.T, url, key string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/api/v1/events?limit=1000", nil)
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data struct{ Events []map[string]any } `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list events: %d %v", resp.StatusCode, err)
	}
	for _, ev := range page.Data.Events {
		delete(ev, "receivedAt")
		delete(ev, "source")
		delete(ev, "processedAt")
	}
	return page.Data.Events
}

// waitEvents waits until the evp at url lists n events and returns them.
func waitEvents(t *testing.T, url, key string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := listEvents(t, url, key)
		if len(evs) == n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events stored after 10 s", len(evs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// analytics returns the data of GET /api/v1/analytics/metrics over [from, to).
func analytics(t *testing.T, url, key string, from, to time.Time) string {
	t.Helper()
	q := neturl.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	req, _ := http.NewRequest("GET", url+"/api/v1/analytics/metrics?"+q.Encode(), nil)
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct{ Data json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("analytics: %d %v", resp.StatusCode, err)
	}
	return string(ans.Data)
}

// recordingProxy forwards to url and keeps the eventIds of every import request.
type recordingProxy struct {
	mu  sync.Mutex
	ids []string
}

func (p *recordingProxy) start(t *testing.T, url string) string {
	t.Helper()
	target, _ := neturl.Parse(url)
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		for _, line := range strings.Split(string(body), "\n") {
			var ev struct{ EventID string }
			if json.Unmarshal([]byte(line), &ev) == nil {
				p.ids = append(p.ids, ev.EventID)
			}
		}
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (p *recordingProxy) sent() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.ids, " ")
}

// importLines are n events as lines of NDJSON with ids prefix-1 to prefix-n; the line
// numbered bad (from 1) has a timestamp that is not one.
func importLines(prefix string, n, bad int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		ts := time.Now().Add(-time.Duration(i) * time.Minute).UTC().Format(time.RFC3339Nano)
		if i == bad {
			ts = "yesterday"
		}
		fmt.Fprintf(&b, `{"eventId":"%s-%d","eventType":"imported","userId":"u%d","sessionId":"s","timestamp":%q,"receivedAt":%q,"processedAt":%q}`+"\n",
			prefix, i, i, ts, ts, ts)
	}
	return b.String()
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// smallChunks makes requests of n lines for the test.
func smallChunks(t *testing.T, n int) {
	m := importMaxLines
	importMaxLines = n
	t.Cleanup(func() { importMaxLines = m })
}

func TestImportAgainstEvp(t *testing.T) {
	srcURL, srcDir := startInProcess(t)
	srcKey := createKey(t, srcDir)
	now := time.Now()
	evs := exportEvents(now)
	sendAndWait(t, srcURL, srcKey, evs)
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if code, _, stderr := runCmd(t, nil, "export", "--url", srcURL, "--key", srcKey, "-o", file); code != 0 {
		t.Fatalf("export: exit %d %s", code, stderr)
	}
	exported, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	url, dir := startInProcess(t)
	key := createKey(t, dir)
	smallChunks(t, 4) // two requests

	t.Run("same events and analytics", func(t *testing.T) {
		code, out, stderr := runCmd(t, map[string]string{"EVP_API_KEY": key}, "import", "--url", url, file)
		if code != 0 || out != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		// Not a terminal: the summary line only.
		if !strings.HasPrefix(stderr, "imported 6 events (0 duplicates, 0 lines rejected) in ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "events/s") {
			t.Errorf("stderr %q, want one summary line", stderr)
		}
		got := waitEvents(t, url, key, len(evs))
		want := listEvents(t, srcURL, srcKey)
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Errorf("imported events\n%s\nwant\n%s", g, w)
		}
		from, to := now.Add(-time.Hour), now.Add(time.Hour)
		deadline := time.Now().Add(10 * time.Second)
		for {
			g, w := analytics(t, url, key, from, to), analytics(t, srcURL, srcKey, from, to)
			if g == w && strings.Contains(g, `"totalEvents":6`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("analytics\n%s\nwant\n%s", g, w)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("again: all duplicates", func(t *testing.T) {
		code, _, stderr := runCmd(t, nil, "import", file, "--url", url, "--key", key) // flags after FILE
		if code != 0 || !strings.HasPrefix(stderr, "imported 0 events (6 duplicates, 0 lines rejected)") {
			t.Fatalf("exit %d %q", code, stderr)
		}
		if n := len(listEvents(t, url, key)); n != len(evs) {
			t.Errorf("%d events after importing again, want %d", n, len(evs))
		}
	})
	t.Run("standard input", func(t *testing.T) {
		defer func(r io.Reader) { importStdin = r }(importStdin)
		importStdin = bytes.NewReader(exported)
		code, _, stderr := runCmd(t, nil, "import", "--url", url, "--key", key, "--concurrency", "1", "-")
		if code != 0 || !strings.HasPrefix(stderr, "imported 0 events (6 duplicates, 0 lines rejected)") {
			t.Fatalf("exit %d %q", code, stderr)
		}
	})
	t.Run("gzip file", func(t *testing.T) {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		_, _ = zw.Write(exported)
		zw.Close()
		gz := writeFile(t, "events.ndjson.gz", zb.String())
		code, _, stderr := runCmd(t, nil, "import", "--url", url, "--key", key, gz)
		if code != 0 || !strings.HasPrefix(stderr, "imported 0 events (6 duplicates, 0 lines rejected)") {
			t.Fatalf("exit %d %q", code, stderr)
		}
	})
	stored := len(evs)

	t.Run("bad line skipped", func(t *testing.T) {
		defer func(n int) { importMaxLineBytes = n }(importMaxLineBytes)
		importMaxLineBytes = 1000
		// Line 7 is bad, in the second request; line 9 is empty and line 10 too long.
		lines := strings.Split(importLines("skip", 12, 7), "\n")
		lines[8] = "  "
		lines[9] = `{"eventId":"long","x":"` + strings.Repeat("x", 1000) + `"}`
		file := writeFile(t, "bad.ndjson", strings.Join(lines, "\n"))
		code, _, stderr := runCmd(t, nil, "import", "--url", url, "--key", key, file)
		if code != 1 {
			t.Errorf("exit %d, want 1: lines were rejected", code)
		}
		if !strings.Contains(stderr, "line 7: timestamp: must be") || !strings.Contains(stderr, "line 10: is longer than 1.0 kB") ||
			!strings.Contains(stderr, "imported 9 events (0 duplicates, 2 lines rejected)") {
			t.Errorf("stderr %q", stderr)
		}
		stored += 9
		waitEvents(t, url, key, stored)
	})
	t.Run("strict stops at the bad request", func(t *testing.T) {
		var proxy recordingProxy
		purl := proxy.start(t, url)
		// Requests of lines 1-4, 5-8 (line 6 is bad), 9-12.
		file := writeFile(t, "bad.ndjson", importLines("strict", 12, 6))
		code, _, stderr := runCmd(t, nil, "import", "--url", purl, "--key", key, "--strict", file)
		if code != 1 || !strings.Contains(stderr, "line 6: timestamp: must be") || !strings.Contains(stderr, "--strict") ||
			!strings.Contains(stderr, "lines 1 to 4 are imported, nothing from line 5 on was sent") || !strings.Contains(stderr, "safe") ||
			!strings.Contains(stderr, "imported 4 events (0 duplicates, 1 lines rejected)") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if got, want := proxy.sent(), "strict-1 strict-2 strict-3 strict-4 strict-5 strict-6 strict-7 strict-8"; got != want {
			t.Errorf("sent %s, want %s", got, want)
		}
		stored += 4
		waitEvents(t, url, key, stored)
	})
	t.Run("refused", func(t *testing.T) {
		code, _, stderr := runCmd(t, nil, "import", "--url", url, "--key", "evp_unknown", file)
		if code != 1 || !strings.Contains(stderr, "401 INVALID_API_KEY") || !strings.Contains(stderr, "imported 0 events") {
			t.Errorf("bad key: exit %d %q", code, stderr)
		}
		ingest := createKey(t, dir, "--ingest-only")
		code, _, stderr = runCmd(t, nil, "import", "--url", url, "--key", ingest, file)
		if code != 1 || !strings.Contains(stderr, "403 FORBIDDEN") {
			t.Errorf("ingest-only key: exit %d %q", code, stderr)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeImport answers an import with every non-empty line accepted.
func fakeImport(w http.ResponseWriter, body []byte) {
	n := 0
	for _, l := range bytes.Split(body, []byte{'\n'}) {
		if len(bytes.TrimSpace(l)) > 0 {
			n++
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"success":true,"data":{"accepted":%d,"duplicates":0,"rejected":[]}}`, n)
}

// A 503 with Retry-After is waited for and the same request sent again.
func TestImportRetriesOn503(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/api/v1/events/import" || r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("x-api-key") != "evp_x" {
			t.Errorf("request %s %v", r.URL, r.Header)
		}
		mu.Lock()
		bodies = append(bodies, string(body))
		first := len(bodies) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"success":false,"error":{"code":"SERVICE_UNAVAILABLE","message":"the buffer is full"}}`)
			return
		}
		fakeImport(w, body)
	}))
	defer srv.Close()
	file := writeFile(t, "events.ndjson", importLines("r", 3, 0))
	start := time.Now()
	code, _, stderr := runCmd(t, nil, "import", "--url", srv.URL, "--key", "evp_x", file)
	if code != 0 || !strings.Contains(stderr, "503 SERVICE_UNAVAILABLE: the buffer is full; sending lines 1 to 3 again in 1s") ||
		!strings.Contains(stderr, "imported 3 events (0 duplicates, 0 lines rejected)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if time.Since(start) < time.Second {
		t.Errorf("sent again before Retry-After")
	}
	if len(bodies) != 2 || bodies[0] != bodies[1] {
		t.Errorf("bodies %q, want the same twice", bodies)
	}
}

// A 413 makes the requests smaller; a line too large alone is a bad line.
func TestImportSplitsOn413(t *testing.T) {
	const limit = 300
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		if len(body) > limit {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = io.WriteString(w, `{"success":false,"error":{"code":"PAYLOAD_TOO_LARGE","message":"too large"}}`)
			return
		}
		fakeImport(w, body)
	}))
	defer srv.Close()
	lines := strings.Split(importLines("s", 10, 0), "\n")
	lines[4] = `{"eventId":"big","x":"` + strings.Repeat("x", limit) + `"}`
	file := writeFile(t, "events.ndjson", strings.Join(lines, "\n"))
	code, _, stderr := runCmd(t, nil, "import", "--url", srv.URL, "--key", "evp_x", "--concurrency", "2", file)
	if code != 1 || !strings.Contains(stderr, "line 5: is larger than the server's body limit") ||
		!strings.Contains(stderr, "imported 9 events (0 duplicates, 1 lines rejected)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestImportBadUsageExitsWith2(t *testing.T) {
	file := writeFile(t, "e.ndjson", importLines("u", 1, 0))
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"--key", "k"}, "needs a FILE"},
		{"two files", []string{"--key", "k", file, file}, "one FILE"},
		{"no key", []string{"--url", "http://127.0.0.1:1", file}, "EVP_API_KEY"},
		{"bad url", []string{"--key", "k", "--url", "ftp://x", file}, "--url"},
		{"concurrency 0", []string{"--key", "k", "--concurrency", "0", file}, "--concurrency"},
		{"concurrency 33", []string{"--key", "k", "--concurrency", "33", file}, "--concurrency"},
		{"strict with concurrency", []string{"--key", "k", "--strict", "--concurrency", "4", file}, "one request at a time"},
		{"unknown flag", []string{"--frobnicate", file}, "frobnicate"},
		{"missing file", []string{"--key", "k", "--url", "http://127.0.0.1:1", filepath.Join(t.TempDir(), "none.ndjson")}, "no such file"},
		{"gzip name, not gzip", []string{"--key", "k", "--url", "http://127.0.0.1:1", writeFile(t, "e.ndjson.gz", "{}\n")}, "not gzip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, nil, append([]string{"import"}, c.args...)...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and a message naming %q", code, stderr, c.want)
			}
		})
	}
	if code, out, _ := runCmd(t, nil, "import", "--help"); code != 0 || !strings.Contains(out, "Usage: evp import") || !strings.Contains(out, "-concurrency") ||
		!strings.Contains(out, "1 lines rejected") {
		t.Fatalf("import --help: exit %d\n%s", code, out)
	}
	if _, out, _ := runCmd(t, nil, "help"); !strings.Contains(out, "  import ") {
		t.Errorf("evp help does not list import:\n%s", out)
	}
}

// Ctrl-C stops the import after the request in flight and says how far it got.
func TestImportInterrupted(t *testing.T) {
	smallChunks(t, 2)
	var requests atomic.Int64
	inflight, signaled := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if requests.Add(1) == 1 {
			close(inflight)
			<-signaled
		}
		fakeImport(w, body)
	}))
	defer srv.Close()
	go func() {
		<-inflight
		// The command is waiting for its first answer, with its signal handler in place.
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		time.Sleep(200 * time.Millisecond) // the signal reaches the command before the answer
		close(signaled)
	}()
	file := writeFile(t, "events.ndjson", importLines("i", 10, 0))
	code, _, stderr := runCmd(t, nil, "import", "--url", srv.URL, "--key", "evp_x", "--concurrency", "1", file)
	if code != 1 || !strings.Contains(stderr, "interrupted after the requests in flight") || !strings.Contains(stderr, "lines 1 to 2 imported") ||
		!strings.Contains(stderr, "imported 2 events (0 duplicates, 0 lines rejected)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1: nothing is sent after Ctrl-C", n)
	}
}

// On a terminal a progress line is updated in place and cleared at the end.
func TestImportProgressLine(t *testing.T) {
	defer func(d time.Duration) { exportProgressEvery = d }(exportProgressEvery)
	exportProgressEvery = time.Millisecond
	var stderr lockedBuffer
	imp := &importer{stderr: &stderr, tty: true, start: time.Now()}
	imp.read.Store(12)
	imp.accepted.Store(9)
	imp.duplicates.Store(2)
	imp.rejected.Store(1)
	stop := imp.showProgress()
	want := "\rimporting: 12 lines read, 9 events accepted, 2 duplicates, 1 rejected, "
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), want) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	imp.say("a message\n")
	stop()
	out := stderr.String()
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "events/s\033[K") || !strings.Contains(out, "\r\033[Ka message\n") || !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("progress %q..., want %q, updated in place and cleared", out[:min(len(out), 200)], want)
	}
}
