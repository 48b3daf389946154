package redisqueue

import (
	"context"

	"github.com/redis/go-redis/v9"
)

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
