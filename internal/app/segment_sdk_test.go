package app

import (
	"bytes"
	"context"
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

	"github.com/evp-dev/evp/internal/accounts"
)

// needs skips t with reason, or fails it under EVP_REQUIRE_SERVICES=1 (CI).
func needs(t *testing.T, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("EVP_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s (EVP_REQUIRE_SERVICES=1)", reason)
	}
	t.Skip(reason)
}

// Segment's own Node.js library sends identify, track and page to evp with an ingest-only
// key as its write key. The first request reaches evp but its answer is lost (a proxy
// answers 503): the library sends the batch again, and each message is stored once.
func TestSegmentNodeLibrary(t *testing.T) {
	node, err := exec.LookPath("node")
	needs(t, err == nil, "node is not installed")
	script, _ := filepath.Abs("../../web/sdk/segment-node.mjs")
	_, err = os.Stat("../../web/node_modules/@segment/analytics-node")
	needs(t, err == nil, "web/node_modules has no @segment/analytics-node (cd web && npm ci)")

	in := start(t, "", nil)
	st, err := accounts.Open(context.Background(), in.dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := accounts.CreateAPIKey(context.Background(), st, accounts.NewKey{Name: "web", Prefix: "evp_", IngestOnly: true})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	target, _ := url.Parse(in.url)
	var requests atomic.Int32
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
		if n == 1 { // evp has the batch; the client never hears so
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	defer proxy.Close()

	cmd := exec.Command(node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "EVP_URL="+proxy.URL, "EVP_KEY="+key)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	if n := requests.Load(); n < 2 {
		t.Fatalf("%d requests reached the proxy, want the first and its retry", n)
	}
	in.waitStored(3)
	in.waitBufferEmpty()

	rows, err := openEvents(t, in.dir).Query(`SELECT event_type, user_id, payload FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var typ, user, payload string
		if err := rows.Scan(&typ, &user, &payload); err != nil {
			t.Fatal(err)
		}
		got = append(got, typ+" "+user+" "+payload)
	}
	sort.Strings(got)
	want := []string{
		`Order Completed sdk-user {"revenue":42.5,"currency":"EUR"}`,
		`identify sdk-user {"plan":"pro","email":"sdk@example.com"}`,
		`page anon-1 {"path":"/"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The analytics API counts them by their names.
	r := in.do("GET", "/api/v1/analytics/metrics?eventType="+url.QueryEscape("Order Completed")+"&timeRange=1h", nil, nil)
	if r.status != 200 || r.data()["totalEvents"] != 1.0 {
		t.Errorf("analytics for Order Completed: %d %s", r.status, r.raw)
	}
}
