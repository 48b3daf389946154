// Package redisqueue is the production buffer: a Redis stream read by a consumer group, so
// that any number of API processes append and any number of worker processes share the work.
//
// # Layout
//
// One stream key, KeyPrefix+Stream, holds every entry not yet acknowledged, with two fields:
// "id" (the event id) and "d" (the encoded event). Nothing else is stored: TotalEnqueued is
// the stream's own entries-added counter (XINFO STREAM, Redis 7.0 or later). Using a single
// key keeps every command, the MULTI blocks and the Lua scripts valid on Redis Cluster.
//
// # Message ids
//
// A stream id is "ms-seq" (two unsigned 64-bit numbers); Message.ID is an int64. Ids are
// encoded losslessly as ms<<20 | seq, which holds every id Redis generates until the year
// 2248 with up to 1,048,575 entries in one millisecond. An id outside that range (only
// possible if Redis's clock stood still for over a million appends, or with ids set by
// hand) gets a negative id from a table in this process instead, so it can still be
// acknowledged; such ids are valid only in the Queue that handed them out.
//
// # Acknowledgement and trimming
//
// Ack runs XACK and XDEL in one MULTI, so the stream holds exactly the entries not yet
// acknowledged: XLEN is the backlog, PendingEventIDs is an XRANGE, and memory never grows
// with the number of events processed. No length- or id-based trimming is used, so an entry
// not yet acknowledged can never be dropped. The price is that the stream serves one
// consumer group: a second group on the same stream would lose entries the first acked.
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
// loss, appendfsync everysec loses at most about a second.
package redisqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
)

// Defaults of Options.
const (
	DefaultStream        = "events_stream"
	DefaultGroup         = "evp-workers-group"
	DefaultClaimIdle     = 60 * time.Second
	DefaultMaxDeliveries = 5
	DefaultPruneIdle     = 24 * time.Hour
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
	// {hash tag} on Redis Cluster).
	KeyPrefix string

	ClaimIdle time.Duration // entries pending longer than this are claimed by Fetch; 60 s
	// MaxDeliveries is the number of deliveries after which Exhausted reports a message; 5.
	// Negative: no limit.
	MaxDeliveries int
	// PruneIdle: Open deletes consumers of the group that hold no pending entry and have
	// been idle longer than this (dead processes with random names); 24 h. Negative: never.
	PruneIdle time.Duration
}

// Queue implements queue.Queue on a Redis stream and consumer group.
type Queue struct {
	rdb        redis.UniversalClient
	ownClient  bool
	key        string
	group      string
	consumer   string
	claimIdle  time.Duration
	claimEvery time.Duration
	slice      time.Duration
	maxDeliv   int

	closeOnce sync.Once
	closed    chan struct{}
	life      sync.RWMutex // held for reading by every operation; Close takes it to wait for them

	// claimMu serialises steps 1 and 2 of Fetch; a Fetch that finds it taken skips them.
	claimMu     sync.Mutex
	claimCursor string    // XAUTOCLAIM cursor; "0-0" when a pass is complete
	lastPass    time.Time // when the last complete pass ended
	nacked      atomic.Bool
	recovered   bool   // step 2 is done
	recBound    string // last delivered id of the group at Open
	recCursor   string // XPENDING range start of step 2

	mu sync.Mutex
	// handed lists the ids handed out by steps 1 and 2 while step 2 is not done, so that
	// step 2 skips them; nil afterwards.
	handed map[string]struct{}
	// aliases maps the negative ids of stream ids that do not fit the encoding.
	aliases   map[int64]string
	aliasOf   map[string]int64
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
	q := &Queue{
		rdb:         opts.Client,
		key:         opts.KeyPrefix + opts.Stream,
		group:       opts.Group,
		consumer:    opts.Consumer,
		claimIdle:   opts.ClaimIdle,
		claimEvery:  min(max(opts.ClaimIdle/4, 10*time.Millisecond), time.Second),
		maxDeliv:    opts.MaxDeliveries,
		closed:      make(chan struct{}),
		claimCursor: "0-0",
		aliases:     map[int64]string{},
		aliasOf:     map[string]int64{},
		nextAlias:   -1,
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
	if err := q.init(ctx, opts.PruneIdle); err != nil {
		if q.ownClient {
			q.rdb.Close()
		}
		return nil, err
	}
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

func (q *Queue) init(ctx context.Context, pruneIdle time.Duration) error {
	if err := q.ensureGroup(ctx); err != nil {
		return err
	}
	if pruneIdle > 0 {
		// Housekeeping only: a failure here must not keep the buffer from opening.
		_ = pruneScript.Run(ctx, q.rdb, []string{q.key}, q.group, pruneIdle.Milliseconds(), q.consumer, NackConsumer).Err()
	}
	// Step 2 of Fetch: pending entries of this consumer from before, up to the group's
	// last delivered id now.
	var groups *redis.XInfoGroupsCmd
	var mine *redis.XPendingExtCmd
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		groups = p.XInfoGroups(ctx, q.key)
		mine = p.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: q.key, Group: q.group, Start: "-", End: "+", Count: 1, Consumer: q.consumer})
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisqueue: open: %w", err)
	}
	q.recovered = true
	if len(mine.Val()) > 0 {
		for _, g := range groups.Val() {
			if g.Name == q.group {
				q.recovered = false
				q.recBound = g.LastDeliveredID
				q.recCursor = "-"
				q.handed = map[string]struct{}{}
			}
		}
	}
	return nil
}

// ensureGroup creates the stream and the group, reading from the first entry: the stream
// holds only entries not yet acknowledged, so a group created late must see them all.
func (q *Queue) ensureGroup(ctx context.Context) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.key, q.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redisqueue: create group %s on %s: %w", q.group, q.key, err)
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

// Key returns the stream key.
func (q *Queue) Key() string { return q.key }

// MaxDeliveries returns the delivery limit (negative: none).
func (q *Queue) MaxDeliveries() int { return q.maxDeliv }

// Exhausted reports whether m was delivered MaxDeliveries times before: the worker must
// dead-letter it (and acknowledge it) instead of processing it again.
func (q *Queue) Exhausted(m queue.Message) bool {
	return q.maxDeliv > 0 && m.Attempts >= q.maxDeliv
}

// Enqueue implements queue.Queue: the XADDs of all entries pipelined, one round trip. It
// returns nil only when Redis answered every XADD with an id. After an error some entries
// may have been appended: a retry appends them again, which at-least-once allows and the
// store's idempotence on eventId absorbs. (A MULTI would make the batch all or nothing;
// it cost 20-30% of the throughput of batches of 100 in a side-by-side run.)
func (q *Queue) Enqueue(ctx context.Context, entries []queue.Entry) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	if len(entries) == 0 {
		return nil
	}
	cmds, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.XAdd(ctx, &redis.XAddArgs{Stream: q.key, Values: []any{"id", e.EventID, "d", e.Data}})
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
			if err = q.ensureGroup(rctx); err == nil {
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
// from Redis must reach the caller.
func (q *Queue) fetchOnce(ctx context.Context, max int, block time.Duration) ([]queue.Message, error) {
	var msgs []queue.Message
	if q.claimMu.TryLock() {
		claimed, err := q.claim(ctx, max)
		msgs = append(msgs, claimed...)
		if err == nil && len(msgs) < max && !q.recovered {
			var rec []queue.Message
			rec, err = q.recoverOwn(ctx, max-len(msgs))
			msgs = append(msgs, rec...)
		}
		q.claimMu.Unlock()
		if err != nil {
			return msgs, err
		}
	}
	if len(msgs) >= max {
		return msgs, nil
	}
	if len(msgs) > 0 || block < time.Millisecond {
		block = -1 // no BLOCK: fill up or poll once
	}
	fresh, err := q.read(ctx, max-len(msgs), block)
	msgs = append(msgs, fresh...)
	if len(msgs) > 0 {
		return msgs, nil
	}
	return nil, err
}

// read is step 3: new entries, XREADGROUP ">".
func (q *Queue) read(ctx context.Context, n int, block time.Duration) ([]queue.Message, error) {
	res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: q.group, Consumer: q.consumer, Streams: []string{q.key, ">"},
		Count: int64(n), Block: block,
	}).Result()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, q.wrap("fetch", err)
	}
	var msgs []queue.Message
	for _, s := range res {
		for _, xm := range s.Messages {
			if m, ok := q.message(xm, 0); ok {
				msgs = append(msgs, m)
			}
		}
	}
	return msgs, nil
}

// claim is step 1: XAUTOCLAIM of entries idle longer than the claim timeout. Call with
// claimMu held.
func (q *Queue) claim(ctx context.Context, n int) ([]queue.Message, error) {
	if q.nacked.Swap(false) {
		q.claimCursor = "0-0" // released entries may lie behind the cursor
	} else if q.claimCursor == "0-0" && time.Since(q.lastPass) < q.claimEvery {
		return nil, nil
	}
	xms, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: q.key, Group: q.group, Consumer: q.consumer,
		MinIdle: q.claimIdle, Start: q.claimCursor, Count: int64(n),
	}).Result()
	if err != nil {
		return nil, q.wrap("claim", err)
	}
	q.claimCursor = next
	if next == "0-0" {
		q.lastPass = time.Now()
	}
	if len(xms) == 0 {
		return nil, nil
	}
	// The delivery count after the claim, which nobody else can change for ClaimIdle.
	cmds, _ := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, xm := range xms {
			p.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: q.key, Group: q.group, Start: xm.ID, End: xm.ID, Count: 1})
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
		if m, ok := q.message(xm, attempts); ok {
			msgs = append(msgs, m)
			q.noteHanded(xm.ID)
		}
	}
	return msgs, nil
}

// recoverOwn is step 2: this consumer's pending entries from before Open. Call with
// claimMu held.
func (q *Queue) recoverOwn(ctx context.Context, n int) ([]queue.Message, error) {
	pend, err := q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: q.key, Group: q.group, Start: q.recCursor, End: q.recBound, Count: int64(n), Consumer: q.consumer,
	}).Result()
	if err != nil {
		return nil, q.wrap("recover pending", err)
	}
	if len(pend) == 0 {
		q.finishRecovery()
		return nil, nil
	}
	q.mu.Lock()
	todo := make([]redis.XPendingExt, 0, len(pend))
	for _, pe := range pend {
		if _, ok := q.handed[pe.ID]; !ok {
			todo = append(todo, pe)
		}
	}
	q.mu.Unlock()
	// XCLAIM with the idle time just seen as the minimum: if anybody claimed the entry
	// meanwhile, its idle time restarted and this claim does nothing.
	cmds, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, pe := range todo {
			p.XClaim(ctx, &redis.XClaimArgs{Stream: q.key, Group: q.group, Consumer: q.consumer, MinIdle: pe.Idle, Messages: []string{pe.ID}})
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
			if m, ok := q.message(xm, int(todo[i].RetryCount)); ok {
				msgs = append(msgs, m)
				q.noteHanded(xm.ID)
			}
		}
	}
	if err != nil && len(msgs) == 0 {
		return nil, q.wrap("recover pending", err)
	}
	q.recCursor = "(" + pend[len(pend)-1].ID
	if len(pend) < n {
		q.finishRecovery()
	}
	return msgs, nil
}

func (q *Queue) finishRecovery() {
	q.recovered = true
	q.mu.Lock()
	q.handed = nil
	q.mu.Unlock()
}

func (q *Queue) noteHanded(id string) {
	q.mu.Lock()
	if q.handed != nil {
		q.handed[id] = struct{}{}
	}
	q.mu.Unlock()
}

// message converts a stream entry; false for an entry deleted from the stream.
func (q *Queue) message(xm redis.XMessage, attempts int) (queue.Message, bool) {
	if xm.Values == nil {
		return queue.Message{}, false
	}
	m := queue.Message{ID: q.encode(xm.ID), Attempts: attempts}
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

// onIDs runs fn on the stream ids of ids, unless the queue is closed or ids is empty.
func (q *Queue) onIDs(ids []int64, fn func(sids []string) error) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	if len(ids) == 0 {
		return nil
	}
	sids, err := q.decodeAll(ids)
	if err != nil {
		return err
	}
	return fn(sids)
}

// Ack implements queue.Queue: XACK and XDEL in one MULTI.
func (q *Queue) Ack(ctx context.Context, ids []int64) error {
	return q.onIDs(ids, func(sids []string) error {
		return q.ack(ctx, ids, sids)
	})
}

func (q *Queue) ack(ctx context.Context, ids []int64, sids []string) error {
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, q.key, q.group, sids...)
		p.XDel(ctx, q.key, sids...)
		return nil
	})
	if err != nil {
		return q.wrap("ack", err)
	}
	q.mu.Lock()
	for i, sid := range sids {
		delete(q.handed, sid)
		if ids[i] < 0 {
			delete(q.aliases, ids[i])
			delete(q.aliasOf, sid)
		}
	}
	q.mu.Unlock()
	return nil
}

// Touch implements queue.Toucher: XCLAIM to this consumer with JUSTID resets the entries'
// idle time without incrementing their delivery count, so XAUTOCLAIM elsewhere leaves them.
func (q *Queue) Touch(ctx context.Context, ids []int64) error {
	return q.onIDs(ids, func(sids []string) error {
		err := q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: q.key, Group: q.group, Consumer: q.consumer, MinIdle: 0, Messages: sids}).Err()
		if err != nil && err != redis.Nil {
			return q.wrap("touch", err)
		}
		return nil
	})
}

// Nack implements queue.Queue: the entries this consumer still owns go to NackConsumer,
// idle since 1970, and the next claim pass hands them out again.
func (q *Queue) Nack(ctx context.Context, ids []int64) error {
	return q.onIDs(ids, func(sids []string) error { return q.nack(ctx, sids) })
}

func (q *Queue) nack(ctx context.Context, sids []string) error {
	args := make([]any, 0, 3+len(sids))
	args = append(args, q.group, q.consumer, NackConsumer)
	for _, s := range sids {
		args = append(args, s)
	}
	if err := nackScript.Run(ctx, q.rdb, []string{q.key}, args...).Err(); err != nil {
		return q.wrap("nack", err)
	}
	q.mu.Lock()
	for _, sid := range sids {
		delete(q.handed, sid)
	}
	q.mu.Unlock()
	q.nacked.Store(true)
	return nil
}

// PendingEventIDs implements queue.Queue: every entry of the stream, which holds only
// entries not yet acknowledged.
func (q *Queue) PendingEventIDs(ctx context.Context, fn func(eventID string)) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	const page = 1000
	start := "-"
	for {
		xms, err := q.rdb.XRangeN(ctx, q.key, start, "+", page).Result()
		if err != nil {
			return q.wrap("pending ids", err)
		}
		for _, xm := range xms {
			id, _ := xm.Values["id"].(string)
			fn(id)
		}
		if len(xms) < page {
			return nil
		}
		start = "(" + xms[len(xms)-1].ID
	}
}

// Stats implements queue.Queue: XLEN, XPENDING (less the entries released by Nack) and the
// stream's entries-added, in one round trip.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	if err := q.enter(); err != nil {
		return queue.Stats{}, err
	}
	defer q.leave()
	var (
		xlen *redis.IntCmd
		pend *redis.XPendingCmd
		info *redis.XInfoStreamCmd
	)
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		xlen = p.XLen(ctx, q.key)
		pend = p.XPending(ctx, q.key, q.group)
		info = p.XInfoStream(ctx, q.key)
		return nil
	})
	if err != nil {
		return queue.Stats{}, q.wrap("stats", err)
	}
	s := queue.Stats{Length: xlen.Val(), TotalEnqueued: info.Val().EntriesAdded}
	if p := pend.Val(); p != nil {
		s.Pending = p.Count - p.Consumers[NackConsumer]
	}
	if first := info.Val().FirstEntry.ID; first != "" && s.Length > 0 {
		if ms, _, ok := parseID(first); ok {
			s.OldestAt = time.UnixMilli(int64(ms))
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

// GroupInfo describes one consumer group of the stream.
type GroupInfo struct {
	Name            string
	Pending         int64 // entries delivered and not yet acknowledged, Nacked included
	Nacked          int64 // entries released by Nack and not yet claimed again
	Lag             int64 // entries not yet delivered to the group; -1 when Redis cannot tell
	LastDeliveredID string
	EntriesRead     int64
	Consumers       []ConsumerInfo // without NackConsumer
}

// Groups describes every consumer group of the stream with its consumers (XINFO GROUPS and
// XINFO CONSUMERS), for the metrics routes.
func (q *Queue) Groups(ctx context.Context) ([]GroupInfo, error) {
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.leave()
	gs, err := q.rdb.XInfoGroups(ctx, q.key).Result()
	if err != nil {
		return nil, q.wrap("groups", err)
	}
	cmds, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, g := range gs {
			p.XInfoConsumers(ctx, q.key, g.Name)
		}
		return nil
	})
	if err != nil {
		return nil, q.wrap("consumers", err)
	}
	out := make([]GroupInfo, len(gs))
	for i, g := range gs {
		gi := GroupInfo{Name: g.Name, Pending: g.Pending, Lag: g.Lag, LastDeliveredID: g.LastDeliveredID, EntriesRead: g.EntriesRead}
		for _, c := range cmds[i].(*redis.XInfoConsumersCmd).Val() {
			if c.Name == NackConsumer {
				gi.Nacked = c.Pending
				continue
			}
			gi.Consumers = append(gi.Consumers, ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
		}
		out[i] = gi
	}
	return out, nil
}

// Ping implements queue.Queue.
func (q *Queue) Ping(ctx context.Context) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	return q.wrap("ping", q.rdb.Ping(ctx).Err())
}

// Close implements queue.Queue. It waits for the operations under way (a Fetch's current
// block slice at most) and closes the client if Open made it.
func (q *Queue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.closed)
		q.life.Lock()
		defer q.life.Unlock()
		if q.ownClient {
			err = q.rdb.Close()
		}
	})
	return err
}

// Id encoding: ms<<seqBits | seq.
const (
	seqBits = 20
	maxSeq  = 1<<seqBits - 1
	maxMs   = 1<<(63-seqBits) - 1
)

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

// EncodeID maps a stream id to a non-negative int64, or reports that it does not fit.
func EncodeID(s string) (int64, bool) {
	ms, seq, ok := parseID(s)
	if !ok || ms > maxMs || seq > maxSeq {
		return 0, false
	}
	return int64(ms<<seqBits | seq), true
}

// DecodeID is the inverse of EncodeID for non-negative ids.
func DecodeID(id int64) string {
	return strconv.FormatUint(uint64(id)>>seqBits, 10) + "-" + strconv.FormatUint(uint64(id)&maxSeq, 10)
}

func (q *Queue) encode(s string) int64 {
	if id, ok := EncodeID(s); ok {
		return id
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if id, ok := q.aliasOf[s]; ok {
		return id
	}
	id := q.nextAlias
	q.nextAlias--
	q.aliases[id] = s
	q.aliasOf[s] = id
	return id
}

func (q *Queue) decodeAll(ids []int64) ([]string, error) {
	out := make([]string, len(ids))
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, id := range ids {
		if id >= 0 {
			out[i] = DecodeID(id)
			continue
		}
		s, ok := q.aliases[id]
		if !ok {
			return nil, fmt.Errorf("redisqueue: unknown message id %d", id)
		}
		out[i] = s
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
// idle longer than ARGV[2] ms, except ARGV[3] and ARGV[4]. In a script, so that no entry
// can be delivered to a consumer between the check and the delete (XGROUP DELCONSUMER
// drops the pending entries of the consumer it deletes).
// KEYS[1] stream; ARGV[1] group.
var pruneScript = redis.NewScript(`
local cs = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
local idleMax = tonumber(ARGV[2])
local n = 0
for _, c in ipairs(cs) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] > idleMax and f['name'] ~= ARGV[3] and f['name'] ~= ARGV[4] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    n = n + 1
  end
end
return n
`)
