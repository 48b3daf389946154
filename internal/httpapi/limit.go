package httpapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// bodyCostFactor is what an ingestion request holds per byte of its body (after
// decompression): the body itself, the decoded events and their encoded entries.
const bodyCostFactor = 3

// inflightWait is how long a request waits for room under the in-flight bound before it is
// answered 503.
const inflightWait = time.Second

// byteBudget bounds the bytes that ingestion requests hold at once (IngestionDeps.InflightMaxBytes).
// A request reserves before it holds and releases when it is answered. Reserving and
// releasing are an atomic operation each; only a request that has to wait for room takes
// the lock. Safe for concurrent use.
type byteBudget struct {
	max     int64
	used    atomic.Int64
	waiters atomic.Int32
	mu      sync.Mutex
	freed   chan struct{} // closed and replaced when bytes are released while someone waits
}

func newByteBudget(max int64) *byteBudget {
	return &byteBudget{max: max, freed: make(chan struct{})}
}

// cost is what a request with body bytes reserves: bodyCostFactor times it, at most the
// whole budget, so that a body of any allowed size is taken when nothing else is held.
func (b *byteBudget) cost(body int64) int64 {
	return min(body*bodyCostFactor, b.max)
}

// tryReserve reserves n bytes if they fit.
func (b *byteBudget) tryReserve(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// reserve reserves n bytes, waiting up to wait for other requests to release them. It
// reports false when they did not come in time or ctx ended.
func (b *byteBudget) reserve(ctx context.Context, n int64, wait time.Duration) bool {
	if b.tryReserve(n) {
		return true
	}
	if wait <= 0 {
		return false
	}
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Take the channel before trying: a release after the try closes it.
		b.mu.Lock()
		freed := b.freed
		b.mu.Unlock()
		if b.tryReserve(n) {
			return true
		}
		select {
		case <-freed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// release gives back n reserved bytes and wakes the requests waiting for room.
func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.used.Add(-n)
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		close(b.freed)
		b.freed = make(chan struct{})
		b.mu.Unlock()
	}
}

// Used is the bytes reserved now.
func (b *byteBudget) Used() int64 { return b.used.Load() }

// bodyHold is one request's reservation, covering the body bytes it has read so far.
// Not safe for concurrent use; the zero value (no budget) reserves nothing.
type bodyHold struct {
	b        *byteBudget
	covered  int64 // body bytes the reservation covers
	reserved int64 // bytes reserved: b.cost(covered)
}

// start reserves for a body of n bytes, waiting up to inflightWait for room. Call it once,
// before reading; a body whose length is unknown starts with what it has read so far (0).
func (h *bodyHold) start(ctx context.Context, n int64) bool {
	if h.b == nil {
		return true
	}
	c := h.b.cost(n)
	if !h.b.reserve(ctx, c, inflightWait) {
		return false
	}
	h.covered, h.reserved = n, c
	return true
}

// grow makes the reservation cover n body bytes, without waiting: a request part-way
// through its body holds memory, and waiting while holding it could leave every request
// waiting for the others.
func (h *bodyHold) grow(n int64) bool {
	if h.b == nil || n <= h.covered {
		return true
	}
	// Reserve ahead, doubling, so that a growing body reserves a few times, not per read.
	next := max(n, 2*h.covered, 64<<10)
	c := h.b.cost(next)
	if !h.b.tryReserve(c - h.reserved) {
		return false
	}
	h.covered, h.reserved = next, c
	return true
}

// trim gives back what the reservation holds beyond n body bytes.
func (h *bodyHold) trim(n int64) {
	if h.b == nil || n >= h.covered {
		return
	}
	c := h.b.cost(n)
	h.b.release(h.reserved - c)
	h.covered, h.reserved = n, c
}

// release gives the whole reservation back.
func (h *bodyHold) release() {
	if h.b == nil {
		return
	}
	h.b.release(h.reserved)
	h.covered, h.reserved = 0, 0
}
