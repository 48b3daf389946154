package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The ingestion routes answer a browser's preflight from any origin and let it read their
// answers; the other routes keep their CORS policy (none here).
func TestIngestCORS(t *testing.T) {
	s := historyServer(Deps{Ingestion: IngestionDeps{Queue: &memQueue{}}})
	h := s.Handler()
	for _, path := range []string{"/api/v1/events", "/api/v1/events/batch", "/v1/batch", "/v1/t", "/e/", "/i/v0/e/", "/batch/", "/flags/"} {
		req := httptest.NewRequest("OPTIONS", path, nil)
		req.Header.Set("Origin", "https://shop.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Content-Type") {
			t.Errorf("preflight of %s: %d %v", path, rec.Code, rec.Header())
		}
	}
	req := httptest.NewRequest("POST", "/v1/track", strings.NewReader(`{}`))
	req.Header.Set("Origin", "https://shop.example")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("POST /v1/track from a page: %d %v", rec.Code, rec.Header())
	}
	for _, path := range []string{"/api/metrics", "/api/v1/analytics/metrics", "/api/auth/api-keys"} {
		req := httptest.NewRequest("OPTIONS", path, nil)
		req.Header.Set("Origin", "https://shop.example")
		req.Header.Set("Access-Control-Request-Method", "GET")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight of %s allowed: %v", path, rec.Header())
		}
	}
}

// Segment's browser library gets settings that send its events to the host it asked, and
// to no other.
func TestSegmentSettings(t *testing.T) {
	s := historyServer(Deps{Ingestion: IngestionDeps{Queue: &memQueue{}}})
	req := httptest.NewRequest("GET", "/v1/projects/evp_key/settings", nil)
	req.Host = "evp.example:3001"
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var got struct {
		Integrations map[string]struct {
			APIKey   string `json:"apiKey"`
			APIHost  string `json:"apiHost"`
			Protocol string `json:"protocol"`
		} `json:"integrations"`
		Metrics struct {
			SampleRate float64 `json:"sampleRate"`
		} `json:"metrics"`
		RemotePlugins []any `json:"remotePlugins"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	seg := got.Integrations["Segment.io"]
	if len(got.Integrations) != 1 || seg.APIKey != "evp_key" || seg.APIHost != "evp.example:3001/v1" || seg.Protocol != "http" ||
		got.Metrics.SampleRate != 0 || len(got.RemotePlugins) != 0 {
		t.Errorf("settings = %s", rec.Body)
	}
}
