package httpapi

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	srv := New(Deps{Auth: AuthDeps{Keys: staticKeys{}},
		Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), CORSOrigins: []string{"https://dash.example.com"}}})
	pre := httptest.NewRequest("OPTIONS", "/api/v1/analytics/metrics", nil)
	pre.Header.Set("Origin", "https://dash.example.com")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	pre.Header.Set("Access-Control-Request-Headers", "authorization")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, pre)
	if rec.Code/100 != 2 || rec.Header().Get("Access-Control-Allow-Origin") != "https://dash.example.com" ||
		rec.Header().Get("Access-Control-Allow-Headers") == "" {
		t.Fatalf("preflight from an allowed origin: %d %v", rec.Code, rec.Header())
	}

	other := httptest.NewRequest("GET", "/api/health", nil)
	other.Header.Set("Origin", "https://evil.example")
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, other)
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("other origin got Access-Control-Allow-Origin %q", got)
	}

	get := httptest.NewRequest("GET", "/api/health", nil)
	get.Header.Set("Origin", "https://dash.example.com")
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, get)
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://dash.example.com" || rec.Header().Get("Access-Control-Expose-Headers") == "" {
		t.Fatalf("request from an allowed origin: %v", rec.Header())
	}

	// Without origins configured, no CORS headers at all.
	plain := New(Deps{Auth: AuthDeps{Keys: staticKeys{}}, Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	rec = httptest.NewRecorder()
	plain.Handler().ServeHTTP(rec, get)
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers without EVP_CORS_ORIGINS")
	}
}
