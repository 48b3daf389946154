// Package worker moves events from the buffer to the store: fetch a batch, write it in one
// idempotent operation with retries, dead-letter what cannot be written, then acknowledge.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/store"
)

// Config tunes a Pool. Zero values take the defaults noted.
type Config struct {
	BatchSize    int           // most entries per batch; 100
	BatchTimeout time.Duration // longest wait for the first entry of a batch; 500 ms
	Concurrency  int           // batches processed at once; 2 (evp sets EVP_WORKERS, 4)
	MaxAttempts  int           // store attempts per batch before dead-lettering; 3
	BackoffBase  time.Duration // first retry delay; 100 ms, doubled per attempt, with jitter
	BackoffMax   time.Duration // longest retry delay; 5 s
	// MaxCombine is how many full batches a worker may store in one write when the buffer
	// has a backlog; 10.
	MaxCombine int
	// MaxDeliveries dead-letters an entry delivered this many times without being
	// acknowledged (a poison entry that keeps a worker from finishing); 5.
	MaxDeliveries int
	// BatchLinger is how long a batch that came back partly filled waits for more entries
	// (at most BatchSize in all), so that a trickle of single events is stored a few dozen
	// to a transaction rather than a few; 0 stores it at once.
	BatchLinger time.Duration
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = 500 * time.Millisecond
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 100 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.MaxCombine <= 0 {
		c.MaxCombine = 10
	}
	if c.MaxDeliveries <= 0 {
		c.MaxDeliveries = 5
	}
}

// Stats are the pool's counters since it started. Safe to read concurrently.
type Stats struct {
	Processed       atomic.Int64 // events newly stored
	Duplicates      atomic.Int64 // events already stored (redeliveries)
	Failed          atomic.Int64 // failed store attempts (batches)
	DeadLettered    atomic.Int64 // events sent to the dead-letter queue
	Batches         atomic.Int64
	LastBatchSize   atomic.Int64
	LastProcessedAt atomic.Int64 // Unix nanoseconds of the last stored batch
}

// Pool runs Concurrency workers over one queue and one store.
type Pool struct {
	cfg   Config
	q     queue.Queue
	st    store.EventStore
	log   *slog.Logger
	Stats Stats
	// OnStored, when set, is called after each batch is stored and before it is acknowledged.
	OnStored func(events []event.Event)
	// OnBatch, when set, is called with each stored batch and how long its write took
	// (retries included).
	OnBatch func(events []event.Event, took time.Duration)

	acks sync.WaitGroup // acknowledgements in flight
	// stop is closed when Run's context ends: a worker waiting out a store outage gives
	// its batch back to the buffer then. storeDown pauses fetching during an outage.
	stop      <-chan struct{}
	storeDown atomic.Bool
}

// New returns a pool; call Run to start it.
func New(cfg Config, q queue.Queue, st store.EventStore, log *slog.Logger) *Pool {
	cfg.defaults()
	return &Pool{cfg: cfg, q: q, st: st, log: log}
}

// Run processes batches until ctx is cancelled, then lets every batch in flight finish and
// returns. It returns nil after a cancel.
func (p *Pool) Run(ctx context.Context) error {
	p.stop = ctx.Done()
	var wg sync.WaitGroup
	for i := 0; i < p.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx)
		}()
	}
	wg.Wait()
	p.acks.Wait()
	return nil
}

func (p *Pool) loop(ctx context.Context) {
	fetchErrs := 0
	for ctx.Err() == nil {
		// While the store is down, take nothing more from the buffer: the entries wait
		// there, undelivered, instead of piling up deliveries.
		if p.storeDown.Load() {
			if err := p.st.Ping(ctx); err != nil {
				sleep(ctx, p.backoff(20))
				continue
			}
			p.storeDown.Store(false)
			p.log.Info("event store answers again; fetching resumes")
		}
		msgs, err := p.q.Fetch(ctx, p.cfg.BatchSize, p.cfg.BatchTimeout)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, queue.ErrClosed) {
				return
			}
			fetchErrs++
			p.log.Error("buffer fetch failed", "err", err)
			sleep(ctx, p.backoff(fetchErrs))
			continue
		}
		fetchErrs = 0
		if len(msgs) == 0 {
			continue
		}
		msgs = p.linger(ctx, msgs)
		// A full batch means a backlog: take more without waiting, so that one store
		// transaction (one fsync) carries up to MaxCombine batches. An idle system still
		// writes each batch as soon as it arrives.
		for n := 1; len(msgs) == n*p.cfg.BatchSize && n < p.cfg.MaxCombine; n++ {
			more, err := p.q.Fetch(ctx, p.cfg.BatchSize, 0)
			if err != nil || len(more) == 0 {
				break
			}
			msgs = append(msgs, more...)
		}
		// The batch is finished even when ctx is cancelled meanwhile: shutdown waits for it.
		p.Process(context.WithoutCancel(ctx), msgs)
	}
}

// linger tops up a partly filled batch with what arrives within BatchLinger.
func (p *Pool) linger(ctx context.Context, msgs []queue.Message) []queue.Message {
	if p.cfg.BatchLinger <= 0 || len(msgs) >= p.cfg.BatchSize {
		return msgs
	}
	deadline := time.Now().Add(p.cfg.BatchLinger)
	for len(msgs) < p.cfg.BatchSize {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		more, err := p.q.Fetch(ctx, p.cfg.BatchSize-len(msgs), left)
		if err != nil || len(more) == 0 {
			break // what was fetched is processed; the next Fetch reports the error
		}
		msgs = append(msgs, more...)
	}
	return msgs
}

// Process handles one fetched batch to the end: stored or dead-lettered, then acknowledged.
// Entries that could be neither are returned to the buffer (Nack).
func (p *Pool) Process(ctx context.Context, msgs []queue.Message) {
	events := make([]event.Event, 0, len(msgs))
	ids := make([]int64, 0, len(msgs))
	var letters []store.DeadLetter
	var letterIDs []int64
	now := time.Now()
	from := make([]*queue.Message, 0, len(msgs)) // the message each event came from
	for i, m := range msgs {
		if m.Attempts >= p.cfg.MaxDeliveries {
			letters = append(letters, store.DeadLetter{EventID: m.EventID, Data: m.Data, FailedAt: now, Attempts: m.Attempts,
				Error: fmt.Sprintf("delivered %d times without being acknowledged", m.Attempts)})
			letterIDs = append(letterIDs, m.ID)
			continue
		}
		var e event.Event
		if m.Event != nil {
			e = *m.Event // handed over in memory: no need to decode Data
		} else if err := event.Unmarshal(m.Data, &e); err != nil || e.EventID == "" {
			reason := "undecodable buffer entry"
			if err != nil {
				reason = fmt.Sprintf("undecodable buffer entry: %v", err)
			}
			letters = append(letters, store.DeadLetter{EventID: m.EventID, Data: m.Data, Error: reason, Attempts: m.Attempts + 1, FailedAt: now})
			letterIDs = append(letterIDs, m.ID)
			continue
		}
		events = append(events, e)
		ids = append(ids, m.ID)
		from = append(from, &msgs[i])
	}

	storedIDs := ids
	if len(events) > 0 {
		var failed []failure
		var unavailable bool
		storedIDs, failed, unavailable = p.write(ctx, events, ids)
		if unavailable {
			// Shutting down during a store outage: the entries go back to the buffer
			// (not to the dead-letter queue) and are delivered again later.
			if err := p.q.Nack(ctx, ids); err != nil {
				p.log.Error("buffer nack failed", "entries", len(ids), "err", err)
			}
			ids, events = nil, nil
		}
		for _, f := range failed {
			i := f.i
			letters = append(letters, store.DeadLetter{
				EventID: events[i].EventID, Data: from[i].Data,
				Error: f.err.Error(), Attempts: from[i].Attempts + p.cfg.MaxAttempts, FailedAt: time.Now(),
			})
			letterIDs = append(letterIDs, ids[i])
		}
	}

	ack := storedIDs
	if len(letters) > 0 {
		if err := p.st.DeadLetter(ctx, letters); err != nil {
			p.log.Error("dead-letter write failed; entries stay in the buffer", "entries", len(letters), "err", err)
			if err := p.q.Nack(ctx, letterIDs); err != nil {
				p.log.Error("buffer nack failed", "entries", len(letterIDs), "err", err)
			}
		} else {
			p.Stats.DeadLettered.Add(int64(len(letters)))
			p.log.Warn("events dead-lettered", "events", len(letters), "reason", letters[0].Error)
			ack = append(append([]int64(nil), ack...), letterIDs...)
		}
	}
	// The worker does not wait for the acknowledgement to commit: the events are stored,
	// and if the ack is lost in a crash the entries are delivered again and the store skips
	// them. Waiting would put a buffer commit (an fsync) into every batch's cycle.
	if len(ack) == 0 {
		return
	}
	p.acks.Add(1)
	go func() {
		defer p.acks.Done()
		if err := p.q.Ack(ctx, ack); err != nil {
			// Delivered again after the claim timeout; the store skips them.
			p.log.Error("buffer ack failed", "entries", len(ack), "err", err)
		}
	}()
}

// failure is an event (index into the batch) that could not be stored, with its own error.
type failure struct {
	i   int
	err error
}

// write stores events with retries. When the whole batch keeps failing it tries each event
// on its own once, so that one bad event does not take the rest of its batch down with it.
// It returns the buffer ids of the stored events and the indexes of those that failed.
//
// A store that does not answer its ping is down, not refusing these events: then the
// worker holds the batch (touching its entries so no other worker claims them) and retries
// once the store answers, however long that takes. unavailable reports that the pool was
// stopped while waiting; nothing was stored or failed then.
func (p *Pool) write(ctx context.Context, events []event.Event, ids []int64) (stored []int64, failed []failure, unavailable bool) {
	start := time.Now()
	for {
		var lastErr error
		for attempt := 1; attempt <= p.cfg.MaxAttempts; attempt++ {
			inserted, dups, err := p.st.InsertBatch(ctx, events, time.Now())
			if err == nil {
				p.count(events, inserted, dups, time.Since(start))
				return ids, nil, false
			}
			lastErr = err
			p.Stats.Failed.Add(1)
			p.log.Warn("store write failed", "events", len(events), "attempt", attempt, "of", p.cfg.MaxAttempts, "err", err)
			if attempt < p.cfg.MaxAttempts {
				sleep(ctx, p.backoff(attempt))
			}
		}
		if p.waitForStore(ctx, ids) {
			continue // the store answers again: a fresh round of attempts
		} else if p.storeDown.Load() {
			return nil, nil, true
		}
		if len(events) == 1 {
			return nil, []failure{{0, lastErr}}, false
		}
		break
	}
	for i := range events {
		inserted, dups, err := p.st.InsertBatch(ctx, events[i:i+1], time.Now())
		if err != nil {
			failed = append(failed, failure{i, err})
			continue
		}
		p.count(events[i:i+1], inserted, dups, time.Since(start))
		stored = append(stored, ids[i])
	}
	return stored, failed, false
}

// waitForStore checks whether the store is down after failed writes. If it answers, it
// returns false at once (the events themselves are the problem). If not, it waits until the
// store answers and returns true, or returns false with storeDown set when the pool stops.
func (p *Pool) waitForStore(ctx context.Context, ids []int64) bool {
	if err := p.st.Ping(ctx); err == nil {
		return false
	}
	p.storeDown.Store(true)
	p.log.Error("event store unavailable: holding the batch until it answers", "events", len(ids))
	toucher, _ := p.q.(queue.Toucher)
	for n := 1; ; n++ {
		if toucher != nil {
			if err := toucher.Touch(ctx, ids); err != nil {
				p.log.Warn("buffer touch failed; another worker may take the batch over", "err", err)
			}
		}
		if p.stop == nil {
			return false
		}
		t := time.NewTimer(p.backoff(n))
		select {
		case <-p.stop:
			t.Stop()
			return false
		case <-t.C:
		}
		if err := p.st.Ping(ctx); err == nil {
			p.storeDown.Store(false)
			p.log.Info("event store answers again; retrying the held batch", "events", len(ids))
			return true
		}
	}
}

func (p *Pool) count(events []event.Event, inserted, dups int, took time.Duration) {
	p.Stats.Processed.Add(int64(inserted))
	p.Stats.Duplicates.Add(int64(dups))
	p.Stats.Batches.Add(1)
	p.Stats.LastBatchSize.Store(int64(len(events)))
	p.Stats.LastProcessedAt.Store(time.Now().UnixNano())
	if p.OnStored != nil {
		p.OnStored(events)
	}
	if p.OnBatch != nil {
		p.OnBatch(events, took)
	}
}

// backoff returns the delay before retry n (1-based): base*2^(n-1), capped, with full jitter
// over its upper half so that workers retrying together spread out.
func (p *Pool) backoff(n int) time.Duration {
	d := p.cfg.BackoffBase << min(n-1, 20)
	if d > p.cfg.BackoffMax || d <= 0 {
		d = p.cfg.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
