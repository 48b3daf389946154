package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/evp-dev/evp/internal/queue"
)

type serviceHealth struct {
	Status    string  `json:"status"`
	LatencyMs float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
}

type healthAnswer struct {
	Status    string                   `json:"status"`
	Version   string                   `json:"version"`
	Uptime    float64                  `json:"uptime"`
	Timestamp time.Time                `json:"timestamp"`
	Services  map[string]serviceHealth `json:"services"`
}

// Degraded wraps a health check's error to say that the backend works but refuses some
// of its work (a full buffer, a full disk): GET /api/health reports it "degraded" with the
// reason, and evp "degraded" with 200, not "unhealthy" with 503.
func Degraded(err error) error {
	if err == nil {
		return nil
	}
	return &degradedError{err}
}

type degradedError struct{ err error }

func (e *degradedError) Error() string { return e.err.Error() }
func (e *degradedError) Unwrap() error { return e.err }

// getHealth is GET /api/health: every backend pinged with a timeout. One backend down makes
// evp unhealthy (503); one degraded (see Degraded) makes it degraded (200). The answer
// names each with its error.
func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	ans := healthAnswer{Status: "healthy", Version: s.Serving.Version, Uptime: time.Since(s.started).Seconds(),
		Timestamp: time.Now().UTC(), Services: map[string]serviceHealth{}}
	for _, c := range s.Serving.Health {
		start := time.Now()
		err := c.Ping(ctx)
		h := serviceHealth{Status: "up", LatencyMs: float64(time.Since(start).Microseconds()) / 1000}
		var de *degradedError
		switch {
		case errors.As(err, &de):
			h.Status, h.Error = "degraded", err.Error()
			if ans.Status == "healthy" {
				ans.Status = "degraded"
			}
		case err != nil:
			h.Status, h.Error = "down", err.Error()
			ans.Status = "unhealthy"
		}
		ans.Services[c.Name] = h
	}
	status := http.StatusOK
	if ans.Status == "unhealthy" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, ans)
}

// getReady is GET /api/ready.
func (s *Server) getReady(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

// getLive is GET /api/live.
func (s *Server) getLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

type statsAnswer struct {
	IngestionRate float64   `json:"ingestionRate"`
	TotalIngested int64     `json:"totalIngested"`
	Timestamp     time.Time `json:"timestamp"`
}

// getStats is GET /api/v1/events/stats. totalIngested is the buffer's persisted count of
// accepted events, so it survives restarts.
func (s *Server) getStats(w http.ResponseWriter, r *http.Request) *Error {
	qs, err := s.Ingestion.Queue.Stats(r.Context())
	if err != nil {
		s.log.Error("stats failed", "err", err)
		return s.readFailed(r.Context(), err, "ingestion buffer", s.Ingestion.Queue.Ping, "STATS_ERROR", "could not read ingestion stats")
	}
	writeData(w, http.StatusOK, statsAnswer{IngestionRate: s.ingestionRate(r.Context()), TotalIngested: qs.TotalEnqueued, Timestamp: time.Now().UTC()})
	return nil
}

type ingestionMetrics struct {
	Rate          float64 `json:"rate"`
	TotalIngested int64   `json:"totalIngested"`
}

type processingMetrics struct {
	TotalEvents            int64      `json:"totalEvents"`
	EventsPerSecond        float64    `json:"eventsPerSecond"`
	TotalBatches           int64      `json:"totalBatches"`
	LastBatchSize          int64      `json:"lastBatchSize"`
	LastProcessedTimestamp *time.Time `json:"lastProcessedTimestamp"`
}

type errorMetrics struct {
	FailedEvents int64 `json:"failedEvents"`
	DLQEvents    int64 `json:"dlqEvents"`
}

type queueMetrics struct {
	StreamLength    int64 `json:"streamLength"`
	ConsumerGroups  int   `json:"consumerGroups"`
	PendingMessages int64 `json:"pendingMessages"`
}

type metricsAnswer struct {
	Ingestion    ingestionMetrics  `json:"ingestion"`
	Processing   processingMetrics `json:"processing"`
	Errors       errorMetrics      `json:"errors"`
	Queue        queueMetrics      `json:"queue"`
	EventsByType map[string]int64  `json:"eventsByType"`
	Timestamp    time.Time         `json:"timestamp"`
}

// getMetrics is GET /api/metrics.
func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) *Error {
	qs, err := s.Ingestion.Queue.Stats(r.Context())
	if err != nil {
		s.log.Error("metrics: buffer stats failed", "err", err)
		return s.readFailed(r.Context(), err, "ingestion buffer", s.Ingestion.Queue.Ping, "METRICS_ERROR", "could not read buffer metrics")
	}
	ps, err := s.Reading.Processing(r.Context())
	if err != nil {
		s.log.Error("metrics: processing stats failed", "err", err)
		var ping func(context.Context) error
		if s.Reading.StoreCheck != nil {
			ping = s.Reading.StoreCheck.Ping
		}
		return s.readFailed(r.Context(), err, "event store", ping, "METRICS_ERROR", "could not read processing metrics")
	}
	if ps.EventsByType == nil {
		ps.EventsByType = map[string]int64{}
	}
	ans := metricsAnswer{
		Ingestion: ingestionMetrics{Rate: s.ingestionRate(r.Context()), TotalIngested: qs.TotalEnqueued},
		Processing: processingMetrics{TotalEvents: ps.TotalEvents, EventsPerSecond: ps.EventsPerSecond,
			TotalBatches: ps.TotalBatches, LastBatchSize: ps.LastBatchSize},
		Errors:       errorMetrics{FailedEvents: ps.FailedEvents, DLQEvents: ps.DLQEvents},
		Queue:        queueMetrics{StreamLength: qs.Length, ConsumerGroups: 1, PendingMessages: qs.Pending},
		EventsByType: ps.EventsByType,
		Timestamp:    time.Now().UTC(),
	}
	if !ps.LastProcessedAt.IsZero() {
		t := ps.LastProcessedAt.UTC()
		ans.Processing.LastProcessedTimestamp = &t
	}
	writeData(w, http.StatusOK, ans)
	return nil
}

// getIngestionMetrics is GET /api/metrics/ingestion.
func (s *Server) getIngestionMetrics(w http.ResponseWriter, r *http.Request) *Error {
	qs, err := s.Ingestion.Queue.Stats(r.Context())
	if err != nil {
		s.log.Error("metrics: buffer stats failed", "err", err)
		return s.readFailed(r.Context(), err, "ingestion buffer", s.Ingestion.Queue.Ping, "METRICS_ERROR", "could not read ingestion metrics")
	}
	writeData(w, http.StatusOK, ingestionMetrics{Rate: s.ingestionRate(r.Context()), TotalIngested: qs.TotalEnqueued})
	return nil
}

// BufferDescriber describes the buffer for GET /api/metrics/stream; each buffer describes
// itself.
type BufferDescriber interface {
	Describe(ctx context.Context) (queue.Description, error)
}

// streamAnswer is GET /api/metrics/stream: the buffer and who reads it (queue.Description).
type streamAnswer struct {
	Backend       string        `json:"backend"`
	Stream        string        `json:"stream"`
	Partitions    int           `json:"partitions"`
	Streams       []string      `json:"streams"`
	Length        int64         `json:"length"`
	TotalEnqueued int64         `json:"totalEnqueued"`
	Groups        []streamGroup `json:"groups"`
	Timestamp     time.Time     `json:"timestamp"`
}

type streamGroup struct {
	Name            string           `json:"name"`
	Pending         int64            `json:"pending"`
	Lag             int64            `json:"lag"`
	LastDeliveredID string           `json:"lastDeliveredId,omitempty"`
	Consumers       []streamConsumer `json:"consumers"`
}

type streamConsumer struct {
	Name    string `json:"name"`
	Pending int64  `json:"pending"`
	IdleMs  int64  `json:"idleMs"`
}

// getStream is GET /api/metrics/stream. It always names the partition count and the stream
// keys: 1 and [stream] when the buffer leaves them out.
func (s *Server) getStream(w http.ResponseWriter, r *http.Request) *Error {
	d, err := s.Reading.Stream.Describe(r.Context())
	if err != nil {
		s.log.Error("stream metrics failed", "err", err)
		return s.readFailed(r.Context(), err, "ingestion buffer", s.Ingestion.Queue.Ping, "STREAM_ERROR", "could not read the buffer's stream information")
	}
	ans := streamAnswer{Backend: d.Backend, Stream: d.Stream, Partitions: max(d.Partitions, 1), Streams: d.Streams,
		Length: d.Length, TotalEnqueued: d.TotalEnqueued, Groups: make([]streamGroup, 0, len(d.Groups)), Timestamp: time.Now().UTC()}
	if ans.Streams == nil {
		ans.Streams = []string{d.Stream}
	}
	for _, g := range d.Groups {
		sg := streamGroup{Name: g.Name, Pending: g.Pending, Lag: g.Lag, LastDeliveredID: g.LastDeliveredID,
			Consumers: make([]streamConsumer, 0, len(g.Consumers))}
		for _, c := range g.Consumers {
			sg.Consumers = append(sg.Consumers, streamConsumer{Name: c.Name, Pending: c.Pending, IdleMs: c.Idle.Milliseconds()})
		}
		ans.Groups = append(ans.Groups, sg)
	}
	writeData(w, http.StatusOK, ans)
	return nil
}

// readFailed answers a failed read of a backend (what names it): 503 with Retry-After when
// the backend is unavailable, that is when err says it cannot be reached or ping, when
// set, fails too; otherwise 500 with code and msg.
func (s *Server) readFailed(ctx context.Context, err error, what string, ping func(context.Context) error, code, msg string) *Error {
	down := unreachable(err)
	if !down && ping != nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		if perr := ping(pctx); perr != nil {
			down, err = true, perr
		}
		cancel()
	}
	if !down {
		return errorf(http.StatusInternalServerError, code, "%s", msg)
	}
	return errUnavailable("the %s is unavailable (%v); retry shortly", what, err)
}

// unreachable reports whether err says that a backend could not be reached or answered
// in time (a refused or broken connection, a timeout) or is closed: a backend down, not a
// request it could not serve.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, queue.ErrClosed)
}
