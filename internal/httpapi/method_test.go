package httpapi

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWrongMethodIs405(t *testing.T) {
	srv := New(Deps{Auth: AuthDeps{Keys: staticKeys{}}, Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PUT", "/api/health", 405, "GET"},
		{"DELETE", "/api/v1/events", 405, "POST"},
		{"GET", "/api/v1/events", 405, "POST"},
		{"POST", "/api/nothing", 404, ""},
	} {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.status || rec.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q", c.method, c.path, rec.Code, rec.Header().Get("Allow"), c.status, c.allow)
		}
		if c.status == 405 && !strings.Contains(rec.Body.String(), `"code":"METHOD_NOT_ALLOWED"`) {
			t.Errorf("%s %s: body %s", c.method, c.path, rec.Body)
		}
	}
}
