package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
)

func TestHealthDegradedAndDown(t *testing.T) {
	up := HealthCheck{Name: "store", Ping: func(context.Context) error { return nil }}
	full := HealthCheck{Name: "buffer", Ping: func(context.Context) error { return Degraded(errors.New("buffer full")) }}
	dead := HealthCheck{Name: "redis", Ping: func(context.Context) error { return errors.New("connection refused") }}
	for _, tc := range []struct {
		checks []HealthCheck
		code   int
		status string
	}{
		{[]HealthCheck{up}, 200, "healthy"},
		{[]HealthCheck{up, full}, 200, "degraded"},
		{[]HealthCheck{full, dead, up}, 503, "unhealthy"},
	} {
		srv := New(Deps{Auth: AuthDeps{Keys: staticKeys{}}, Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Health: tc.checks}})
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/health", nil))
		var ans healthAnswer
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tc.code || ans.Status != tc.status {
			t.Errorf("%d checks: %d %q, want %d %q", len(tc.checks), rec.Code, ans.Status, tc.code, tc.status)
		}
		for _, c := range tc.checks {
			want := map[string]string{"store": "up", "buffer": "degraded", "redis": "down"}[c.Name]
			if got := ans.Services[c.Name]; got.Status != want || (want != "up" && got.Error == "") {
				t.Errorf("%s: %+v, want %s with its reason", c.Name, got, want)
			}
		}
	}
}
