package dashboard_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/testutil"
)

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// repoRoot is the module's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDashboardInBrowser builds evp with the built dashboard embedded, starts it on a free port
// with a temporary data directory, and drives the dashboard in Debian's Chromium through
// web/e2e/dashboard.e2e.mjs (playwright-core): sign-in (the code read from evp's log), API keys
// created in the UI and revoked (a revoked new key's plain text hidden), events sent with one
// and seen in Analytics (a preset, a custom range, the chart's tooltip and its height) and on the
// Events page (filtered, an event's panel, the exports, Live: events sent shown at the top as
// they arrive, counted while paused; one user's events deleted through the ADMIN's confirmation
// dialog, then gone from the list and the analytics), Live (the rate history drawn at first
// paint, an unreachable evp), dead letters inspected, replayed and deleted, a page whose code fails to load, users invited, changed, suspended
// (and refused in a second browser) and reactivated, an error state, the keyboard, every page
// at phone width (no sideways scroll), an axe-core accessibility audit of every page in the
// light and dark themes (and the contrast of disabled buttons), and sign-out. Screenshots go
// to web/test-results/screenshots.
//
// Events reach the dead-letter queue for real: a trigger in evp's own events.db makes SQLite
// refuse events of type "poison" (as internal/app's dead-letter test does), and the script
// asks this test, through a small HTTP server on loopback (EVP_CONTROL), to drop the trigger
// before it replays one.
func TestDashboardInBrowser(t *testing.T) {
	testutil.SkipShort(t, "starts evp and a browser")
	root := repoRoot(t)
	web := filepath.Join(root, "web")
	chromium := os.Getenv("EVP_CHROMIUM") // another Chromium-based browser, such as CI's Chrome
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	testutil.Needs(t, exists(chromium), chromium+" is missing (apt-get install chromium)")
	node, err := exec.LookPath("node")
	testutil.Needs(t, err == nil, "node is not installed")
	testutil.Needs(t, exists(filepath.Join(web, "node_modules", "playwright-core")), "web/node_modules is missing (cd web && npm ci)")
	testutil.Needs(t, exists(filepath.Join(web, "node_modules", "axe-core")), "web/node_modules has no axe-core (cd web && npm ci)")
	testutil.Needs(t, exists(filepath.Join(root, "internal", "dashboard", "dist", "app", "index.html")), "the dashboard is not built (make web)")

	tmp := t.TempDir()
	bin := filepath.Join(tmp, "evp")
	build := exec.Command("go", "build", "-o", bin, "./cmd/evp")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	dataDir := filepath.Join(tmp, "data")
	logPath := filepath.Join(tmp, "evp.log")
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := append(os.Environ(), "EVP_DATA_DIR="+dataDir, "PORT="+strconv.Itoa(port), "SERVER_HOST=127.0.0.1",
		"EVP_LOG_FORMAT=json", "LOG_LEVEL=info", "WORKER_BATCH_TIMEOUT_MS=20",
		// Embedded sign-in: codes are written to the log; sessions are signed with this secret.
		"EVP_DEV_LOGIN=true", "JWT_SECRET=dashboard-browser-test-secret-0123456789abcdef")

	// A key for the API-key sign-in, used when this evp has no email sign-in routes.
	mk := exec.Command(bin, "apikey", "create", "--name", "browser-test")
	mk.Env = env
	keyOut, err := mk.Output()
	if err != nil {
		t.Fatalf("evp apikey create: %v", err)
	}
	apiKey := strings.TrimSpace(string(keyOut))

	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	evp := exec.Command(bin)
	evp.Env = env
	evp.Stdout, evp.Stderr = logFile, logFile
	if err := evp.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- evp.Wait() }()
	t.Cleanup(func() {
		evp.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("evp log:\n%s", lastLines(string(b), 60))
		}
	})
	waitReady(t, base, exited, logPath)
	control := poisonControl(t, filepath.Join(dataDir, "events.db"))

	// The binary serves the built dashboard: index.html revalidated, hashed assets immutable.
	index := httpGet(t, base+"/analytics/anything")
	if index.status != 200 || !strings.Contains(index.body, `id="root"`) || index.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET a client route: %d, Cache-Control %q, body %.200q", index.status, index.header.Get("Cache-Control"), index.body)
	}
	i := strings.Index(index.body, "/assets/")
	if i < 0 {
		t.Fatalf("index.html names no /assets/ file: %.300q", index.body)
	}
	asset := index.body[i : i+strings.IndexAny(index.body[i:], `"'`)]
	if a := httpGet(t, base+asset); a.status != 200 || !strings.Contains(a.header.Get("Cache-Control"), "immutable") {
		t.Fatalf("GET %s: %d, Cache-Control %q", asset, a.status, a.header.Get("Cache-Control"))
	}
	if nf := httpGet(t, base+"/api/no-such-route"); nf.status != 404 || !strings.Contains(nf.body, `"NOT_FOUND"`) {
		t.Fatalf("GET /api/no-such-route: %d %q, want the JSON 404", nf.status, nf.body)
	}

	// Does this evp have the email sign-in routes? (404 NOT_FOUND when not.)
	probe, err := http.Post(base+"/api/auth/verify", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	probe.Body.Close()
	withAuth := probe.StatusCode != http.StatusNotFound
	if !withAuth {
		t.Log("evp has no /api/auth routes: the browser signs in with an API key instead of the emailed code")
	}

	shots := filepath.Join(web, "test-results", "screenshots")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	script := exec.CommandContext(ctx, node, filepath.Join("e2e", "dashboard.e2e.mjs"))
	script.Dir = web
	authFlag := "0"
	if withAuth {
		authFlag = "1"
	}
	script.Env = append(os.Environ(), "EVP_URL="+base, "EVP_LOG="+logPath, "EVP_AUTH="+authFlag,
		"EVP_API_KEY="+apiKey, "SCREENSHOT_DIR="+shots, "CHROMIUM="+chromium, "EVP_CONTROL="+control)
	var out bytes.Buffer
	script.Stdout, script.Stderr = &out, &out
	err = script.Run()
	t.Logf("browser test output:\n%s", out.String())
	if err != nil {
		t.Fatalf("browser test failed: %v (screenshots in %s)", err, shots)
	}
	if !strings.Contains(out.String(), "e2e: all steps passed") {
		t.Fatal("browser test ended without passing every step")
	}
}

// poisonControl makes the event store at dbPath refuse events of type "poison" with a real
// SQLite error, so that the workers dead-letter them after their retries, and returns the URL
// of a loopback server whose POST /cure drops that trigger again (the cause fixed: a replay
// then stores the event).
func poisonControl(t *testing.T, dbPath string) string {
	t.Helper()
	db, err := sqlitedb.Open(dbPath, sqlitedb.SyncNormal, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_type = 'poison'
		BEGIN SELECT RAISE(ABORT, 'poisoned event refused'); END`); err != nil {
		t.Fatalf("create the poison trigger: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cure", func(w http.ResponseWriter, r *http.Request) {
		if _, err := db.Exec(`DROP TRIGGER IF EXISTS poison`); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func waitReady(t *testing.T, base string, exited chan error, logPath string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/api/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(logPath)
			t.Fatalf("evp exited during start: %v\n%s", err, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("evp not ready within 60 s")
}

type response struct {
	status int
	header http.Header
	body   string
}

func httpGet(t *testing.T, url string) response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return response{resp.StatusCode, resp.Header, b.String()}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
