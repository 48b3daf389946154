package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/httpapi"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/mongostore"
	"github.com/evp-dev/evp/internal/store/sqlitestore"
)

// eventStore is what evp needs of an event store; the SQLite and MongoDB stores both are one.
type eventStore interface {
	store.EventStore
	store.DeadLetters
	store.Analyzer
}

// openEventStore opens the store configuration selects: MongoDB when MONGO_URI is set,
// else the embedded SQLite store. check is its entry in /api/health.
func openEventStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (st eventStore, check httpapi.HealthCheck, err error) {
	if cfg.MongoURI == "" {
		s, err := sqlitestore.Open(ctx, cfg.DataDir, syncMode(cfg.StoreSync))
		if err != nil {
			return nil, check, fmt.Errorf("open event store: %w", err)
		}
		return s, httpapi.HealthCheck{Name: "eventStore", Ping: s.Ping}, nil
	}
	ms, err := mongostore.Open(ctx, mongostore.Options{URI: cfg.MongoURI, Database: cfg.MongoDB,
		RetentionDays: cfg.RetentionDays, RecoverAfter: cfg.ClaimIdle / 2})
	if err != nil {
		return nil, check, fmt.Errorf("open MongoDB event store (MONGO_URI): %w", err)
	}
	if cfg.MongoShard {
		err := mongostore.ShardEvents(ctx, ms.Client(), cfg.MongoDB)
		if errors.Is(err, mongostore.ErrNotMongos) {
			ms.Close()
			return nil, check, &config.Error{Setting: "EVP_MONGO_SHARD", Value: "true", Reason: err.Error()}
		}
		if err != nil {
			ms.Close()
			return nil, check, fmt.Errorf("shard the events collection: %w", err)
		}
		log.Info("MongoDB events collection sharded on hashed userId", "database", cfg.MongoDB)
	}
	log.Info("event store: MongoDB", "database", cfg.MongoDB, "retention_days", cfg.RetentionDays)
	return ms, httpapi.HealthCheck{Name: "mongodb", Ping: ms.Ping}, nil
}

// storeGate answers 503 SERVICE_UNAVAILABLE with Retry-After on the routes that read the
// event store while the store does not answer its ping, instead of the 500 a failed read
// would give. Ingestion never depends on the store: the buffer keeps the events and the
// workers retry. The ping result is reused for a second, so a dead store costs each request
// nothing more than a map lookup.
type storeGate struct {
	name string
	ping func(ctx context.Context) error

	mu      sync.Mutex
	checked time.Time
	err     error
}

// storeRoutes are the path prefixes that need the event store.
var storeRoutes = []string{"/api/v1/analytics/", "/api/v1/dead-letters", "/api/metrics"}

func needsStore(path string) bool {
	if path == "/api/metrics/ingestion" || path == "/api/metrics/stream" {
		return false
	}
	for _, p := range storeRoutes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func (g *storeGate) down(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checked) < time.Second {
		return g.err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	g.err, g.checked = g.ping(pctx), time.Now()
	return g.err
}

func (g *storeGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if needsStore(r.URL.Path) {
			if err := g.down(r.Context()); err != nil {
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(http.StatusServiceUnavailable)
				json.NewEncoder(w).Encode(map[string]any{"success": false, "error": map[string]string{
					"code": "SERVICE_UNAVAILABLE", "message": "the event store (" + g.name + ") is unavailable; retry shortly"}})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// wrapIfSet is wrap on a gate, and next unchanged without one.
func (g *storeGate) wrapIfSet(next http.Handler) http.Handler {
	if g == nil {
		return next
	}
	return g.wrap(next)
}
