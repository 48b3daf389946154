package redisqueue

import (
	"context"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
)

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
