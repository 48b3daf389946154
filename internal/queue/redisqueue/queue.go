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
	"slices"
	"strconv"
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

// ref is one entry of one stream.
type ref struct {
	p   *part
	sid string
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

// Fetch implements queue.Queue.
func (q *Queue) Fetch(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	deadline := time.Now().Add(wait)
	// Redis commands run to completion even if ctx ends, so that entries Redis assigned to
	// this consumer are always handed out; ctx is checked between them.
	rctx := context.WithoutCancel(ctx)
	for {
		if err := q.enter(); err != nil {
			return nil, err
		}
		if max <= 0 {
			q.leave()
			return nil, nil
		}
		if err := ctx.Err(); err != nil {
			q.leave()
			return nil, err
		}
		block := time.Until(deadline)
		if block > q.slice {
			block = q.slice
		}
		if block < time.Millisecond {
			block = -1 // go-redis sends no BLOCK: a plain read (BLOCK 0 would wait for ever)
		}
		msgs, err := q.fetchOnce(rctx, max, block)
		if len(msgs) == 0 && isNoGroup(err) {
			// The stream or the group was deleted (Redis lost its data, or a FLUSHDB):
			// make them again and go on.
			if err = q.ensureGroups(rctx); err == nil {
				q.leave()
				continue
			}
		}
		q.leave()
		if len(msgs) > 0 {
			return msgs, nil
		}
		if err != nil {
			return nil, err
		}
		if !time.Now().Before(deadline) {
			return nil, nil
		}
	}
}

// fetchOnce runs the three steps once, blocking in step 3 for up to block when steps 1
// and 2 found nothing. An error is returned only with no messages: entries already taken
// from Redis must reach the caller. Each call starts with another stream, so that none is
// served before the others every time.
func (q *Queue) fetchOnce(ctx context.Context, max int, block time.Duration) ([]queue.Message, error) {
	first := int(q.turn.Add(1) % uint32(len(q.parts)))
	msgs, err := q.claimAll(ctx, max, first)
	if err != nil {
		return msgs, err
	}
	if len(msgs) >= max {
		return msgs, nil
	}
	if len(msgs) > 0 || block < time.Millisecond {
		block = -1 // no BLOCK: fill up or poll once
	}
	var fresh []queue.Message
	if len(q.parts) == 1 {
		fresh, err = q.read(ctx, q.parts[0], max-len(msgs), block)
	} else {
		fresh, err = q.readParts(ctx, max-len(msgs), first)
		if len(fresh) == 0 && len(msgs) == 0 && err == nil && block > 0 {
			fresh, err = q.blockRead(ctx, max, block, first)
		}
	}
	msgs = append(msgs, fresh...)
	if len(msgs) > 0 {
		return msgs, nil
	}
	return nil, err
}

// claimAll runs steps 1 and 2 on every stream, from the first-th, until max messages.
func (q *Queue) claimAll(ctx context.Context, max, first int) ([]queue.Message, error) {
	var msgs []queue.Message
	for i := range q.parts {
		if len(msgs) >= max {
			break
		}
		got, err := q.claimPart(ctx, q.parts[(first+i)%len(q.parts)], max-len(msgs))
		msgs = append(msgs, got...)
		if err != nil {
			return msgs, err
		}
	}
	return msgs, nil
}

// claimPart runs steps 1 and 2 on one stream, unless another Fetch is doing so.
func (q *Queue) claimPart(ctx context.Context, p *part, n int) ([]queue.Message, error) {
	if !p.claimMu.TryLock() {
		return nil, nil
	}
	defer p.claimMu.Unlock()
	msgs, err := q.claim(ctx, p, n)
	if err == nil && len(msgs) < n && !p.recovered {
		var rec []queue.Message
		rec, err = q.recoverOwn(ctx, p, n-len(msgs))
		msgs = append(msgs, rec...)
	}
	return msgs, err
}

func (q *Queue) readArgs(p *part, n int, block time.Duration) *redis.XReadGroupArgs {
	return &redis.XReadGroupArgs{
		Group: q.group, Consumer: q.consumer, Streams: []string{p.key, ">"},
		Count: int64(n), Block: block,
	}
}

// read is step 3 on one stream: new entries, XREADGROUP ">".
func (q *Queue) read(ctx context.Context, p *part, n int, block time.Duration) ([]queue.Message, error) {
	return q.readResult(ctx, q.rdb.XReadGroup(ctx, q.readArgs(p, n, block)), p)
}

// blockRead waits up to block for new entries in any of several streams. On one node a
// single XREADGROUP blocks on them all (on min(n, streams) of them, so that the per-stream
// COUNT keeps the total within n). A cluster refuses a read across slots: there it blocks
// on one stream, another each call, for a short slice (partBlock), and the worker polls
// every stream between slices; a process whose workers outnumber the streams has one
// waiting on each.
func (q *Queue) blockRead(ctx context.Context, n int, block time.Duration, first int) ([]queue.Message, error) {
	if q.cluster {
		return q.read(ctx, q.parts[first], n, block)
	}
	k := min(len(q.parts), n)
	parts := make([]*part, k)
	streams := make([]string, 2*k)
	for i := range k {
		parts[i] = q.parts[(first+i)%len(q.parts)]
		streams[i], streams[k+i] = parts[i].key, ">"
	}
	cmd := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: q.group, Consumer: q.consumer, Streams: streams, Count: int64(n / k), Block: block,
	})
	return q.readResult(ctx, cmd, parts...)
}

// readParts is step 3 on several streams without blocking: one pipeline asks each stream
// for its share of n (one round trip, per node in parallel on a cluster), then the streams
// that filled their share are asked in turn for what is still missing. Shares are dealt
// from the first-th stream on, so that with n below the number of streams each is asked
// in its turn.
func (q *Queue) readParts(ctx context.Context, n, first int) ([]queue.Message, error) {
	np := len(q.parts)
	order := make([]*part, 0, np)
	shares := make([]int, 0, np)
	for i := range np {
		if share := n / np; share > 0 || i < n%np {
			order = append(order, q.parts[(first+i)%np])
			shares = append(shares, share+min(1, max(0, n%np-i)))
		}
	}
	cmds := make([]*redis.XStreamSliceCmd, len(order))
	// Per-command results are read below: an empty stream answers redis.Nil.
	_, _ = q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range order {
			cmds[i] = pl.XReadGroup(ctx, q.readArgs(p, shares[i], -1))
		}
		return nil
	})
	var msgs []queue.Message
	var firstErr error
	var full []*part
	for i, c := range cmds {
		got, err := q.readResult(ctx, c, order[i])
		msgs = append(msgs, got...)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if len(got) == shares[i] {
			full = append(full, order[i])
		}
	}
	for _, p := range full {
		if len(msgs) >= n {
			break
		}
		got, err := q.read(ctx, p, n-len(msgs), -1)
		msgs = append(msgs, got...)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return msgs, firstErr
}

// readResult converts an XREADGROUP answer of the streams parts. A missing stream or group
// (Redis lost its data, or a FLUSHDB) is made again and reads as empty.
func (q *Queue) readResult(ctx context.Context, cmd *redis.XStreamSliceCmd, parts ...*part) ([]queue.Message, error) {
	res, err := cmd.Result()
	if err == redis.Nil {
		return nil, nil
	}
	if isNoGroup(err) {
		for _, p := range parts {
			if err := q.ensureGroup(ctx, p); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	if err != nil {
		return nil, q.wrap("fetch", err)
	}
	var msgs []queue.Message
	for _, s := range res {
		p := parts[0]
		if len(parts) > 1 {
			p = parts[slices.IndexFunc(parts, func(p *part) bool { return p.key == s.Stream })]
		}
		for _, xm := range s.Messages {
			if m, ok := q.message(p, xm, 0); ok {
				msgs = append(msgs, m)
			}
		}
	}
	return msgs, nil
}

// claim is step 1 on stream p: XAUTOCLAIM of entries idle longer than the claim timeout.
// Call with p.claimMu held.
func (q *Queue) claim(ctx context.Context, p *part, n int) ([]queue.Message, error) {
	if p.nacked.Swap(false) {
		p.claimCursor = "0-0" // released entries may lie behind the cursor
	} else if p.claimCursor == "0-0" && time.Since(p.lastPass) < q.claimEvery {
		return nil, nil
	}
	xms, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: p.key, Group: q.group, Consumer: q.consumer,
		MinIdle: q.claimIdle, Start: p.claimCursor, Count: int64(n),
	}).Result()
	if err != nil {
		return nil, q.wrap("claim", err)
	}
	p.claimCursor = next
	if next == "0-0" {
		p.lastPass = time.Now()
	}
	if len(xms) == 0 {
		return nil, nil
	}
	// The delivery count after the claim, which nobody else can change for ClaimIdle.
	cmds, _ := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, xm := range xms {
			pl.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: p.key, Group: q.group, Start: xm.ID, End: xm.ID, Count: 1})
		}
		return nil
	})
	msgs := make([]queue.Message, 0, len(xms))
	for i, xm := range xms {
		attempts := 1 // at least the delivery it was claimed from
		if i < len(cmds) {
			pe, err := cmds[i].(*redis.XPendingExtCmd).Result()
			if err == nil && len(pe) == 0 {
				continue // acknowledged meanwhile by the consumer it was claimed from
			}
			if err == nil && pe[0].RetryCount > 0 {
				attempts = int(pe[0].RetryCount) - 1
			}
		}
		if m, ok := q.message(p, xm, attempts); ok {
			msgs = append(msgs, m)
			q.noteHanded(p, xm.ID)
		}
	}
	return msgs, nil
}

// recoverOwn is step 2 on stream p: this consumer's pending entries from before Open.
// Call with p.claimMu held.
func (q *Queue) recoverOwn(ctx context.Context, p *part, n int) ([]queue.Message, error) {
	pend, err := q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: p.key, Group: q.group, Start: p.recCursor, End: p.recBound, Count: int64(n), Consumer: q.consumer,
	}).Result()
	if err != nil {
		return nil, q.wrap("recover pending", err)
	}
	if len(pend) == 0 {
		q.finishRecovery(p)
		return nil, nil
	}
	q.mu.Lock()
	todo := make([]redis.XPendingExt, 0, len(pend))
	for _, pe := range pend {
		if _, ok := p.handed[pe.ID]; !ok {
			todo = append(todo, pe)
		}
	}
	q.mu.Unlock()
	// XCLAIM with the idle time just seen as the minimum: if anybody claimed the entry
	// meanwhile, its idle time restarted and this claim does nothing.
	cmds, err := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, pe := range todo {
			pl.XClaim(ctx, &redis.XClaimArgs{Stream: p.key, Group: q.group, Consumer: q.consumer, MinIdle: pe.Idle, Messages: []string{pe.ID}})
		}
		return nil
	})
	var msgs []queue.Message
	for i, c := range cmds {
		xms, cerr := c.(*redis.XMessageSliceCmd).Result()
		if cerr != nil {
			continue
		}
		for _, xm := range xms {
			if m, ok := q.message(p, xm, int(todo[i].RetryCount)); ok {
				msgs = append(msgs, m)
				q.noteHanded(p, xm.ID)
			}
		}
	}
	if err != nil && len(msgs) == 0 {
		return nil, q.wrap("recover pending", err)
	}
	p.recCursor = "(" + pend[len(pend)-1].ID
	if len(pend) < n {
		q.finishRecovery(p)
	}
	return msgs, nil
}

func (q *Queue) finishRecovery(p *part) {
	p.recovered = true
	q.mu.Lock()
	p.handed = nil
	q.mu.Unlock()
}

func (q *Queue) noteHanded(p *part, id string) {
	q.mu.Lock()
	if p.handed != nil {
		p.handed[id] = struct{}{}
	}
	q.mu.Unlock()
}

// message converts an entry of stream p; false for an entry deleted from the stream.
func (q *Queue) message(p *part, xm redis.XMessage, attempts int) (queue.Message, bool) {
	if xm.Values == nil {
		return queue.Message{}, false
	}
	m := queue.Message{ID: q.encode(ref{p, xm.ID}), Attempts: attempts}
	// Entries missing a field (not written by Enqueue) are handed out as they are: the
	// worker dead-letters what it cannot decode.
	if v, ok := xm.Values["id"].(string); ok {
		m.EventID = v
	}
	if v, ok := xm.Values["d"].(string); ok {
		m.Data = []byte(v)
	}
	return m, true
}

// onIDs runs fn on the entries of ids grouped by stream (in the order of q.parts), unless
// the queue is closed or ids is empty.
func (q *Queue) onIDs(ids []int64, fn func(refs []ref, byPart [][]string) error) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	if len(ids) == 0 {
		return nil
	}
	refs, err := q.decodeAll(ids)
	if err != nil {
		return err
	}
	byPart := make([][]string, len(q.parts))
	for _, r := range refs {
		byPart[r.p.idx] = append(byPart[r.p.idx], r.sid)
	}
	return fn(refs, byPart)
}

// Ack implements queue.Queue: XDEL and XACK in one pipeline (see ack).
func (q *Queue) Ack(ctx context.Context, ids []int64) error {
	return q.onIDs(ids, func(refs []ref, byPart [][]string) error {
		if err := q.ack(ctx, byPart); err != nil {
			return q.wrap("ack", err)
		}
		q.forget(ids, refs)
		return nil
	})
}

// ack deletes the entries (XDEL), then acknowledges them (XACK), pipelined, one round
// trip (per node on a cluster). No MULTI: at maxmemory Redis refuses every command queued
// in a MULTI (EXEC then fails with EXECABORT), while it runs XDEL and XACK, which free
// memory, so workers can always drain a full Redis. Without a MULTI the two may be parted
// (a connection cut between them): then the entry is gone from the stream but still in
// the group's pending list, where the next claim pass finds it deleted and drops it
// (XAUTOCLAIM does), so nothing is delivered twice and nothing stays behind.
func (q *Queue) ack(ctx context.Context, byPart [][]string) error {
	cmds, err := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, sids := range byPart {
			if len(sids) > 0 {
				pl.XDel(ctx, q.parts[i].key, sids...)
				pl.XAck(ctx, q.parts[i].key, q.group, sids...)
			}
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
	return err
}

// forget drops what this process kept about acknowledged entries.
func (q *Queue) forget(ids []int64, refs []ref) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, r := range refs {
		delete(r.p.handed, r.sid)
		if ids[i] < 0 {
			delete(q.aliases, ids[i])
			delete(q.aliasOf, r)
		}
	}
}

// Touch implements queue.Toucher: XCLAIM to this consumer with JUSTID resets the entries'
// idle time without incrementing their delivery count, so XAUTOCLAIM elsewhere leaves them.
// One pipeline for every stream.
func (q *Queue) Touch(ctx context.Context, ids []int64) error {
	return q.onIDs(ids, func(_ []ref, byPart [][]string) error {
		cmds, _ := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i, sids := range byPart {
				if len(sids) > 0 {
					pl.XClaimJustID(ctx, &redis.XClaimArgs{Stream: q.parts[i].key, Group: q.group, Consumer: q.consumer, MinIdle: 0, Messages: sids})
				}
			}
			return nil
		})
		for _, c := range cmds {
			if err := c.Err(); err != nil && err != redis.Nil {
				return q.wrap("touch", err)
			}
		}
		return nil
	})
}

// Nack implements queue.Queue: the entries this consumer still owns go to NackConsumer,
// idle since 1970, and the next claim pass hands them out again.
func (q *Queue) Nack(ctx context.Context, ids []int64) error {
	return q.onIDs(ids, func(refs []ref, byPart [][]string) error {
		for i, sids := range byPart {
			if len(sids) > 0 {
				if err := q.nack(ctx, q.parts[i], sids); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (q *Queue) nack(ctx context.Context, p *part, sids []string) error {
	args := make([]any, 0, 3+len(sids))
	args = append(args, q.group, q.consumer, NackConsumer)
	for _, s := range sids {
		args = append(args, s)
	}
	if err := nackScript.Run(ctx, q.rdb, []string{p.key}, args...).Err(); err != nil {
		return q.wrap("nack", err)
	}
	q.mu.Lock()
	for _, sid := range sids {
		delete(p.handed, sid)
	}
	q.mu.Unlock()
	p.nacked.Store(true)
	return nil
}

// PendingEventIDs implements queue.Queue: every entry of every stream, which hold only
// entries not yet acknowledged.
func (q *Queue) PendingEventIDs(ctx context.Context, fn func(eventID string)) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	const page = 1000
	for _, p := range q.parts {
		start := "-"
		for {
			xms, err := q.rdb.XRangeN(ctx, p.key, start, "+", page).Result()
			if err != nil {
				return q.wrap("pending ids", err)
			}
			for _, xm := range xms {
				id, _ := xm.Values["id"].(string)
				fn(id)
			}
			if len(xms) < page {
				break
			}
			start = "(" + xms[len(xms)-1].ID
		}
	}
	return nil
}

// Stats implements queue.Queue: XLEN, XPENDING (less the entries released by Nack) and the
// stream's entries-added, in one round trip, added up over the streams.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	if err := q.enter(); err != nil {
		return queue.Stats{}, err
	}
	defer q.leave()
	xlen := make([]*redis.IntCmd, len(q.parts))
	pend := make([]*redis.XPendingCmd, len(q.parts))
	info := make([]*redis.XInfoStreamCmd, len(q.parts))
	_, err := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range q.parts {
			xlen[i] = pl.XLen(ctx, p.key)
			pend[i] = pl.XPending(ctx, p.key, q.group)
			info[i] = pl.XInfoStream(ctx, p.key)
		}
		return nil
	})
	if err != nil {
		return queue.Stats{}, q.wrap("stats", err)
	}
	var s queue.Stats
	for i := range q.parts {
		n := xlen[i].Val()
		s.Length += n
		s.TotalEnqueued += info[i].Val().EntriesAdded
		if p := pend[i].Val(); p != nil {
			s.Pending += p.Count - p.Consumers[NackConsumer]
		}
		if first := info[i].Val().FirstEntry.ID; first != "" && n > 0 {
			if ms, _, ok := parseID(first); ok {
				if at := time.UnixMilli(int64(ms)); s.OldestAt.IsZero() || at.Before(s.OldestAt) {
					s.OldestAt = at
				}
			}
		}
	}
	return s, nil
}

// ConsumerInfo is one consumer of a group.
type ConsumerInfo struct {
	Name    string
	Pending int64         // entries delivered to it and not yet acknowledged
	Idle    time.Duration // since its last read or claim
}

// GroupInfo describes one consumer group of the buffer, added up over its streams.
type GroupInfo struct {
	Name            string
	Pending         int64  // entries delivered and not yet acknowledged, Nacked included
	Nacked          int64  // entries released by Nack and not yet claimed again
	Lag             int64  // entries not yet delivered to the group; -1 when Redis cannot tell
	LastDeliveredID string // with several streams, the newest of theirs
	EntriesRead     int64
	Consumers       []ConsumerInfo // without NackConsumer; Idle is the least over the streams
}

// Groups describes every consumer group of the buffer with its consumers (XINFO GROUPS and
// XINFO CONSUMERS), for the metrics routes.
func (q *Queue) Groups(ctx context.Context) ([]GroupInfo, error) {
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.leave()
	gcmds := make([]*redis.XInfoGroupsCmd, len(q.parts))
	_, err := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range q.parts {
			gcmds[i] = pl.XInfoGroups(ctx, p.key)
		}
		return nil
	})
	if err != nil {
		return nil, q.wrap("groups", err)
	}
	ccmds := make([][]*redis.XInfoConsumersCmd, len(q.parts))
	_, err = q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range q.parts {
			for _, g := range gcmds[i].Val() {
				ccmds[i] = append(ccmds[i], pl.XInfoConsumers(ctx, p.key, g.Name))
			}
		}
		return nil
	})
	if err != nil {
		return nil, q.wrap("consumers", err)
	}
	var out []GroupInfo
	for i := range q.parts {
		for j, g := range gcmds[i].Val() {
			out = addGroup(out, g, ccmds[i][j].Val())
		}
	}
	return out, nil
}

// addGroup adds one stream's view of a group to the groups gathered so far.
func addGroup(out []GroupInfo, g redis.XInfoGroup, cs []redis.XInfoConsumer) []GroupInfo {
	k := slices.IndexFunc(out, func(gi GroupInfo) bool { return gi.Name == g.Name })
	if k < 0 {
		out = append(out, GroupInfo{Name: g.Name})
		k = len(out) - 1
	}
	gi := &out[k]
	gi.Pending += g.Pending
	gi.EntriesRead += g.EntriesRead
	if g.Lag < 0 || gi.Lag < 0 {
		gi.Lag = -1
	} else {
		gi.Lag += g.Lag
	}
	if newerID(g.LastDeliveredID, gi.LastDeliveredID) {
		gi.LastDeliveredID = g.LastDeliveredID
	}
	for _, c := range cs {
		if c.Name == NackConsumer {
			gi.Nacked += c.Pending
			continue
		}
		if isMarker(c.Name) {
			continue
		}
		m := slices.IndexFunc(gi.Consumers, func(ci ConsumerInfo) bool { return ci.Name == c.Name })
		if m < 0 {
			gi.Consumers = append(gi.Consumers, ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
			continue
		}
		gi.Consumers[m].Pending += c.Pending
		gi.Consumers[m].Idle = min(gi.Consumers[m].Idle, c.Idle)
	}
	return out
}

// newerID reports whether stream id a comes after b ("" comes first).
func newerID(a, b string) bool {
	ams, aseq, aok := parseID(a)
	bms, bseq, bok := parseID(b)
	if !bok {
		return aok
	}
	return aok && (ams > bms || ams == bms && aseq > bseq)
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

// parseID splits a stream id "ms-seq".
func parseID(s string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// EncodeID maps an id of a single stream to a non-negative int64, or reports that it does
// not fit.
func EncodeID(s string) (int64, bool) { return encodePartID(s, 0, 0) }

// DecodeID is the inverse of EncodeID for non-negative ids.
func DecodeID(id int64) string {
	s, _ := decodePartID(id, 0)
	return s
}

func (q *Queue) encode(r ref) int64 {
	if id, ok := encodePartID(r.sid, r.p.idx, q.pbits); ok {
		return id
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if id, ok := q.aliasOf[r]; ok {
		return id
	}
	id := q.nextAlias
	q.nextAlias--
	q.aliases[id] = r
	q.aliasOf[r] = id
	return id
}

func (q *Queue) decodeAll(ids []int64) ([]ref, error) {
	out := make([]ref, len(ids))
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, id := range ids {
		if id >= 0 {
			sid, p := decodePartID(id, q.pbits)
			if p >= len(q.parts) {
				return nil, fmt.Errorf("redisqueue: message id %d names stream %d of %d", id, p, len(q.parts))
			}
			out[i] = ref{q.parts[p], sid}
			continue
		}
		r, ok := q.aliases[id]
		if !ok {
			return nil, fmt.Errorf("redisqueue: unknown message id %d", id)
		}
		out[i] = r
	}
	return out, nil
}

// nackScript releases entries still owned by the calling consumer.
// KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] NackConsumer, ARGV[4..] ids.
var nackScript = redis.NewScript(`
local n = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[i], 'TIME', 0, 'JUSTID')
    n = n + 1
  end
end
return n
`)

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
