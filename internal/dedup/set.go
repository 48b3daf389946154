package dedup

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Set is the dedup state the API consults before buffering events. Seen reports, for each
// id, whether it was accepted within the window; Add records ids once they are durably
// buffered (never before: an id is only "seen" if its event cannot be lost).
type Set interface {
	Seen(ctx context.Context, ids []string, seen []bool) error
	Add(ctx context.Context, ids []string) error
}

// Local is a Set over an in-process Window: for a single evp process.
type Local struct{ W *Window }

// Seen implements Set.
func (l Local) Seen(_ context.Context, ids []string, seen []bool) error {
	l.W.Seen(ids, seen)
	return nil
}

// Add implements Set.
func (l Local) Add(_ context.Context, ids []string) error {
	l.W.Add(ids...)
	return nil
}

// Redis is a Set shared by every API replica, in the compact layout of RedisKeys: a check
// is one pipelined round trip of SISMEMBER on the id's bucket in each slice of the window,
// a record one of SADD on the current slice's set (and PEXPIRE, see Expiring). On a Redis
// Cluster each bucket's sets share a slot, and a pipeline goes to every node at once. Use
// a Redis by pointer.
type Redis struct {
	Client redis.UniversalClient
	Prefix string        // key prefix, e.g. "evp:dedup:"
	TTL    time.Duration // the dedup window
	// Now is the clock that picks the slices; nil: time.Now.
	Now func() time.Time

	expiring Expiring
}

func (r *Redis) keys() RedisKeys { return RedisKeys{Prefix: r.Prefix, Window: r.TTL} }

func (r *Redis) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Seen implements Set.
func (r *Redis) Seen(ctx context.Context, ids []string, seen []bool) error {
	if len(ids) == 0 {
		return nil
	}
	k := r.keys()
	slices := k.Slices(r.now())
	pipe := r.Client.Pipeline()
	cmds := make([]*redis.BoolCmd, 0, len(ids)*len(slices))
	for _, id := range ids {
		h := HashID(id)
		for _, s := range slices {
			cmds = append(cmds, pipe.SIsMember(ctx, k.Key(h.Tag, s), h.Member))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("dedup: redis check: %w", err)
	}
	for i := range ids {
		seen[i] = false
		for _, c := range cmds[i*len(slices) : (i+1)*len(slices)] {
			seen[i] = seen[i] || c.Val()
		}
	}
	return nil
}

// Add implements Set.
func (r *Redis) Add(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	k := r.keys()
	now := r.now()
	cur, ttl := k.Slice(now), k.TTL(now)
	hs := make([]Hash, len(ids))
	for i, id := range ids {
		hs[i] = HashID(id)
	}
	need := r.expiring.Need(k, cur, now, hs)
	pipe := r.Client.Pipeline()
	for i, h := range hs {
		key := k.Key(h.Tag, cur)
		pipe.SAdd(ctx, key, h.Member)
		if need[i] {
			pipe.PExpire(ctx, key, ttl)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("dedup: redis record: %w", err)
	}
	r.expiring.Mark(k, cur, hs, need, need) // each set that needed it got its PEXPIRE
	return nil
}
