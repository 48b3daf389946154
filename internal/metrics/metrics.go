// Package metrics is evp's Prometheus instrumentation, served at GET /metrics.
//
// Counters that evp already keeps (worker stats, buffer stats) are exposed through
// CounterFunc/GaugeFunc read at scrape time, so the hot path pays nothing extra for them;
// only what needs a distribution (HTTP and batch durations, batch sizes) or a label
// (event type) is observed as it happens.
package metrics

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxEventTypes bounds the event_type label: types seen after this many distinct ones are
// counted as "other", so that a client cannot grow the series without bound.
const MaxEventTypes = 100

// Metrics holds the collectors evp updates directly.
type Metrics struct {
	Registry *prometheus.Registry

	Ingested     prometheus.Counter
	Duplicates   prometheus.Counter
	httpDuration *prometheus.HistogramVec
	processed    *prometheus.CounterVec
	batchSize    prometheus.Histogram
	batchTime    prometheus.Histogram

	mu    sync.Mutex
	types map[string]struct{}

	// httpObs caches httpDuration's observer for each label set seen (at most
	// maxHTTPObservers), so that a request costs a map read, not hashing its labels.
	httpMu  sync.RWMutex
	httpObs map[httpLabels]prometheus.Observer
}

type httpLabels struct {
	route, method string
	status        int
}

// maxHTTPObservers bounds httpObs: the method of an unmatched request is the client's.
const maxHTTPObservers = 1000

// New registers evp's collectors and the Go runtime and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Ingested: prometheus.NewCounter(prometheus.CounterOpts{Name: "evp_events_ingested_total",
			Help: "Events accepted (202) and durably buffered by this process."}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "evp_events_duplicate_total",
			Help: "Events answered as duplicates by this process (eventId seen within the dedup window)."}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "evp_http_request_duration_seconds",
			Help: "HTTP request duration by route pattern, method and status.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)},
			[]string{"route", "method", "status"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "evp_events_processed_total",
			Help: "Events in batches the workers wrote to the store, by event type (at most 100 types, then \"other\"); a redelivered event counts again."},
			[]string{"event_type"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "evp_worker_batch_size",
			Help: "Events per store write.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "evp_worker_batch_duration_seconds",
			Help: "Time to write one batch to the store, retries included.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		types:   map[string]struct{}{},
		httpObs: map[httpLabels]prometheus.Observer{},
	}
	r.MustRegister(m.Ingested, m.Duplicates, m.httpDuration, m.processed, m.batchSize, m.batchTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CounterFunc registers a counter read from f at scrape time.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// GaugeFunc registers a gauge read from f at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// ObserveHTTP records one request. route is the matched pattern ("" when none matched).
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	k := httpLabels{route, method, status}
	m.httpMu.RLock()
	o, ok := m.httpObs[k]
	m.httpMu.RUnlock()
	if !ok {
		o = m.httpDuration.WithLabelValues(route, method, strconv.Itoa(status))
		m.httpMu.Lock()
		if len(m.httpObs) < maxHTTPObservers {
			m.httpObs[k] = o
		}
		m.httpMu.Unlock()
	}
	o.Observe(d.Seconds())
}

// ObserveBatch records one store write of events with the given types.
func (m *Metrics) ObserveBatch(types []string, took time.Duration) {
	m.batchSize.Observe(float64(len(types)))
	m.batchTime.Observe(took.Seconds())
	counts := map[string]int{}
	for _, t := range types {
		counts[m.typeLabel(t)]++
	}
	for t, n := range counts {
		m.processed.WithLabelValues(t).Add(float64(n))
	}
}

func (m *Metrics) typeLabel(t string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.types[t]; ok {
		return t
	}
	if len(m.types) >= MaxEventTypes {
		return "other"
	}
	m.types[t] = struct{}{}
	return t
}

// Handler serves the registry in the Prometheus text format. When token is set, a request
// must carry "Authorization: Bearer <token>".
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Timeout: 10 * time.Second})
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="evp metrics"`)
			http.Error(w, "metrics need Authorization: Bearer <EVP_METRICS_TOKEN>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// scrapeTimeout bounds the backend calls made by gauge functions during a scrape.
const scrapeTimeout = 2 * time.Second

// WithTimeout runs f with a scrape-bounded context.
func WithTimeout(f func(ctx context.Context) float64) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		return f(ctx)
	}
}
