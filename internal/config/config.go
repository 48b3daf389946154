// Package config holds every evp setting: its environment variable, its flag, its default,
// and its validation. Flags win over the environment, the environment over defaults.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
)

// Config is evp's whole configuration.
type Config struct {
	Port         int
	Host         string
	LogLevel     string
	LogFormat    string // "json", "text" or "auto" (text on a terminal)
	Env          string // NODE_ENV / EVP_ENV: "production" tightens defaults
	DataDir      string
	DatabaseURL  string
	AutoMigrate  bool // EVP_AUTO_MIGRATE: apply PostgreSQL migrations when evp starts
	MongoURI     string
	MongoDB      string
	RedisURL     string
	RedisCluster bool // EVP_REDIS_CLUSTER: REDIS_URL names a Redis Cluster (seed nodes)
	JWTSecret    string
	JWTExpiresIn time.Duration
	APIKeyPrefix string

	Stream             string
	StreamPartitions   int // EVP_STREAM_PARTITIONS: streams the Redis buffer is spread over
	RedisPrefix        string
	ConsumerGroup      string
	ConsumerName       string
	WorkerBatchSize    int
	WorkerBatchTimeout time.Duration
	WorkerBatchLinger  time.Duration
	Workers            int
	MemoryLimitMB      int
	// LiveTailsMax bounds the live tails (GET /api/v1/events/live) open on one process.
	LiveTailsMax int

	MaxBodyBytes int64
	// InflightMaxBytes bounds the request bodies being read and decoded plus the decoded
	// events waiting for the workers in this process; past it ingestion answers 503.
	InflightMaxBytes int64
	// BufferMaxBytes bounds the embedded buffer's files (accepted, not yet stored); past
	// it ingestion answers 503 until the workers catch up.
	BufferMaxBytes int64
	// StreamMaxLen bounds the Redis stream's entries not yet acknowledged (per stream);
	// past it ingestion answers 503. 0: no bound.
	StreamMaxLen    int64
	DedupWindow     time.Duration
	DedupMaxIDs     int
	ClaimIdle       time.Duration
	BufferSync      string
	StoreSync       string
	ShutdownTimeout time.Duration
	PprofAddr       string
	MetricsToken    string

	// MongoDB event store.
	MongoShard    bool // EVP_MONGO_SHARD: shard the events collection when evp starts
	RetentionDays int  // EVP_RETENTION_DAYS: keep events this many days (TTL in MongoDB); 0 keeps them forever

	// Accounts and access.
	SMTPHost        string
	SMTPPort        int
	SMTPUsername    string
	SMTPPassword    string
	SMTPFrom        string
	AllowedDomains  []string // lower case, without "@"
	DevLogin        bool     // log sign-in codes when there is no SMTP
	AnalyticsPublic bool     // analytics and metrics routes without credentials
	TrustProxy      bool     // client IP from X-Forwarded-For
	// TrustedProxies are the proxies whose X-Forwarded-For entries are believed (with
	// TrustProxy); loopback and private ranges when the setting is empty.
	TrustedProxies []netip.Prefix
	AuthRateLimit  int      // requests per minute per client IP on /api/auth/*
	CORSOrigins    []string // origins whose pages may call the API
}

// setting describes one configuration value.
type setting struct {
	env   []string // first is the primary name; later ones are aliases read if it is unset
	flag  string
	def   string
	usage string
	apply func(c *Config, v string) error
}

func intIn(lo, hi int, dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		*dst(c) = n
		return nil
	}
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func oneOf(dst func(*Config) *string, allowed ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		v = strings.ToLower(strings.TrimSpace(v))
		for _, a := range allowed {
			if v == strings.ToLower(a) {
				*dst(c) = a
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func boolean(dst func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return errors.New("must be true or false")
		}
		*dst(c) = b
		return nil
	}
}

func duration(min time.Duration, dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < min {
			return fmt.Errorf("must be a duration of at least %s, like 30s or 10m", min)
		}
		*dst(c) = d
		return nil
	}
}

// byteSize parses a byte count like 1073741824, 64MiB or 1GB (github.com/dustin/go-humanize:
// KiB, MiB, GiB are powers of 1024; KB, MB, GB of 1000).
func byteSize(lo, hi int64, dst func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := humanize.ParseBytes(strings.TrimSpace(v))
		if err != nil || n < uint64(lo) || n > uint64(hi) {
			return fmt.Errorf("must be a byte count from %s to %s, like 64MiB or 1GiB",
				humanize.IBytes(uint64(lo)), humanize.IBytes(uint64(hi)))
		}
		*dst(c) = int64(n)
		return nil
	}
}

func millis(lo, hi int, dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number of milliseconds from %d to %d", lo, hi)
		}
		*dst(c) = time.Duration(n) * time.Millisecond
		return nil
	}
}

var settings = []setting{
	{env: []string{"PORT"}, flag: "port", def: "3001", usage: "HTTP port",
		apply: intIn(0, 65535, func(c *Config) *int { return &c.Port })},
	{env: []string{"SERVER_HOST"}, flag: "host", def: "0.0.0.0", usage: "address to listen on",
		apply: str(func(c *Config) *string { return &c.Host })},
	{env: []string{"LOG_LEVEL"}, flag: "log-level", def: "info", usage: "debug, info, warn or error",
		apply: oneOf(func(c *Config) *string { return &c.LogLevel }, "debug", "info", "warn", "error")},
	{env: []string{"EVP_LOG_FORMAT"}, flag: "log-format", def: "auto", usage: "json, text, or auto (text on a terminal, JSON otherwise)",
		apply: oneOf(func(c *Config) *string { return &c.LogFormat }, "auto", "json", "text")},
	{env: []string{"EVP_ENV", "NODE_ENV"}, flag: "env", def: "development", usage: "development, production or test (production: JWT_SECRET required, sign-in codes not logged; test: as development)",
		apply: oneOf(func(c *Config) *string { return &c.Env }, "development", "production", "test")},
	{env: []string{"EVP_DATA_DIR"}, flag: "data-dir", def: "./data", usage: "directory of the embedded backends' files",
		apply: func(c *Config, v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("must not be empty")
			}
			c.DataDir = v
			return nil
		}},
	{env: []string{"DATABASE_URL"}, flag: "database-url", usage: "PostgreSQL for accounts (empty: embedded SQLite)",
		apply: str(func(c *Config) *string { return &c.DatabaseURL })},
	{env: []string{"EVP_AUTO_MIGRATE"}, flag: "auto-migrate", def: "true", usage: "apply DATABASE_URL's migrations when evp starts (false: refuse to start on an old schema; run evp migrate)",
		apply: boolean(func(c *Config) *bool { return &c.AutoMigrate })},
	{env: []string{"MONGO_URI"}, flag: "mongo-uri", usage: "MongoDB for events (empty: embedded SQLite)",
		apply: str(func(c *Config) *string { return &c.MongoURI })},
	{env: []string{"MONGO_DATABASE"}, flag: "mongo-database", def: "event_processor", usage: "MongoDB database name",
		apply: str(func(c *Config) *string { return &c.MongoDB })},
	{env: []string{"EVP_MONGO_SHARD"}, flag: "mongo-shard", def: "false", usage: "on start, enable sharding and shard events on hashed userId (needs a mongos; same as evp mongo init)",
		apply: boolean(func(c *Config) *bool { return &c.MongoShard })},
	{env: []string{"EVP_RETENTION_DAYS"}, flag: "retention-days", def: "0", usage: "keep events and their rollups this many days (MongoDB: TTL indexes; embedded: deleted every 10 minutes); 0 keeps them forever",
		apply: intIn(0, 36500, func(c *Config) *int { return &c.RetentionDays })},
	{env: []string{"REDIS_URL"}, flag: "redis-url", usage: "Redis for the buffer and shared state (empty: embedded)",
		apply: str(func(c *Config) *string { return &c.RedisURL })},
	{env: []string{"EVP_REDIS_CLUSTER"}, flag: "redis-cluster", def: "false", usage: "REDIS_URL is a Redis Cluster: redis://host:port of one node, more seeds as ?addr=host:port&addr=...",
		apply: boolean(func(c *Config) *bool { return &c.RedisCluster })},
	{env: []string{"JWT_SECRET"}, flag: "jwt-secret", usage: "HS256 secret for dashboard sessions (32+ bytes)",
		apply: str(func(c *Config) *string { return &c.JWTSecret })},
	{env: []string{"JWT_EXPIRES_IN"}, flag: "jwt-expires-in", def: "24h", usage: "session lifetime",
		apply: duration(time.Minute, func(c *Config) *time.Duration { return &c.JWTExpiresIn })},
	{env: []string{"API_KEY_PREFIX"}, flag: "api-key-prefix", def: "evp_", usage: "prefix of generated API keys",
		apply: func(c *Config, v string) error {
			if len(v) > 16 || strings.ContainsAny(v, " \t\r\n") {
				return errors.New("must be at most 16 characters without spaces")
			}
			c.APIKeyPrefix = v
			return nil
		}},
	{env: []string{"EVP_STREAM"}, flag: "stream", def: "events_stream", usage: "Redis stream that buffers events",
		apply: str(func(c *Config) *string { return &c.Stream })},
	{env: []string{"EVP_STREAM_PARTITIONS"}, flag: "stream-partitions", def: "1", usage: "Redis streams the buffer is spread over, in different Redis Cluster slots (1 keeps the single EVP_STREAM key)",
		apply: intIn(1, 256, func(c *Config) *int { return &c.StreamPartitions })},
	{env: []string{"EVP_REDIS_PREFIX"}, flag: "redis-prefix", def: "evp:", usage: "prefix of evp's Redis keys other than the stream",
		apply: str(func(c *Config) *string { return &c.RedisPrefix })},
	{env: []string{"CONSUMER_GROUP"}, flag: "consumer-group", def: "evp-workers-group", usage: "worker consumer group",
		apply: str(func(c *Config) *string { return &c.ConsumerGroup })},
	{env: []string{"CONSUMER_NAME"}, flag: "consumer-name", usage: "this worker's consumer name (default: host-derived)",
		apply: str(func(c *Config) *string { return &c.ConsumerName })},
	{env: []string{"WORKER_BATCH_SIZE"}, flag: "worker-batch-size", def: "100", usage: "most events a worker stores in one write",
		apply: intIn(1, 10000, func(c *Config) *int { return &c.WorkerBatchSize })},
	{env: []string{"WORKER_BATCH_TIMEOUT_MS"}, flag: "worker-batch-timeout-ms", def: "500", usage: "longest a worker waits for a batch (ms)",
		apply: millis(1, 60000, func(c *Config) *time.Duration { return &c.WorkerBatchTimeout })},
	{env: []string{"WORKER_BATCH_LINGER_MS"}, flag: "worker-batch-linger-ms", def: "50", usage: "how long a partly filled batch waits for more events (ms; 0: not at all)",
		apply: millis(0, 10000, func(c *Config) *time.Duration { return &c.WorkerBatchLinger })},
	{env: []string{"EVP_WORKERS"}, flag: "workers", def: "4", usage: "worker goroutines in this process",
		apply: intIn(1, 256, func(c *Config) *int { return &c.Workers })},
	{env: []string{"EVP_LIVE_TAILS_MAX"}, flag: "live-tails-max", def: "10", usage: "most live tails of new events (GET /api/v1/events/live, the Events page's Live) open at once on this process (0: none)",
		apply: intIn(0, 1000, func(c *Config) *int { return &c.LiveTailsMax })},
	{env: []string{"EVP_MEMORY_LIMIT_MB"}, flag: "memory-limit-mb", def: "240", usage: "soft limit of the Go heap in MiB, on top of what the embedded analytics engine holds: garbage collection works harder near it (0: off; GOMEMLIMIT, when set, wins)",
		apply: intIn(0, 1<<20, func(c *Config) *int { return &c.MemoryLimitMB })},
	{env: []string{"EVP_MAX_BODY_BYTES"}, flag: "max-body-bytes", def: "5242880", usage: "largest request body, after decompression",
		apply: func(c *Config, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 1024 || n > 1<<30 {
				return errors.New("must be a byte count from 1024 to 1073741824")
			}
			c.MaxBodyBytes = n
			return nil
		}},
	{env: []string{"EVP_INFLIGHT_MAX_BYTES"}, flag: "inflight-max-bytes", def: "128MiB", usage: "most bytes of request bodies being decoded plus decoded events waiting for workers in this process; past it ingestion answers 503 with Retry-After",
		apply: byteSize(1<<20, 1<<40, func(c *Config) *int64 { return &c.InflightMaxBytes })},
	{env: []string{"EVP_BUFFER_MAX_BYTES"}, flag: "buffer-max-bytes", def: "1GiB", usage: "most bytes the embedded buffer's files hold (accepted, not yet stored); past it ingestion answers 503 with Retry-After until the workers catch up",
		apply: byteSize(4<<20, 1<<50, func(c *Config) *int64 { return &c.BufferMaxBytes })},
	{env: []string{"EVP_STREAM_MAX_LEN"}, flag: "stream-max-len", def: "1000000", usage: "most entries a Redis stream holds not yet acknowledged; past it ingestion answers 503 with Retry-After (0: no bound)",
		apply: func(c *Config, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 || n > 1<<40 || (n > 0 && n < 1000) {
				return errors.New("must be 0 (no bound) or an entry count from 1000 to 1099511627776")
			}
			c.StreamMaxLen = n
			return nil
		}},
	{env: []string{"EVP_DEDUP_WINDOW"}, flag: "dedup-window", def: "10m", usage: "how long a repeated eventId is answered as a duplicate",
		apply: duration(time.Second, func(c *Config) *time.Duration { return &c.DedupWindow })},
	{env: []string{"EVP_DEDUP_MAX_IDS"}, flag: "dedup-max-ids", def: "1000000", usage: "most ids the embedded dedup window keeps in memory (about 80 bytes each); the oldest go first",
		apply: intIn(1000, 1<<30, func(c *Config) *int { return &c.DedupMaxIDs })},
	{env: []string{"EVP_CLAIM_IDLE"}, flag: "claim-idle", def: "60s", usage: "in-flight entries idle this long are delivered again",
		apply: duration(100*time.Millisecond, func(c *Config) *time.Duration { return &c.ClaimIdle })},
	{env: []string{"EVP_BUFFER_SYNC"}, flag: "buffer-sync", def: "full", usage: "embedded buffer commit: full (fsync, survives power loss) or normal (survives a killed process)",
		apply: oneOf(func(c *Config) *string { return &c.BufferSync }, "full", "normal")},
	{env: []string{"EVP_STORE_SYNC"}, flag: "store-sync", def: "full", usage: "embedded store commit: full or normal",
		apply: oneOf(func(c *Config) *string { return &c.StoreSync }, "full", "normal")},
	{env: []string{"EVP_METRICS_TOKEN"}, flag: "metrics-token", usage: "bearer token GET /metrics requires (open when empty)",
		apply: str(func(c *Config) *string { return &c.MetricsToken })},
	{env: []string{"SMTP_HOST"}, flag: "smtp-host", usage: "SMTP server for sign-in codes (codes are logged instead when empty and EVP_DEV_LOGIN is on)",
		apply: str(func(c *Config) *string { return &c.SMTPHost })},
	{env: []string{"SMTP_PORT"}, flag: "smtp-port", def: "587", usage: "SMTP port (STARTTLS is used when the server offers it)",
		apply: intIn(1, 65535, func(c *Config) *int { return &c.SMTPPort })},
	{env: []string{"SMTP_USERNAME"}, flag: "smtp-username", usage: "SMTP user (no authentication when empty)",
		apply: str(func(c *Config) *string { return &c.SMTPUsername })},
	{env: []string{"SMTP_PASSWORD"}, flag: "smtp-password", usage: "SMTP password",
		apply: str(func(c *Config) *string { return &c.SMTPPassword })},
	{env: []string{"SMTP_FROM"}, flag: "smtp-from", usage: "sender address of sign-in mail, like \"evp <evp@example.com>\"",
		apply: str(func(c *Config) *string { return &c.SMTPFrom })},
	{env: []string{"EVP_ALLOWED_EMAIL_DOMAINS"}, flag: "allowed-email-domains", usage: "comma-separated domains whose users may sign in without an invitation (as VIEWER)",
		apply: func(c *Config, v string) error {
			c.AllowedDomains = nil
			for _, d := range strings.Split(v, ",") {
				d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
				if d == "" {
					continue
				}
				if !strings.Contains(d, ".") || strings.ContainsAny(d, " @/") {
					return fmt.Errorf("%q is not a domain name", d)
				}
				c.AllowedDomains = append(c.AllowedDomains, d)
			}
			return nil
		}},
	{env: []string{"EVP_DEV_LOGIN"}, flag: "dev-login", def: "auto", usage: "write sign-in codes to the log when SMTP is not set (auto: on unless production)",
		apply: func(c *Config, v string) error {
			if v == "auto" {
				c.DevLogin = c.Env != "production"
				return nil
			}
			return boolean(func(c *Config) *bool { return &c.DevLogin })(c, v)
		}},
	{env: []string{"EVP_ANALYTICS_PUBLIC"}, flag: "analytics-public", def: "false", usage: "serve analytics and metrics routes without credentials, like the original",
		apply: boolean(func(c *Config) *bool { return &c.AnalyticsPublic })},
	{env: []string{"EVP_TRUST_PROXY"}, flag: "trust-proxy", def: "false", usage: "take the client IP from X-Forwarded-For: the right-most address that is not a trusted proxy (EVP_TRUSTED_PROXIES)",
		apply: boolean(func(c *Config) *bool { return &c.TrustProxy })},
	{env: []string{"EVP_TRUSTED_PROXIES"}, flag: "trusted-proxies", usage: "comma-separated addresses or CIDRs of the proxies in front of evp, like 10.0.0.0/8 (with EVP_TRUST_PROXY; empty: loopback and private ranges)",
		apply: func(c *Config, v string) error {
			c.TrustedProxies = nil
			for _, f := range strings.Split(v, ",") {
				f = strings.TrimSpace(f)
				if f == "" {
					continue
				}
				if !strings.Contains(f, "/") {
					a, err := netip.ParseAddr(f)
					if err != nil {
						return fmt.Errorf("%q is not an IP address or CIDR like 10.0.0.0/8", f)
					}
					c.TrustedProxies = append(c.TrustedProxies, netip.PrefixFrom(a, a.BitLen()))
					continue
				}
				p, err := netip.ParsePrefix(f)
				if err != nil {
					return fmt.Errorf("%q is not an IP address or CIDR like 10.0.0.0/8", f)
				}
				c.TrustedProxies = append(c.TrustedProxies, p.Masked())
			}
			return nil
		}},
	{env: []string{"EVP_CORS_ORIGINS"}, flag: "cors-origins", usage: "comma-separated origins allowed to call the API from a browser, like https://dash.example.com (a dashboard hosted elsewhere); * for any",
		apply: func(c *Config, v string) error {
			c.CORSOrigins = nil
			for _, o := range strings.Split(v, ",") {
				o = strings.TrimRight(strings.TrimSpace(o), "/")
				if o == "" {
					continue
				}
				if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
					return fmt.Errorf("%q is not an origin like https://dash.example.com", o)
				}
				c.CORSOrigins = append(c.CORSOrigins, o)
			}
			return nil
		}},
	{env: []string{"EVP_AUTH_RATE_LIMIT"}, flag: "auth-rate-limit", def: "100", usage: "requests per minute per client IP on /api/auth/*",
		apply: intIn(1, 1_000_000, func(c *Config) *int { return &c.AuthRateLimit })},
	{env: []string{"EVP_PPROF_ADDR"}, flag: "pprof-addr", usage: "serve Go's pprof profiles on this address, like 127.0.0.1:6060 (off when empty)",
		apply: str(func(c *Config) *string { return &c.PprofAddr })},
	{env: []string{"EVP_SHUTDOWN_TIMEOUT"}, flag: "shutdown-timeout", def: "10s", usage: "longest graceful shutdown",
		apply: duration(time.Second, func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
}

// Error is a bad setting; evp exits with code 2 on it.
type Error struct {
	Setting string // the env name or --flag that carried the value
	Value   string
	Reason  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid %s=%q: %s", e.Setting, e.Value, e.Reason)
}

// Load reads the environment (through getenv) and args, validates everything and returns
// the config and the positional arguments left after the flags. extra registers a
// subcommand's own flags on the same flag set. The error is a *Error for a bad value, or
// flag.ErrHelp after --help.
func Load(name string, args []string, getenv func(string) string, out io.Writer, extra func(*flag.FlagSet)) (*Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	vals := make([]*string, len(settings))
	for i, s := range settings {
		vals[i] = fs.String(s.flag, "", s.usage)
	}
	var own *flag.FlagSet
	if extra != nil {
		own = flag.NewFlagSet(name, flag.ContinueOnError)
		extra(own)
		own.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, f.Name, f.Usage) })
	}
	fs.Usage = func() {
		if own == nil {
			Usage(out, name)
			return
		}
		fmt.Fprintf(out, "Usage: %s [flags]\n\nCommand flags:\n", name)
		own.SetOutput(out)
		own.PrintDefaults()
		fmt.Fprintln(out)
		PrintSettings(out)
	}
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			return nil, nil, &Error{Setting: "flags", Value: strings.Join(args, " "), Reason: err.Error()}
		}
		return nil, nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	c := &Config{}
	for i, s := range settings {
		v, source := s.def, s.env[0]
		for _, env := range s.env {
			if ev, ok := lookup(getenv, env); ok {
				v, source = ev, env
				break
			}
		}
		if given[s.flag] {
			v, source = *vals[i], "--"+s.flag
		}
		if err := s.apply(c, v); err != nil {
			return nil, nil, &Error{Setting: source, Value: redact(s, v), Reason: err.Error()}
		}
	}
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	return c, fs.Args(), nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func redact(s setting, v string) string {
	if s.flag == "jwt-secret" || s.flag == "metrics-token" || strings.Contains(s.flag, "password") || strings.Contains(s.flag, "url") || strings.Contains(s.flag, "uri") {
		return "(hidden)"
	}
	return v
}

// validate checks rules that span settings and prepares the data directory.
func (c *Config) validate() error {
	if c.Env == "production" && c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		return &Error{Setting: "JWT_SECRET", Value: "(hidden)", Reason: "must be at least 32 bytes in production"}
	}
	if c.Env == "production" && c.JWTSecret == "" {
		return &Error{Setting: "JWT_SECRET", Value: "(empty)", Reason: "is required in production (at least 32 random bytes, shared by every replica)"}
	}
	if c.RedisCluster && c.RedisURL == "" {
		return &Error{Setting: "EVP_REDIS_CLUSTER", Value: "true", Reason: "needs REDIS_URL (a node of the cluster)"}
	}
	if c.StreamPartitions > 1 && hasHashTag(c.Stream) {
		return &Error{Setting: "EVP_STREAM_PARTITIONS", Value: strconv.Itoa(c.StreamPartitions),
			Reason: fmt.Sprintf("EVP_STREAM=%q holds a {hash tag}, which would put every partition in one Redis Cluster slot; remove the braces", c.Stream)}
	}
	if len(c.TrustedProxies) > 0 && !c.TrustProxy {
		return &Error{Setting: "EVP_TRUSTED_PROXIES", Value: c.TrustedProxies[0].String(),
			Reason: "takes effect only with EVP_TRUST_PROXY=true; set it, or leave EVP_TRUSTED_PROXIES empty"}
	}
	if c.InflightMaxBytes < c.MaxBodyBytes {
		return &Error{Setting: "EVP_INFLIGHT_MAX_BYTES", Value: strconv.FormatInt(c.InflightMaxBytes, 10),
			Reason: fmt.Sprintf("must be at least EVP_MAX_BODY_BYTES (%d), or no body of the largest size could be taken", c.MaxBodyBytes)}
	}
	if c.SMTPHost != "" && c.SMTPFrom == "" {
		return &Error{Setting: "SMTP_FROM", Value: "(empty)", Reason: "is required when SMTP_HOST is set"}
	}
	return nil
}

// hasHashTag reports whether a Redis key holds a Redis Cluster hash tag: a non-empty {...}.
func hasHashTag(key string) bool {
	_, after, ok := strings.Cut(key, "{")
	end := strings.IndexByte(after, '}')
	return ok && end > 0
}

// PrepareDataDir creates the data directory if needed and checks that evp can write there.
func (c *Config) PrepareDataDir() error {
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return &Error{Setting: "EVP_DATA_DIR", Value: c.DataDir, Reason: fmt.Sprintf("cannot create it: %v", err)}
	}
	probe, err := os.CreateTemp(c.DataDir, ".write-probe-*")
	if err != nil {
		return &Error{Setting: "EVP_DATA_DIR", Value: c.DataDir, Reason: fmt.Sprintf("not writable: %v", err)}
	}
	_ = probe.Close()
	_ = os.Remove(probe.Name())
	abs, err := filepath.Abs(c.DataDir)
	if err == nil {
		c.DataDir = abs
	}
	return nil
}

// Embedded reports whether no production backend is configured.
func (c *Config) Embedded() bool {
	return c.RedisURL == "" && c.MongoURI == "" && c.DatabaseURL == ""
}

// Addr is the listen address.
func (c *Config) Addr() string {
	return c.Host + ":" + strconv.Itoa(c.Port)
}

// Usage prints every setting with its flag, environment variable and default.
func Usage(out io.Writer, name string) {
	fmt.Fprintf(out, "Usage: %s [flags]\n\n", name)
	PrintSettings(out)
}

// PrintSettings prints the table of every setting, without a usage line.
func PrintSettings(out io.Writer) {
	fmt.Fprint(out, "Every setting is a flag or an environment variable (the flag wins):\n\n")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  --%s\t%s\t%s\t%s\n", s.flag, strings.Join(s.env, ", "), def, s.usage)
	}
	tw.Flush()
}

// EnvNames lists every environment variable evp reads.
func EnvNames() []string {
	var names []string
	for _, s := range settings {
		names = append(names, s.env...)
	}
	return names
}
