// Package ratelimit keeps rate-limit counters in Redis, so that every API replica counts the
// same requests. It plugs into github.com/go-chi/httprate as its LimitCounter: httprate keeps
// the sliding-window arithmetic, Redis only stores one counter per key and window.
package ratelimit

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// opTimeout bounds each Redis call: a slow Redis must not hold requests.
const opTimeout = time.Second

// RedisCounter implements httprate.LimitCounter with INCRBY on keys that expire after two
// windows (the current one is read together with the previous one).
type RedisCounter struct {
	client redis.UniversalClient
	prefix string
	window time.Duration
}

// NewRedis returns a counter whose keys start with prefix (e.g. "evp:ratelimit:").
func NewRedis(client redis.UniversalClient, prefix string) *RedisCounter {
	return &RedisCounter{client: client, prefix: prefix, window: time.Minute}
}

// Config is called by httprate with the limiter's settings.
func (c *RedisCounter) Config(_ int, windowLength time.Duration) { c.window = windowLength }

// key is the counter of key in one window. The hash tag {key} keeps the windows of one key
// in one Redis Cluster slot, so that Get's MGET of two of them is valid on a cluster.
func (c *RedisCounter) key(key string, window time.Time) string {
	return c.prefix + "{" + key + "}:" + strconv.FormatInt(window.Unix(), 10)
}

// Increment counts one request.
func (c *RedisCounter) Increment(key string, window time.Time) error {
	return c.IncrementBy(key, window, 1)
}

// IncrementBy counts amount requests in the window starting at window.
func (c *RedisCounter) IncrementBy(key string, window time.Time, amount int) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	k := c.key(key, window)
	_, err := c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.IncrBy(ctx, k, int64(amount))
		p.PExpire(ctx, k, 2*c.window+time.Second)
		return nil
	})
	return err
}

// Get returns the counts of the current and the previous window.
func (c *RedisCounter) Get(key string, current, previous time.Time) (int, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	vals, err := c.client.MGet(ctx, c.key(key, current), c.key(key, previous)).Result()
	if err != nil {
		return 0, 0, err
	}
	return toInt(vals[0]), toInt(vals[1]), nil
}

func toInt(v any) int {
	s, _ := v.(string)
	n, _ := strconv.Atoi(s)
	return n
}
