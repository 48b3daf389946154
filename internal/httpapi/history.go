package httpapi

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"
)

const (
	// historyStep is the span of one point of the rate history, and the time between two.
	historyStep = 10 * time.Second
	// historyPoints is how many points the history keeps: 10 minutes.
	historyPoints = 60
	// historyLag is how long after a step ends its point is taken: the shared ingestion
	// counter flushes every 250 ms, so the step's last second has reached Redis by then.
	historyLag = 500 * time.Millisecond
)

// ratePoint is one point of the rate history: events per second over the historyStep that
// ends at Timestamp. A nil rate is one that could not be read.
type ratePoint struct {
	Timestamp time.Time `json:"timestamp"`
	Ingested  *float64  `json:"ingested"`
	Processed *float64  `json:"processed"`
}

// rateHistory is a ring of the newest historyPoints rate points, and the last reading of
// the stored-event count that the next processed rate is measured from. Safe for
// concurrent use.
type rateHistory struct {
	mu     sync.Mutex
	points []ratePoint // ring, next is the oldest once full
	next   int

	lastCount int64
	lastAt    time.Time // zero until a count was read
}

// add records p, dropping the oldest point once the ring is full.
func (h *rateHistory) add(p ratePoint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.points) < historyPoints {
		h.points = append(h.points, p)
		return
	}
	h.points[h.next] = p
	h.next = (h.next + 1) % historyPoints
}

// snapshot returns the points, oldest first.
func (h *rateHistory) snapshot() []ratePoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]ratePoint, 0, len(h.points))
	out = append(out, h.points[h.next:]...)
	return append(out, h.points[:h.next]...)
}

// processedRate reads the stored-event count at now and returns the events stored per
// second since the last reading, to a hundredth: nil for the first reading, when the count cannot be read
// (the next rate is then measured from the last good reading), or when it went down
// (retention deleted events).
func (h *rateHistory) processedRate(ctx context.Context, count func(context.Context) (int64, error), now time.Time) *float64 {
	n, err := count(ctx)
	if err != nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	prev, at := h.lastCount, h.lastAt
	h.lastCount, h.lastAt = n, now
	if at.IsZero() || n < prev || !now.After(at) {
		return nil
	}
	r := math.Round(float64(n-prev)/now.Sub(at).Seconds()*100) / 100
	return &r
}

// nextHistorySample is when the point after now is taken: historyLag past the next
// multiple of historyStep on the wall clock.
func nextHistorySample(now time.Time) time.Time {
	return now.Add(-historyLag).Truncate(historyStep).Add(historyStep + historyLag)
}

// RecordRates keeps the rate history of GET /api/metrics/history until ctx ends: every
// 10 s, on the wall clock's multiples of 10 s, it records the ingestion rate over those
// 10 s and the processed rate since the previous point. Its first point is taken at least
// 10 s after it starts, so that the first ingestion rate covers only time it counted, and
// measured from a reading of the store's count taken 10 s before it.
func (s *Server) RecordRates(ctx context.Context) {
	next := nextHistorySample(time.Now().Add(historyStep))
	if !sleepUntil(ctx, next.Add(-historyStep)) {
		return
	}
	if s.Reading.StoredCount != nil {
		s.history.processedRate(ctx, s.Reading.StoredCount, time.Now())
	}
	for sleepUntil(ctx, next) {
		now := time.Now()
		s.SampleRates(ctx, now)
		next = nextHistorySample(now)
	}
}

// sleepUntil waits until t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// SampleRates records one point of the rate history at now (RecordRates calls it every
// 10 s): the ingestion rate over the 10 whole seconds before now's, as the stats routes
// report it (every replica's when the counter is shared; nil when the shared counter
// cannot be read, rather than this replica's share alone), and the growth per second of
// the stored-event count since its last reading, which covers every worker.
func (s *Server) SampleRates(ctx context.Context, now time.Time) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// The ingestion rate covers the 10 whole seconds before now's: its point is stamped
	// with the end of them.
	p := ratePoint{Timestamp: now.Truncate(time.Second).UTC()}
	if s.Ingestion.Rate != nil {
		if r, err := s.Ingestion.Rate.Rate(rctx); err == nil {
			p.Ingested = &r
		}
	} else {
		r := s.ingest.Rate()
		p.Ingested = &r
	}
	if s.Reading.StoredCount != nil {
		p.Processed = s.history.processedRate(rctx, s.Reading.StoredCount, now)
	}
	s.history.add(p)
}

type historyAnswer struct {
	StepSeconds int         `json:"stepSeconds"`
	Points      []ratePoint `json:"points"`
}

// getHistory is GET /api/metrics/history: the rate history this process recorded, up to
// its last 10 minutes.
func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) *Error {
	writeData(w, http.StatusOK, historyAnswer{StepSeconds: int(historyStep / time.Second), Points: s.history.snapshot()})
	return nil
}
