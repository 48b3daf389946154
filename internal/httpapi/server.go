// Package httpapi serves evp's HTTP surface, described by the OpenAPI document it serves at
// /openapi.json (internal/openapi): ingestion, stats, metrics, analytics, accounts, dead
// letters, health, the API documentation and the dashboard.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/cors"
	"github.com/go-chi/httprate"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/clientip"
	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/metrics"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/tail"
)

// KeyAuthenticator checks API keys (see accounts.KeyAuth): MarkUsed records the use of a
// key whose request was let through.
type KeyAuthenticator interface {
	Authenticate(ctx context.Context, plain string) (accounts.APIKey, error)
	MarkUsed(k accounts.APIKey)
}

// UniqueQueue appends the entries whose event ids are not in the dedup window, records
// them there, and reports which it appended.
type UniqueQueue interface {
	EnqueueUnique(ctx context.Context, entries []queue.Entry) ([]bool, error)
}

// IngestRate is a shared ingestion counter.
type IngestRate interface {
	Add(n int64)
	Rate(ctx context.Context) (float64, error)
}

// HealthCheck is one backend in /api/health.
type HealthCheck struct {
	Name string
	Ping func(ctx context.Context) error
}

// ProcessingStats is what the metrics routes report about the workers and the store.
type ProcessingStats struct {
	TotalEvents     int64            // events stored
	EventsPerSecond float64          // stored over the last 10 s
	TotalBatches    int64            // since start
	LastBatchSize   int64            // events in the last batch
	LastProcessedAt time.Time        // zero before the first batch
	FailedEvents    int64            // failed store attempts
	DLQEvents       int64            // entries in the dead-letter queue
	EventsByType    map[string]int64 // all-time stored events per type; nil when the store cannot tell
}

// Deps are what the server needs from the rest of evp, grouped by the concern they serve.
// A nil field leaves out what it serves, where its comment says so.
type Deps struct {
	Ingestion IngestionDeps
	Auth      AuthDeps
	Reading   ReadingDeps
	Serving   ServingDeps
}

// IngestionDeps are what POST /api/v1/events and /api/v1/events/batch need: the buffer,
// the dedup window and the bounds on a request.
type IngestionDeps struct {
	Queue queue.Queue
	Dedup dedup.Set
	// UniqueQueue, when set, checks the dedup window, appends and records the new ids in
	// one step (Redis: one round trip, atomic across replicas); ingestion then uses it
	// instead of Dedup and Queue.Enqueue.
	UniqueQueue UniqueQueue
	// Rate, when set, counts accepted events and reports the rate across every replica
	// (Redis); without it the rate is this process's.
	Rate IngestRate
	// MaxBodyBytes bounds a request body after decompression.
	MaxBodyBytes int64
	// InflightMaxBytes bounds what ingestion requests hold at once: bodyCostFactor times
	// their body bytes (the body, the decoded events, their encoded entries). Past it a
	// request waits up to inflightWait for room, then gets 503. 128 MiB when 0.
	InflightMaxBytes int64
	// Off leaves out the ingestion routes (a worker-only process).
	Off bool
}

// AuthDeps are who may call: API keys, accounts and the limits on the sign-in routes.
type AuthDeps struct {
	Keys KeyAuthenticator
	// Accounts serves sign-in, sessions, API-key and user management; nil leaves those
	// routes out (API keys still work through Keys).
	Accounts *accounts.Service
	// AnalyticsPublic opens the analytics and metrics routes to callers without
	// credentials (EVP_ANALYTICS_PUBLIC).
	AnalyticsPublic bool
	// RateLimit is the requests per minute per client IP on /api/auth/* (100 when 0).
	RateLimit int
	// LimitCounter, when set, keeps the /api/auth counters shared by every replica
	// (Redis); otherwise each process counts its own.
	LimitCounter httprate.LimitCounter
	// TrustProxy takes the client IP from X-Forwarded-For written by TrustedProxies
	// (clientip.Private when empty); see clientip.Resolver.Addr.
	TrustProxy     bool
	TrustedProxies []netip.Prefix
}

// ReadingDeps answer the routes that read what evp holds: metrics, the buffer, analytics
// and dead letters.
type ReadingDeps struct {
	Processing func(ctx context.Context) (ProcessingStats, error)
	// StoredCount, when set, is the event store's count, read every 10 s by RecordRates
	// for the processed rate of GET /api/metrics/history (every worker's: the store is
	// shared); without it that rate is null.
	StoredCount func(ctx context.Context) (int64, error)
	// Stream describes the buffer for GET /api/metrics/stream; nil leaves the route out.
	Stream BufferDescriber
	// Analytics answers GET /api/v1/analytics/metrics; nil leaves the route out.
	Analytics func(ctx context.Context, q store.AnalyticsQuery) (store.AnalyticsResult, error)
	// AnalyticsCache keeps analytics answers (Redis, shared by replicas); nil keeps them in
	// this process.
	AnalyticsCache AnalyticsCache
	// Tails, when set, serves GET /api/v1/events/live with the events this process
	// buffers.
	Tails *tail.Hub
	// Events serves GET /api/v1/events, /api/v1/events/{eventId} and /api/v1/events/export;
	// nil leaves them out.
	Events store.EventReader
	// Forget serves DELETE /api/v1/users/{userId}/events; nil leaves it out.
	Forget store.Forgetter
	// DeadLetters serves the /api/v1/dead-letters routes (list, show, replay into the
	// buffer, delete); nil leaves them out.
	DeadLetters store.DeadLetters
	// StoreCheck, when set, is pinged (its result reused for a second) before the routes
	// that read the event store; while it fails they answer 503 naming it. For a remote
	// store (MongoDB), whose reads would otherwise fail with a 500.
	StoreCheck *HealthCheck
}

// ServingDeps are what every process serves whatever its role, and how it logs.
type ServingDeps struct {
	// Health lists the backends GET /api/health pings.
	Health []HealthCheck
	// Docs, when set, serves /openapi.json and /docs.
	Docs http.Handler
	// Dashboard, when set, answers GET and HEAD requests for paths outside /api/ that no
	// route matches (the web dashboard and its client-side routes).
	Dashboard http.Handler
	// Metrics, when set, is updated by the API and served at GET /metrics, guarded by
	// MetricsToken when that is set.
	Metrics      *metrics.Metrics
	MetricsToken string
	// CORSOrigins lets browsers on these origins call the API (a dashboard hosted
	// elsewhere, built with VITE_API_URL); none when empty.
	CORSOrigins []string
	Log         *slog.Logger
	Version     string
}

// Server is the HTTP API. Create with New; serve Handler().
type Server struct {
	Deps
	log      *slog.Logger
	ids      *requestIDs
	started  time.Time
	ready    atomic.Bool
	acache   AnalyticsCache
	ingest   *RateCounter
	history  rateHistory
	flight   *inflight
	budget   *byteBudget
	gate     *storeGate
	clients  *clientip.Resolver
	handler  http.Handler
	routes   []string
	exports  chan struct{} // a place per export running
	forgets  chan struct{} // the place of the one deletion of a user's events running
	searches chan struct{} // a place per page or event being read
	// stopping is closed when the server stops being ready, ending the live tails (which
	// an HTTP server's shutdown would otherwise wait for).
	stopping chan struct{}
	stopOnce sync.Once
}

// New builds the server. It starts not ready; call SetReady(true) once serving.
func New(d Deps) *Server {
	if d.Serving.Log == nil {
		d.Serving.Log = slog.Default()
	}
	if d.Ingestion.MaxBodyBytes <= 0 {
		d.Ingestion.MaxBodyBytes = 5 << 20
	}
	if d.Ingestion.InflightMaxBytes <= 0 {
		d.Ingestion.InflightMaxBytes = 128 << 20
	}
	s := &Server{Deps: d, log: d.Serving.Log, ids: newRequestIDs(), started: time.Now(), ingest: NewRateCounter(10), flight: newInflight(), acache: d.Reading.AnalyticsCache,
		budget: newByteBudget(d.Ingestion.InflightMaxBytes), exports: make(chan struct{}, exportsAtOnce), forgets: make(chan struct{}, 1), searches: make(chan struct{}, searchesAtOnce),
		stopping: make(chan struct{})}
	s.clients = clientip.New(d.Auth.TrustProxy, d.Auth.TrustedProxies)
	if d.Reading.StoreCheck != nil { // before the routes: needsStore reads it as they are made
		s.gate = &storeGate{check: *d.Reading.StoreCheck}
	}
	if s.acache == nil {
		s.acache = newLocalAnalyticsCache()
	}
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		s.routes = append(s.routes, strings.TrimSuffix(pattern, "{$}"))
		mux.Handle(pattern, h)
	}
	if !d.Ingestion.Off {
		handle("POST /api/v1/events", s.guard(accounts.PermIngest, s.postEvent))
		handle("POST /api/v1/events/batch", s.guard(accounts.PermIngest, s.postBatch))
		handle("POST /api/v1/events/import", s.guard(accounts.PermImport, s.postImport))
		handle("GET /api/v1/events/stats", s.guard(accounts.PermIngestStats, s.getStats))
		handle("POST /v1/{call}", s.guardless(s.postSegment))
		handle("GET /v1/projects/{writeKey}/settings", s.guardless(s.getSegmentSettings))
		for _, path := range posthogPaths {
			handle("POST "+path+"{$}", s.guardless(s.postPostHog))
		}
		handle("POST /flags/{$}", s.guardless(s.postPostHogFlags))
		handle("POST /decide/{$}", s.guardless(s.postPostHogDecide))
		handle("GET /array/{token}/config", s.guardless(s.getPostHogConfig))
	}
	handle("GET /api/metrics", s.guard(accounts.PermReadAnalytics, s.needsStore(s.getMetrics)))
	handle("GET /api/metrics/ingestion", s.guard(accounts.PermReadAnalytics, s.getIngestionMetrics))
	handle("GET /api/metrics/history", s.guard(accounts.PermReadAnalytics, s.getHistory))
	if d.Reading.Stream != nil {
		handle("GET /api/metrics/stream", s.guard(accounts.PermReadAnalytics, s.getStream))
	}
	if d.Reading.Analytics != nil {
		handle("GET /api/v1/analytics/metrics", s.guard(accounts.PermReadAnalytics, s.needsStore(s.getAnalytics)))
	}
	if d.Reading.Events != nil {
		handle("GET /api/v1/events", s.guard(accounts.PermReadEvents, s.needsStore(s.listEvents)))
		handle("GET /api/v1/events/export", s.guard(accounts.PermReadEvents, s.needsStore(s.exportEvents)))
		handle("GET /api/v1/events/{eventId}", s.guard(accounts.PermReadEvents, s.needsStore(s.getEvent)))
	}
	if d.Reading.Forget != nil {
		handle("DELETE /api/v1/users/{userId}/events", s.guard(accounts.PermForgetUsers, s.needsStore(s.forgetUser)))
	}
	if d.Reading.Tails != nil {
		handle("GET /api/v1/events/live", s.guard(accounts.PermReadEvents, s.liveEvents))
	}
	if d.Auth.Accounts != nil {
		limited := s.authLimiter()
		auth := func(pattern string, h http.HandlerFunc) { handle(pattern, limited(h).ServeHTTP) }
		auth("POST /api/auth/request-code", s.guardless(s.postRequestCode))
		auth("POST /api/auth/verify", s.guardless(s.postVerify))
		auth("GET /api/auth/me", s.requireUser(s.getMe))
		auth("POST /api/auth/api-key", s.guard(accounts.PermManageKeys, s.postAPIKey))
		auth("GET /api/auth/api-keys", s.guard(accounts.PermManageKeys, s.getAPIKeys))
		auth("DELETE /api/auth/api-keys/{id}", s.guard(accounts.PermManageKeys, s.deleteAPIKey))
		handle("GET /api/users", s.guard(accounts.PermManageUsers, s.getUsers))
		handle("POST /api/users", s.guard(accounts.PermManageUsers, s.postUser))
		handle("PATCH /api/users/{id}", s.guard(accounts.PermManageUsers, s.patchUser))
	}
	if d.Reading.DeadLetters != nil {
		handle("GET /api/v1/dead-letters", s.guard(accounts.PermManageDeadLetters, s.needsStore(s.listDeadLetters)))
		handle("GET /api/v1/dead-letters/{id}", s.guard(accounts.PermManageDeadLetters, s.needsStore(s.getDeadLetter)))
		handle("POST /api/v1/dead-letters/{id}/replay", s.guard(accounts.PermManageDeadLetters, s.needsStore(s.replayDeadLetter)))
		handle("POST /api/v1/dead-letters/replay", s.guard(accounts.PermManageDeadLetters, s.needsStore(s.replayAllDeadLetters)))
		handle("DELETE /api/v1/dead-letters/{id}", s.guard(accounts.PermManageDeadLetters, s.needsStore(s.deleteDeadLetter)))
	}
	if d.Serving.Metrics != nil {
		handle("GET /metrics", d.Serving.Metrics.Handler(d.Serving.MetricsToken).ServeHTTP)
	}
	handle("GET /api/health", s.getHealth)
	handle("GET /api/ready", s.getReady)
	handle("GET /api/live", s.getLive)
	if docs := d.Serving.Docs; docs != nil {
		handle("GET /openapi.json", docs.ServeHTTP)
		handle("GET /docs", docs.ServeHTTP)
		mux.Handle("GET /docs/", docs)
	}
	dash := d.Serving.Dashboard
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if dash != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			r.URL.Path != "/api" && !strings.HasPrefix(r.URL.Path, "/api/") {
			dash.ServeHTTP(w, r)
			return
		}
		if allowed := allowedMethods(mux, r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, errorf(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "%s %s is not supported; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
			return
		}
		writeError(w, errorf(http.StatusNotFound, "NOT_FOUND", "no route for %s %s", r.Method, r.URL.Path))
	})
	var h http.Handler = mux
	if origins := d.Serving.CORSOrigins; len(origins) > 0 {
		h = corsFor(origins)(mux)
	}
	if !d.Ingestion.Off {
		h = ingestCORS(h)
	}
	s.handler = s.wrap(h)
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists the registered route patterns ("METHOD /path").
func (s *Server) Routes() []string {
	r := append([]string(nil), s.routes...)
	sort.Strings(r)
	return r
}

// SetReady switches /api/ready; false also makes ingestion answer 503 (shutting down).
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
	if !ready {
		s.stopOnce.Do(func() { close(s.stopping) })
	}
}

// countAccepted counts n accepted events in this process and, when configured, across
// replicas.
func (s *Server) countAccepted(n int64) {
	s.ingest.Add(n)
	if s.Ingestion.Rate != nil {
		s.Ingestion.Rate.Add(n)
	}
}

// ingestionRate is the rate the stats routes report: every replica's when shared,
// otherwise this process's. A shared counter that cannot be read falls back to the local one.
func (s *Server) ingestionRate(ctx context.Context) float64 {
	if s.Ingestion.Rate != nil {
		if r, err := s.Ingestion.Rate.Rate(ctx); err == nil {
			return r
		}
	}
	return s.ingest.Rate()
}

func errUnavailable(format string, args ...any) *Error {
	e := errorf(http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", format, args...)
	e.RetryAfter = 1
	return e
}

// allowedMethods lists the methods that have a route for r's path, other than the catch-all
// (which matches every method, and so hides Go's own 405 answer).
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

// corsFor answers CORS preflights and adds the CORS headers for the allowed origins
// (github.com/go-chi/cors). Credentials travel in headers (Authorization, x-api-key), never
// cookies, so credentialed CORS is not needed.
func corsFor(origins []string) func(http.Handler) http.Handler {
	return cors.Handler(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodHead},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Content-Encoding", "x-api-key", "X-Request-Id"},
		ExposedHeaders: []string{"X-Request-Id", "Retry-After", "X-Cache"},
		MaxAge:         600,
	})
}
