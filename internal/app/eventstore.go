package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
	store.EventReader
	store.Forgetter
}

// ForgetUser deletes every stored event of userID from the store cfg selects (evp user
// forget): the deletion DELETE /api/v1/users/{userId}/events makes.
func ForgetUser(ctx context.Context, cfg *config.Config, log *slog.Logger, userID string) (int64, error) {
	st, _, err := openEventStore(ctx, cfg, log)
	if err != nil {
		return 0, err
	}
	n, err := st.ForgetUser(ctx, userID)
	return n, errors.Join(err, st.Close())
}

// openEventStore opens the store configuration selects: MongoDB when MONGO_URI is set,
// else the embedded SQLite store. check is its entry in /api/health.
func openEventStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (st eventStore, check httpapi.HealthCheck, err error) {
	if cfg.MongoURI == "" {
		s, err := sqlitestore.OpenLogged(ctx, cfg.DataDir, syncMode(cfg.StoreSync), log)
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
			_ = ms.Close()
			return nil, check, &config.Error{Setting: "EVP_MONGO_SHARD", Value: "true", Reason: err.Error()}
		}
		if err != nil {
			_ = ms.Close()
			return nil, check, fmt.Errorf("shard the events collection: %w", err)
		}
		log.Info("MongoDB events collection sharded on hashed userId", "database", cfg.MongoDB)
	}
	log.Info("event store: MongoDB", "database", cfg.MongoDB, "retention_days", cfg.RetentionDays)
	return ms, httpapi.HealthCheck{Name: "mongodb", Ping: ms.Ping}, nil
}
