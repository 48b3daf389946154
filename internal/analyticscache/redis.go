// Package analyticscache shares analytics answers between API replicas through Redis, so
// that a dashboard polling any replica costs one computation per query and TTL, not one
// per replica. It implements httpapi.AnalyticsCache.
package analyticscache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultTimeout is the deadline each call puts on its context: a Redis that cannot be
// reached must not hold up an answer that can be computed instead. It bounds the dial and
// the wait for a pooled connection; reads and writes on a connection are bounded by it
// only when the client sets ContextTimeoutEnabled, otherwise by the client's own
// ReadTimeout and WriteTimeout.
const DefaultTimeout = 250 * time.Millisecond

// Redis keeps answers under prefix + "analytics:" + the SHA-256 of the query key (keys stay
// short whatever the filters), each with its own expiry.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
}

// NewRedis returns a cache on client whose keys start with prefix (the app's Redis prefix).
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix + "analytics:", timeout: DefaultTimeout}
}

// Key is the Redis key of a query key.
func (r *Redis) Key(key string) string {
	sum := sha256.Sum256([]byte(key))
	return r.prefix + hex.EncodeToString(sum[:])
}

// Get implements httpapi.AnalyticsCache.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	b, err := r.client.Get(ctx, r.Key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("analytics cache: get: %w", err)
	}
	return b, true, nil
}

// purgeTimeout bounds Purge, which walks every key of the prefix.
const purgeTimeout = 5 * time.Second

// Purge implements httpapi.AnalyticsCache: every answer's key goes, found by SCAN (which
// does not block Redis as KEYS would).
func (r *Redis) Purge(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, purgeTimeout)
	defer cancel()
	iter := r.client.Scan(ctx, 0, r.prefix+"*", 1000).Iterator()
	var keys []string
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		err := r.client.Unlink(ctx, keys...).Err()
		keys = keys[:0]
		return err
	}
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 1000 {
			if err := flush(); err != nil {
				return fmt.Errorf("analytics cache: purge: %w", err)
			}
		}
	}
	if err := errors.Join(iter.Err(), flush()); err != nil {
		return fmt.Errorf("analytics cache: purge: %w", err)
	}
	return nil
}

// Set implements httpapi.AnalyticsCache.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Set(ctx, r.Key(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("analytics cache: set: %w", err)
	}
	return nil
}
