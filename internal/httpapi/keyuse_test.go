package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/dedup"
)

// A key's last use moves only for requests it was let through for: a request refused for
// its web origin or for the key's permissions leaves it as it was.
func TestKeyUseOnlyWhenLetThrough(t *testing.T) {
	ctx := context.Background()
	acc, err := accounts.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acc.Close() })
	plain, key, err := accounts.CreateAPIKey(ctx, acc, accounts.NewKey{Name: "shop", Prefix: "evp_", IngestOnly: true, AllowedOrigins: []string{"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	keys := accounts.NewKeyAuth(acc, time.Minute)
	s := New(Deps{
		Ingestion: IngestionDeps{Queue: &memQueue{}, Dedup: dedup.Local{W: dedup.New(time.Minute)}},
		Auth:      AuthDeps{Keys: keys},
		Serving:   ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
	})
	s.SetReady(true)
	h := s.Handler()
	send := func(method, path, origin string, want int) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(`{"eventType":"click","userId":"u1","sessionId":"s1","timestamp":"`+time.Now().UTC().Format(time.RFC3339)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", plain)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Fatalf("%s %s from %q: %d %s, want %d", method, path, origin, w.Code, w.Body, want)
		}
	}
	lastUsed := func() *time.Time {
		t.Helper()
		if err := keys.FlushUsage(ctx); err != nil {
			t.Fatal(err)
		}
		all, err := acc.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range all {
			if k.ID == key.ID {
				return k.LastUsedAt
			}
		}
		t.Fatalf("key %s not listed", key.ID)
		return nil
	}

	send("POST", "/api/v1/events", "https://evil.example", http.StatusForbidden)
	send("GET", "/api/metrics/ingestion", "", http.StatusForbidden) // ingest-only
	if got := lastUsed(); got != nil {
		t.Errorf("after refused requests only, LastUsedAt = %v, want none", got)
	}
	send("POST", "/api/v1/events", "https://shop.example", http.StatusAccepted)
	if got := lastUsed(); got == nil {
		t.Error("after an accepted request, no LastUsedAt")
	}
}
