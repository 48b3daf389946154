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

// Redis is a Set shared by every API replica: one key per id with the window as its TTL,
// as the original system did. Each call is one pipelined round trip.
type Redis struct {
	Client redis.UniversalClient
	Prefix string        // key prefix, e.g. "evp:dedup:"
	TTL    time.Duration // the dedup window
}

// Seen implements Set.
func (r *Redis) Seen(ctx context.Context, ids []string, seen []bool) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := r.Client.Pipeline()
	cmds := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Exists(ctx, r.Prefix+id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("dedup: redis exists: %w", err)
	}
	for i, c := range cmds {
		seen[i] = c.Val() > 0
	}
	return nil
}

// Add implements Set.
func (r *Redis) Add(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := r.Client.Pipeline()
	for _, id := range ids {
		pipe.SetNX(ctx, r.Prefix+id, 1, r.TTL)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return fmt.Errorf("dedup: redis set: %w", err)
	}
	return nil
}
