package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/tail"
)

const (
	// liveQueue and liveQueueBytes are how far a tail may fall behind (events, and bytes
	// of them: an event may be megabytes) before it is dropped.
	liveQueue      = 4096
	liveQueueBytes = 8 << 20
	// liveStall is how long a tail's client may take to read what was written to it.
	liveStall = 10 * time.Second
	// livePing is how often an idle tail says it is alive (proxies close quiet streams).
	livePing = 15 * time.Second
)

// liveEvents is GET /api/v1/events/live: the events this process buffers from now on that
// match the filters, as server-sent events ("event: event", the event as buffered), until
// the client leaves or evp stops. A client that falls behind is sent "event: dropped" and
// disconnected: ingestion never waits for a tail.
func (s *Server) liveEvents(w http.ResponseWriter, r *http.Request) *Error {
	q, e := eventQuery(r.URL.Query(), time.Now())
	if e != nil || r.Method == http.MethodHead {
		return e
	}
	sub, err := s.Reading.Tails.Subscribe(func(ev *event.Event) bool { return store.Matches(ev, &q) }, liveQueue, liveQueueBytes)
	if errors.Is(err, tail.ErrTooMany) {
		e := errorf(http.StatusTooManyRequests, "TOO_MANY_TAILS", "%d live tails are open, the most this evp serves (EVP_LIVE_TAILS_MAX); retry when one closes", s.Reading.Tails.Max())
		e.RetryAfter = 10
		return e
	}
	defer s.Reading.Tails.Unsubscribe(sub)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	ctl := http.NewResponseController(w)
	write := func(b []byte) bool {
		_ = ctl.SetWriteDeadline(time.Now().Add(liveStall))
		_, err := w.Write(b)
		return err == nil
	}
	if !write([]byte("retry: 2000\n: live\n\n")) || ctl.Flush() != nil {
		return nil
	}
	ping := time.NewTicker(livePing)
	defer ping.Stop()
	buf := make([]byte, 0, 4096)
	for {
		select {
		case data := <-sub.Ready():
			sub.Taken(data)
			// What else is queued goes in the same write.
			buf = appendEvent(buf[:0], data)
			for len(buf) < 64<<10 {
				d, ok := sub.Next()
				if !ok {
					break
				}
				buf = appendEvent(buf, d)
			}
			if !write(buf) || ctl.Flush() != nil {
				return nil
			}
		case <-sub.Dropped():
			write([]byte("event: dropped\ndata: {\"reason\":\"this client read too slowly; reconnect to go on from now\"}\n\n"))
			_ = ctl.Flush()
			return nil
		case <-ping.C:
			if !write([]byte(": ping\n\n")) || ctl.Flush() != nil {
				return nil
			}
		case <-s.stopping:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

// appendEvent appends one server-sent event: an event as the buffer encodes it (one line
// of JSON).
func appendEvent(b, data []byte) []byte {
	b = append(b, "event: event\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
