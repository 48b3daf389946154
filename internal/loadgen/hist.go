package loadgen

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// maxLatency is the largest latency a histogram tells apart; longer ones count as this.
const maxLatency = 10 * time.Minute

// Histogram records latencies in microseconds with 3 significant digits (HdrHistogram).
// It is safe for concurrent use.
type Histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewHistogram returns an empty histogram covering 1 µs to 10 minutes.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(1, maxLatency.Microseconds(), 3)}
}

func clampMicros(d time.Duration) int64 {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	if max := maxLatency.Microseconds(); us > max {
		us = max
	}
	return us
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	us := clampMicros(d)
	h.mu.Lock()
	_ = h.h.RecordValue(us) // clampMicros keeps us within the histogram's range
	h.mu.Unlock()
}

// Latencies are the percentiles of a histogram in milliseconds.
type Latencies struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// Latencies returns the current percentiles.
func (h *Histogram) Latencies() Latencies {
	h.mu.Lock()
	defer h.mu.Unlock()
	return latenciesOf(h.h)
}

// Snapshot returns the percentiles and empties the histogram (for per-interval figures).
func (h *Histogram) Snapshot() Latencies {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := latenciesOf(h.h)
	h.h.Reset()
	return l
}

func latenciesOf(h *hdrhistogram.Histogram) Latencies {
	n := h.TotalCount()
	if n == 0 {
		return Latencies{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latencies{
		Count: n,
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtPercentile(50)),
		P90:   ms(h.ValueAtPercentile(90)),
		P99:   ms(h.ValueAtPercentile(99)),
		P999:  ms(h.ValueAtPercentile(99.9)),
		Max:   ms(h.Max()),
	}
}
