// Package app wires evp's roles from configuration: it opens the backends, starts the HTTP
// API and the workers, and shuts them down in order.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
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
	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/httpapi"
	"github.com/evp-dev/evp/internal/ingestrate"
	"github.com/evp-dev/evp/internal/metrics"
	"github.com/evp-dev/evp/internal/openapi"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/logqueue"
	"github.com/evp-dev/evp/internal/queue/redisqueue"
	"github.com/evp-dev/evp/internal/ratelimit"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
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
	stream  func(ctx context.Context) (httpapi.StreamInfo, error)
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
		b.stream = func(ctx context.Context) (httpapi.StreamInfo, error) { return redisStream(ctx, rq) }
		log.Info("buffer: Redis Streams", "stream", rq.Key(), "partitions", rq.Partitions(), "streams", len(rq.Keys()),
			"cluster", cfg.RedisCluster, "group", cfg.ConsumerGroup, "consumer", rq.Consumer())
	} else {
		sq, err := logqueue.Open(ctx, filepath.Join(cfg.DataDir, "buffer"), logqueue.Options{
			NoFsync: cfg.BufferSync != "full", ClaimIdle: cfg.ClaimIdle, Log: log, MaxBytes: cfg.BufferMaxBytes,
			HandOffBytes: cfg.InflightMaxBytes / 4, DeliveredBytes: cfg.InflightMaxBytes / 2})
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
		b.stream = func(ctx context.Context) (httpapi.StreamInfo, error) { return embeddedStream(ctx, sq, cfg) }
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

// Run runs role until ctx is cancelled, then shuts down gracefully within
// cfg.ShutdownTimeout: readiness turns false, new requests are refused, requests and batches
// in flight finish, and the backends are closed. Every role serves HTTP (a worker serves
// health and metrics only, for probes).
func Run(ctx context.Context, role Role, cfg *config.Config, opts Options) error {
	log := opts.Log
	if err := CheckRole(role, cfg); err != nil {
		return err
	}
	if err := cfg.PrepareDataDir(); err != nil {
		return err
	}
	setMemoryLimit(cfg.MemoryLimitMB, log)
	setProcs(cfg.RedisURL == "" || cfg.MongoURI == "", log)
	openCtx, cancelOpen := context.WithTimeout(ctx, 30*time.Second)
	defer cancelOpen()
	b, err := openBackends(openCtx, cfg, log)
	if err != nil {
		return err
	}
	defer b.close(log)
	q, st, acc := b.queue, b.store, b.acc

	runWorkers := role == RoleAll || role == RoleWorker
	pool := worker.New(worker.Config{
		BatchSize: cfg.WorkerBatchSize, BatchTimeout: cfg.WorkerBatchTimeout, BatchLinger: cfg.WorkerBatchLinger,
		Concurrency: cfg.Workers,
	}, q, st, log)
	processed := httpapi.NewRateCounter(10)
	pool.OnStored = func(events []event.Event) { processed.Add(int64(len(events))) }
	mx := newMetrics(pool, q)
	pool.OnBatch = func(events []event.Event, took time.Duration) {
		types := make([]string, len(events))
		for i := range events {
			types[i] = events[i].EventType
		}
		mx.ObserveBatch(types, took)
	}

	keys := accounts.NewKeyAuth(acc, 60*time.Second)
	var svc *accounts.Service
	if role != RoleWorker {
		if svc, err = newAccountService(cfg, acc, keys, log); err != nil {
			return err
		}
	}
	srv := httpapi.New(httpapi.Deps{
		Queue: q, Dedup: b.dedup, Keys: keys, Log: log, Version: opts.Version,
		MaxBodyBytes: cfg.MaxBodyBytes, InflightMaxBytes: cfg.InflightMaxBytes, Docs: openapi.Handler(), Health: b.health, Stream: b.stream, IngestRate: b.rate,
		NoIngest: role == RoleWorker, Metrics: mx, MetricsToken: cfg.MetricsToken,
		Accounts: svc, AnalyticsPublic: cfg.AnalyticsPublic, AuthRateLimit: cfg.AuthRateLimit, TrustProxy: cfg.TrustProxy,
		TrustedProxies: cfg.TrustedProxies, AuthLimitCounter: b.limits, StoreCheck: b.gate, UniqueQueue: b.unique, CORSOrigins: cfg.CORSOrigins,
		Dashboard: dashboardFor(role),
		Analytics: st.Analytics, DeadLetters: st, StoredCount: st.Count,
		AnalyticsCache: b.acache,
		Processing: func(ctx context.Context) (httpapi.ProcessingStats, error) {
			total, err := st.Count(ctx)
			if err != nil {
				return httpapi.ProcessingStats{}, err
			}
			dlq, err := st.DeadLetterCount(ctx)
			if err != nil {
				return httpapi.ProcessingStats{}, err
			}
			ps := httpapi.ProcessingStats{
				TotalEvents: total, EventsPerSecond: processed.Rate(), DLQEvents: dlq,
				TotalBatches: pool.Stats.Batches.Load(), LastBatchSize: pool.Stats.LastBatchSize.Load(),
				FailedEvents: pool.Stats.Failed.Load(),
			}
			if tc, ok := st.(store.TypeCounter); ok {
				if ps.EventsByType, err = tc.CountByType(ctx); err != nil {
					return httpapi.ProcessingStats{}, err
				}
			}
			if at := pool.Stats.LastProcessedAt.Load(); at > 0 {
				ps.LastProcessedAt = time.Unix(0, at)
			}
			return ps, nil
		},
	})

	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return listenError(cfg, err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	workersDone := make(chan struct{})
	go func() {
		defer close(workersDone)
		if runWorkers {
			if err := pool.Run(workCtx); err != nil {
				log.Error("workers stopped", "err", err)
			}
		}
	}()
	retentionDone := make(chan struct{})
	go func() {
		defer close(retentionDone)
		// Retention in the embedded store (MongoDB expires events with a TTL index): at
		// start, then every 10 minutes, by the processes that run workers.
		p, ok := st.(pruner)
		if !ok || !runWorkers || cfg.RetentionDays <= 0 {
			return
		}
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			cutoff := time.Now().Add(-time.Duration(cfg.RetentionDays) * 24 * time.Hour)
			if n, err := p.Prune(workCtx, cutoff); err != nil {
				log.Warn("old events not deleted (EVP_RETENTION_DAYS)", "err", err)
			} else if n > 0 {
				log.Info("old events deleted (EVP_RETENTION_DAYS)", "events", n, "before", cutoff.UTC().Format(time.RFC3339))
			}
			select {
			case <-t.C:
			case <-workCtx.Done():
				return
			}
		}
	}()
	usageDone := make(chan struct{})
	go func() {
		defer close(usageDone)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for tick := 1; ; tick++ {
			select {
			case <-t.C:
				if err := keys.FlushUsage(workCtx); err != nil {
					log.Warn("api key usage not recorded", "err", err)
				}
				if svc != nil && tick%120 == 0 { // hourly
					if _, err := svc.CleanCodes(workCtx); err != nil {
						log.Warn("old sign-in codes not deleted", "err", err)
					}
				}
			case <-workCtx.Done():
				return
			}
		}
	}()
	historyDone := make(chan struct{})
	go func() {
		defer close(historyDone)
		srv.RecordRates(workCtx) // the dashboard's last 10 minutes of rates
	}()

	if cfg.PprofAddr != "" {
		startPprof(cfg.PprofAddr, log)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	srv.SetReady(true)
	addr := ln.Addr().String()
	log.Info("evp started", "role", string(role), "addr", addr, "data_dir", cfg.DataDir, "version", opts.Version,
		"workers", cfg.Workers, "batch_size", cfg.WorkerBatchSize)
	if svc != nil {
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

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}

	deadline, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	srv.SetReady(false)
	if err := hs.Shutdown(deadline); err != nil {
		log.Warn("http shutdown incomplete", "err", err)
		_ = hs.Close()
	}
	if svc != nil { // sign-in codes still being mailed, within the shutdown timeout
		mailed := make(chan struct{})
		go func() { svc.WaitForMail(); close(mailed) }()
		select {
		case <-mailed:
		case <-deadline.Done():
			log.Warn("sign-in codes still being sent at shutdown were abandoned")
		}
	}
	stopWork()
	select {
	case <-workersDone:
	case <-deadline.Done():
		log.Warn("workers did not finish in time; their batches stay in the buffer and are delivered again")
	}
	<-usageDone
	<-retentionDone
	<-historyDone
	if err := keys.FlushUsage(context.Background()); err != nil {
		log.Warn("api key usage not recorded", "err", err)
	}
	b.close(log)
	b.closers = nil
	log.Info("evp stopped")
	return runErr
}

// uniqueAppender is the Redis buffer's one-round-trip dedup and append, with evp's dedup
// keys (the same as dedup.Redis uses).
type uniqueAppender struct {
	q      *redisqueue.Queue
	prefix string
	ttl    time.Duration
}

func (u uniqueAppender) EnqueueUnique(ctx context.Context, entries []queue.Entry) ([]bool, error) {
	return u.q.EnqueueUnique(ctx, entries, u.prefix, u.ttl)
}

// pruner deletes events older than a cutoff (the SQLite store; MongoDB uses a TTL index).
type pruner interface {
	Prune(ctx context.Context, cutoff time.Time) (int64, error)
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

// startPprof serves Go's profiles on their own listener, never on the API's port.
func startPprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go func() {
		log.Info("pprof listening", "addr", addr)
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Warn("pprof listener stopped", "err", err)
		}
	}()
}

// newMetrics registers evp's Prometheus collectors; counters evp keeps anyway are read at
// scrape time.
func newMetrics(pool *worker.Pool, q queue.Queue) *metrics.Metrics {
	m := metrics.New()
	m.CounterFunc("evp_events_stored_total", "Events newly written to the store by this process's workers.",
		func() float64 { return float64(pool.Stats.Processed.Load()) })
	m.CounterFunc("evp_events_redelivered_duplicate_total", "Redelivered events the store already held (skipped).",
		func() float64 { return float64(pool.Stats.Duplicates.Load()) })
	m.CounterFunc("evp_store_write_failures_total", "Failed store writes (each is retried, then dead-lettered).",
		func() float64 { return float64(pool.Stats.Failed.Load()) })
	m.CounterFunc("evp_events_dead_lettered_total", "Events sent to the dead-letter queue by this process.",
		func() float64 { return float64(pool.Stats.DeadLettered.Load()) })
	if rq, ok := q.(*redisqueue.Queue); ok {
		m.CounterFunc("evp_buffer_resets_total", "Redis streams or consumer groups this process found made again under it: their entries were lost (Redis restarted without persistence, was flushed, or keys were deleted).",
			func() float64 { return float64(rq.Resets()) })
	}
	stat := func(f func(queue.Stats) int64) func() float64 {
		return metrics.WithTimeout(func(ctx context.Context) float64 {
			s, err := q.Stats(ctx)
			if err != nil {
				return -1
			}
			return float64(f(s))
		})
	}
	m.GaugeFunc("evp_queue_length", "Entries in the buffer not yet acknowledged (the backlog; scale workers on it).",
		stat(func(s queue.Stats) int64 { return s.Length }))
	m.GaugeFunc("evp_queue_pending", "Entries delivered to a worker and not yet acknowledged.",
		stat(func(s queue.Stats) int64 { return s.Pending }))
	if bq, ok := q.(queue.Bounded); ok {
		m.GaugeFunc("evp_buffer_fill_ratio", "How full the buffer is against its bound (EVP_BUFFER_MAX_BYTES, EVP_STREAM_MAX_LEN), 0 to 1; at 1 ingestion answers 503.",
			metrics.WithTimeout(func(ctx context.Context) float64 {
				used, limit, err := bq.Fill(ctx)
				if err != nil {
					return -1
				}
				if limit <= 0 {
					return 0
				}
				return min(float64(used)/float64(limit), 1)
			}))
	}
	return m
}

// redisStream describes the Redis stream and its consumer groups.
func redisStream(ctx context.Context, rq *redisqueue.Queue) (httpapi.StreamInfo, error) {
	st, err := rq.Stats(ctx)
	if err != nil {
		return httpapi.StreamInfo{}, err
	}
	groups, err := rq.Groups(ctx)
	if err != nil {
		return httpapi.StreamInfo{}, err
	}
	info := httpapi.StreamInfo{
		Backend: "redis", Stream: rq.Key(), Partitions: rq.Partitions(), Streams: rq.Keys(),
		Length: st.Length, TotalEnqueued: st.TotalEnqueued, Groups: []httpapi.StreamGroup{},
	}
	for _, g := range groups {
		sg := httpapi.StreamGroup{Name: g.Name, Pending: g.Pending, Lag: g.Lag, LastDeliveredID: g.LastDeliveredID, Consumers: []httpapi.StreamConsumer{}}
		for _, c := range g.Consumers {
			sg.Consumers = append(sg.Consumers, httpapi.StreamConsumer{Name: c.Name, Pending: c.Pending, IdleMs: c.Idle.Milliseconds()})
		}
		info.Groups = append(info.Groups, sg)
	}
	return info, nil
}

// embeddedStream describes the embedded buffer as one group read by this process's workers.
func embeddedStream(ctx context.Context, sq *logqueue.Queue, cfg *config.Config) (httpapi.StreamInfo, error) {
	st, err := sq.Stats(ctx)
	if err != nil {
		return httpapi.StreamInfo{}, err
	}
	return httpapi.StreamInfo{
		Backend: "embedded", Stream: "buffer", Partitions: 1, Streams: []string{"buffer"},
		Length: st.Length, TotalEnqueued: st.TotalEnqueued,
		Groups: []httpapi.StreamGroup{{
			Name: cfg.ConsumerGroup, Pending: st.Pending, Lag: st.Length - st.Pending,
			Consumers: []httpapi.StreamConsumer{{Name: "workers (this process)", Pending: st.Pending}},
		}},
	}, nil
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

// setMemoryLimit makes the garbage collector keep the Go heap under limitMB (a soft limit:
// it collects more often near it rather than letting the heap double), so that the caches'
// working set plus GOGC's headroom stays bounded under sustained load. GOMEMLIMIT, when
// set, is the runtime's own and wins.
func setMemoryLimit(limitMB int, log *slog.Logger) {
	if limitMB <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(limitMB) << 20)
	log.Debug("memory limit", "MiB", limitMB)
}
