package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/evp-dev/evp/internal/metrics"
)

// TestSecurityHeaders: every /api answer, whatever its status, carries
// X-Content-Type-Options: nosniff and Cache-Control: no-store, those with a session token or
// a new key's plain text included; other answers carry nosniff and keep their own caching.
func TestSecurityHeaders(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write([]byte("asset"))
	})
	srv, mail := accountsServer(t, Deps{Auth: AuthDeps{RateLimit: 1000},
		Serving: ServingDeps{Dashboard: dash, Metrics: metrics.New(), CORSOrigins: []string{"https://dash.example.com"}}})
	h := srv.Handler()
	do := func(method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, bytes.NewBufferString(body))
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	data := func(w *httptest.ResponseRecorder) map[string]any {
		var env struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
			t.Fatalf("%v: %s", err, w.Body.Bytes())
		}
		return env.Data
	}

	// A sign-in, for the answers that carry a session token and a new key.
	if w := do("POST", "/api/auth/request-code", `{"email":"ann@example.com"}`, nil); w.Code != 200 {
		t.Fatalf("request-code: %d %s", w.Code, w.Body)
	}
	srv.Auth.Accounts.WaitForMail()
	verify := do("POST", "/api/auth/verify", `{"email":"ann@example.com","code":"`+mail.code("ann@example.com")+`"}`, nil)
	token, _ := data(verify)["token"].(string)
	if verify.Code != 200 || token == "" {
		t.Fatalf("verify: %d %s", verify.Code, verify.Body)
	}
	bearer := map[string]string{"Authorization": "Bearer " + token}
	newKey := do("POST", "/api/auth/api-key", `{"name":"k"}`, bearer)
	if key, _ := data(newKey)["apiKey"].(string); newKey.Code != 200 || key == "" {
		t.Fatalf("api-key: %d %s", newKey.Code, newKey.Body)
	}

	for _, c := range []struct {
		name   string
		w      *httptest.ResponseRecorder
		status int
		api    bool
	}{
		{"verify (a session token)", verify, 200, true},
		{"new API key (its plain text)", newKey, 200, true},
		{"me", do("GET", "/api/auth/me", "", bearer), 200, true},
		{"health", do("GET", "/api/health", "", nil), 200, true},
		{"live", do("GET", "/api/live", "", nil), 200, true},
		{"not ready", do("GET", "/api/ready", "", nil), 503, true},
		{"bad code", do("POST", "/api/auth/verify", `{"email":"ann@example.com","code":"12"}`, nil), 400, true},
		{"wrong code", do("POST", "/api/auth/verify", `{"email":"ann@example.com","code":"000000"}`, nil), 401, true},
		{"no session", do("GET", "/api/auth/me", "", nil), 401, true},
		{"no key", do("POST", "/api/v1/events", `{}`, nil), 401, true},
		{"bad key", do("POST", "/api/v1/events", `{}`, map[string]string{"x-api-key": "nope"}), 401, true},
		{"a key where a session is needed", do("GET", "/api/users", "", map[string]string{"x-api-key": "evp_bench"}), 403, true},
		{"unknown route", do("GET", "/api/nothing", "", nil), 404, true},
		{"/api itself", do("GET", "/api", "", nil), 404, true},
		{"wrong method", do("PUT", "/api/health", "", nil), 405, true},
		{"CORS preflight", do("OPTIONS", "/api/health", "", map[string]string{"Origin": "https://dash.example.com",
			"Access-Control-Request-Method": "GET"}), 200, true},
		{"dashboard asset", do("GET", "/assets/app-1234.js", "", nil), 200, false},
		{"Prometheus metrics", do("GET", "/metrics", "", nil), 200, false},
	} {
		if c.w.Code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, c.w.Code, c.w.Body, c.status)
		}
		if got := c.w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q, want nosniff", c.name, got)
		}
		cc := c.w.Header().Values("Cache-Control")
		if c.api && (len(cc) != 1 || cc[0] != "no-store") {
			t.Errorf("%s: Cache-Control %q, want no-store", c.name, cc)
		}
		if !c.api && len(cc) > 0 && cc[0] == "no-store" {
			t.Errorf("%s: Cache-Control %q outside /api", c.name, cc)
		}
	}
	if w := do("GET", "/assets/app-1234.js", "", nil); w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("dashboard asset: Cache-Control %q, want its own", w.Header().Get("Cache-Control"))
	}
}
