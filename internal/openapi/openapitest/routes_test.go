package openapitest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/httpapi"
	"github.com/evp-dev/evp/internal/metrics"
	"github.com/evp-dev/evp/internal/openapi"
	"github.com/evp-dev/evp/internal/openapi/openapitest"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/tail"
)

// memQueue is enough of a buffer for the HTTP routes: Enqueue and Stats, with switchable
// failures.
type memQueue struct {
	mu         sync.Mutex
	entries    []queue.Entry
	failAppend bool
	failStats  bool
}

func (q *memQueue) Enqueue(_ context.Context, e []queue.Entry) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failAppend {
		return errors.New("disk full")
	}
	q.entries = append(q.entries, e...)
	return nil
}

func (q *memQueue) Stats(context.Context) (queue.Stats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failStats {
		return queue.Stats{}, errors.New("stats broken")
	}
	n := int64(len(q.entries))
	return queue.Stats{Length: n, TotalEnqueued: n}, nil
}

// Describe describes the buffer as the embedded one does.
func (q *memQueue) Describe(ctx context.Context) (queue.Description, error) {
	st, err := q.Stats(ctx)
	if err != nil {
		return queue.Description{}, err
	}
	return queue.Description{Backend: "embedded", Stream: "buffer", Length: st.Length, TotalEnqueued: st.TotalEnqueued,
		Groups: []queue.GroupDescription{{Name: "evp-workers-group", Pending: st.Pending, Lag: st.Length - st.Pending,
			Consumers: []queue.ConsumerDescription{{Name: "workers", Pending: st.Pending}}}}}, nil
}

func (q *memQueue) Fetch(context.Context, int, time.Duration) ([]queue.Message, error) {
	return nil, nil
}
func (q *memQueue) Ack(context.Context, []int64) error                          { return nil }
func (q *memQueue) Nack(context.Context, []int64) error                         { return nil }
func (q *memQueue) PendingEventIDs(context.Context, func(eventID string)) error { return nil }
func (q *memQueue) Ping(context.Context) error                                  { return nil }
func (q *memQueue) Close() error                                                { return nil }

type keys struct{ storeDown bool }

func (k *keys) Authenticate(_ context.Context, plain string) (accounts.APIKey, error) {
	if k.storeDown {
		return accounts.APIKey{}, errors.New("database is locked")
	}
	switch plain {
	case "evp_good":
		return accounts.APIKey{}, nil
	case "evp_ingest": // an ingest-only key
		return accounts.APIKey{IngestOnly: true}, nil
	case "evp_shop": // a key for one web origin
		return accounts.APIKey{IngestOnly: true, AllowedOrigins: []string{"https://shop.example"}}, nil
	}
	return accounts.APIKey{}, accounts.ErrInvalidKey
}

func (k *keys) MarkUsed(accounts.APIKey) {}

type fixture struct {
	srv           *httpapi.Server
	q             *memQueue
	keys          *keys
	backendUp     bool
	procFail      bool
	procPanic     bool
	analyticsFail bool
	lastBatch     time.Time
	dl            *deadLetterSlot  // the dead-letter store; deadletters_test.go fills it
	ev            *eventsSlot      // the event reader; events_test.go fills it
	fg            *forgetSlot      // deletion of a user's events; events_test.go fills it
	tails         *tail.Hub        // the live tails (two at most)
	cleanup       func()           // what a step's setup left running, ended after its request
	acc           *accountsFixture // the accounts service (accounts_fixture_test.go)
}

// newFixture builds the server; opts may change its Deps first.
func newFixture(t testing.TB, opts ...func(*fixture, *httpapi.Deps)) *fixture {
	f := &fixture{q: &memQueue{}, keys: &keys{}, backendUp: true, dl: &deadLetterSlot{}, ev: &eventsSlot{}, fg: &forgetSlot{}, tails: tail.New(2), acc: newAccounts(t)}
	d := httpapi.Deps{
		Ingestion: httpapi.IngestionDeps{
			Queue:        f.q,
			Dedup:        dedup.Local{W: dedup.New(time.Minute)},
			MaxBodyBytes: 4 << 10,
		},
		Auth: httpapi.AuthDeps{Keys: f.keys, Accounts: f.acc.svc},
		Reading: httpapi.ReadingDeps{
			DeadLetters: f.dl,
			Events:      f.ev,
			Forget:      f.fg,
			Tails:       f.tails,
			Stream:      f.q,
			Analytics: func(_ context.Context, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
				if f.analyticsFail {
					return store.AnalyticsResult{}, errors.New("database is locked")
				}
				return store.AnalyticsResult{TotalEvents: 3, UniqueUsers: 2, UniqueSessions: 2, AvgEventsPerUser: 1.5,
					EventsByType:   []store.TypeCount{{EventType: "page_view", Count: 2, Percentage: 66.67}, {EventType: "click", Count: 1, Percentage: 33.33}},
					TopUsers:       []store.TopUser{{UserID: "u1", EventCount: 2, LastEventAt: q.End.Add(-time.Second), EventTypes: []string{"click", "page_view"}}},
					EventsOverTime: []store.BucketCount{{Timestamp: q.Start, Count: 3}}}, nil
			},
			Processing: func(context.Context) (httpapi.ProcessingStats, error) {
				if f.procPanic {
					panic("boom")
				}
				if f.procFail {
					return httpapi.ProcessingStats{}, errors.New("store down")
				}
				return httpapi.ProcessingStats{TotalEvents: 3, TotalBatches: 1, LastBatchSize: 3, LastProcessedAt: f.lastBatch}, nil
			},
		},
		Serving: httpapi.ServingDeps{
			Health: []httpapi.HealthCheck{{Name: "sqlite", Ping: func(context.Context) error {
				if !f.backendUp {
					return errors.New("unable to open database file")
				}
				return nil
			}}},
			Metrics: metrics.New(), MetricsToken: "scrape-secret",
			Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			Version: "test",
			Docs:    openapi.Handler(),
		},
	}
	for _, o := range opts {
		o(f, &d)
	}
	f.srv = httpapi.New(d)
	f.srv.SetReady(true)
	return f
}

// The document describes exactly the routes the server registers.
func TestPathsMatchServerRoutes(t *testing.T) {
	routes := newFixture(t).srv.Routes()
	if got := openapitest.Paths(); !slices.Equal(got, routes) {
		t.Fatalf("document operations\n%q\nserver routes\n%q", got, routes)
	}
}

const goodEvent = `{"eventType":"page_view","userId":"u1","sessionId":"s1","timestamp":"2024-01-15T10:30:00Z"}`

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	w.Close()
	return b.String()
}

// Real responses of the HTTP server, for every status the document promises that a test
// can provoke, match the document.
func TestServerResponsesMatchDocument(t *testing.T) {
	type step struct {
		name         string
		setup        func(f *fixture)
		method, path string // path is also the document's route, unless route is set
		route        string // the document's route of a path with parameters
		query        string // appended to path as ?query
		header       []string
		body         string
		wantStatus   int
		wantCode     string        // error code, if any
		as           accounts.Role // sends the session of an ACTIVE user with this role
	}
	key := []string{"x-api-key", "evp_good", "Content-Type", "application/json"}
	with := func(h ...string) []string { return append(slices.Clone(key), h...) }
	const seg = "/v1/{call}"
	basic := func(k string) []string {
		return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(k+":")), "Content-Type", "application/json"}
	}
	steps := []step{
		{name: "event accepted", method: "POST", path: "/api/v1/events", header: key,
			body: `{"eventId":"e-2","eventType":"page_view","userId":"u1","sessionId":"s1","timestamp":"2024-01-15T10:30:00Z","priority":3,"metadata":{"a":1}}`, wantStatus: 202},
		{name: "event generated id", method: "POST", path: "/api/v1/events", header: key, body: goodEvent, wantStatus: 202},
		{name: "event duplicate", method: "POST", path: "/api/v1/events", header: key,
			body: `{"eventId":"e-1","eventType":"page_view","userId":"u1","sessionId":"s1","timestamp":"2024-01-15T10:30:00Z"}`, wantStatus: 200},
		{name: "event gzip", method: "POST", path: "/api/v1/events", header: with("Content-Encoding", "gzip"), body: gz(goodEvent), wantStatus: 202},
		{name: "event invalid", method: "POST", path: "/api/v1/events", header: key,
			body: `{"eventType":"1x","userId":"","timestamp":"now","priority":99}`, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "event wrong types", method: "POST", path: "/api/v1/events", header: key,
			body: `{"eventType":5,"userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "event malformed", method: "POST", path: "/api/v1/events", header: key, body: `{"eventType":`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "event bad gzip", method: "POST", path: "/api/v1/events", header: with("Content-Encoding", "gzip"), body: "not gzip", wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "event no key", method: "POST", path: "/api/v1/events", header: []string{"Content-Type", "application/json"}, body: goodEvent, wantStatus: 401, wantCode: "MISSING_API_KEY"},
		{name: "event bad key", method: "POST", path: "/api/v1/events", header: []string{"x-api-key", "evp_bad", "Content-Type", "application/json"}, body: goodEvent, wantStatus: 401, wantCode: "INVALID_API_KEY"},
		{name: "event bad session", method: "POST", path: "/api/v1/events", header: []string{"Authorization", "Bearer nope", "Content-Type", "application/json"}, body: goodEvent, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "event as api client", method: "POST", path: "/api/v1/events", header: []string{"Content-Type", "application/json"}, as: accounts.RoleAPIClient, body: goodEvent, wantStatus: 202},
		{name: "event as viewer", method: "POST", path: "/api/v1/events", header: []string{"Content-Type", "application/json"}, as: accounts.RoleViewer, body: goodEvent, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "event too large", method: "POST", path: "/api/v1/events", header: key,
			body: `{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","payload":{"x":"` + strings.Repeat("x", 5000) + `"}}`, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "event text/plain", method: "POST", path: "/api/v1/events", header: []string{"x-api-key", "evp_good", "Content-Type", "text/plain"}, body: goodEvent, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "event brotli", method: "POST", path: "/api/v1/events", header: with("Content-Encoding", "br"), body: goodEvent, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "event buffer full", setup: func(f *fixture) { f.q.failAppend = true }, method: "POST", path: "/api/v1/events", header: key, body: goodEvent, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "event not ready", setup: func(f *fixture) { f.srv.SetReady(false) }, method: "POST", path: "/api/v1/events", header: key, body: goodEvent, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "event key store down", setup: func(f *fixture) { f.keys.storeDown = true }, method: "POST", path: "/api/v1/events", header: key, body: goodEvent, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "batch accepted", method: "POST", path: "/api/v1/events/batch", header: key,
			body: `{"events":[` + goodEvent + `,{"eventId":"e-1","eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}]}`, wantStatus: 202},
		{name: "batch all duplicates", method: "POST", path: "/api/v1/events/batch", header: key,
			body: `{"events":[{"eventId":"e-1","eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}]}`, wantStatus: 202},
		{name: "batch empty", method: "POST", path: "/api/v1/events/batch", header: key, body: `{"events":[]}`, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "batch not an object", method: "POST", path: "/api/v1/events/batch", header: key, body: `[1]`, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "batch bad element", method: "POST", path: "/api/v1/events/batch", header: key, body: `{"events":[` + goodEvent + `,7,{"eventType":"a"}]}`, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "batch malformed", method: "POST", path: "/api/v1/events/batch", header: key, body: `{"events":[`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "batch no key", method: "POST", path: "/api/v1/events/batch", body: `{}`, wantStatus: 401, wantCode: "MISSING_API_KEY"},
		{name: "batch as viewer", method: "POST", path: "/api/v1/events/batch", header: []string{"Content-Type", "application/json"}, as: accounts.RoleViewer, body: `{"events":[` + goodEvent + `]}`, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "batch too large", method: "POST", path: "/api/v1/events/batch", header: key, body: `{"events":[` + strings.Repeat(goodEvent+",", 60) + goodEvent + `]}`, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "batch no content type", method: "POST", path: "/api/v1/events/batch", header: []string{"x-api-key", "evp_good"}, body: `{}`, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "batch buffer full", setup: func(f *fixture) { f.q.failAppend = true }, method: "POST", path: "/api/v1/events/batch", header: key, body: `{"events":[` + goodEvent + `]}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "segment track", method: "POST", path: "/v1/track", route: seg, header: basic("evp_good"),
			body: `{"event":"Order Completed","userId":"u1","messageId":"m-1","properties":{"revenue":4.5}}`, wantStatus: 200},
		{name: "segment batch, key in body, text/plain", method: "POST", path: "/v1/batch", route: seg, header: []string{"Content-Type", "text/plain"},
			body: `{"writeKey":"evp_ingest","batch":[{"type":"page","anonymousId":"a1","name":"Home"},{"type":"identify","userId":"u1","traits":{"plan":"pro"}}]}`, wantStatus: 200},
		{name: "segment browser path", method: "POST", path: "/v1/t", route: seg, header: []string{"x-api-key", "evp_good", "Content-Type", "application/json"}, body: `{"event":"Signed Up","anonymousId":"a1"}`, wantStatus: 200},
		{name: "segment invalid", method: "POST", path: "/v1/batch", route: seg, header: basic("evp_good"),
			body: `{"batch":[{"type":"track","userId":"u1"},{"type":"nope"}]}`, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "segment malformed", method: "POST", path: "/v1/track", route: seg, header: basic("evp_good"), body: `{"event":`, wantStatus: 400, wantCode: "INVALID_JSON"},
		{name: "segment no key", method: "POST", path: "/v1/track", route: seg, header: []string{"Content-Type", "application/json"}, body: `{"event":"a","userId":"u"}`, wantStatus: 401, wantCode: "MISSING_API_KEY"},
		{name: "segment bad key", method: "POST", path: "/v1/track", route: seg, header: basic("evp_bad"), body: `{"event":"a","userId":"u"}`, wantStatus: 401, wantCode: "INVALID_API_KEY"},
		{name: "segment unknown call", method: "POST", path: "/v1/explode", route: seg, header: basic("evp_good"), body: `{}`, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "segment message too large", method: "POST", path: "/v1/track", route: seg, header: basic("evp_good"),
			body: `{"event":"a","userId":"u","properties":{"x":"` + strings.Repeat("x", 33<<10) + `"}}`, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "segment form body", method: "POST", path: "/v1/track", route: seg, header: []string{"Authorization", "Basic ZXZwX2dvb2Q6", "Content-Type", "application/x-www-form-urlencoded"}, body: `a=b`, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "segment other origin", method: "POST", path: "/v1/track", route: seg, header: append(basic("evp_shop"), "Origin", "https://evil.example"),
			body: `{"event":"a","userId":"u"}`, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "segment key store down", setup: func(f *fixture) { f.keys.storeDown = true }, method: "POST", path: "/v1/track", route: seg, header: basic("evp_good"),
			body: `{"event":"a","userId":"u"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "segment buffer full", setup: func(f *fixture) { f.q.failAppend = true }, method: "POST", path: "/v1/track", route: seg, header: basic("evp_good"), body: `{"event":"a","userId":"u"}`, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "stats", method: "GET", path: "/api/v1/events/stats", header: key, wantStatus: 200},
		{name: "stats no key", method: "GET", path: "/api/v1/events/stats", wantStatus: 401, wantCode: "MISSING_API_KEY"},
		{name: "stats as operator", method: "GET", path: "/api/v1/events/stats", as: accounts.RoleOperator, wantStatus: 200},
		{name: "stats as viewer", method: "GET", path: "/api/v1/events/stats", as: accounts.RoleViewer, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "stats error", setup: func(f *fixture) { f.q.failStats = true }, method: "GET", path: "/api/v1/events/stats", header: key, wantStatus: 500, wantCode: "STATS_ERROR"},
		{name: "stats key store down", setup: func(f *fixture) { f.keys.storeDown = true }, method: "GET", path: "/api/v1/events/stats", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "metrics before first batch", method: "GET", path: "/api/metrics", header: key, wantStatus: 200},
		{name: "metrics after a batch", setup: func(f *fixture) { f.lastBatch = time.Now() }, method: "GET", path: "/api/metrics", header: key, wantStatus: 200},
		{name: "metrics bad key", method: "GET", path: "/api/metrics", header: []string{"x-api-key", "nope"}, wantStatus: 401, wantCode: "INVALID_API_KEY"},
		{name: "metrics no credentials", method: "GET", path: "/api/metrics", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "metrics bad session", method: "GET", path: "/api/metrics", header: []string{"Authorization", "Bearer nope"}, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "metrics as viewer", method: "GET", path: "/api/metrics", as: accounts.RoleViewer, wantStatus: 200},
		{name: "metrics as api client", method: "GET", path: "/api/metrics", as: accounts.RoleAPIClient, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "metrics buffer error", setup: func(f *fixture) { f.q.failStats = true }, method: "GET", path: "/api/metrics", header: key, wantStatus: 500, wantCode: "METRICS_ERROR"},
		{name: "metrics processing error", setup: func(f *fixture) { f.procFail = true }, method: "GET", path: "/api/metrics", header: key, wantStatus: 500, wantCode: "METRICS_ERROR"},
		{name: "metrics panic", setup: func(f *fixture) { f.procPanic = true }, method: "GET", path: "/api/metrics", header: key, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "metrics key store down", setup: func(f *fixture) { f.keys.storeDown = true }, method: "GET", path: "/api/metrics", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "ingestion metrics", method: "GET", path: "/api/metrics/ingestion", header: key, wantStatus: 200},
		{name: "ingestion metrics no credentials", method: "GET", path: "/api/metrics/ingestion", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "ingestion metrics as api client", method: "GET", path: "/api/metrics/ingestion", as: accounts.RoleAPIClient, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "ingestion metrics error", setup: func(f *fixture) { f.q.failStats = true }, method: "GET", path: "/api/metrics/ingestion", header: key, wantStatus: 500, wantCode: "METRICS_ERROR"},
		{name: "stream", method: "GET", path: "/api/metrics/stream", header: key, wantStatus: 200},
		{name: "stream no credentials", method: "GET", path: "/api/metrics/stream", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "stream as api client", method: "GET", path: "/api/metrics/stream", as: accounts.RoleAPIClient, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "stream error", setup: func(f *fixture) { f.q.failStats = true }, method: "GET", path: "/api/metrics/stream", header: key, wantStatus: 500, wantCode: "STREAM_ERROR"},
		{name: "stream key store down", setup: func(f *fixture) { f.keys.storeDown = true }, method: "GET", path: "/api/metrics/stream", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "ingestion metrics key store down", setup: func(f *fixture) { f.keys.storeDown = true }, method: "GET", path: "/api/metrics/ingestion", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "rate history", setup: func(f *fixture) { f.srv.SampleRates(context.Background(), time.Now()) }, method: "GET", path: "/api/metrics/history", header: key, wantStatus: 200},
		{name: "rate history empty", method: "GET", path: "/api/metrics/history", as: accounts.RoleViewer, wantStatus: 200},
		{name: "rate history no credentials", method: "GET", path: "/api/metrics/history", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "rate history as api client", method: "GET", path: "/api/metrics/history", as: accounts.RoleAPIClient, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "rate history key store down", setup: func(f *fixture) { f.keys.storeDown = true }, method: "GET", path: "/api/metrics/history", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "analytics", method: "GET", path: "/api/v1/analytics/metrics", header: key, wantStatus: 200},
		{name: "analytics custom range", method: "GET", path: "/api/v1/analytics/metrics", query: "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&eventType=click&userId=u", header: key, wantStatus: 200},
		{name: "analytics bad range", method: "GET", path: "/api/v1/analytics/metrics", query: "timeRange=2d", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "analytics bad from", method: "GET", path: "/api/v1/analytics/metrics", query: "from=yesterday&to=2026-01-02T00:00:00Z", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "analytics no credentials", method: "GET", path: "/api/v1/analytics/metrics", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "analytics as viewer", method: "GET", path: "/api/v1/analytics/metrics", as: accounts.RoleViewer, wantStatus: 200},
		{name: "analytics as api client", method: "GET", path: "/api/v1/analytics/metrics", as: accounts.RoleAPIClient, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "analytics store error", setup: func(f *fixture) { f.analyticsFail = true }, method: "GET", path: "/api/v1/analytics/metrics", header: key, wantStatus: 500, wantCode: "ANALYTICS_ERROR"},
		{name: "analytics key store down", setup: func(f *fixture) { f.keys.storeDown = true }, method: "GET", path: "/api/v1/analytics/metrics", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "health", method: "GET", path: "/api/health", wantStatus: 200},
		{name: "health down", setup: func(f *fixture) { f.backendUp = false }, method: "GET", path: "/api/health", wantStatus: 503},
		{name: "ready", method: "GET", path: "/api/ready", wantStatus: 200},
		{name: "not ready", setup: func(f *fixture) { f.srv.SetReady(false) }, method: "GET", path: "/api/ready", wantStatus: 503},
		{name: "live", method: "GET", path: "/api/live", wantStatus: 200},
		{name: "openapi.json", method: "GET", path: "/openapi.json", wantStatus: 200},
		{name: "docs", method: "GET", path: "/docs", wantStatus: 200},
		{name: "prometheus", method: "GET", path: "/metrics", header: []string{"Authorization", "Bearer scrape-secret"}, wantStatus: 200},
		{name: "prometheus without token", method: "GET", path: "/metrics", wantStatus: 401},
	}
	for _, path := range []string{"/batch/", "/capture/", "/e/", "/track/", "/i/v0/e/"} {
		event := `{"event":"$pageview","distinct_id":"u1","uuid":"ph-1","properties":{"$session_id":"s1"}}`
		steps = append(steps,
			step{name: "posthog " + path, method: "POST", path: path, header: []string{"Content-Type", "application/json"},
				body: `{"api_key":"evp_ingest","batch":[` + event + `]}`, wantStatus: 200},
			step{name: "posthog " + path + " gzip-js", method: "POST", path: path, query: "compression=gzip-js", header: []string{"Content-Type", "text/plain"},
				body: gz(`[{"event":"e","properties":{"distinct_id":"u","token":"evp_ingest"}}]`), wantStatus: 200},
			step{name: "posthog " + path + " invalid", method: "POST", path: path, header: []string{"Authorization", "Bearer evp_good", "Content-Type", "application/json"},
				body: `{"batch":[{"distinct_id":"u"}]}`, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
			step{name: "posthog " + path + " other origin", method: "POST", path: path, header: []string{"Content-Type", "application/json", "Origin", "https://evil.example"},
				body: `{"api_key":"evp_shop","batch":[` + event + `]}`, wantStatus: 403, wantCode: "FORBIDDEN"},
			step{name: "posthog " + path + " no key", method: "POST", path: path, header: []string{"Content-Type", "application/json"},
				body: event, wantStatus: 401, wantCode: "MISSING_API_KEY"},
			step{name: "posthog " + path + " too large", method: "POST", path: path, header: []string{"x-api-key", "evp_good", "Content-Type", "application/json"},
				body: `{"event":"e","distinct_id":"u","properties":{"x":"` + strings.Repeat("x", 70<<10) + `"}}`, wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
			step{name: "posthog " + path + " form", method: "POST", path: path, query: "compression=base64", header: []string{"Content-Type", "application/x-www-form-urlencoded"},
				body: "data=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(`{"api_key":"evp_ingest","batch":[`+event+`]}`))), wantStatus: 200},
			step{name: "posthog " + path + " xml", method: "POST", path: path, header: []string{"x-api-key", "evp_good", "Content-Type", "application/xml"},
				body: `<event/>`, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
			step{name: "posthog " + path + " buffer full", setup: func(f *fixture) { f.q.failAppend = true }, method: "POST", path: path,
				header: []string{"x-api-key", "evp_good", "Content-Type", "application/json"}, body: event, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		)
	}
	steps = append(steps,
		step{name: "posthog flags", method: "POST", path: "/flags/", query: "v=2", header: []string{"Content-Type", "text/plain"}, body: `{}`, wantStatus: 200},
		step{name: "posthog decide", method: "POST", path: "/decide/", query: "v=3", header: []string{"Content-Type", "application/json"}, body: `{}`, wantStatus: 200},
		step{name: "posthog config", method: "GET", path: "/array/evp_x/config", route: "/array/{token}/config", wantStatus: 200},
		step{name: "segment settings", method: "GET", path: "/v1/projects/evp_x/settings", route: "/v1/projects/{writeKey}/settings", wantStatus: 200},
	)
	covered := map[string]bool{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			f := newFixture(t)
			// State the step may rely on: e-1 already accepted.
			prime := httptest.NewRequest("POST", "/api/v1/events", strings.NewReader(`{"eventId":"e-1","eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`))
			prime.Header.Set("x-api-key", "evp_good")
			prime.Header.Set("Content-Type", "application/json")
			f.srv.Handler().ServeHTTP(httptest.NewRecorder(), prime)
			if s.setup != nil {
				s.setup(f)
			}
			target := s.path
			if s.query != "" {
				target += "?" + s.query
			}
			req := httptest.NewRequest(s.method, target, strings.NewReader(s.body))
			for i := 0; i+1 < len(s.header); i += 2 {
				req.Header.Set(s.header[i], s.header[i+1])
			}
			if s.as != "" {
				req.Header.Set("Authorization", "Bearer "+f.acc.token(t, s.as))
			}
			rec := httptest.NewRecorder()
			f.srv.Handler().ServeHTTP(rec, req)
			res := rec.Result()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != s.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, s.wantStatus, b)
			}
			if s.wantCode != "" && !strings.Contains(string(b), `"code":"`+s.wantCode+`"`) {
				t.Fatalf("want code %s: %s", s.wantCode, b)
			}
			route := s.path
			if s.route != "" {
				route = s.route
			}
			if err := openapitest.ValidateResponse(s.method, route, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
				t.Errorf("%v\nbody: %.2000s", err, b)
			}
			if err := openapitest.ValidateHeaders(s.method, route, res.StatusCode, res.Header); err != nil {
				t.Error(err)
			}
			covered[s.method+" "+route+" "+itoa(res.StatusCode)] = true
		})
	}
	// Each documented status, except a 500 from an event that cannot be encoded (which
	// cannot happen to a validated event), was answered by the real server above.
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				Responses map[string]any `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(path, "/api/v1/dead-letters") || strings.HasPrefix(path, "/api/auth/") || strings.HasPrefix(path, "/api/users") ||
				method == "get" && strings.HasPrefix(path, "/api/v1/events") && path != "/api/v1/events/stats" || path == "/api/v1/events/import" || path == "/api/v1/users/{userId}/events" {
				// TestEventsResponsesMatchDocument and TestLiveTail provoke these
				continue // TestDeadLetterResponsesMatchDocument, TestAccountResponsesMatchDocument and TestEventsResponsesMatchDocument provoke these
			}
			for status := range op.Responses {
				name := strings.ToUpper(method) + " " + path + " " + status
				if !covered[name] && status != "500" {
					t.Errorf("%s is documented but no step provoked it", name)
				}
			}
		}
	}
}

func itoa(n int) string {
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
