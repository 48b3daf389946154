package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthog/posthog-go"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/testutil"
)

// startForSDK starts evp with an ingest-only key for an SDK, and a proxy in front of it
// that passes the first request to evp but answers it 503 (the answer is lost), so that
// the SDK sends it again; requests counts what reached the proxy.
func startForSDK(t *testing.T) (in *instance, key, proxyURL string, requests *atomic.Int32) {
	t.Helper()
	in = start(t, "", nil)
	st, err := accounts.Open(context.Background(), in.dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err = accounts.CreateAPIKey(context.Background(), st, accounts.NewKey{Name: "app", Prefix: "evp_", IngestOnly: true})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(in.url)
	requests = new(atomic.Int32)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		out, _ := http.NewRequest(r.Method, target.ResolveReference(r.URL).String(), bytes.NewReader(body))
		out.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if n == 1 { // evp has the events; the client never hears so
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(proxy.Close)
	return in, key, proxy.URL, requests
}

// runSDK runs web/sdk/script, an SDK's own Node.js library sending three events through
// startForSDK's proxy, and returns evp once the script has delivered them.
func runSDK(t *testing.T, script, module string) *instance {
	t.Helper()
	node, err := exec.LookPath("node")
	testutil.Needs(t, err == nil, "node is not installed")
	_, err = os.Stat("../../web/node_modules/" + module)
	testutil.Needs(t, err == nil, "web/node_modules has no "+module+" (cd web && npm ci)")
	path, _ := filepath.Abs("../../web/sdk/" + script)
	in, key, proxyURL, requests := startForSDK(t)
	cmd := exec.Command(node, path)
	cmd.Dir = filepath.Dir(path)
	cmd.Env = append(os.Environ(), "EVP_URL="+proxyURL, "EVP_KEY="+key)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	if n := requests.Load(); n < 2 {
		t.Fatalf("%d requests reached the proxy, want the first and its retry", n)
	}
	return in
}

// stored lists the stored events as "type user session payload", sorted, once the store
// holds want events and the buffer is empty.
func stored(t *testing.T, in *instance, want int64) string {
	t.Helper()
	in.waitStored(want)
	in.waitBufferEmpty()
	rows, err := openEvents(t, in.dir).Query(`SELECT event_type, user_id, session_id, COALESCE(payload, '') FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var typ, user, session, payload string
		if err := rows.Scan(&typ, &user, &session, &payload); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{typ, user, session, payload}, " "))
	}
	sort.Strings(got)
	return strings.Join(got, "\n")
}

// Segment's own Node.js library: identify, track and page, each stored once, and the
// analytics API counts a track call by its name.
func TestSegmentNodeLibrary(t *testing.T) {
	in := runSDK(t, "segment-node.mjs", "@segment/analytics-node")
	got := stored(t, in, 3)
	day := "/" + strings.Split(strings.Split(got, "sdk-user/")[1], " ")[0] // the UTC day of the run
	want := strings.Join([]string{
		`Order Completed sdk-user sdk-user` + day + ` {"revenue":42.5,"currency":"EUR"}`,
		`identify sdk-user sdk-user` + day + ` {"plan":"pro","email":"sdk@example.com"}`,
		`page anon-1 anon-1` + day + ` {"path":"/"}`,
	}, "\n")
	if got != want {
		t.Errorf("stored:\n%s\nwant:\n%s", got, want)
	}
	r := in.do("GET", "/api/v1/analytics/metrics?eventType="+url.QueryEscape("Order Completed")+"&timeRange=1h", nil, nil)
	if r.status != 200 || r.data()["totalEvents"] != 1.0 {
		t.Errorf("analytics for Order Completed: %d %s", r.status, r.raw)
	}
}

// PostHog's own Node.js library (its /batch/ requests): an identify and two captures, each
// stored once, with the session it names.
func TestPostHogNodeLibrary(t *testing.T) {
	in := runSDK(t, "posthog-node.mjs", "posthog-node")
	got := stored(t, in, 3)
	for _, want := range []string{"$identify ph-user ph-user/", "signed up ph-user ph-session {", "$pageview ph-user ph-user/"} {
		if !strings.Contains(got, want) {
			t.Errorf("stored:\n%s\nlacks %q", got, want)
		}
	}
	if strings.Contains(got, "evp_") {
		t.Errorf("the key was stored:\n%s", got)
	}
	r := in.do("GET", "/api/v1/analytics/metrics?eventType="+url.QueryEscape("$pageview")+"&timeRange=1h", nil, nil)
	if r.status != 200 || r.data()["totalEvents"] != 1.0 {
		t.Errorf("analytics for $pageview: %d %s", r.status, r.raw)
	}
}

// PostHog's Go library: a capture with a uuid and an identify, each stored once.
func TestPostHogGoLibrary(t *testing.T) {
	in, key, proxyURL, requests := startForSDK(t)
	var delivered, failed atomic.Int32
	client, err := posthog.NewWithConfig(key, posthog.Config{
		Endpoint: proxyURL, BatchSize: 2, Interval: 50 * time.Millisecond,
		RetryAfter: func(int) time.Duration { return 50 * time.Millisecond },
		Callback:   callback{ok: &delivered, failed: &failed},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Enqueue(posthog.Capture{DistinctId: "go-user", Event: "checkout", Uuid: "0193aa00-0000-7000-8000-000000000001",
		Properties: posthog.NewProperties().Set("total", 12).Set("$session_id", "go-session")}); err != nil {
		t.Fatal(err)
	}
	if err := client.Enqueue(posthog.Identify{DistinctId: "go-user", Properties: posthog.NewProperties().Set("plan", "team")}); err != nil {
		t.Fatal(err)
	}
	// Close drops what waits for a retry: wait for both messages first.
	for deadline := time.Now().Add(10 * time.Second); delivered.Load()+failed.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if delivered.Load() != 2 || failed.Load() != 0 || requests.Load() < 2 {
		t.Fatalf("delivered %d, failed %d, %d requests; want 2, 0 and a retry", delivered.Load(), failed.Load(), requests.Load())
	}
	got := stored(t, in, 2)
	for _, want := range []string{`checkout go-user go-session {`, `$identify go-user go-user/`} {
		if !strings.Contains(got, want) {
			t.Errorf("stored:\n%s\nlacks %q", got, want)
		}
	}
}

// callback counts the messages posthog-go delivered and dropped.
type callback struct{ ok, failed *atomic.Int32 }

func (c callback) Success(posthog.APIMessage)        { c.ok.Add(1) }
func (c callback) Failure(posthog.APIMessage, error) { c.failed.Add(1) }

// inBrowser serves page (its body; %[1]q is the key, %[2]q evp's URL) and the files libs
// names (URL path to a file under web/node_modules) from an origin of its own, opens it in
// Chromium through web/sdk/browser.mjs, which clicks its Buy button and waits for
// window.__done, and returns evp (with its ingest-only key). It fails t if the page asked
// any host but its own and evp's.
func inBrowser(t *testing.T, libs map[string]string, page string) (*instance, string) {
	t.Helper()
	testutil.SkipShort(t, "starts evp and a browser")
	node, err := exec.LookPath("node")
	testutil.Needs(t, err == nil, "node is not installed")
	chromium := os.Getenv("EVP_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err = os.Stat(chromium)
	testutil.Needs(t, err == nil, chromium+" is missing (apt-get install chromium)")
	for _, file := range libs {
		_, err = os.Stat("../../web/node_modules/" + file)
		testutil.Needs(t, err == nil, "web/node_modules has no "+file+" (cd web && npm ci)")
	}

	in, key, _, _ := startForSDK(t)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if file, ok := libs[r.URL.Path]; ok {
			http.ServeFile(w, r, "../../web/node_modules/"+file)
			return
		}
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, page, key, in.url)
	}))
	defer site.Close()

	script, _ := filepath.Abs("../../web/sdk/browser.mjs")
	cmd := exec.Command(node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "PAGE_URL="+site.URL, "CHROMIUM="+chromium)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	for _, u := range strings.Fields(string(out)) {
		if !strings.HasPrefix(u, site.URL+"/") && !strings.HasPrefix(u, in.url+"/") {
			t.Errorf("the page asked another host: %s", u)
		}
	}
	return in, stderr.String()
}

// posthog-js in Chromium, on a page of another origin, loaded from the project's own npm
// dependencies: the page view, custom events (one sent with sendBeacon, as when a page
// closes) and an autocaptured click arrive.
func TestPostHogInBrowser(t *testing.T) {
	in, browser := inBrowser(t, map[string]string{"/posthog.js": "posthog-js/dist/array.full.no-external.js"},
		`<!doctype html><html><head><title>shop</title></head><body>
<button id="buy">Buy</button>
<script src="/posthog.js"></script>
<script>
  // Headless Chromium's user agent looks like a bot to posthog-js, which would drop events.
  posthog.init(%[1]q, {api_host: %[2]q, persistence: 'memory', request_batching: false, opt_out_useragent_filter: true,
    disable_session_recording: true, capture_pageview: true, autocapture: true})
  document.getElementById('buy').addEventListener('click', () => {
    posthog.capture('checkout started', {cart: 3})
    // As posthog-js sends when a page closes (gzip in a Blob; a base64 form where the
    // browser cannot gzip, which package posthog's tests cover).
    posthog.capture('checkout left', {cart: 3}, {transport: 'sendBeacon'})
    setTimeout(() => { window.__done = true }, 1500)
  })
</script></body></html>`)
	got := stored(t, in, 4)
	for _, want := range []string{"$pageview ", "checkout started ", "checkout left ", "$autocapture "} {
		if !strings.Contains(got, want) {
			t.Errorf("stored:\n%s\nlacks %q\nbrowser: %s", got, want, browser)
		}
	}
}

// Segment's browser library (analytics-next's standalone build, as the snippet loads it)
// with its CDN set to evp: it takes its settings from evp, and its page view, identify and
// track calls arrive.
func TestSegmentInBrowser(t *testing.T) {
	in, browser := inBrowser(t, map[string]string{"/segment.js": "@segment/analytics-next/dist/umd/standalone.js"},
		`<!doctype html><html><head><title>shop</title></head><body>
<button id="buy">Buy</button>
<script>
  // The snippet's stub: calls wait in window.analytics until the library has loaded.
  window.analytics = []
  analytics._writeKey = %[1]q
  analytics._cdn = %[2]q
  for (const m of ['page', 'identify', 'track']) analytics[m] = (...args) => { analytics.push([m, ...args]) }
  analytics.page()
  analytics.identify('web-user', {plan: 'pro'})
  document.getElementById('buy').addEventListener('click', () => {
    analytics.track('Order Completed', {revenue: 9.5})
    setTimeout(() => { window.__done = true }, 1500)
  })
</script>
<script src="/segment.js"></script>
</body></html>`)
	got := stored(t, in, 3)
	for _, want := range []string{"page ", "identify web-user ", "Order Completed web-user "} {
		if !strings.Contains(got, want) {
			t.Errorf("stored:\n%s\nlacks %q\nbrowser: %s", got, want, browser)
		}
	}
}
