package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
)

// codeMail keeps the last sign-in code sent to each email.
type codeMail struct {
	mu    sync.Mutex
	codes map[string]string
}

func (m *codeMail) SendCode(_ context.Context, to, code string, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.codes[to] = code
	return nil
}

func (m *codeMail) code(to string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.codes[to]
}

// accountsServer is a server with the sign-in routes over a real SQLite account store;
// codes are "mailed" to the codeMail returned.
func accountsServer(t *testing.T, d Deps) (*Server, *codeMail) {
	t.Helper()
	st, err := accounts.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens, err := accounts.NewTokens([]byte(strings.Repeat("s", accounts.MinSecretLen)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m := &codeMail{codes: map[string]string{}}
	if d.Serving.Log == nil {
		d.Serving.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.Auth.Keys == nil {
		d.Auth.Keys = staticKeys{}
	}
	svc := accounts.NewService(accounts.ServiceConfig{Repo: st, Tokens: tokens, Mailer: m, CodeKey: []byte("code key"), KeyPrefix: "evp_", Log: d.Serving.Log})
	t.Cleanup(svc.WaitForMail)
	d.Auth.Accounts = svc
	return New(d), m
}

// errorCode returns the code of an error answer.
func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("answer %d is not a JSON error: %s", w.Code, w.Body)
	}
	return env.Error.Code
}

// TestAuthLimitKeysOnTheRealClient sends, for each case, limit+1 requests to a limited
// /api/auth route from one real client while the headers a client can forge change on
// every request: the first limit are answered (401, no session), the next is 429, and
// another real client is still answered.
func TestAuthLimitKeysOnTheRealClient(t *testing.T) {
	const limit = 5
	for _, c := range []struct {
		name    string
		trust   bool
		proxies []netip.Prefix
		// request i from the client under test, and from another client
		req   func(r *http.Request, i int)
		other func(r *http.Request)
	}{
		{"True-Client-IP and X-Real-IP rotate behind a trusted proxy", true, nil,
			func(r *http.Request, i int) {
				r.RemoteAddr = "10.0.0.1:4000"
				r.Header.Set("X-Forwarded-For", "198.51.100.7")
				r.Header.Set("True-Client-IP", fmt.Sprintf("192.0.2.%d", i))
				r.Header.Set("X-Real-IP", fmt.Sprintf("192.0.3.%d", i))
			},
			func(r *http.Request) { r.RemoteAddr = "10.0.0.1:4000"; r.Header.Set("X-Forwarded-For", "198.51.100.8") }},
		{"a forged X-Forwarded-For the proxy appended to", true, nil,
			func(r *http.Request, i int) {
				r.RemoteAddr = "10.0.0.1:4000"
				r.Header.Set("X-Forwarded-For", fmt.Sprintf("spoofed-%d, 192.0.2.%d, 198.51.100.7", i, i))
			},
			func(r *http.Request) {
				r.RemoteAddr = "10.0.0.1:4000"
				r.Header.Set("X-Forwarded-For", "198.51.100.7, 198.51.100.8")
			}},
		{"a forged X-Forwarded-For header before the proxy's", true, nil,
			func(r *http.Request, i int) {
				r.RemoteAddr = "127.0.0.1:4000"
				r.Header.Add("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
				r.Header.Add("X-Forwarded-For", "198.51.100.7, 10.1.2.3")
			},
			func(r *http.Request) {
				r.RemoteAddr = "127.0.0.1:4000"
				r.Header.Set("X-Forwarded-For", "198.51.100.8")
			}},
		{"garbage in X-Forwarded-For", true, nil,
			func(r *http.Request, i int) {
				r.RemoteAddr = "10.0.0.1:4000"
				r.Header.Set("X-Forwarded-For", fmt.Sprintf("garbage-%d, 198.51.100.7", i))
			},
			func(r *http.Request) { r.RemoteAddr = "10.0.0.1:4000"; r.Header.Set("X-Forwarded-For", "198.51.100.8") }},
		{"an untrusted peer's X-Forwarded-For", true, nil,
			func(r *http.Request, i int) {
				r.RemoteAddr = "203.0.113.5:4000"
				r.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
			},
			func(r *http.Request) { r.RemoteAddr = "203.0.113.6:4000" }},
		{"a peer outside EVP_TRUSTED_PROXIES", true, []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")},
			func(r *http.Request, i int) {
				r.RemoteAddr = "10.0.0.1:4000"
				r.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
			},
			func(r *http.Request) {
				r.RemoteAddr = "192.0.2.10:4000"
				r.Header.Set("X-Forwarded-For", "198.51.100.1")
			}},
		{"IPv6 clients rotating within their /64", true, nil,
			func(r *http.Request, i int) {
				r.RemoteAddr = "[fd00::1]:4000"
				r.Header.Set("X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x, 2001:db8:1:2:%x::9", i, i+1))
			},
			func(r *http.Request) {
				r.RemoteAddr = "[fd00::1]:4000"
				r.Header.Set("X-Forwarded-For", "2001:db8:1:3::1")
			}},
		{"no proxy trusted", false, nil,
			func(r *http.Request, i int) {
				r.RemoteAddr = "10.0.0.1:4000"
				r.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
				r.Header.Set("True-Client-IP", fmt.Sprintf("192.0.2.%d", i))
			},
			func(r *http.Request) { r.RemoteAddr = "10.0.0.2:4000" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := accountsServer(t, Deps{Auth: AuthDeps{RateLimit: limit, TrustProxy: c.trust, TrustedProxies: c.proxies}})
			h := srv.Handler()
			get := func(set func(*http.Request)) *httptest.ResponseRecorder {
				r := httptest.NewRequest("GET", "/api/auth/me", nil)
				set(r)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w
			}
			for i := range limit {
				if w := get(func(r *http.Request) { c.req(r, i) }); w.Code != http.StatusUnauthorized {
					t.Fatalf("request %d of %d: %d %s, want 401", i+1, limit, w.Code, w.Body)
				}
			}
			w := get(func(r *http.Request) { c.req(r, limit) })
			if w.Code != http.StatusTooManyRequests || errorCode(t, w) != "RATE_LIMITED" || w.Header().Get("Retry-After") == "" {
				t.Fatalf("request %d: %d %s (Retry-After %q), want 429 RATE_LIMITED with Retry-After",
					limit+1, w.Code, w.Body, w.Header().Get("Retry-After"))
			}
			if w := get(c.other); w.Code != http.StatusUnauthorized {
				t.Fatalf("another client: %d %s, want 401 (its own limit)", w.Code, w.Body)
			}
		})
	}
}
