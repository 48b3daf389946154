package app

import (
	"context"
	"log/slog"
	"time"
)

// pruner deletes events older than a cutoff (the SQLite store; MongoDB uses a TTL index).
type pruner interface {
	Prune(ctx context.Context, cutoff time.Time) (int64, error)
}

// retentionInterval is the time between two passes of the retention loop.
const retentionInterval = 10 * time.Minute

// retention deletes the events older than days from the embedded store: at start, then
// every retentionInterval. A failed pass is logged and tried again at the next.
type retention struct {
	store pruner
	days  int
	log   *slog.Logger
}

// newRetention returns the retention loop for st, or nil when st is not pruned here:
// MongoDB expires events with a TTL index, and days <= 0 keeps them all.
func newRetention(st eventStore, days int, log *slog.Logger) service {
	p, ok := st.(pruner)
	if !ok || days <= 0 {
		return nil
	}
	return retention{store: p, days: days, log: log}
}

// Run implements service.
func (r retention) Run(ctx context.Context) error {
	t := time.NewTicker(retentionInterval)
	defer t.Stop()
	for {
		cutoff := time.Now().Add(-time.Duration(r.days) * 24 * time.Hour)
		if n, err := r.store.Prune(ctx, cutoff); err != nil {
			r.log.Warn("old events not deleted (EVP_RETENTION_DAYS)", "err", err)
		} else if n > 0 {
			r.log.Info("old events deleted (EVP_RETENTION_DAYS)", "events", n, "before", cutoff.UTC().Format(time.RFC3339))
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}
