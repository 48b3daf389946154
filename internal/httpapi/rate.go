package httpapi

import (
	"sync"
	"time"
)

// RateCounter counts events in one-second buckets and reports the rate over the last
// window seconds (the current, partial second excluded). Safe for concurrent use.
type RateCounter struct {
	window int
	now    func() time.Time

	mu      sync.Mutex
	buckets []rateBucket
}

type rateBucket struct {
	sec   int64
	count int64
}

// NewRateCounter returns a counter over the given window in seconds.
func NewRateCounter(window int) *RateCounter {
	return &RateCounter{window: window, now: time.Now, buckets: make([]rateBucket, window+1)}
}

// Add counts n events now.
func (c *RateCounter) Add(n int64) {
	sec := c.now().Unix()
	c.mu.Lock()
	b := &c.buckets[sec%int64(len(c.buckets))]
	if b.sec != sec {
		b.sec, b.count = sec, 0
	}
	b.count += n
	c.mu.Unlock()
}

// Rate returns events per second over the last window full seconds.
func (c *RateCounter) Rate() float64 {
	sec := c.now().Unix()
	var total int64
	c.mu.Lock()
	for _, b := range c.buckets {
		if b.sec < sec && b.sec >= sec-int64(c.window) {
			total += b.count
		}
	}
	c.mu.Unlock()
	return float64(total) / float64(c.window)
}
