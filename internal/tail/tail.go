// Package tail hands the events the API buffers to the live tails open on it
// (GET /api/v1/events/live) without ever making ingestion wait for them.
//
// Publish runs on the ingestion path: with no tail open it costs one atomic load; with
// tails open it offers each matching event to each tail's bounded queue (a number of
// events and of bytes) and drops a tail whose queue is full (its reader is too slow)
// instead of waiting. Events travel as the buffer's encoding (queue.Entry.Data), so a tail
// writes them without encoding again.
package tail

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/queue"
)

// ErrTooMany is returned by Subscribe when the hub has as many tails as it may.
var ErrTooMany = errors.New("tail: too many live tails")

// Hub is the set of open tails. The zero value is not usable; use New.
type Hub struct {
	max  int
	open atomic.Int32
	mu   sync.Mutex
	subs map[*Sub]struct{}
}

// New returns a hub that holds at most max tails at once.
func New(max int) *Hub {
	return &Hub{max: max, subs: map[*Sub]struct{}{}}
}

// Sub is one open tail: the encoded events that matched it, in the order published.
type Sub struct {
	match    func(*event.Event) bool
	ch       chan []byte
	maxBytes int64
	queued   atomic.Int64  // bytes in ch
	dropped  chan struct{} // closed when the hub dropped the tail for falling behind
}

// Next takes the tail's next event, as the buffer encodes it; ok is false when none waits.
func (s *Sub) Next() (data []byte, ok bool) {
	select {
	case data = <-s.ch:
		s.queued.Add(-int64(len(data)))
		return data, true
	default:
		return nil, false
	}
}

// Ready is readable when an event waits (take it with Next).
func (s *Sub) Ready() <-chan []byte { return s.ch }

// Taken tells the tail that the reader took data from Ready itself.
func (s *Sub) Taken(data []byte) { s.queued.Add(-int64(len(data))) }

// Dropped is closed when the tail fell too far behind and was dropped.
func (s *Sub) Dropped() <-chan struct{} { return s.dropped }

// Subscribe opens a tail of the events match accepts, queueing at most events of them and
// maxBytes of their encodings for its reader; Unsubscribe closes it.
func (h *Hub) Subscribe(match func(*event.Event) bool, events int, maxBytes int64) (*Sub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= h.max {
		return nil, ErrTooMany
	}
	s := &Sub{match: match, ch: make(chan []byte, events), maxBytes: maxBytes, dropped: make(chan struct{})}
	h.subs[s] = struct{}{}
	h.open.Store(int32(len(h.subs)))
	return s, nil
}

// Unsubscribe closes s (dropped or not).
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
	h.open.Store(int32(len(h.subs)))
}

// Max is the most tails the hub holds at once.
func (h *Hub) Max() int { return h.max }

// Open is how many tails are open (none for a nil hub).
func (h *Hub) Open() int {
	if h == nil {
		return 0
	}
	return int(h.open.Load())
}

// Publish offers the buffered entries to every open tail; entries without their decoded
// event are skipped. It never blocks, and it matches outside the hub's lock, so that
// tails with costly filters do not hold up one another's publishers.
func (h *Hub) Publish(entries []queue.Entry) {
	if h.Open() == 0 {
		return
	}
	h.mu.Lock()
	subs := make([]*Sub, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		for i := range entries {
			e := &entries[i]
			if e.Event == nil || !s.match(e.Event) {
				continue
			}
			if !s.offer(e.Data) {
				h.drop(s)
				break
			}
		}
	}
}

// offer queues data for s, or reports that s is too far behind (or dropped already).
func (s *Sub) offer(data []byte) bool {
	if s.queued.Add(int64(len(data))) > s.maxBytes {
		return false
	}
	select {
	case <-s.dropped:
		return false
	case s.ch <- data:
		return true
	default:
		return false
	}
}

// drop closes s's Dropped, once, and forgets it.
func (h *Hub) drop(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return // unsubscribed meanwhile, or dropped by another publisher
	}
	close(s.dropped)
	delete(h.subs, s)
	h.open.Store(int32(len(h.subs)))
}
