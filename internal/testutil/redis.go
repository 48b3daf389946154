// Package testutil holds helpers for tests that reach real services.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURL is the test Redis: REDIS_URL, or 127.0.0.1:6379.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

var (
	probeOnce sync.Once
	probeErr  error // why Redis cannot be used, once probed
)

// Redis connects to the test Redis, closed when t ends. When Redis is unreachable the test
// skips with the reason (printed once even without -v), or fails under
// EVP_REQUIRE_SERVICES=1, as CI runs; with -short it skips.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	SkipShort(t, "needs Redis")
	url := RedisURL()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL=%q: %v", url, err)
	}
	probeOnce.Do(func() {
		c := redis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			probeErr = fmt.Errorf("redis at %s is unreachable (%v); start redis-server or set REDIS_URL", url, err)
			if os.Getenv("EVP_REQUIRE_SERVICES") != "1" {
				fmt.Fprintln(os.Stderr, "tests needing Redis skipped:", probeErr)
			}
		}
	})
	if probeErr != nil {
		if os.Getenv("EVP_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%v (EVP_REQUIRE_SERVICES=1)", probeErr)
		}
		t.Skip(probeErr)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// RedisPrefix returns a fresh key prefix and deletes every key under it when t ends, so
// that tests sharing one Redis never see each other's keys.
func RedisPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "evptest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}
