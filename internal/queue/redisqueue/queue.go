// Package redisqueue is the production buffer: a Redis stream read by a consumer group, so
// that any number of API processes append and any number of worker processes share the work.
//
// # Layout
//
// One stream key, KeyPrefix+Stream, holds every entry not yet acknowledged, with two fields:
// "id" (the event id) and "d" (the encoded event). Nothing else is stored: TotalEnqueued is
// the stream's own entries-added counter (XINFO STREAM, Redis 7.0 or later). Every command,
// MULTI block and Lua script touches one stream key, so all are valid on Redis Cluster.
//
// # Partitions
//
// With Options.Partitions = n > 1 the buffer is n streams, KeyPrefix+Stream+":{tag}", whose
// hash tags put them in slots spread over the cluster (see partitionKeys), each with the
// consumer group. Enqueue sends an entry to the stream picked by a hash of its event id; one
// pipeline carries a whole batch (go-redis sends it to every node at once). Every consumer
// reads every stream: steps 1 and 2 below run per stream, step 3 asks all of them without
// blocking in one pipeline, then blocks on them all in one XREADGROUP (on a cluster, which
// refuses that, on one stream at a time for a short slice). The message id carries the stream's index, so Ack, Nack and Touch reach the right
// stream. Stats and Groups add up the streams.
//
// The keys of every partition count ever used are kept in the set KeyPrefix+Stream+
// ":partitions". Open reads the streams listed there (and the single-stream key) that still
// hold entries, along with its own, so changing the count loses nothing: entries appended
// under the old count are delivered by consumers opened after the change.
//
// # Message ids
//
// A stream id is "ms-seq" (two unsigned 64-bit numbers); Message.ID is an int64. Ids are
// encoded losslessly as ms<<20 | seq, which holds every id Redis generates until the year
// 2248 with up to 1,048,575 entries in one millisecond. With several streams the low bits
// of seq hold the stream's index instead (8 bits for 256 streams, leaving 4,095 entries
// per stream and millisecond). An id outside that range (only possible if Redis's clock
// stood still for that many appends, or with ids set by hand) gets a negative id from a
// table in this process instead, so it can still be acknowledged; such ids are valid only
// in the Queue that handed them out.
//
// # Acknowledgement and trimming
//
// Ack deletes the entries from the stream (XDEL) and acknowledges them (XACK) in one
// pipeline, so a stream holds exactly the entries not yet acknowledged: XLEN is the
// backlog, PendingEventIDs is an XRANGE, and memory never grows with the number of events
// processed. No length- or id-based trimming is used, so an entry not yet acknowledged can
// never be dropped. The price is that the stream serves one consumer group: a second group
// on the same stream would lose entries the first acked.
//
// # Delivery
//
// Fetch takes entries in this order:
//  1. XAUTOCLAIM of entries idle longer than ClaimIdle, from any consumer (a dead worker, a
//     slow one, or entries released by Nack). A pass over the group's pending list runs
//     every min(ClaimIdle/4, 1 s), and at once after a Nack in this process.
//  2. Once after Open, this consumer's own pending entries from before (a restart under the
//     same Consumer name): XPENDING then XCLAIM, limited to ids up to the group's last
//     delivered id at Open, so nothing handed out meanwhile is handed out twice.
//  3. XREADGROUP ">" with COUNT and BLOCK. The wait is cut into slices of at most 250 ms
//     so that a cancelled context or Close ends a Fetch promptly without abandoning an
//     XREADGROUP whose entries Redis already assigned to this consumer.
//
// # Nack and Attempts
//
// Nack moves an entry this consumer still owns to the pseudo-consumer "~nacked" with an idle
// time of "since 1970" (XCLAIM ... TIME 0 JUSTID, in a Lua script that checks the owner
// first). The entry stays in the group's pending list, so it is never lost, and step 1 of
// the next Fetch of any worker claims it at once. Stats.Pending leaves such entries out.
//
// Message.Attempts is the entry's delivery count from Redis minus one ("deliveries before
// this one"): 0 for XREADGROUP ">", otherwise read with XPENDING after the claim. XCLAIM
// ... JUSTID does not count a delivery, so each Nack and each claim after a dead worker adds
// exactly one. A message with Attempts >= MaxDeliveries is still handed out, but Exhausted
// reports it: the worker must dead-letter it instead of processing it again, so that an
// entry that kills every worker that takes it cannot circulate for ever.
//
// # Durability
//
// Enqueue returns nil once Redis has applied every XADD. Whether that survives a crash of
// Redis is Redis's configuration: appendonly yes with appendfsync always survives power
// loss, appendfsync everysec loses at most about a second. Open reads that configuration
// (CONFIG GET, where allowed) and logs a warning when a restart of Redis would lose
// buffered events.
//
// # Resets
//
// Each group holds a marker consumer, "~epoch.<ms>.<random>", made together with the group
// in one script; it vanishes exactly when the group does (the stream deleted, the data
// flushed, or Redis restarted without persistence). Every process remembers the marker of
// each stream and checks it every Options.WatchEvery and whenever Redis answers NOGROUP:
// a stream or group made again under it is logged as an error, counted (Resets) and
// reported by Degraded for Options.ResetHold.
//
// # Bounds
//
// Enqueue and EnqueueUnique refuse with an error wrapping queue.ErrFull, appending nothing,
// when Redis's used_memory has reached Options.MemoryHighWater of its maxmemory (read with
// INFO every WatchEvery), or when a stream they would append to holds Options.MaxLen
// entries not yet acknowledged (EnqueueUnique checks XLEN in its script; Enqueue uses the
// lengths read every WatchEvery, so it may pass the bound by what is appended meanwhile).
// Acknowledgements never allocate (see Ack), so workers drain a full Redis.
package redisqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/queue"
)

// Defaults of Options.
const (
	DefaultStream        = "events_stream"
	DefaultGroup         = "evp-workers-group"
	DefaultClaimIdle     = 60 * time.Second
	DefaultMaxDeliveries = 5
	DefaultPruneIdle     = 24 * time.Hour
	DefaultHighWater     = 0.9
	DefaultWatchEvery    = time.Second
	DefaultResetHold     = time.Hour
)

// NackConsumer is the pseudo-consumer that holds entries released by Nack until a worker
// claims them. It shows up in XINFO CONSUMERS; Groups reports its entries as Nacked.
const NackConsumer = "~nacked"

// maxBlockSlice bounds one XREADGROUP BLOCK inside Fetch.
const maxBlockSlice = 250 * time.Millisecond

// Options configures a Queue. Zero values take the defaults noted.
type Options struct {
	// URL of the Redis server (redis://[user:pass@]host:port/db); used when Client is nil.
	// A client made from it is closed by Close and honours context deadlines.
	URL string
	// Client is used instead of URL and is not closed by Close. A *redis.Client or a
	// *redis.ClusterClient.
	Client redis.UniversalClient

	Stream string // stream name; "events_stream"
	Group  string // consumer group; "evp-workers-group"
	// Consumer is this process's name in the group; hostname-pid-random by default. Set a
	// stable name (CONSUMER_NAME) so that a restarted worker takes back its own pending
	// entries at once instead of after ClaimIdle; two live processes must never share one.
	Consumer string
	// KeyPrefix is put before every key (tests, several deployments on one Redis, or a
	// {hash tag} on Redis Cluster with one partition).
	KeyPrefix string
	// Partitions is the number of streams the buffer is spread over, from 1 to
	// MaxPartitions; 0 is 1. One stream keeps the key KeyPrefix+Stream.
	Partitions int

	ClaimIdle time.Duration // entries pending longer than this are claimed by Fetch; 60 s
	// MaxDeliveries is the number of deliveries after which Exhausted reports a message; 5.
	// Negative: no limit.
	MaxDeliveries int
	// PruneIdle: Open deletes consumers of the group that hold no pending entry and have
	// been idle longer than this (dead processes with random names); 24 h. Negative: never.
	PruneIdle time.Duration

	// MaxLen bounds the entries a stream holds not yet acknowledged: Enqueue and
	// EnqueueUnique refuse to append to a stream that holds this many. 0: no bound.
	MaxLen int64
	// MemoryHighWater is the fraction of Redis's maxmemory past which Enqueue and
	// EnqueueUnique refuse, so that Redis never reaches maxmemory through ingestion; 0.9.
	// Negative: no check. No check either when Redis has no maxmemory.
	MemoryHighWater float64
	// WatchEvery is how often the queue checks its streams' markers (see Resets) and reads
	// Redis's memory and the streams' lengths; 1 s.
	WatchEvery time.Duration
	// ResetHold is how long Degraded reports a stream or group found made again; 1 h.
	ResetHold time.Duration
	// Log receives the persistence check and the resets; nil: nothing is logged.
	Log *slog.Logger
}

// Queue implements queue.Queue on a Redis stream and consumer group.
type Queue struct {
	rdb        redis.UniversalClient
	ownClient  bool
	cluster    bool // rdb is a *redis.ClusterClient: no command may span two streams
	base       string
	group      string
	consumer   string
	claimIdle  time.Duration
	claimEvery time.Duration
	slice      time.Duration
	maxDeliv   int
	maxLen     int64
	highWater  float64
	watchEvery time.Duration
	resetHold  time.Duration
	log        *slog.Logger
	now        func() time.Time // the clock of EnqueueUnique's dedup slices
	expiring   dedup.Expiring   // the dedup sets EnqueueUnique gave their TTL

	resets    atomic.Int64
	lastReset atomic.Pointer[ResetError]
	lim       limits
	watchDone chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
	life      sync.RWMutex // held for reading by every operation; Close takes it to wait for them

	// parts are the streams: the first active take new entries, the others are leftovers
	// of another partition count, read until empty.
	parts      []*part
	active     int
	activeKeys []string      // the keys of parts[:active]
	pbits      uint          // bits of a message id that hold the stream's index
	turn       atomic.Uint32 // rotates the stream each Fetch starts with

	mu sync.Mutex // guards the parts' handed and the aliases
	// aliases maps the negative ids of stream ids that do not fit the encoding.
	aliases   map[int64]ref
	aliasOf   map[ref]int64
	nextAlias int64
}

// Open connects, creates the stream and group if needed (XGROUP CREATE ... 0 MKSTREAM) and
// prunes long-dead consumers.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.Consumer == "" {
		opts.Consumer = defaultConsumer()
	}
	if opts.Consumer == NackConsumer {
		return nil, fmt.Errorf("redisqueue: consumer name %q is reserved", NackConsumer)
	}
	if opts.ClaimIdle <= 0 {
		opts.ClaimIdle = DefaultClaimIdle
	}
	if opts.ClaimIdle < time.Millisecond {
		opts.ClaimIdle = time.Millisecond
	}
	if opts.MaxDeliveries == 0 {
		opts.MaxDeliveries = DefaultMaxDeliveries
	}
	if opts.PruneIdle == 0 {
		opts.PruneIdle = DefaultPruneIdle
	}
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.MemoryHighWater == 0 {
		opts.MemoryHighWater = DefaultHighWater
	}
	if opts.WatchEvery <= 0 {
		opts.WatchEvery = DefaultWatchEvery
	}
	if opts.ResetHold <= 0 {
		opts.ResetHold = DefaultResetHold
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if _, err := partitionKeys(opts.KeyPrefix+opts.Stream, opts.Partitions); err != nil {
		return nil, err
	}
	q := &Queue{
		rdb:        opts.Client,
		base:       opts.KeyPrefix + opts.Stream,
		group:      opts.Group,
		consumer:   opts.Consumer,
		claimIdle:  opts.ClaimIdle,
		claimEvery: min(max(opts.ClaimIdle/4, 10*time.Millisecond), time.Second),
		maxDeliv:   opts.MaxDeliveries,
		maxLen:     max(opts.MaxLen, 0),
		highWater:  opts.MemoryHighWater,
		watchEvery: opts.WatchEvery,
		resetHold:  opts.ResetHold,
		log:        opts.Log,
		now:        time.Now,
		watchDone:  make(chan struct{}),
		closed:     make(chan struct{}),
		aliases:    map[int64]ref{},
		aliasOf:    map[ref]int64{},
		nextAlias:  -1,
	}
	q.slice = min(maxBlockSlice, q.claimEvery)
	if q.rdb == nil {
		if opts.URL == "" {
			return nil, errors.New("redisqueue: neither URL nor Client is set")
		}
		ro, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("redisqueue: URL: %w", err)
		}
		ro.ContextTimeoutEnabled = true
		q.rdb = redis.NewClient(ro)
		q.ownClient = true
	}
	_, q.cluster = q.rdb.(*redis.ClusterClient)
	if err := q.init(ctx, opts.Partitions, opts.PruneIdle); err != nil {
		if q.ownClient {
			_ = q.rdb.Close()
		}
		return nil, err
	}
	q.checkPersistence(ctx)
	if err := q.refreshLimits(ctx); err != nil {
		q.log.Info("redis memory and stream lengths unknown: the memory bound is off until they can be read", "err", err)
	}
	go q.watch()
	return q, nil
}

func defaultConsumer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "evp"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (q *Queue) init(ctx context.Context, n int, pruneIdle time.Duration) error {
	active, leftover, err := streamKeys(ctx, q.rdb, q.base, n)
	if err != nil {
		return err
	}
	for i, k := range append(active, leftover...) {
		q.parts = append(q.parts, newPart(i, k))
	}
	q.active, q.activeKeys = len(active), active
	q.pbits = partBits(len(q.parts))
	if q.cluster && len(q.parts) > 1 {
		q.slice = min(q.slice, partBlock) // see blockRead
	}
	if err := q.ensureGroups(ctx); err != nil {
		return err
	}
	if pruneIdle > 0 {
		// Housekeeping only: a failure here must not keep the buffer from opening.
		for _, p := range q.parts {
			_ = pruneScript.Run(ctx, q.rdb, []string{p.key}, q.group, pruneIdle.Milliseconds(), q.consumer, NackConsumer).Err()
		}
	}
	// Step 2 of Fetch: pending entries of this consumer from before, up to the group's
	// last delivered id now.
	groups := make([]*redis.XInfoGroupsCmd, len(q.parts))
	mine := make([]*redis.XPendingExtCmd, len(q.parts))
	_, err = q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range q.parts {
			groups[i] = pl.XInfoGroups(ctx, p.key)
			mine[i] = pl.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: p.key, Group: q.group, Start: "-", End: "+", Count: 1, Consumer: q.consumer})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisqueue: open: %w", err)
	}
	for i, p := range q.parts {
		p.recovered = true
		if len(mine[i].Val()) == 0 {
			continue
		}
		for _, g := range groups[i].Val() {
			if g.Name == q.group {
				p.recovered = false
				p.recBound = g.LastDeliveredID
				p.recCursor = "-"
				p.handed = map[string]struct{}{}
			}
		}
	}
	return nil
}

// ensureGroups creates every stream and its group, reading from the first entry (a
// stream holds only entries not yet acknowledged, so a group created late must see them
// all), and checks their markers (see ensureGroup).
func (q *Queue) ensureGroups(ctx context.Context) error {
	for _, p := range q.parts {
		if err := q.ensureGroup(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// isNoGroup reports a NOGROUP error: the key or the group does not exist.
func isNoGroup(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOGROUP")
}

// enter starts an operation: ErrClosed once Close has begun. Call leave when done.
func (q *Queue) enter() error {
	q.life.RLock()
	select {
	case <-q.closed:
		q.life.RUnlock()
		return queue.ErrClosed
	default:
		return nil
	}
}

func (q *Queue) leave() { q.life.RUnlock() }

// wrap turns the error of a client closed under an operation into ErrClosed.
func (q *Queue) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.ErrClosed) {
		select {
		case <-q.closed:
			return queue.ErrClosed
		default:
		}
	}
	return fmt.Errorf("redisqueue: %s: %w", op, err)
}

// Consumer returns this queue's consumer name.
func (q *Queue) Consumer() string { return q.consumer }

// Key returns the stream key: with several partitions, the stem of their keys.
func (q *Queue) Key() string { return q.base }

// Keys returns the keys of the streams this queue reads: those Enqueue appends to first,
// then leftovers of another partition count that held entries at Open.
func (q *Queue) Keys() []string {
	keys := make([]string, len(q.parts))
	for i, p := range q.parts {
		keys[i] = p.key
	}
	return keys
}

// Partitions returns the number of streams Enqueue appends to.
func (q *Queue) Partitions() int { return q.active }

// MaxDeliveries returns the delivery limit (negative: none).
func (q *Queue) MaxDeliveries() int { return q.maxDeliv }

// Exhausted reports whether m was delivered MaxDeliveries times before: the worker must
// dead-letter it (and acknowledge it) instead of processing it again.
func (q *Queue) Exhausted(m queue.Message) bool {
	return q.maxDeliv > 0 && m.Attempts >= q.maxDeliv
}

// Enqueue implements queue.Queue: the XADDs of all entries pipelined, one round trip (per
// node, in parallel, on a cluster); each entry goes to the stream of its event id. It
// returns nil only when Redis answered every XADD with an id. After an error some entries
// may have been appended: a retry appends them again, which at-least-once allows and the
// store's idempotence on eventId absorbs, so no MULTI makes the batch all or nothing: it
// would cost throughput for nothing the store needs.
func (q *Queue) Enqueue(ctx context.Context, entries []queue.Entry) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	if len(entries) == 0 {
		return nil
	}
	if err := q.admit(entries); err != nil {
		return q.wrap("enqueue", err)
	}
	cmds, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.XAdd(ctx, &redis.XAddArgs{Stream: q.partFor(e.EventID).key, Values: []any{"id", e.EventID, "d", e.Data}})
		}
		return nil
	})
	if err == nil {
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
	}
	return q.wrap("enqueue", err)
}

// partFor is the stream an event is appended to.
func (q *Queue) partFor(eventID string) *part {
	return q.parts[partitionOf(eventID, q.active)]
}

// Ping implements queue.Queue. On a cluster it pings every master: each may hold a stream.
func (q *Queue) Ping(ctx context.Context) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	if cc, ok := q.rdb.(*redis.ClusterClient); ok {
		return q.wrap("ping", cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		}))
	}
	return q.wrap("ping", q.rdb.Ping(ctx).Err())
}

// Close implements queue.Queue. It waits for the operations under way (a Fetch's current
// block slice at most) and closes the client if Open made it.
func (q *Queue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.closed)
		<-q.watchDone
		q.life.Lock()
		defer q.life.Unlock()
		if q.ownClient {
			err = q.rdb.Close()
		}
	})
	return err
}

// pruneScript deletes the consumers of a group that hold no pending entry and have been
// idle longer than ARGV[2] ms, except ARGV[3], ARGV[4] and the group's marker (a name
// starting with "~epoch."). In a script, so that no entry can be delivered to a consumer
// between the check and the delete (XGROUP DELCONSUMER drops the pending entries of the
// consumer it deletes).
// KEYS[1] stream; ARGV[1] group.
var pruneScript = redis.NewScript(`
local cs = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
local idleMax = tonumber(ARGV[2])
local n = 0
for _, c in ipairs(cs) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] > idleMax and f['name'] ~= ARGV[3] and f['name'] ~= ARGV[4]
      and string.sub(f['name'], 1, 7) ~= '~epoch.' then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    n = n + 1
  end
end
return n
`)
