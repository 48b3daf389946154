package app

import (
	"fmt"
	"testing"
)

// Suspending a key's owner (PATCH /api/users/{id}) stops the key on the next request to
// the same process, although the key was just cached.
func TestSuspendedOwnersKeyStopsAtOnce(t *testing.T) {
	in := start(t, "", nil)
	admin := in.signInAs("ada@example.com")
	r := in.do("POST", "/api/users", mustJSON(t, map[string]string{"email": "op@example.com", "role": "OPERATOR"}), bearer(admin))
	if r.status != 201 {
		t.Fatalf("invite: %d %s", r.status, r.raw)
	}
	opID, _ := r.data()["id"].(string)
	op := in.signInAs("op@example.com")
	r = in.do("POST", "/api/auth/api-key", mustJSON(t, map[string]string{"name": "op's"}), bearer(op))
	plain, _ := r.data()["apiKey"].(string)
	if r.status != 200 || plain == "" {
		t.Fatalf("create key: %d %s", r.status, r.raw)
	}
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("s-1", "click")), map[string]string{"x-api-key": plain}); r.status != 202 {
		t.Fatalf("ingest with the operator's key: %d %s", r.status, r.raw)
	}
	if r := in.do("PATCH", "/api/users/"+opID, mustJSON(t, map[string]string{"status": "SUSPENDED"}), bearer(admin)); r.status != 200 {
		t.Fatalf("suspend: %d %s", r.status, r.raw)
	}
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("s-2", "click")), map[string]string{"x-api-key": plain}); r.status != 401 || r.errorCode() != "INVALID_API_KEY" {
		t.Fatalf("ingest with a suspended owner's key: %d %s, want 401 INVALID_API_KEY", r.status, r.raw)
	}
}

// EVP_TRUSTED_PROXIES replaces the default trusted ranges: from a direct peer outside it
// (here loopback), X-Forwarded-For is ignored and the sign-in limit counts the peer.
func TestTrustedProxiesSetting(t *testing.T) {
	const limit = 3
	in := start(t, "", map[string]string{"EVP_TRUST_PROXY": "true", "EVP_TRUSTED_PROXIES": "192.0.2.1",
		"EVP_AUTH_RATE_LIMIT": fmt.Sprint(limit)})
	for i := range limit + 1 {
		hdr := noKey()
		hdr["X-Forwarded-For"] = fmt.Sprintf("198.51.100.%d", i)
		r := in.do("GET", "/api/auth/me", nil, hdr)
		switch {
		case i < limit && r.status != 401:
			t.Fatalf("request %d: %d %s, want 401", i+1, r.status, r.raw)
		case i == limit && (r.status != 429 || r.errorCode() != "RATE_LIMITED" || r.header.Get("Retry-After") == ""):
			t.Fatalf("request %d with a new X-Forwarded-For from an untrusted peer: %d %s, want 429 RATE_LIMITED", i+1, r.status, r.raw)
		}
	}
}
