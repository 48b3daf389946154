package app

import (
	"context"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/httpapi"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/worker"
)

// processing reports what the workers and the store have done, for GET /api/metrics.
type processing struct {
	pool   *worker.Pool
	store  eventStore
	stored *httpapi.RateCounter // events this process's workers stored, over the last 10 s
}

// newProcessing counts the events pool stores, for Stats.
func newProcessing(pool *worker.Pool, st eventStore) *processing {
	p := &processing{pool: pool, store: st, stored: httpapi.NewRateCounter(10)}
	pool.OnStored = func(events []event.Event) { p.stored.Add(int64(len(events))) }
	return p
}

// Stats reads the store's counts and the workers' figures (httpapi.ReadingDeps.Processing).
func (p *processing) Stats(ctx context.Context) (httpapi.ProcessingStats, error) {
	total, err := p.store.Count(ctx)
	if err != nil {
		return httpapi.ProcessingStats{}, err
	}
	dlq, err := p.store.DeadLetterCount(ctx)
	if err != nil {
		return httpapi.ProcessingStats{}, err
	}
	ws := &p.pool.Stats
	ps := httpapi.ProcessingStats{
		TotalEvents: total, EventsPerSecond: p.stored.Rate(), DLQEvents: dlq,
		TotalBatches: ws.Batches.Load(), LastBatchSize: ws.LastBatchSize.Load(), FailedEvents: ws.Failed.Load(),
	}
	if tc, ok := p.store.(store.TypeCounter); ok {
		if ps.EventsByType, err = tc.CountByType(ctx); err != nil {
			return httpapi.ProcessingStats{}, err
		}
	}
	if at := ws.LastProcessedAt.Load(); at > 0 {
		ps.LastProcessedAt = time.Unix(0, at)
	}
	return ps, nil
}
