package app

import (
	"context"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/metrics"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/redisqueue"
	"github.com/evp-dev/evp/internal/worker"
)

// newMetrics registers evp's Prometheus collectors and observes every batch pool writes;
// counters evp keeps anyway are read at scrape time.
func newMetrics(pool *worker.Pool, q queue.Queue) *metrics.Metrics {
	m := metrics.New()
	pool.OnBatch = func(events []event.Event, took time.Duration) {
		types := make([]string, len(events))
		for i := range events {
			types[i] = events[i].EventType
		}
		m.ObserveBatch(types, took)
	}
	m.CounterFunc("evp_events_stored_total", "Events newly written to the store by this process's workers.",
		func() float64 { return float64(pool.Stats.Processed.Load()) })
	m.CounterFunc("evp_events_redelivered_duplicate_total", "Redelivered events the store already held (skipped).",
		func() float64 { return float64(pool.Stats.Duplicates.Load()) })
	m.CounterFunc("evp_store_write_failures_total", "Failed store writes (each is retried, then dead-lettered).",
		func() float64 { return float64(pool.Stats.Failed.Load()) })
	m.CounterFunc("evp_events_dead_lettered_total", "Events sent to the dead-letter queue by this process.",
		func() float64 { return float64(pool.Stats.DeadLettered.Load()) })
	if rq, ok := q.(*redisqueue.Queue); ok {
		m.CounterFunc("evp_buffer_resets_total", "Redis streams or consumer groups this process found made again under it: their entries were lost (Redis restarted without persistence, was flushed, or keys were deleted).",
			func() float64 { return float64(rq.Resets()) })
	}
	stat := func(f func(queue.Stats) int64) func() float64 {
		return metrics.WithTimeout(func(ctx context.Context) float64 {
			s, err := q.Stats(ctx)
			if err != nil {
				return -1
			}
			return float64(f(s))
		})
	}
	m.GaugeFunc("evp_queue_length", "Entries in the buffer not yet acknowledged (the backlog; scale workers on it).",
		stat(func(s queue.Stats) int64 { return s.Length }))
	m.GaugeFunc("evp_queue_pending", "Entries delivered to a worker and not yet acknowledged.",
		stat(func(s queue.Stats) int64 { return s.Pending }))
	if bq, ok := q.(queue.Bounded); ok {
		m.GaugeFunc("evp_buffer_fill_ratio", "How full the buffer is against its bound (EVP_BUFFER_MAX_BYTES, EVP_STREAM_MAX_LEN), 0 to 1; at 1 ingestion answers 503.",
			metrics.WithTimeout(func(ctx context.Context) float64 {
				used, limit, err := bq.Fill(ctx)
				if err != nil {
					return -1
				}
				if limit <= 0 {
					return 0
				}
				return min(float64(used)/float64(limit), 1)
			}))
	}
	return m
}
