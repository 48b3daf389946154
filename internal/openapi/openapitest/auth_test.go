package openapitest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/httpapi"
	"github.com/evp-dev/evp/internal/openapi"
	"github.com/evp-dev/evp/internal/openapi/openapitest"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store/sqlitestore"
)

// world is what every account step starts from: an ACTIVE user of each role, a SUSPENDED
// VIEWER, an invited (PENDING_VERIFICATION) OPERATOR and an API key made by the ADMIN.
type world struct {
	admin, operator, viewer, client, suspended, pending accounts.User
	keyPlain                                            string
	key                                                 accounts.APIKey
	code                                                string // a sign-in code a setup asked for
}

func newWorld(t *testing.T, f *fixture) *world {
	t.Helper()
	w := &world{
		admin:    f.acc.user(t, accounts.RoleAdmin),
		operator: f.acc.user(t, accounts.RoleOperator),
		viewer:   f.acc.user(t, accounts.RoleViewer),
		client:   f.acc.user(t, accounts.RoleAPIClient),
	}
	w.suspended = f.acc.addUser(t, "suspended@example.com", accounts.RoleViewer, accounts.StatusSuspended)
	w.pending = f.acc.addUser(t, "pending@example.com", accounts.RoleOperator, accounts.StatusPending)
	var err error
	w.keyPlain, w.key, err = f.acc.svc.CreateKey(context.Background(), w.admin, accounts.NewKey{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// requestCode asks the service for a code for email and returns the code it logged.
func requestCode(t *testing.T, f *fixture, email string) string {
	t.Helper()
	if err := f.acc.svc.RequestCode(context.Background(), email); err != nil {
		t.Fatal(err)
	}
	code := f.acc.codes.code(email)
	if !regexp.MustCompile(`^[0-9]{6}$`).MatchString(code) {
		t.Fatalf("code %q logged for %s", code, email)
	}
	return code
}

// otherCode is a 6-digit code that is not code.
func otherCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1_000_000)
}

// send sends one request, with the session token auth when not empty, and returns the
// status and body.
func send(t *testing.T, f *fixture, method, target, auth, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// exhaust spends the /api/auth/ allowance of the test client's IP (Deps.AuthRateLimit 2),
// with requests to a route other than the one the step then sends.
func exhaust(t *testing.T, f *fixture, _ *world) {
	t.Helper()
	for i := 1; i <= 10; i++ {
		status, b := send(t, f, "GET", "/api/auth/me", "", "")
		if i <= 2 && status != 401 {
			t.Fatalf("request %d within the limit: %d %s", i, status, b)
		}
		if status == 429 {
			return
		}
	}
	t.Fatal("no 429 after 10 requests with a limit of 2 per minute")
}

func limitTwo(_ *fixture, d *httpapi.Deps)    { d.Auth.RateLimit = 2 }
func counterDown(_ *fixture, d *httpapi.Deps) { d.Auth.LimitCounter = failingCounter{} }
func storeDown(_ *testing.T, f *fixture, _ *world) {
	f.acc.store.Close()
}

// Every status the document promises for /api/auth/* and /api/users* is answered by the
// real handlers over a real accounts service and SQLite store, and matches the document;
// the steps also check what each route did.
func TestAccountResponsesMatchDocument(t *testing.T) {
	type step struct {
		name       string
		empty      bool                              // no users or keys (not the world)
		deps       func(f *fixture, d *httpapi.Deps) // changes the server before it is built
		setup      func(t *testing.T, f *fixture, w *world)
		method     string
		path       string // the document's route; also the URL unless target is set
		target     string // the URL; {admin}, {viewer}, {operator}, {suspended}, {key} are ids
		as         string // a role (that user's session), "suspended", "key", "bad key", "bad token", "other secret", "basic"
		header     []string
		body       string // {code} is the setup's code, {other code} another one
		wantStatus int
		wantCode   string
		wantFields []string // VALIDATION_ERROR: the fields details name
		check      func(t *testing.T, f *fixture, w *world, data json.RawMessage)
	}
	const (
		rc    = "/api/auth/request-code"
		vf    = "/api/auth/verify"
		me    = "/api/auth/me"
		mk    = "/api/auth/api-key"
		lk    = "/api/auth/api-keys"
		rk    = "/api/auth/api-keys/{id}"
		users = "/api/users"
		user  = "/api/users/{id}"
	)
	big := `{"email":"` + strings.Repeat("a", 70<<10) + `@example.com","name":"x","role":"VIEWER"}`
	textPlain := []string{"Content-Type", "text/plain"}
	codeFor := func(email string) func(*testing.T, *fixture, *world) {
		return func(t *testing.T, f *fixture, w *world) { w.code = requestCode(t, f, email) }
	}
	noCode := func(email string) func(*testing.T, *fixture, *world, json.RawMessage) {
		return func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
			var ans struct{ Message string }
			if err := json.Unmarshal(d, &ans); err != nil {
				t.Fatalf("%v: %s", err, d)
			}
			if ans.Message != "Verification code sent to "+email {
				t.Errorf("message %q", ans.Message)
			}
			if c := f.acc.codes.code(email); c != "" {
				t.Errorf("a code was issued to %s, who may not sign in", email)
			}
		}
	}
	keyCount := func(want int) func(*testing.T, *fixture, *world, json.RawMessage) {
		return func(t *testing.T, f *fixture, w *world, _ json.RawMessage) {
			keys, err := f.acc.store.ListAPIKeys(context.Background())
			if err != nil || len(keys) != want {
				t.Errorf("%d keys (%v), want %d", len(keys), err, want)
			}
		}
	}
	userIs := func(get func(*world) accounts.User, role accounts.Role, status accounts.Status) func(*testing.T, *fixture, *world, json.RawMessage) {
		return func(t *testing.T, f *fixture, w *world, _ json.RawMessage) {
			u, err := f.acc.store.UserByID(context.Background(), get(w).ID)
			if err != nil || u.Role != role || u.Status != status {
				t.Errorf("user %+v (%v), want %s %s", u, err, role, status)
			}
		}
	}
	decodeUser := func(t *testing.T, d json.RawMessage) accounts.User {
		t.Helper()
		var u accounts.User
		if err := json.Unmarshal(d, &u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	// sessionWorks checks what the user's old token may do now.
	sessionWorks := func(get func(*world) accounts.User, target string, want int) func(*testing.T, *fixture, *world, json.RawMessage) {
		return func(t *testing.T, f *fixture, w *world, _ json.RawMessage) {
			if status, b := send(t, f, "GET", target, f.acc.tokenFor(t, get(w)), ""); status != want {
				t.Errorf("GET %s with the user's session: %d, want %d: %s", target, status, want, b)
			}
		}
	}
	admin := func(w *world) accounts.User { return w.admin }
	viewer := func(w *world) accounts.User { return w.viewer }
	operator := func(w *world) accounts.User { return w.operator }
	suspended := func(w *world) accounts.User { return w.suspended }

	steps := []step{
		// POST /api/auth/request-code
		{name: "request code", method: "POST", path: rc, body: `{"email":"Admin@Example.com"}`, wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				var ans struct{ Message string }
				if err := json.Unmarshal(d, &ans); err != nil {
					t.Fatalf("%v: %s", err, d)
				}
				if ans.Message != "Verification code sent to admin@example.com" || f.acc.codes.code("admin@example.com") == "" {
					t.Errorf("message %q, code %q", ans.Message, f.acc.codes.code("admin@example.com"))
				}
			}},
		{name: "request code gzip", method: "POST", path: rc, header: []string{"Content-Encoding", "gzip"}, body: gz(`{"email":"viewer@example.com"}`), wantStatus: 200},
		{name: "request code unknown email", method: "POST", path: rc, body: `{"email":"nobody@elsewhere.org"}`, wantStatus: 200, check: noCode("nobody@elsewhere.org")},
		{name: "request code suspended user", method: "POST", path: rc, body: `{"email":"suspended@example.com"}`, wantStatus: 200, check: noCode("suspended@example.com")},
		{name: "request code malformed email", method: "POST", path: rc, body: `{"email":"not-an-email"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"email"}},
		{name: "request code display name", method: "POST", path: rc, body: `{"email":"Ada <ada@example.com>"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"email"}},
		{name: "request code no email", method: "POST", path: rc, body: `{}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"email"}},
		{name: "request code email not a string", method: "POST", path: rc, body: `{"email":5}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"email"}},
		{name: "request code malformed JSON", method: "POST", path: rc, body: `{"email":`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "request code not an object", method: "POST", path: rc, body: `["admin@example.com"]`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "request code too large", method: "POST", path: rc, body: big, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "request code text/plain", method: "POST", path: rc, header: textPlain, body: `{"email":"admin@example.com"}`, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "request code too often", method: "POST", path: rc, body: `{"email":"admin@example.com"}`, wantStatus: 429, wantCode: "RATE_LIMITED",
			setup: func(t *testing.T, f *fixture, w *world) {
				for range accounts.MaxCodesInWindow {
					requestCode(t, f, "admin@example.com")
				}
			}},
		{name: "request code rate limited", deps: limitTwo, setup: exhaust, method: "POST", path: rc, body: `{"email":"admin@example.com"}`, wantStatus: 429, wantCode: "RATE_LIMITED"},
		{name: "request code store down", setup: storeDown, method: "POST", path: rc, body: `{"email":"admin@example.com"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "request code rate-limit store down", deps: counterDown, method: "POST", path: rc, body: `{"email":"admin@example.com"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "request code no delivery", method: "POST", path: rc, body: `{"email":"admin@example.com"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE",
			deps: func(f *fixture, d *httpapi.Deps) {
				d.Auth.Accounts = f.acc.service(func(c *accounts.ServiceConfig) { c.DevLogin = false })
			}},

		// POST /api/auth/verify
		{name: "verify", setup: codeFor("admin@example.com"), method: "POST", path: vf, body: `{"email":"admin@example.com","code":"{code}"}`, wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				var s struct {
					Token     string
					ExpiresAt time.Time
					User      struct{ ID, Email, Role string }
				}
				if err := json.Unmarshal(d, &s); err != nil {
					t.Fatalf("%v: %s", err, d)
				}
				if s.User.ID != w.admin.ID || s.User.Email != "admin@example.com" || s.User.Role != "ADMIN" {
					t.Errorf("user %+v", s.User)
				}
				if !s.ExpiresAt.After(time.Now().Add(23*time.Hour)) || !s.ExpiresAt.Before(time.Now().Add(25*time.Hour)) {
					t.Errorf("expiresAt %v, want in 24 h", s.ExpiresAt)
				}
				status, b := send(t, f, "GET", me, s.Token, "")
				var ans struct{ Data accounts.User }
				if err := json.Unmarshal(b, &ans); err != nil {
					t.Fatalf("%v: %s", err, b)
				}
				if status != 200 || ans.Data.ID != w.admin.ID || ans.Data.LastLoginAt == nil {
					t.Errorf("the token does not work: %d %s", status, b)
				}
			}},
		{name: "verify email in another case", setup: codeFor("viewer@example.com"), method: "POST", path: vf, body: `{"email":"Viewer@EXAMPLE.com","code":"{code}"}`, wantStatus: 200},
		{name: "verify first user becomes ADMIN", empty: true, setup: codeFor("first@example.com"), method: "POST", path: vf, body: `{"email":"first@example.com","code":"{code}"}`, wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				if !strings.Contains(string(d), `"role":"ADMIN"`) {
					t.Errorf("first user %s", d)
				}
			}},
		{name: "verify invited user", setup: codeFor("pending@example.com"), method: "POST", path: vf, body: `{"email":"pending@example.com","code":"{code}"}`, wantStatus: 200,
			check: userIs(func(w *world) accounts.User { return w.pending }, accounts.RoleOperator, accounts.StatusActive)},
		{name: "verify wrong code", setup: codeFor("admin@example.com"), method: "POST", path: vf, body: `{"email":"admin@example.com","code":"{other code}"}`, wantStatus: 401, wantCode: "INVALID_CODE"},
		{name: "verify without a code", method: "POST", path: vf, body: `{"email":"admin@example.com","code":"123456"}`, wantStatus: 401, wantCode: "INVALID_CODE"},
		{name: "verify a used code", method: "POST", path: vf, body: `{"email":"admin@example.com","code":"{code}"}`, wantStatus: 401, wantCode: "INVALID_CODE",
			setup: func(t *testing.T, f *fixture, w *world) {
				w.code = requestCode(t, f, "admin@example.com")
				if _, err := f.acc.svc.Verify(context.Background(), "admin@example.com", w.code); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "verify after 5 wrong tries", method: "POST", path: vf, body: `{"email":"admin@example.com","code":"{code}"}`, wantStatus: 401, wantCode: "INVALID_CODE",
			setup: func(t *testing.T, f *fixture, w *world) {
				w.code = requestCode(t, f, "admin@example.com")
				for range accounts.MaxCodeAttempts {
					if _, err := f.acc.svc.Verify(context.Background(), "admin@example.com", otherCode(w.code)); !errors.Is(err, accounts.ErrInvalidCode) {
						t.Fatal(err)
					}
				}
			}},
		{name: "verify suspended meanwhile", method: "POST", path: vf, body: `{"email":"viewer@example.com","code":"{code}"}`, wantStatus: 403, wantCode: "FORBIDDEN",
			setup: func(t *testing.T, f *fixture, w *world) {
				w.code = requestCode(t, f, "viewer@example.com")
				st := accounts.StatusSuspended
				if _, err := f.acc.store.UpdateUser(context.Background(), w.viewer.ID, accounts.UserChange{Status: &st}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "verify code of 5 digits", method: "POST", path: vf, body: `{"email":"admin@example.com","code":"12345"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"code"}},
		{name: "verify code a number", method: "POST", path: vf, body: `{"email":"admin@example.com","code":123456}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"code"}},
		{name: "verify malformed email", method: "POST", path: vf, body: `{"email":"admin","code":"123456"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"email"}},
		{name: "verify malformed JSON", method: "POST", path: vf, body: `{"email":"admin@example.com","code":`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "verify too large", method: "POST", path: vf, body: big, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "verify text/plain", method: "POST", path: vf, header: textPlain, body: `{"email":"admin@example.com","code":"123456"}`, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "verify rate limited", deps: limitTwo, setup: exhaust, method: "POST", path: vf, body: `{"email":"admin@example.com","code":"123456"}`, wantStatus: 429, wantCode: "RATE_LIMITED"},
		{name: "verify store down", setup: storeDown, method: "POST", path: vf, body: `{"email":"admin@example.com","code":"123456"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		// GET /api/auth/me
		{name: "me", method: "GET", path: me, as: "ADMIN", wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				u := decodeUser(t, d)
				if u.ID != w.admin.ID || u.Email != "admin@example.com" || u.Role != accounts.RoleAdmin || u.Status != accounts.StatusActive || !u.CreatedAt.Equal(w.admin.CreatedAt) {
					t.Errorf("me = %+v, want %+v", u, w.admin)
				}
			}},
		{name: "me as api client", method: "GET", path: me, as: "API_CLIENT", wantStatus: 200},
		{name: "me without a session", method: "GET", path: me, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "me with an api key", method: "GET", path: me, as: "key", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "me basic auth", method: "GET", path: me, as: "basic", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "me bad token", method: "GET", path: me, as: "bad token", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "me token of another secret", method: "GET", path: me, as: "other secret", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "me suspended", method: "GET", path: me, as: "suspended", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "me rate limited", deps: limitTwo, setup: exhaust, method: "GET", path: me, as: "ADMIN", wantStatus: 429, wantCode: "RATE_LIMITED"},
		{name: "me store down", setup: storeDown, method: "GET", path: me, as: "ADMIN", wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "me rate-limit store down", deps: counterDown, method: "GET", path: me, as: "ADMIN", wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		// POST /api/auth/api-key
		{name: "create key", method: "POST", path: mk, as: "ADMIN", body: `{"name":"  Production API Key "}`, wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				var ans struct {
					APIKey  string
					Message string
					Key     accounts.APIKey
				}
				if err := json.Unmarshal(d, &ans); err != nil {
					t.Fatalf("%v: %s", err, d)
				}
				k := ans.Key
				if !strings.HasPrefix(ans.APIKey, "evp_") || len(ans.APIKey) < 40 || k.Name != "Production API Key" || k.OwnerID != w.admin.ID ||
					k.Prefix != ans.APIKey[:8] || k.Last4 != ans.APIKey[len(ans.APIKey)-4:] || k.ExpiresAt != nil || k.RevokedAt != nil {
					t.Errorf("answer %s", d)
				}
				got, err := accounts.NewKeyAuth(f.acc.store, time.Minute).Authenticate(context.Background(), ans.APIKey)
				if err != nil || got.ID != k.ID {
					t.Errorf("the new key does not authenticate: %+v %v", got, err)
				}
			}},
		{name: "create expiring key", method: "POST", path: mk, as: "OPERATOR", body: `{"name":"ci","expiresInDays":30}`, wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				var ans struct{ Key accounts.APIKey }
				if err := json.Unmarshal(d, &ans); err != nil {
					t.Fatalf("%v: %s", err, d)
				}
				if e := ans.Key.ExpiresAt; e == nil || e.Before(time.Now().Add(29*24*time.Hour)) || e.After(time.Now().Add(31*24*time.Hour)) || ans.Key.OwnerID != w.operator.ID {
					t.Errorf("key %+v, want one expiring in 30 days owned by the operator", ans.Key)
				}
			}},
		{name: "create key expiresInDays null", method: "POST", path: mk, as: "ADMIN", body: `{"name":"ci","expiresInDays":null}`, wantStatus: 200, check: keyCount(2)},
		{name: "create key without name", method: "POST", path: mk, as: "ADMIN", body: `{}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"name"}, check: keyCount(1)},
		{name: "create key blank name", method: "POST", path: mk, as: "ADMIN", body: `{"name":"   "}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"name"}},
		{name: "create key long name", method: "POST", path: mk, as: "ADMIN", body: `{"name":"` + strings.Repeat("n", 101) + `"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"name"}},
		{name: "create key 0 days", method: "POST", path: mk, as: "ADMIN", body: `{"name":"ci","expiresInDays":0}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"expiresInDays"}},
		{name: "create key 3651 days", method: "POST", path: mk, as: "ADMIN", body: `{"name":"ci","expiresInDays":3651}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"expiresInDays"}},
		{name: "create key days as text", method: "POST", path: mk, as: "ADMIN", body: `{"name":"ci","expiresInDays":"30"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"expiresInDays"}},
		{name: "create key malformed JSON", method: "POST", path: mk, as: "ADMIN", body: `{"name":`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "create key without a session", method: "POST", path: mk, body: `{"name":"ci"}`, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "create key bad api key", method: "POST", path: mk, as: "bad key", body: `{"name":"ci"}`, wantStatus: 401, wantCode: "INVALID_API_KEY"},
		{name: "create key suspended", method: "POST", path: mk, as: "suspended", body: `{"name":"ci"}`, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "create key as viewer", method: "POST", path: mk, as: "VIEWER", body: `{"name":"ci"}`, wantStatus: 403, wantCode: "FORBIDDEN", check: keyCount(1)},
		{name: "create key as api client", method: "POST", path: mk, as: "API_CLIENT", body: `{"name":"ci"}`, wantStatus: 403, wantCode: "FORBIDDEN", check: keyCount(1)},
		{name: "create key with an api key", method: "POST", path: mk, as: "key", body: `{"name":"ci"}`, wantStatus: 403, wantCode: "FORBIDDEN", check: keyCount(1)},
		{name: "create key too large", method: "POST", path: mk, as: "ADMIN", body: big, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "create key text/plain", method: "POST", path: mk, as: "ADMIN", header: textPlain, body: `{"name":"ci"}`, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "create key rate limited", deps: limitTwo, setup: exhaust, method: "POST", path: mk, as: "ADMIN", body: `{"name":"ci"}`, wantStatus: 429, wantCode: "RATE_LIMITED", check: keyCount(1)},
		{name: "create key store fails", setup: func(t *testing.T, f *fixture, w *world) { f.acc.repo.failKeys.Store(true) },
			method: "POST", path: mk, as: "ADMIN", body: `{"name":"ci"}`, wantStatus: 500, wantCode: "API_KEY_GENERATION_ERROR", check: keyCount(1)},
		{name: "create key store down", setup: storeDown, method: "POST", path: mk, as: "ADMIN", body: `{"name":"ci"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		// GET /api/auth/api-keys
		{name: "list keys", method: "GET", path: lk, as: "OPERATOR", wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				var keys []accounts.APIKey
				if err := json.Unmarshal(d, &keys); err != nil {
					t.Fatalf("%v: %s", err, d)
				}
				if len(keys) != 1 || keys[0].ID != w.key.ID || keys[0].OwnerID != w.admin.ID || keys[0].Name != "ci" {
					t.Errorf("keys %s", d)
				}
				if strings.Contains(string(d), w.keyPlain[len(w.keyPlain)-12:]) {
					t.Error("the listing shows the key's secret")
				}
			}},
		{name: "list keys without a session", method: "GET", path: lk, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "list keys as viewer", method: "GET", path: lk, as: "VIEWER", wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "list keys with an api key", method: "GET", path: lk, as: "key", wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "list keys rate limited", deps: limitTwo, setup: exhaust, method: "GET", path: lk, as: "ADMIN", wantStatus: 429, wantCode: "RATE_LIMITED"},
		{name: "list keys store down", setup: storeDown, method: "GET", path: lk, as: "ADMIN", wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		// DELETE /api/auth/api-keys/{id}
		{name: "revoke key", method: "DELETE", path: rk, target: lk + "/{key}", as: "OPERATOR", wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				var ans struct {
					ID        string
					RevokedAt time.Time
				}
				if err := json.Unmarshal(d, &ans); err != nil {
					t.Fatalf("%v: %s", err, d)
				}
				if ans.ID != w.key.ID || ans.RevokedAt.IsZero() {
					t.Errorf("answer %s", d)
				}
				if _, err := accounts.NewKeyAuth(f.acc.store, time.Minute).Authenticate(context.Background(), w.keyPlain); !errors.Is(err, accounts.ErrInvalidKey) {
					t.Errorf("the revoked key still authenticates: %v", err)
				}
				keys, _ := f.acc.store.ListAPIKeys(context.Background())
				if len(keys) != 1 || keys[0].RevokedAt == nil {
					t.Errorf("listed %+v", keys)
				}
			}},
		{name: "revoke key twice", method: "DELETE", path: rk, target: lk + "/{key}", as: "ADMIN", wantStatus: 200,
			setup: func(t *testing.T, f *fixture, w *world) {
				if _, err := f.acc.svc.RevokeKey(context.Background(), w.key.ID); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "revoke absent key", method: "DELETE", path: rk, target: lk + "/key_nope", as: "ADMIN", wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "revoke key without a session", method: "DELETE", path: rk, target: lk + "/{key}", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "revoke key as viewer", method: "DELETE", path: rk, target: lk + "/{key}", as: "VIEWER", wantStatus: 403, wantCode: "FORBIDDEN",
			check: func(t *testing.T, f *fixture, w *world, _ json.RawMessage) {
				if _, err := accounts.NewKeyAuth(f.acc.store, time.Minute).Authenticate(context.Background(), w.keyPlain); err != nil {
					t.Errorf("the key was revoked: %v", err)
				}
			}},
		{name: "revoke key rate limited", deps: limitTwo, setup: exhaust, method: "DELETE", path: rk, target: lk + "/{key}", as: "ADMIN", wantStatus: 429, wantCode: "RATE_LIMITED"},
		{name: "revoke key store down", setup: storeDown, method: "DELETE", path: rk, target: lk + "/{key}", as: "ADMIN", wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		// GET /api/users
		{name: "list users", method: "GET", path: users, as: "ADMIN", wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				var list []accounts.User
				if err := json.Unmarshal(d, &list); err != nil {
					t.Fatalf("%v: %s", err, d)
				}
				var emails []string
				for _, u := range list {
					emails = append(emails, u.Email+" "+string(u.Role)+" "+string(u.Status))
				}
				want := []string{"admin@example.com ADMIN ACTIVE", "operator@example.com OPERATOR ACTIVE", "viewer@example.com VIEWER ACTIVE",
					"api-client@example.com API_CLIENT ACTIVE", "suspended@example.com VIEWER SUSPENDED", "pending@example.com OPERATOR PENDING_VERIFICATION"}
				if !slices.Equal(emails, want) {
					t.Errorf("users %q, want (oldest first) %q", emails, want)
				}
			}},
		{name: "list users without a session", method: "GET", path: users, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "list users as operator", method: "GET", path: users, as: "OPERATOR", wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "list users store down", setup: storeDown, method: "GET", path: users, as: "ADMIN", wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		// POST /api/users
		{name: "invite", method: "POST", path: users, as: "ADMIN", body: `{"email":"New.User@Example.com","role":"OPERATOR"}`, wantStatus: 201,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				u := decodeUser(t, d)
				if u.Email != "new.user@example.com" || u.Role != accounts.RoleOperator || u.Status != accounts.StatusPending || u.InvitedBy != w.admin.ID || u.LastLoginAt != nil {
					t.Errorf("invited %+v", u)
				}
				requestCode(t, f, "new.user@example.com") // an invited user may sign in
			}},
		{name: "invite without role", method: "POST", path: users, as: "ADMIN", body: `{"email":"new@example.com"}`, wantStatus: 201,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				if u := decodeUser(t, d); u.Role != accounts.RoleViewer {
					t.Errorf("invited %+v, want a VIEWER", u)
				}
			}},
		{name: "invite malformed email", method: "POST", path: users, as: "ADMIN", body: `{"email":"new","role":"VIEWER"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"email"}},
		{name: "invite unknown role", method: "POST", path: users, as: "ADMIN", body: `{"email":"new@example.com","role":"ROOT"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"role"}},
		{name: "invite role not a string", method: "POST", path: users, as: "ADMIN", body: `{"email":"new@example.com","role":1}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"role"}},
		{name: "invite malformed JSON", method: "POST", path: users, as: "ADMIN", body: `{"email"`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "invite without a session", method: "POST", path: users, body: `{"email":"new@example.com"}`, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "invite as operator", method: "POST", path: users, as: "OPERATOR", body: `{"email":"new@example.com"}`, wantStatus: 403, wantCode: "FORBIDDEN",
			check: func(t *testing.T, f *fixture, w *world, _ json.RawMessage) {
				if _, err := f.acc.store.UserByEmail(context.Background(), "new@example.com"); !errors.Is(err, accounts.ErrUserNotFound) {
					t.Errorf("the user was made: %v", err)
				}
			}},
		{name: "invite existing email", method: "POST", path: users, as: "ADMIN", body: `{"email":"VIEWER@example.com","role":"ADMIN"}`, wantStatus: 409, wantCode: "CONFLICT",
			check: userIs(viewer, accounts.RoleViewer, accounts.StatusActive)},
		{name: "invite too large", method: "POST", path: users, as: "ADMIN", body: big, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "invite text/plain", method: "POST", path: users, as: "ADMIN", header: textPlain, body: `{"email":"new@example.com"}`, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "invite store down", setup: storeDown, method: "POST", path: users, as: "ADMIN", body: `{"email":"new@example.com"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		// PATCH /api/users/{id}
		{name: "change role", method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", body: `{"role":"OPERATOR"}`, wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				if u := decodeUser(t, d); u.ID != w.viewer.ID || u.Role != accounts.RoleOperator || u.Status != accounts.StatusActive {
					t.Errorf("changed %+v", u)
				}
				// The user's session, issued as VIEWER, has the new role's rights at once.
				sessionWorks(viewer, lk, 200)(t, f, w, nil)
			}},
		{name: "suspend", method: "PATCH", path: user, target: users + "/{operator}", as: "ADMIN", body: `{"status":"SUSPENDED"}`, wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				userIs(operator, accounts.RoleOperator, accounts.StatusSuspended)(t, f, w, d)
				sessionWorks(operator, me, 401)(t, f, w, d)
			}},
		{name: "reactivate", method: "PATCH", path: user, target: users + "/{suspended}", as: "ADMIN", body: `{"status":"ACTIVE","role":"OPERATOR"}`, wantStatus: 200,
			check: func(t *testing.T, f *fixture, w *world, d json.RawMessage) {
				userIs(suspended, accounts.RoleOperator, accounts.StatusActive)(t, f, w, d)
				sessionWorks(suspended, lk, 200)(t, f, w, d)
			}},
		{name: "demote one of two admins", method: "PATCH", path: user, target: users + "/{admin}", as: "ADMIN", body: `{"role":"VIEWER"}`, wantStatus: 200,
			setup: func(t *testing.T, f *fixture, w *world) {
				f.acc.addUser(t, "admin2@example.com", accounts.RoleAdmin, accounts.StatusActive)
			},
			check: userIs(admin, accounts.RoleViewer, accounts.StatusActive)},
		{name: "change nothing", method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", body: `{}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"role", "status"}},
		{name: "change to unknown role", method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", body: `{"role":"ROOT"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"role"},
			check: userIs(viewer, accounts.RoleViewer, accounts.StatusActive)},
		{name: "change to pending", method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", body: `{"status":"PENDING_VERIFICATION"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"status"}},
		{name: "change status not a string", method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", body: `{"status":true}`, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantFields: []string{"status"}},
		{name: "change malformed JSON", method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", body: `{`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "change without a session", method: "PATCH", path: user, target: users + "/{viewer}", body: `{"role":"ADMIN"}`, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "change as operator", method: "PATCH", path: user, target: users + "/{operator}", as: "OPERATOR", body: `{"role":"ADMIN"}`, wantStatus: 403, wantCode: "FORBIDDEN",
			check: userIs(operator, accounts.RoleOperator, accounts.StatusActive)},
		{name: "change absent user", method: "PATCH", path: user, target: users + "/usr_nope", as: "ADMIN", body: `{"role":"VIEWER"}`, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "demote the last admin", method: "PATCH", path: user, target: users + "/{admin}", as: "ADMIN", body: `{"role":"OPERATOR"}`, wantStatus: 409, wantCode: "LAST_ADMIN",
			check: userIs(admin, accounts.RoleAdmin, accounts.StatusActive)},
		{name: "suspend the last admin", method: "PATCH", path: user, target: users + "/{admin}", as: "ADMIN", body: `{"status":"SUSPENDED"}`, wantStatus: 409, wantCode: "LAST_ADMIN",
			setup: func(t *testing.T, f *fixture, w *world) { // a suspended ADMIN does not count
				f.acc.addUser(t, "admin2@example.com", accounts.RoleAdmin, accounts.StatusSuspended)
			},
			check: userIs(admin, accounts.RoleAdmin, accounts.StatusActive)},
		{name: "change too large", method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", body: big, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "change text/plain", method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", header: textPlain, body: `{"role":"OPERATOR"}`, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "change store down", setup: storeDown, method: "PATCH", path: user, target: users + "/{viewer}", as: "ADMIN", body: `{"role":"OPERATOR"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
	}
	covered := map[string]bool{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var opts []func(*fixture, *httpapi.Deps)
			if s.deps != nil {
				opts = append(opts, s.deps)
			}
			f := newFixture(t, opts...)
			w := &world{}
			if !s.empty {
				w = newWorld(t, f)
			}
			// Credentials are made before the setup, which may take the store down.
			header := slices.Clone(s.header)
			switch s.as {
			case "":
			case "key":
				header = append(header, "x-api-key", "evp_good")
			case "bad key":
				header = append(header, "x-api-key", "evp_bad")
			case "bad token":
				header = append(header, "Authorization", "Bearer not.a.token")
			case "basic":
				header = append(header, "Authorization", "Basic YWRtaW46c2VjcmV0")
			case "other secret":
				other, err := accounts.NewTokens([]byte(strings.Repeat("x", 32)), time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				tok, _, _ := other.Issue(w.admin)
				header = append(header, "Authorization", "Bearer "+tok)
			case "suspended":
				header = append(header, "Authorization", "Bearer "+f.acc.tokenFor(t, w.suspended))
			default:
				header = append(header, "Authorization", "Bearer "+f.acc.token(t, accounts.Role(s.as)))
			}
			if s.setup != nil {
				s.setup(t, f, w)
			}
			target := s.path
			if s.target != "" {
				target = s.target
			}
			target = strings.NewReplacer("{admin}", w.admin.ID, "{viewer}", w.viewer.ID, "{operator}", w.operator.ID,
				"{suspended}", w.suspended.ID, "{key}", w.key.ID).Replace(target)
			body := s.body
			if w.code != "" {
				body = strings.NewReplacer("{code}", w.code, "{other code}", otherCode(w.code)).Replace(body)
			}
			req := httptest.NewRequest(s.method, target, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			rec := httptest.NewRecorder()
			f.srv.Handler().ServeHTTP(rec, req)
			res := rec.Result()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != s.wantStatus {
				t.Fatalf("status %d, want %d: %.500s", res.StatusCode, s.wantStatus, b)
			}
			var env struct {
				Data  json.RawMessage `json:"data"`
				Error struct {
					Code    string `json:"code"`
					Details []struct {
						Path string `json:"path"`
					} `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			if env.Error.Code != s.wantCode {
				t.Fatalf("code %q, want %q: %s", env.Error.Code, s.wantCode, b)
			}
			var fields []string
			for _, d := range env.Error.Details {
				fields = append(fields, d.Path)
			}
			if s.wantCode == "VALIDATION_ERROR" && !slices.Equal(fields, s.wantFields) {
				t.Errorf("details name %q, want %q: %s", fields, s.wantFields, b)
			}
			if err := openapitest.ValidateResponse(s.method, s.path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
				t.Errorf("%v\nbody: %.2000s", err, b)
			}
			if err := openapitest.ValidateHeaders(s.method, s.path, res.StatusCode, res.Header); err != nil {
				t.Error(err)
			}
			if res.StatusCode == 429 || res.StatusCode == 503 {
				if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 900 {
					t.Errorf("Retry-After %q", res.Header.Get("Retry-After"))
				}
			}
			if s.check != nil {
				s.check(t, f, w, env.Data)
			}
			covered[s.method+" "+s.path+" "+itoa(res.StatusCode)] = true
		})
	}
	// Every status documented for the account routes was answered above; a 500 only where a
	// handler answers one itself (the others come from the panic recovery).
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range doc.Paths {
		if !strings.HasPrefix(path, "/api/auth/") && !strings.HasPrefix(path, "/api/users") {
			continue
		}
		for method, raw := range item {
			var op struct {
				Responses map[string]any `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			for status := range op.Responses {
				name := strings.ToUpper(method) + " " + path + " " + status
				n++
				if status == "500" && name != "POST "+mk+" 500" {
					continue
				}
				if !covered[name] {
					t.Errorf("%s is documented but no step provoked it", name)
				}
			}
		}
	}
	if n != 67 {
		t.Errorf("%d documented account responses, want 67", n)
	}
}

// The access policy as a table: for every guarded route and every kind of caller, whether
// the route answers (2xx), refuses (403) or asks for credentials (401). The columns are: no
// credentials, an API key, a session of ADMIN, OPERATOR, VIEWER, API_CLIENT, and no
// credentials with EVP_ANALYTICS_PUBLIC=true.
func TestRolePolicy(t *testing.T) {
	callers := []string{"none", "key", "ingest key", "ADMIN", "OPERATOR", "VIEWER", "API_CLIENT", "public"}
	batch := `{"events":[` + goodEvent + `]}`
	policy := []struct{ row, body string }{
		// method route                           none  key  ingest  ADMIN  OPERATOR  VIEWER  API_CLIENT  public
		{"POST   /api/v1/events                   401   2xx  2xx     2xx    2xx       403     2xx         401", goodEvent},
		{"POST   /api/v1/events/batch             401   2xx  2xx     2xx    2xx       403     2xx         401", batch},
		{"GET    /api/v1/events/stats             401   2xx  403     2xx    2xx       403     2xx         401", ""},
		{"POST   /api/v1/events/import            401   2xx  403     2xx    2xx       403     403         401", importLine},
		{"GET    /api/metrics                     401   2xx  403     2xx    2xx       2xx     403         2xx", ""},
		{"GET    /api/metrics/ingestion           401   2xx  403     2xx    2xx       2xx     403         2xx", ""},
		{"GET    /api/metrics/history             401   2xx  403     2xx    2xx       2xx     403         2xx", ""},
		{"GET    /api/metrics/stream              401   2xx  403     2xx    2xx       2xx     403         2xx", ""},
		{"GET    /api/v1/analytics/metrics        401   2xx  403     2xx    2xx       2xx     403         2xx", ""},
		{"GET    /api/v1/events                   401   2xx  403     2xx    2xx       2xx     403         401", ""},
		{"GET    /api/v1/events/evt_e1            401   2xx  403     2xx    2xx       2xx     403         401", ""},
		{"GET    /api/v1/events/export            401   2xx  403     2xx    2xx       2xx     403         401", ""},
		{"GET    /api/v1/events/live?timeRange=x  401   400  403     400    400       400     403         401", ""},
		{"DELETE /api/v1/users/u1/events          401   403  403     2xx    403       403     403         401", ""},
		{"GET    /api/v1/dead-letters             401   403  403     2xx    2xx       403     403         401", ""},
		{"GET    /api/v1/dead-letters/1           401   403  403     2xx    2xx       403     403         401", ""},
		{"POST   /api/v1/dead-letters/1/replay    401   403  403     2xx    2xx       403     403         401", ""},
		{"POST   /api/v1/dead-letters/replay      401   403  403     2xx    2xx       403     403         401", ""},
		{"DELETE /api/v1/dead-letters/1           401   403  403     2xx    2xx       403     403         401", ""},
		{"GET    /api/auth/me                     401   401  401     2xx    2xx       2xx     2xx         401", ""},
		{"POST   /api/auth/api-key                401   403  403     2xx    2xx       403     403         401", `{"name":"ci"}`},
		{"GET    /api/auth/api-keys               401   403  403     2xx    2xx       403     403         401", ""},
		{"DELETE /api/auth/api-keys/{key}         401   403  403     2xx    2xx       403     403         401", ""},
		{"GET    /api/users                       401   403  403     2xx    403       403     403         401", ""},
		{"POST   /api/users                       401   403  403     2xx    403       403     403         401", `{"email":"new@example.com"}`},
		{"PATCH  /api/users/{viewer}              401   403  403     2xx    403       403     403         401", `{"role":"OPERATOR"}`},
	}
	// Every route that takes credentials is in the table.
	var inTable []string
	for _, p := range policy {
		cols := strings.Fields(p.row)
		inTable = append(inTable, cols[0]+" "+cols[1])
	}
	for _, op := range openapitest.Paths() {
		method, path, _ := strings.Cut(op, " ")
		if path == "/api/auth/request-code" || path == "/api/auth/verify" || path == "/metrics" || path == "/docs" || path == "/openapi.json" ||
			path == "/api/health" || path == "/api/ready" || path == "/api/live" ||
			path == "/v1/{call}" || !strings.HasPrefix(path, "/api/") && path != "/metrics" { // SDK protocols: a key, not a role; TestServerResponsesMatchDocument covers them
			continue
		}
		path = strings.NewReplacer("/events/{eventId}", "/events/evt_e1", "/users/{userId}/events", "/users/u1/events", "/dead-letters/{id}", "/dead-letters/1", "/api-keys/{id}", "/api-keys/{key}", "/users/{id}", "/users/{viewer}").Replace(path)
		if !slices.Contains(inTable, method+" "+path) && !slices.Contains(inTable, method+" "+path+"?timeRange=x") {
			t.Errorf("%s is not in the policy table", op)
		}
	}
	for _, p := range policy {
		cols := strings.Fields(p.row)
		method, target, want := cols[0], cols[1], cols[2:]
		if len(want) != len(callers) {
			t.Fatalf("%s %s: %d columns", method, target, len(want))
		}
		for i, caller := range callers {
			t.Run(method+" "+target+" "+caller, func(t *testing.T) {
				f := newFixture(t, func(_ *fixture, d *httpapi.Deps) { d.Auth.AnalyticsPublic = caller == "public" })
				if strings.Contains(target, "/dead-letters") {
					st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitedb.SyncNormal)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { st.Close() })
					f.dl.Store = st
					addDeadLetters(t, st, 1)
				}
				if strings.HasPrefix(target, "/api/v1/events") && method == "GET" && target != "/api/v1/events/stats" || strings.HasPrefix(target, "/api/v1/users/") {
					st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitedb.SyncNormal)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { st.Close() })
					if _, _, err := st.InsertBatch(context.Background(), explorerEvents(), time.Now()); err != nil {
						t.Fatal(err)
					}
					f.ev.EventReader, f.fg.Forgetter = st, st
				}
				w := newWorld(t, f)
				url := strings.NewReplacer("{key}", w.key.ID, "{viewer}", w.viewer.ID).Replace(target)
				req := httptest.NewRequest(method, url, strings.NewReader(p.body))
				if p.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				if strings.HasSuffix(target, "/import") {
					req.Header.Set("Content-Type", "application/x-ndjson")
				}
				switch caller {
				case "none", "public":
				case "key":
					req.Header.Set("x-api-key", "evp_good")
				case "ingest key":
					req.Header.Set("x-api-key", "evp_ingest")
				default:
					req.Header.Set("Authorization", "Bearer "+f.acc.token(t, accounts.Role(caller)))
				}
				rec := httptest.NewRecorder()
				f.srv.Handler().ServeHTTP(rec, req)
				got := strconv.Itoa(rec.Code)
				if rec.Code >= 200 && rec.Code < 300 {
					got = "2xx"
				}
				if got != want[i] {
					t.Errorf("%s %s as %s: %d, want %s: %.300s", method, target, caller, rec.Code, want[i], rec.Body.Bytes())
				}
				// The answer is one the document promises for the route.
				route := strings.NewReplacer("?timeRange=x", "", "/events/evt_e1", "/events/{eventId}", "/users/u1/events", "/users/{userId}/events", "/dead-letters/1", "/dead-letters/{id}", "/api-keys/{key}", "/api-keys/{id}", "/users/{viewer}", "/users/{id}").Replace(target)
				if err := openapitest.ValidateResponse(method, route, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()); err != nil {
					t.Error(err)
				}
			})
		}
	}
}
