package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/app"
	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/testutil"
)

// startInProcess runs evp (role all) in this test process on 127.0.0.1:0 over a new data
// directory and returns its URL and the directory; it stops at the test's end.
func startInProcess(t *testing.T) (url, dir string) {
	t.Helper()
	testutil.SkipShort(t, "runs evp")
	dir = t.TempDir()
	vars := map[string]string{"EVP_DATA_DIR": dir, "PORT": "0", "SERVER_HOST": "127.0.0.1",
		"WORKER_BATCH_TIMEOUT_MS": "20", "EVP_BUFFER_SYNC": "normal", "EVP_STORE_SYNC": "normal"}
	cfg, _, err := config.Load("evp", nil, func(k string) string { return vars[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	logs := &bytes.Buffer{} // written by evp until it stops, read after
	go func() {
		done <- app.Run(ctx, app.RoleAll, cfg, app.Options{Version: "test", Log: slog.New(slog.NewTextHandler(logs, nil)),
			OnListen: func(a string) { addr <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("evp stopped with %v", err)
		}
		if t.Failed() {
			t.Logf("evp logs:\n%s", logs)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a, dir
	case err := <-done:
		done <- err
		t.Fatalf("evp did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("evp did not start within 30 s")
	}
	return "", ""
}

// createKey makes an API key with `evp apikey create` on the data directory in dir.
func createKey(t *testing.T, dir string, flags ...string) string {
	t.Helper()
	code, out, stderr := runCmd(t, map[string]string{"EVP_DATA_DIR": dir}, append([]string{"apikey", "create", "--name", "export"}, flags...)...)
	if code != 0 {
		t.Fatalf("apikey create: exit %d %s", code, stderr)
	}
	return strings.TrimSpace(out)
}

// exportEvents are the events the export tests send, oldest first; the third holds a
// newline, quotes, commas and a leading = in cells, as CSV must carry them.
func exportEvents(now time.Time) []map[string]any {
	var evs []map[string]any
	for i := 0; i < 6; i++ {
		typ := "page_view"
		if i%3 == 2 {
			typ = "signup"
		}
		ev := map[string]any{"eventId": fmt.Sprintf("exp-%d", i), "eventType": typ, "userId": fmt.Sprintf("u%d", i),
			"sessionId": "s1", "timestamp": now.Add(time.Duration(i-10) * time.Minute).UTC().Format(time.RFC3339Nano),
			"metadata": map[string]any{"page": fmt.Sprintf("/p%d", i)}}
		if i == 2 {
			ev["userId"] = "=line one\nline \"two\", three"
			ev["payload"] = map[string]any{"note": "a \"quoted\"\nvalue, with comma"}
		}
		evs = append(evs, ev)
	}
	return evs
}

// sendAndWait posts events in one batch and waits until GET /api/v1/events lists them all.
func sendAndWait(t *testing.T, url, key string, evs []map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"events": evs})
	req, _ := http.NewRequest("POST", url+"/api/v1/events/batch", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("batch: %d %s", resp.StatusCode, answer)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", url+"/api/v1/events?limit=1000", nil)
		req.Header.Set("x-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Data struct{ Events []json.RawMessage } `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err == nil && len(page.Data.Events) == len(evs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events stored after 10 s (%v)", len(page.Data.Events), len(evs), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newestFirst returns the ids of evs (oldest first) newest first, keeping those keep says.
func newestFirst(evs []map[string]any, keep func(map[string]any) bool) []string {
	var ids []string
	for i := len(evs) - 1; i >= 0; i-- {
		if keep == nil || keep(evs[i]) {
			ids = append(ids, evs[i]["eventId"].(string))
		}
	}
	return ids
}

func ndjsonIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var ev struct {
			EventID     string `json:"eventId"`
			ProcessedAt string `json:"processedAt"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.ProcessedAt == "" {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, ev.EventID)
	}
	return ids
}

func TestExportAgainstEvp(t *testing.T) {
	url, dir := startInProcess(t)
	key := createKey(t, dir)
	evs := exportEvents(time.Now())
	sendAndWait(t, url, key, evs)
	all := newestFirst(evs, nil)

	t.Run("ndjson", func(t *testing.T) {
		// The key from the environment.
		code, out, stderr := runCmd(t, map[string]string{"EVP_API_KEY": key}, "export", "--url", url)
		if code != 0 {
			t.Fatalf("exit %d %s", code, stderr)
		}
		if got := ndjsonIDs(t, out); fmt.Sprint(got) != fmt.Sprint(all) {
			t.Errorf("ids %v, want %v", got, all)
		}
		// Not a terminal: the summary line only.
		if !strings.HasPrefix(stderr, fmt.Sprintf("exported %d events (", len(evs))) || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "events/s") {
			t.Errorf("stderr %q, want one summary line", stderr)
		}
	})
	t.Run("csv", func(t *testing.T) {
		code, out, stderr := runCmd(t, nil, "export", "--url", url, "--key", key, "--format", "csv")
		if code != 0 {
			t.Fatalf("exit %d %s", code, stderr)
		}
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if len(rows) == 0 || rows[0][0] != "eventId" || rows[0][len(rows[0])-1] != "payload" {
			t.Fatalf("no header:\n%s", out)
		}
		var ids []string
		for _, r := range rows[1:] {
			ids = append(ids, r[0])
			if r[0] == "exp-2" && (r[2] != "'=line one\nline \"two\", three" || !strings.Contains(r[10], `quoted`)) {
				t.Errorf("row %q: the userId and payload are not carried", r)
			}
		}
		if fmt.Sprint(ids) != fmt.Sprint(all) {
			t.Errorf("ids %v, want %v", ids, all)
		}
		// The newline inside a quoted cell is not counted as a row.
		if !strings.HasPrefix(stderr, fmt.Sprintf("exported %d events (", len(evs))) {
			t.Errorf("stderr %q", stderr)
		}
	})
	t.Run("filters narrow", func(t *testing.T) {
		code, out, stderr := runCmd(t, nil, "export", "--url", url+"/", "--key", key, "--type", "signup", "--range", "24h")
		want := newestFirst(evs, func(ev map[string]any) bool { return ev["eventType"] == "signup" })
		if code != 0 || fmt.Sprint(ndjsonIDs(t, out)) != fmt.Sprint(want) {
			t.Fatalf("--type signup: exit %d, ids %v, want %v (%s)", code, ndjsonIDs(t, out), want, stderr)
		}
		code, out, stderr = runCmd(t, nil, "export", "--url", url, "--key", key, "--prop", "metadata.page:/p4", "--user", "u4", "--session", "s1",
			"--from", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "--to", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
		if code != 0 || fmt.Sprint(ndjsonIDs(t, out)) != "[exp-4]" {
			t.Fatalf("--prop --user --session --from --to: exit %d\n%s%s", code, out, stderr)
		}
		code, out, stderr = runCmd(t, nil, "export", "--url", url, "--key", key, "--type", "nothing", "--format", "csv")
		if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(stderr, "exported 0 events") {
			t.Fatalf("no match: exit %d %q %q, want the header only", code, out, stderr)
		}
	})
	t.Run("output file", func(t *testing.T) {
		outDir := t.TempDir()
		file := filepath.Join(outDir, "events.ndjson")
		code, out, stderr := runCmd(t, nil, "export", "--url", url, "--key", key, "-o", file)
		if code != 0 || out != "" {
			t.Fatalf("exit %d, stdout %q, stderr %s", code, out, stderr)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := ndjsonIDs(t, string(b)); fmt.Sprint(got) != fmt.Sprint(all) {
			t.Errorf("file ids %v, want %v", got, all)
		}
		if names := dirNames(t, outDir); fmt.Sprint(names) != "[events.ndjson]" {
			t.Errorf("the directory holds %v, want the file only", names)
		}
	})
	t.Run("refused", func(t *testing.T) {
		code, _, stderr := runCmd(t, nil, "export", "--url", url, "--key", "evp_unknown")
		if code != 1 || !strings.Contains(stderr, "401 INVALID_API_KEY: the API key is unknown, revoked or expired") {
			t.Errorf("bad key: exit %d %q, want 1 and the server's message", code, stderr)
		}
		ingest := createKey(t, dir, "--ingest-only")
		code, _, stderr = runCmd(t, nil, "export", "--url", url, "--key", ingest)
		if code != 1 || !strings.Contains(stderr, "403 FORBIDDEN") || !strings.Contains(stderr, "ingest-only") {
			t.Errorf("ingest-only key: exit %d %q, want 1 and the server's message", code, stderr)
		}
		// A property path the server refuses: its details are shown; a 400 is bad usage.
		file := filepath.Join(t.TempDir(), "x.csv")
		code, _, stderr = runCmd(t, nil, "export", "--url", url, "--key", key, "--prop", "metadata.a$b:x", "-o", file)
		if code != 2 || !strings.Contains(stderr, "400 VALIDATION_ERROR") || !strings.Contains(stderr, "\n  prop: keys must") {
			t.Errorf("bad --prop: exit %d %q, want 2 with the details", code, stderr)
		}
		if names := dirNames(t, filepath.Dir(file)); len(names) != 0 {
			t.Errorf("after a refusal the directory holds %v", names)
		}
	})
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestExportBadUsageExitsWith2(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"--url", "http://127.0.0.1:1"}, "EVP_API_KEY"},
		{"bad format", []string{"--key", "k", "--format", "xml"}, "--format"},
		{"bad range", []string{"--key", "k", "--range", "2h"}, "--range"},
		{"range and from", []string{"--key", "k", "--range", "1h", "--from", "2026-01-02T15:04:05Z"}, "not both"},
		{"bad from", []string{"--key", "k", "--from", "yesterday"}, "--from"},
		{"to before from", []string{"--key", "k", "--from", "2026-01-02T15:04:05Z", "--to", "2026-01-01T15:04:05Z"}, "--to"},
		{"bad prop", []string{"--key", "k", "--prop", "page=/home"}, "--prop"},
		{"too many props", []string{"--key", "k", "--prop", "metadata.a:1", "--prop", "metadata.a:2", "--prop", "metadata.a:3",
			"--prop", "metadata.a:4", "--prop", "metadata.a:5", "--prop", "metadata.a:6"}, "--prop"},
		{"bad url", []string{"--key", "k", "--url", "ftp://x"}, "--url"},
		{"output is a directory", []string{"--key", "k", "-o", dir}, "directory"},
		{"output directory missing", []string{"--key", "k", "--url", "http://127.0.0.1:1", "-o", filepath.Join(dir, "no", "x.ndjson")}, "create the output file"},
		{"unknown flag", []string{"--frobnicate"}, "frobnicate"},
		{"argument", []string{"--key", "k", "extra"}, "unexpected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, nil, append([]string{"export"}, c.args...)...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and a message naming %q", code, stderr, c.want)
			}
		})
	}
	if code, out, _ := runCmd(t, nil, "export", "--help"); code != 0 || !strings.Contains(out, "Usage: evp export") || !strings.Contains(out, "-prop") {
		t.Fatalf("export --help: exit %d\n%s", code, out)
	}
	if _, out, _ := runCmd(t, nil, "help"); !strings.Contains(out, "  export ") {
		t.Errorf("evp help does not list export:\n%s", out)
	}
}

// TestExportFailures runs the command against servers that fail: it exits 1, says why,
// and leaves no output file.
func TestExportFailures(t *testing.T) {
	line := `{"eventId":"a","eventType":"t","userId":"u","sessionId":"s","timestamp":"2026-01-02T15:04:05Z","processedAt":"2026-01-02T15:04:05Z"}` + "\n"
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"cut off midway", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			for range 100 {
				_, _ = io.WriteString(w, line)
			}
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // no final chunk
		}, "the export is incomplete: the transfer broke off after 100 events"},
		{"ends inside a line", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			_, _ = io.WriteString(w, line+`{"eventId":"b"`)
		}, "ends inside a line after 1 events"},
		{"too many exports", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "10")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"success":false,"error":{"code":"TOO_MANY_EXPORTS","message":"2 exports are running; retry when one ends"}}`)
		}, "429 TOO_MANY_EXPORTS: 2 exports are running; retry when one ends (retry after 10 s)"},
		{"not evp", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html></html>\n")
		}, "not an export"},
		{"proxy error", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "bad gateway\n")
		}, "502: bad gateway"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			dir := t.TempDir()
			file := filepath.Join(dir, "events.ndjson")
			code, out, stderr := runCmd(t, nil, "export", "--url", srv.URL, "--key", "evp_x", "-o", file)
			if code != 1 || !strings.Contains(stderr, c.want) || out != "" {
				t.Errorf("-o: exit %d, stdout %q, stderr %q; want 1 and %q", code, out, stderr, c.want)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("the failed export left %v", names)
			}
			if code, _, stderr := runCmd(t, nil, "export", "--url", srv.URL, "--key", "evp_x"); code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("stdout: exit %d, stderr %q; want 1 and %q", code, stderr, c.want)
			}
		})
	}

	// An export that fails keeps the file an earlier one wrote.
	srv := httptest.NewServer(cases[0].handler)
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, nil, "export", "--url", srv.URL, "--key", "evp_x", "-o", file); code != 1 || !strings.Contains(stderr, "events.ndjson not written") {
		t.Errorf("exit %d %q", code, stderr)
	}
	if b, _ := os.ReadFile(file); string(b) != line {
		t.Errorf("the earlier file now holds %q", b)
	}
}

// A failing standard output (a full disk, a closed pipe) ends the export with exit 1.
func TestExportWriteErrorExits1(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-api-key") != "evp_x" || r.URL.Query().Get("format") != "csv" {
			t.Errorf("request %s %v", r.URL, r.Header)
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		_, _ = io.WriteString(w, "eventId\na\n")
	}))
	defer srv.Close()
	var stderr bytes.Buffer
	code := run([]string{"export", "--url", srv.URL, "--key", "evp_x", "--format", "csv"}, func(string) string { return "" }, failWriter{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "write the export: no space left on device") {
		t.Fatalf("exit %d, stderr %q; want 1 and the write error", code, stderr.String())
	}
}

// Ctrl-C in the middle of an export stops it with exit 1 and removes the temporary file.
func TestExportInterrupted(t *testing.T) {
	streaming := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = io.WriteString(w, `{"eventId":"a"}`+"\n")
		_ = http.NewResponseController(w).Flush()
		close(streaming)
		<-r.Context().Done() // until the client goes away
	}))
	defer srv.Close()
	dir := t.TempDir()
	go func() {
		<-streaming
		// The command is reading the body, with its signal handler in place.
		syscall.Kill(os.Getpid(), syscall.SIGINT)
	}()
	code, _, stderr := runCmd(t, nil, "export", "--url", srv.URL, "--key", "evp_x", "-o", filepath.Join(dir, "events.ndjson"))
	if code != 1 || !strings.Contains(stderr, "interrupted after 1 events") || !strings.Contains(stderr, "not written") {
		t.Errorf("exit %d, stderr %q; want 1 and interrupted", code, stderr)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("the interrupted export left %v", names)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// On a terminal a progress line is updated in place and cleared at the end.
func TestExportProgressLine(t *testing.T) {
	defer func(d time.Duration) { exportProgressEvery = d }(exportProgressEvery)
	exportProgressEvery = time.Millisecond
	var stderr lockedBuffer
	c := &exportCounter{w: io.Discard, csv: true}
	data := "eventId,payload\na,\"{\"\"x\"\":\"\"1\n2\"\"}\"\nb,\n" // a newline inside a quoted cell
	_, _ = io.WriteString(c, data)
	stop := showProgress(&stderr, true, c, time.Now())
	want := fmt.Sprintf("\rexporting: 2 events, %d B, ", len(data))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), want) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	out := stderr.String()
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "events/s\033[K") || !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("progress %q..., want %q, updated in place and cleared", out[:min(len(out), 200)], want)
	}
}
