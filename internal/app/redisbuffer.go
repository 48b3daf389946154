package app

import (
	"context"
	"time"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/redisqueue"
)

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
