package app

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/evp-dev/evp/internal/testutil"
)

// syncBuffer is a log sink the test reads while evp writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lastCode returns the newest sign-in code evp logged for email ("" if none).
func (in *instance) lastCode(email string) string {
	re := regexp.MustCompile(`msg="sign-in code" email=` + regexp.QuoteMeta(email) + ` code=([0-9]{6})`)
	m := re.FindAllStringSubmatch(in.logs.String(), -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

func noKey() map[string]string { return map[string]string{"x-api-key": ""} }

func bearer(tok string) map[string]string {
	return map[string]string{"x-api-key": "", "Authorization": "Bearer " + tok}
}

// signIn runs request-code and verify for email and returns the session token and role.
func (in *instance) signIn(email string) (string, string) {
	in.t.Helper()
	r := in.do("POST", "/api/auth/request-code", mustJSON(in.t, map[string]string{"email": email}), noKey())
	if r.status != 200 {
		in.t.Fatalf("request-code %s: %d %s", email, r.status, r.raw)
	}
	code := in.lastCode(strings.ToLower(email))
	if code == "" {
		in.t.Fatalf("no sign-in code for %s in the log:\n%s", email, in.logs.String())
	}
	r = in.do("POST", "/api/auth/verify", mustJSON(in.t, map[string]string{"email": email, "code": code}), noKey())
	if r.status != 200 {
		in.t.Fatalf("verify %s: %d %s", email, r.status, r.raw)
	}
	u, _ := r.data()["user"].(map[string]any)
	tok, _ := r.data()["token"].(string)
	role, _ := u["role"].(string)
	return tok, role
}

func TestSignInRolesAndKeys(t *testing.T) {
	in := start(t, "", map[string]string{"EVP_ALLOWED_EMAIL_DOMAINS": "team.example"})

	// The first person to sign in becomes ADMIN; the code is single use.
	r := in.do("POST", "/api/auth/request-code", mustJSON(t, map[string]string{"email": "Ada@Example.com"}), noKey())
	if r.status != 200 || r.data()["message"] != "Verification code sent to ada@example.com" {
		t.Fatalf("request-code: %d %s", r.status, r.raw)
	}
	code := in.lastCode("ada@example.com")
	if code == "" {
		t.Fatalf("no code logged:\n%s", in.logs.String())
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if r := in.do("POST", "/api/auth/verify", mustJSON(t, map[string]string{"email": "ada@example.com", "code": wrong}), noKey()); r.status != 401 || r.errorCode() != "INVALID_CODE" {
		t.Fatalf("wrong code: %d %s", r.status, r.raw)
	}
	if r := in.do("POST", "/api/auth/verify", mustJSON(t, map[string]string{"email": "ada@example.com", "code": "12ab"}), noKey()); r.status != 400 || r.errorCode() != "VALIDATION_ERROR" || !strings.Contains(string(r.raw), `"code"`) {
		t.Fatalf("malformed code: %d %s", r.status, r.raw)
	}
	r = in.do("POST", "/api/auth/verify", mustJSON(t, map[string]string{"email": "ada@example.com", "code": code}), noKey())
	if r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	admin, _ := r.data()["token"].(string)
	if u, _ := r.data()["user"].(map[string]any); u["role"] != "ADMIN" || u["email"] != "ada@example.com" {
		t.Fatalf("first user = %v, want ADMIN ada@example.com", u)
	}
	if r := in.do("POST", "/api/auth/verify", mustJSON(t, map[string]string{"email": "ada@example.com", "code": code}), noKey()); r.status != 401 {
		t.Fatalf("reused code: %d %s", r.status, r.raw)
	}
	if r := in.do("GET", "/api/auth/me", nil, bearer(admin)); r.status != 200 || r.data()["role"] != "ADMIN" || r.data()["status"] != "ACTIVE" {
		t.Fatalf("me: %d %s", r.status, r.raw)
	}
	if r := in.do("GET", "/api/auth/me", nil, bearer(admin+"x")); r.status != 401 || r.errorCode() != "UNAUTHORIZED" {
		t.Fatalf("me with a forged token: %d %s", r.status, r.raw)
	}

	// Strangers get the same answer and no code; an allowed domain signs in as VIEWER.
	if r := in.do("POST", "/api/auth/request-code", mustJSON(t, map[string]string{"email": "eve@elsewhere.example"}), noKey()); r.status != 200 {
		t.Fatalf("stranger request-code: %d %s", r.status, r.raw)
	}
	if c := in.lastCode("eve@elsewhere.example"); c != "" {
		t.Fatalf("a code was issued to a stranger")
	}
	if _, role := in.signIn("dan@team.example"); role != "VIEWER" {
		t.Fatalf("allowed-domain user role = %s, want VIEWER", role)
	}

	// Invitations and roles.
	r = in.do("POST", "/api/users", mustJSON(t, map[string]string{"email": "bob@example.com", "role": "VIEWER"}), bearer(admin))
	if r.status != 201 || r.data()["status"] != "PENDING_VERIFICATION" {
		t.Fatalf("invite: %d %s", r.status, r.raw)
	}
	bobID, _ := r.data()["id"].(string)
	if r := in.do("POST", "/api/users", mustJSON(t, map[string]string{"email": "bob@example.com", "role": "VIEWER"}), bearer(admin)); r.status != 409 {
		t.Fatalf("second invite: %d %s", r.status, r.raw)
	}
	bob, role := in.signIn("bob@example.com")
	if role != "VIEWER" {
		t.Fatalf("invited role = %s", role)
	}
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/v1/analytics/metrics", nil, 200},
		{"GET", "/api/metrics", nil, 200},
		{"GET", "/api/auth/api-keys", nil, 403},
		{"POST", "/api/auth/api-key", map[string]string{"name": "x"}, 403},
		{"GET", "/api/users", nil, 403},
		{"GET", "/api/v1/dead-letters", nil, 403},
	} {
		var b []byte
		if c.body != nil {
			b = mustJSON(t, c.body)
		}
		if r := in.do(c.method, c.path, b, bearer(bob)); r.status != c.want {
			t.Errorf("VIEWER %s %s: %d, want %d: %s", c.method, c.path, r.status, c.want, r.raw)
		}
	}

	// Keys: an OPERATOR-or-better creates one, it ingests, a revoke stops it at once here.
	r = in.do("POST", "/api/auth/api-key", mustJSON(t, map[string]any{"name": "prod", "expiresInDays": 30}), bearer(admin))
	if r.status != 200 {
		t.Fatalf("create key: %d %s", r.status, r.raw)
	}
	plain, _ := r.data()["apiKey"].(string)
	k, _ := r.data()["key"].(map[string]any)
	keyID, _ := k["id"].(string)
	if !strings.HasPrefix(plain, "evp_") || k["expiresAt"] == nil || k["last4"] != plain[len(plain)-4:] {
		t.Fatalf("created key %q %v", plain, k)
	}
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("k-1", "click")), map[string]string{"x-api-key": plain}); r.status != 202 {
		t.Fatalf("ingest with the new key: %d %s", r.status, r.raw)
	}
	if r := in.do("GET", "/api/users", nil, map[string]string{"x-api-key": plain}); r.status != 403 {
		t.Fatalf("API key on /api/users: %d, want 403", r.status)
	}
	list := in.do("GET", "/api/auth/api-keys", nil, bearer(admin))
	if list.status != 200 || strings.Contains(string(list.raw), plain) || !strings.Contains(string(list.raw), keyID) {
		t.Fatalf("list keys: %d %s", list.status, list.raw)
	}
	if r := in.do("DELETE", "/api/auth/api-keys/"+keyID, nil, bearer(admin)); r.status != 200 || r.data()["revokedAt"] == nil {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("k-2", "click")), map[string]string{"x-api-key": plain}); r.status != 401 || r.errorCode() != "INVALID_API_KEY" {
		t.Fatalf("ingest with a revoked key: %d %s", r.status, r.raw)
	}
	if r := in.do("DELETE", "/api/auth/api-keys/key_nope", nil, bearer(admin)); r.status != 404 {
		t.Fatalf("revoke unknown: %d", r.status)
	}

	// An ingest-only key sends events and nothing else.
	r = in.do("POST", "/api/auth/api-key", mustJSON(t, map[string]any{"name": "web", "ingestOnly": true}), bearer(admin))
	if k, _ := r.data()["key"].(map[string]any); r.status != 200 || k["ingestOnly"] != true {
		t.Fatalf("create ingest-only key: %d %s", r.status, r.raw)
	}
	web := map[string]string{"x-api-key": r.data()["apiKey"].(string)}
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("k-3", "click")), web); r.status != 202 {
		t.Fatalf("ingest with an ingest-only key: %d %s", r.status, r.raw)
	}
	for _, path := range []string{"/api/v1/analytics/metrics", "/api/metrics", "/api/v1/events/stats"} {
		if r := in.do("GET", path, nil, web); r.status != 403 || !strings.Contains(string(r.raw), "ingest-only") {
			t.Errorf("ingest-only key on %s: %d %s, want 403 naming it", path, r.status, r.raw)
		}
	}

	// A key limited to one web origin: browsers elsewhere are refused, servers are not.
	r = in.do("POST", "/api/auth/api-key", mustJSON(t, map[string]any{"name": "shop", "ingestOnly": true, "allowedOrigins": []string{"https://Shop.example"}}), bearer(admin))
	if k, _ := r.data()["key"].(map[string]any); r.status != 200 || fmt.Sprint(k["allowedOrigins"]) != "[https://shop.example]" {
		t.Fatalf("create key with origins: %d %s", r.status, r.raw)
	}
	shop := r.data()["apiKey"].(string)
	for i, c := range []struct {
		path, origin string
		body         []byte
		want         int
	}{
		{"/api/v1/events", "https://shop.example", mustJSON(t, ev("o-1", "click")), 202},
		{"/api/v1/events", "", mustJSON(t, ev("o-2", "click")), 202},
		{"/api/v1/events", "https://evil.example", mustJSON(t, ev("o-3", "click")), 403},
		{"/v1/track", "https://evil.example", []byte(`{"event":"x","userId":"u"}`), 403},
		{"/v1/track", "https://shop.example", []byte(`{"event":"x","userId":"u"}`), 200},
	} {
		hdr := map[string]string{"x-api-key": shop, "Origin": c.origin}
		if r := in.do("POST", c.path, c.body, hdr); r.status != c.want {
			t.Errorf("case %d: %s from %q: %d %s, want %d", i, c.path, c.origin, r.status, r.raw, c.want)
		}
	}
	if r := in.do("POST", "/api/auth/api-key", mustJSON(t, map[string]any{"name": "bad", "allowedOrigins": []string{"shop.example"}}), bearer(admin)); r.status != 400 || !strings.Contains(string(r.raw), "allowedOrigins") {
		t.Errorf("a key with a malformed origin: %d %s, want 400 naming allowedOrigins", r.status, r.raw)
	}

	// Suspension ends a session; the last ADMIN cannot demote itself.
	if r := in.do("PATCH", "/api/users/"+bobID, mustJSON(t, map[string]string{"status": "SUSPENDED"}), bearer(admin)); r.status != 200 || r.data()["status"] != "SUSPENDED" {
		t.Fatalf("suspend: %d %s", r.status, r.raw)
	}
	if r := in.do("GET", "/api/v1/analytics/metrics", nil, bearer(bob)); r.status != 401 {
		t.Fatalf("suspended user's session: %d, want 401", r.status)
	}
	me := in.do("GET", "/api/auth/me", nil, bearer(admin))
	adminID, _ := me.data()["id"].(string)
	if r := in.do("PATCH", "/api/users/"+adminID, mustJSON(t, map[string]string{"role": "VIEWER"}), bearer(admin)); r.status != 409 || r.errorCode() != "LAST_ADMIN" {
		t.Fatalf("demote last admin: %d %s", r.status, r.raw)
	}

	// Three codes per email per 15 minutes (ada has used one).
	for i := 0; i < 2; i++ {
		if r := in.do("POST", "/api/auth/request-code", mustJSON(t, map[string]string{"email": "ada@example.com"}), noKey()); r.status != 200 {
			t.Fatalf("request-code #%d: %d %s", i+2, r.status, r.raw)
		}
	}
	r = in.do("POST", "/api/auth/request-code", mustJSON(t, map[string]string{"email": "ada@example.com"}), noKey())
	if r.status != 429 || r.errorCode() != "RATE_LIMITED" || r.header.Get("Retry-After") == "" {
		t.Fatalf("fourth code: %d %v %s", r.status, r.header, r.raw)
	}

	// Sessions survive a restart: the secret is kept in the data directory.
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	again := start(t, in.dir, nil)
	if r := again.do("GET", "/api/auth/me", nil, bearer(admin)); r.status != 200 {
		t.Fatalf("session after restart: %d %s", r.status, r.raw)
	}
}

func TestAnalyticsAccess(t *testing.T) {
	closed := start(t, "", nil)
	if r := closed.do("GET", "/api/v1/analytics/metrics", nil, noKey()); r.status != 401 || r.errorCode() != "UNAUTHORIZED" {
		t.Fatalf("analytics without credentials: %d %s", r.status, r.raw)
	}
	if r := closed.do("GET", "/api/v1/analytics/metrics", nil, nil); r.status != 200 {
		t.Fatalf("analytics with an API key: %d %s", r.status, r.raw)
	}
	open := start(t, "", map[string]string{"EVP_ANALYTICS_PUBLIC": "true"})
	if r := open.do("GET", "/api/v1/analytics/metrics", nil, noKey()); r.status != 200 {
		t.Fatalf("public analytics: %d %s", r.status, r.raw)
	}
	if r := open.do("POST", "/api/v1/events", mustJSON(t, ev("p-1", "click")), noKey()); r.status != 401 {
		t.Fatalf("public analytics opened ingestion: %d", r.status)
	}
}

func TestSignInWithoutDelivery(t *testing.T) {
	in := start(t, "", map[string]string{"EVP_DEV_LOGIN": "false"})
	r := in.do("POST", "/api/auth/request-code", mustJSON(t, map[string]string{"email": "ada@example.com"}), noKey())
	if r.status != 503 || !strings.Contains(string(r.raw), "SMTP_HOST") || r.header.Get("Retry-After") == "" {
		t.Fatalf("request-code with no way to deliver: %d %s", r.status, r.raw)
	}
	if c := in.lastCode("ada@example.com"); c != "" {
		t.Fatal("a code was logged with EVP_DEV_LOGIN=false")
	}
}

// signInAs signs email in and returns the session token.
func (in *instance) signInAs(email string) string {
	in.t.Helper()
	tok, _ := in.signIn(email)
	return tok
}

// With DATABASE_URL, accounts live in PostgreSQL: migrated on start, sign-in and keys work,
// and a second evp on another data directory (another replica) shares them.
func TestAccountsInPostgres(t *testing.T) {
	dbURL := testutil.PostgresDB(t)
	secret := strings.Repeat("s", 40)
	env := map[string]string{"DATABASE_URL": dbURL, "JWT_SECRET": secret}
	a := start(t, "", env)
	if r := a.do("GET", "/api/health", nil, noKey()); r.status != 200 {
		t.Fatalf("health: %d %s", r.status, r.raw)
	}
	admin := a.signInAs("root@example.com")
	r := a.do("POST", "/api/auth/api-key", mustJSON(t, map[string]string{"name": "pg"}), bearer(admin))
	if r.status != 200 {
		t.Fatalf("create key: %d %s", r.status, r.raw)
	}
	plain, _ := r.data()["apiKey"].(string)

	b := start(t, "", env) // another data directory: only PostgreSQL is shared
	if r := b.do("GET", "/api/auth/me", nil, bearer(admin)); r.status != 200 || r.data()["email"] != "root@example.com" {
		t.Fatalf("session on the second replica: %d %s", r.status, r.raw)
	}
	if r := b.do("POST", "/api/v1/events", mustJSON(t, ev("pg-1", "click")), map[string]string{"x-api-key": plain}); r.status != 202 {
		t.Fatalf("key made on replica a, used on b: %d %s", r.status, r.raw)
	}
	// The first user exists, so someone else signing in on b is not made ADMIN (nor let in).
	if r := b.do("POST", "/api/auth/request-code", mustJSON(t, map[string]string{"email": "late@example.com"}), noKey()); r.status != 200 {
		t.Fatalf("request-code: %d", r.status)
	}
	if c := b.lastCode("late@example.com"); c != "" {
		t.Fatal("a second first user got a code")
	}
}
