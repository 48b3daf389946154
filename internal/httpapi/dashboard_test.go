package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestDashboardFallback: paths outside /api/ that no route matches go to the dashboard on GET
// and HEAD; /api/ paths and other methods keep the JSON 404.
func TestDashboardFallback(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("dashboard"))
	})
	h := New(Deps{Serving: ServingDeps{Dashboard: dash}}).Handler()
	for _, c := range []struct {
		method, path string
		dashboard    bool
	}{
		{"GET", "/", true},
		{"GET", "/live", true},
		{"HEAD", "/api-keys", true},
		{"GET", "/apix", true},
		{"GET", "/api/nope", false},
		{"GET", "/api", false},
		{"GET", "/api/v1/nope", false},
		{"POST", "/live", false},
		{"DELETE", "/", false},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		if c.dashboard {
			if w.Code != 200 || w.Header().Get("Content-Type") != "text/html" {
				t.Errorf("%s %s: %d %q, want the dashboard", c.method, c.path, w.Code, w.Body.String())
			}
			continue
		}
		var env struct {
			Success bool
			Error   struct{ Code string }
		}
		if w.Code != 404 || json.Unmarshal(w.Body.Bytes(), &env) != nil || env.Error.Code != "NOT_FOUND" {
			t.Errorf("%s %s: %d %q, want the JSON 404", c.method, c.path, w.Code, w.Body.String())
		}
	}
	// Without a dashboard every unknown path is the JSON 404.
	w := httptest.NewRecorder()
	New(Deps{}).Handler().ServeHTTP(w, httptest.NewRequest("GET", "/live", nil))
	if w.Code != 404 {
		t.Errorf("GET /live without a dashboard: %d, want 404", w.Code)
	}
}
