package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// storeGate answers 503 SERVICE_UNAVAILABLE with Retry-After on the routes that read the
// event store while the store does not answer its ping, instead of the 500 a failed read
// would give. Ingestion never depends on the store: the buffer keeps the events and the
// workers retry. A ping result is reused for a second, so a dead store costs a request no
// more than a lock and a time check.
type storeGate struct {
	check HealthCheck

	mu      sync.Mutex
	checked time.Time
	err     error
}

func (g *storeGate) down(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checked) < time.Second {
		return g.err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	g.err, g.checked = g.check.Ping(pctx), time.Now()
	return g.err
}

// needsStore marks a route that reads the event store: with a StoreCheck set, it answers
// 503 while the store is down.
func (s *Server) needsStore(h handler) handler {
	if s.gate == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) *Error {
		if err := s.gate.down(r.Context()); err != nil {
			return errUnavailable("the event store (%s) is unavailable; retry shortly", s.gate.check.Name)
		}
		return h(w, r)
	}
}
