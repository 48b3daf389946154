// Package app wires evp's roles from configuration: it opens the backends, starts the HTTP
// API and the workers, and shuts them down in order.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/go-chi/httprate"
	"github.com/mattn/go-isatty"
	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/analyticscache"
	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/dashboard"
	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/httpapi"
	"github.com/evp-dev/evp/internal/ingestrate"
	"github.com/evp-dev/evp/internal/openapi"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/logqueue"
	"github.com/evp-dev/evp/internal/queue/redisqueue"
	"github.com/evp-dev/evp/internal/ratelimit"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/tail"
	"github.com/evp-dev/evp/internal/worker"
)

// Role is what a process runs.
type Role string

// The roles of the evp binary.
const (
	RoleAll    Role = "all"
	RoleAPI    Role = "api"
	RoleWorker Role = "worker"
)

// Options are the parts of a run that do not come from configuration.
type Options struct {
	Version string
	Log     *slog.Logger
	// OnListen, when set, is called with the HTTP address once the API accepts requests.
	OnListen func(addr string)
}

// NewLogger returns the process logger: JSON unless format is "text" or "auto" on a terminal.
func NewLogger(cfg *config.Config, w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // config.Load accepts only valid levels
	hopts := &slog.HandlerOptions{Level: level}
	text := cfg.LogFormat == "text" || cfg.LogFormat == "auto" && isatty.IsTerminal(w.Fd())
	if text {
		return slog.New(slog.NewTextHandler(w, hopts))
	}
	return slog.New(slog.NewJSONHandler(w, hopts))
}

// CheckRole refuses role/backend combinations that cannot work. A split role needs a shared
// buffer: the embedded one lives inside a single process.
func CheckRole(role Role, cfg *config.Config) error {
	if (role == RoleAPI || role == RoleWorker) && cfg.RedisURL == "" {
		return &config.Error{Setting: "REDIS_URL", Value: "",
			Reason: fmt.Sprintf("`evp %s` runs one role and needs a buffer shared between processes (Redis Streams); "+
				"the embedded buffer lives inside one process, so set REDIS_URL or run `evp` to get the API and the workers together", role)}
	}
	return nil
}

func syncMode(s string) sqlitedb.Sync {
	if s == "normal" {
		return sqlitedb.SyncNormal
	}
	return sqlitedb.SyncFull
}

// backends are what one process opened, chosen from configuration in this one place.
type backends struct {
	queue   queue.Queue
	rate    httpapi.IngestRate // shared across replicas; nil for the embedded buffer
	stream  httpapi.BufferDescriber
	acache  httpapi.AnalyticsCache // analytics answers shared by every replica; nil: per process
	store   eventStore
	gate    *httpapi.HealthCheck // pinged before store routes (503 while down); nil for SQLite
	acc     accounts.Repository
	dedup   dedup.Set
	unique  httpapi.UniqueQueue   // one-step dedup and append (Redis); nil: Dedup, then Enqueue
	limits  httprate.LimitCounter // shared /api/auth rate-limit counters; nil: per process
	health  []httpapi.HealthCheck
	closers []func() error // in reverse order of opening
}

func (b *backends) close(log *slog.Logger) {
	for i := len(b.closers) - 1; i >= 0; i-- {
		if err := b.closers[i](); err != nil {
			log.Warn("close backend", "err", err)
		}
	}
}

func openBackends(ctx context.Context, cfg *config.Config, log *slog.Logger) (b *backends, err error) {
	b = &backends{}
	opened := b // a failed open returns a nil b: close what was opened through this one
	defer func() {
		if err != nil {
			opened.close(log)
		}
	}()
	st, storeCheck, err := openEventStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	b.store = st
	if cfg.MongoURI != "" {
		b.gate = &storeCheck
	}
	b.closers = append(b.closers, st.Close)
	acc, err := OpenAccounts(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b.acc = acc
	b.closers = append(b.closers, acc.Close)

	if cfg.RedisURL != "" {
		redis.SetLogger(redisLog{log})
		client, err := newRedisClient(ctx, cfg)
		if err != nil {
			return nil, err
		}
		b.closers = append(b.closers, client.Close)
		rq, err := redisqueue.Open(ctx, redisqueue.Options{Client: client, Stream: cfg.Stream, Group: cfg.ConsumerGroup,
			Consumer: cfg.ConsumerName, ClaimIdle: cfg.ClaimIdle, Partitions: cfg.StreamPartitions,
			MaxLen: cfg.StreamMaxLen, Log: log})
		if err != nil {
			return nil, fmt.Errorf("open Redis Streams buffer: %w", err)
		}
		b.queue = rq
		b.closers = append(b.closers, rq.Close)
		b.dedup = &dedup.Redis{Client: client, Prefix: cfg.RedisPrefix + "dedup:", TTL: cfg.DedupWindow}
		if !cfg.RedisCluster {
			// One Lua script per request needs the dedup keys and the streams on one node; on a
			// cluster the API checks the dedup window, appends, then records the ids.
			b.unique = uniqueAppender{q: rq, prefix: cfg.RedisPrefix + "dedup:", ttl: cfg.DedupWindow}
		}
		b.acache = analyticscache.NewRedis(client, cfg.RedisPrefix)
		b.limits = ratelimit.NewRedis(client, cfg.RedisPrefix+"ratelimit:")
		rate := ingestrate.NewRedis(client, cfg.RedisPrefix)
		b.rate = rate
		b.closers = append(b.closers, func() error { rate.Close(); return nil })
		b.health = append(b.health, httpapi.HealthCheck{Name: "redis", Ping: func(ctx context.Context) error {
			if err := rq.Ping(ctx); err != nil {
				return err
			}
			return httpapi.Degraded(rq.Degraded()) // a stream lost within the hour, or full: ingestion answers 503
		}})
		b.stream = rq
		log.Info("buffer: Redis Streams", "stream", rq.Key(), "partitions", rq.Partitions(), "streams", len(rq.Keys()),
			"cluster", cfg.RedisCluster, "group", cfg.ConsumerGroup, "consumer", rq.Consumer())
	} else {
		sq, err := logqueue.Open(ctx, filepath.Join(cfg.DataDir, "buffer"), logqueue.Options{
			NoFsync: cfg.BufferSync != "full", ClaimIdle: cfg.ClaimIdle, Log: log, MaxBytes: cfg.BufferMaxBytes,
			HandOffBytes: cfg.InflightMaxBytes / 4, DeliveredBytes: cfg.InflightMaxBytes / 2, Group: cfg.ConsumerGroup})
		if err != nil {
			return nil, fmt.Errorf("open buffer: %w", err)
		}
		b.queue = sq
		b.closers = append(b.closers, sq.Close)
		if err := importSQLiteBuffer(ctx, cfg.DataDir, sq, log); err != nil {
			return nil, err
		}
		window, err := rebuildDedup(ctx, cfg.DedupWindow, cfg.DedupMaxIDs, sq, st)
		if err != nil {
			return nil, err
		}
		log.Info("dedup window restored", "ids", window.Len(), "window", cfg.DedupWindow.String())
		b.dedup = dedup.Local{W: window}
		b.health = append(b.health, httpapi.HealthCheck{Name: "buffer", Ping: func(ctx context.Context) error {
			if err := sq.Ping(ctx); err != nil {
				return err
			}
			return httpapi.Degraded(sq.Refusal()) // full, or its disk: ingestion answers 503
		}})
		b.stream = sq
	}
	b.health = append(b.health,
		storeCheck,
		httpapi.HealthCheck{Name: "accountStore", Ping: acc.Ping})
	if cfg.DatabaseURL != "" {
		// The original system's name for its PostgreSQL, which its dashboard looks for.
		b.health = append(b.health, httpapi.HealthCheck{Name: "postgres", Ping: acc.Ping})
	}
	return b, nil
}

// Run runs role until ctx is cancelled or a part of it fails, then shuts down gracefully
// within cfg.ShutdownTimeout (serve gives the order) and closes the backends. Every role
// serves HTTP (a worker serves health and metrics only, for probes).
func Run(ctx context.Context, role Role, cfg *config.Config, opts Options) error {
	log := opts.Log
	if err := CheckRole(role, cfg); err != nil {
		return err
	}
	if err := cfg.PrepareDataDir(); err != nil {
		return err
	}
	setProcs(cfg.RedisURL == "" || cfg.MongoURI == "", log)
	openCtx, cancelOpen := context.WithTimeout(ctx, 30*time.Second)
	defer cancelOpen()
	b, err := openBackends(openCtx, cfg, log)
	if err != nil {
		return err
	}
	defer b.close(log)

	pool := worker.New(worker.Config{BatchSize: cfg.WorkerBatchSize, BatchTimeout: cfg.WorkerBatchTimeout,
		BatchLinger: cfg.WorkerBatchLinger, Concurrency: cfg.Workers}, b.queue, b.store, log)
	keys := accounts.NewKeyAuth(b.acc, 60*time.Second)
	var svc *accounts.Service
	if role != RoleWorker {
		if svc, err = newAccountService(cfg, b.acc, keys, log); err != nil {
			return err
		}
	}
	srv := httpapi.New(serverDeps(role, cfg, opts, b, keys, svc, pool))
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return listenError(cfg, err)
	}
	api := &apiServer{srv: srv, hs: newHTTPServer(srv.Handler(), log), ln: ln, mail: svc, timeout: cfg.ShutdownTimeout, log: log,
		started: func(addr string) { announce(ctx, role, cfg, opts, b.acc, svc != nil, addr) }}

	loops := []service{
		usageFlusher{keys: keys, codes: svc, log: log},
		serviceFunc(func(ctx context.Context) error { srv.RecordRates(ctx); return nil }), // the dashboard's last 10 minutes of rates
	}
	var workers service
	if role == RoleAll || role == RoleWorker {
		workers = pool
		if r := newRetention(b.store, cfg.RetentionDays, log); r != nil {
			loops = append(loops, r)
		}
	}
	if cfg.PprofAddr != "" {
		loops = append(loops, pprofServer{addr: cfg.PprofAddr, log: log})
	}
	if m := newMemoryLimit(cfg.MemoryLimitMB, b.store, log); m != nil {
		m.apply() // before the first request
		loops = append(loops, m)
	}
	err = serve(ctx, cfg.ShutdownTimeout, log, api, workers, loops)
	b.close(log)
	b.closers = nil
	log.Info("evp stopped")
	return err
}

// serverDeps gathers what the HTTP API needs from the backends and the settings, and hooks
// the processing statistics and the metrics to pool.
func serverDeps(role Role, cfg *config.Config, opts Options, b *backends, keys *accounts.KeyAuth, svc *accounts.Service, pool *worker.Pool) httpapi.Deps {
	st := b.store
	return httpapi.Deps{
		Ingestion: httpapi.IngestionDeps{Queue: b.queue, Dedup: b.dedup, UniqueQueue: b.unique, Rate: b.rate,
			MaxBodyBytes: cfg.MaxBodyBytes, InflightMaxBytes: cfg.InflightMaxBytes, Off: role == RoleWorker},
		Auth: httpapi.AuthDeps{Keys: keys, Accounts: svc, AnalyticsPublic: cfg.AnalyticsPublic, RateLimit: cfg.AuthRateLimit,
			LimitCounter: b.limits, TrustProxy: cfg.TrustProxy, TrustedProxies: cfg.TrustedProxies},
		Reading: httpapi.ReadingDeps{Tails: liveTails(role, cfg), Processing: newProcessing(pool, st).Stats, StoredCount: st.Count, Stream: b.stream,
			Analytics: st.Analytics, AnalyticsCache: b.acache, DeadLetters: st, Events: st, Forget: st, StoreCheck: b.gate},
		Serving: httpapi.ServingDeps{Health: b.health, Docs: openapi.Handler(), Dashboard: dashboardFor(role),
			Metrics: newMetrics(pool, b.queue), MetricsToken: cfg.MetricsToken, CORSOrigins: cfg.CORSOrigins,
			Log: opts.Log, Version: opts.Version},
	}
}

// liveTails is the hub of this process's live tails: none where it does not ingest (a
// worker) or where they are turned off.
func liveTails(role Role, cfg *config.Config) *tail.Hub {
	if role == RoleWorker || cfg.LiveTailsMax == 0 {
		return nil
	}
	return tail.New(cfg.LiveTailsMax)
}

// announce logs that evp accepts requests on addr, with what a first run needs to know
// when this process signs people in, and then calls opts.OnListen.
func announce(ctx context.Context, role Role, cfg *config.Config, opts Options, acc accounts.Repository, signIn bool, addr string) {
	log := opts.Log
	log.Info("evp started", "role", string(role), "addr", addr, "data_dir", cfg.DataDir, "version", opts.Version,
		"workers", cfg.Workers, "batch_size", cfg.WorkerBatchSize)
	if signIn {
		if n, err := acc.CountUsers(ctx); err == nil && n == 0 {
			log.Info("no users yet: the first person to sign in at the dashboard becomes ADMIN", "url", "http://"+displayAddr(addr)+"/")
		}
		if keys, err := acc.ListAPIKeys(ctx); err == nil && len(keys) == 0 {
			log.Info("no API keys yet; create one in the dashboard or with: evp apikey create --name NAME", "data_dir", cfg.DataDir)
		}
	}
	if opts.OnListen != nil {
		opts.OnListen(addr)
	}
}

// dashboardFor is the web dashboard a role serves: none for a worker-only process, whose port
// is for probes.
func dashboardFor(role Role) http.Handler {
	if role == RoleWorker {
		return nil
	}
	return dashboard.New()
}

// rebuildDedup refills the dedup window after a start: ids still in the buffer and ids
// stored within the window are duplicates if a client sends them again.
func rebuildDedup(ctx context.Context, span time.Duration, maxIDs int, q queue.Queue, st store.EventStore) (*dedup.Window, error) {
	w := dedup.New(span)
	w.MaxIDs = maxIDs
	now := time.Now()
	if err := q.PendingEventIDs(ctx, func(id string) { w.AddAt(id, now) }); err != nil {
		return nil, fmt.Errorf("restore dedup window from buffer: %w", err)
	}
	// The window keeps at most maxIDs ids: reading more of the table would only slow the start.
	if err := st.RecentEventIDs(ctx, now.Add(-span), maxIDs, func(id string, at time.Time) { w.AddAt(id, at) }); err != nil {
		return nil, fmt.Errorf("restore dedup window from store: %w", err)
	}
	return w, nil
}

// redisLog sends go-redis's own messages (reconnects, pool errors) to evp's structured log.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.Warn("redis client", "detail", fmt.Sprintf(format, v...))
}

// embeddedExtraProcs is how many Go processors setProcs adds for the embedded backends.
const embeddedExtraProcs = 2

// setProcs gives the Go scheduler embeddedExtraProcs processors more than it would use when
// this process writes to the embedded buffer or store, unless GOMAXPROCS is set. Their
// writers wait in fdatasync and in SQLite (a cgo call) while holding a processor, which
// the runtime takes back only after a while; meanwhile the HTTP handlers that are ready
// to run wait, and CPU goes idle. The extra processors keep the handlers running.
func setProcs(embedded bool, log *slog.Logger) {
	if !embedded || os.Getenv("GOMAXPROCS") != "" {
		return
	}
	n := runtime.GOMAXPROCS(0) + embeddedExtraProcs
	runtime.GOMAXPROCS(n)
	log.Debug("go processors", "n", n)
}

// memoryLimit makes the garbage collector keep the Go heap under limitMB (a soft limit: it
// collects more often near it rather than letting the heap double), so that the caches'
// working set plus GOGC's headroom stays bounded under sustained load; plus what the event
// store keeps resident (store.Resident), which grows with the events stored and which no
// collection frees: under a limit below its live data the collector would run without end.
// GOMEMLIMIT, when set, is the runtime's own and wins.
type memoryLimit struct {
	limitMB int
	store   store.Resident    // nil: none
	set     func(bytes int64) // debug.SetMemoryLimit
	every   time.Duration     // how often the store's share is read again
	log     *slog.Logger
}

// newMemoryLimit returns the limit of cfg for st, or nil when there is none to keep.
func newMemoryLimit(limitMB int, st store.EventStore, log *slog.Logger) *memoryLimit {
	if limitMB <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	m := &memoryLimit{limitMB: limitMB, set: func(n int64) { debug.SetMemoryLimit(n) }, every: 5 * time.Second, log: log}
	m.store, _ = st.(store.Resident)
	return m
}

// apply sets the limit now.
func (m *memoryLimit) apply() {
	n := int64(m.limitMB) << 20
	if m.store != nil {
		n += m.store.ResidentBytes()
	}
	m.set(n)
}

// Run implements service: it follows the store's share until ctx ends (the caller applies
// the limit once before).
func (m *memoryLimit) Run(ctx context.Context) error {
	m.log.Debug("memory limit", "MiB", m.limitMB, "followsStore", m.store != nil)
	if m.store == nil {
		return nil
	}
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.apply()
		case <-ctx.Done():
			return nil
		}
	}
}
