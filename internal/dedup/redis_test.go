package dedup

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/testutil"
)

// An id recorded at t is seen for at least the window and at most the window and one
// slice after t.
func TestRedisWindowSpan(t *testing.T) {
	c := testutil.Redis(t)
	prefix := testutil.RedisPrefix(t, c) + "dedup:"
	ctx := context.Background()
	const window = 10 * time.Minute
	added := time.Date(2026, 1, 1, 0, 0, 7, 0, time.UTC)
	now := added
	r := &Redis{Client: c, Prefix: prefix, TTL: window, Now: func() time.Time { return now }}
	if err := r.Add(ctx, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	seen := func(at time.Time) []bool {
		now = at
		out := make([]bool, 3)
		if err := r.Seen(ctx, []string{"a", "b", "c"}, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	slice := RedisKeys{Window: window}.SliceLen()
	for _, c := range []struct {
		at   time.Time
		want []bool
	}{
		{added, []bool{true, true, false}},
		{added.Add(window), []bool{true, true, false}},
		{added.Add(window + slice - 8*time.Second), []bool{true, true, false}}, // the last moment of the slice the window ends in
		{added.Add(window + slice), []bool{false, false, false}},
		{added.Add(-slice), []bool{false, false, false}}, // before it was recorded
	} {
		if got := seen(c.at); !slices.Equal(got, c.want) {
			t.Errorf("seen at %v after the record = %v, want %v", c.at.Sub(added), got, c.want)
		}
	}
}

// Ids are kept as integer members of few sets (intsets, 8 bytes a member), not as a key
// each, and each set expires once no check looks at it.
func TestRedisCompactLayout(t *testing.T) {
	c := testutil.Redis(t)
	prefix := testutil.RedisPrefix(t, c) + "dedup:"
	ctx := context.Background()
	now := time.Now()
	r := &Redis{Client: c, Prefix: prefix, TTL: 10 * time.Minute, Now: func() time.Time { return now }}
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_%08d", i)
	}
	for b := 0; b < len(ids); b += 500 {
		if err := r.Add(ctx, ids[b:b+500]); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 || len(keys) > RedisBuckets {
		t.Fatalf("%d keys for 5000 ids, want at most %d", len(keys), RedisBuckets)
	}
	maxTTL := r.keys().TTL(now)
	pipe := c.Pipeline()
	encs := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	cards := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		encs[i], ttls[i], cards[i] = pipe.ObjectEncoding(ctx, k), pipe.PTTL(ctx, k), pipe.SCard(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	var members int64
	for i, k := range keys {
		if enc := encs[i].Val(); enc != "intset" {
			t.Fatalf("key %s is a %q, want an intset", k, enc)
		}
		if ttl := ttls[i].Val(); ttl <= 0 || ttl > maxTTL {
			t.Fatalf("key %s expires in %v, want within %v", k, ttl, maxTTL)
		}
		members += cards[i].Val()
	}
	if members != int64(len(ids)) {
		t.Errorf("%d members for %d ids", members, len(ids))
	}
	seen := make([]bool, len(ids))
	if err := r.Seen(ctx, ids, seen); err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(seen, false); i >= 0 {
		t.Errorf("id %s not seen after its record", ids[i])
	}
}

func TestRedisKeysTTL(t *testing.T) {
	k := RedisKeys{Prefix: "p:", Window: 10 * time.Minute}
	start := time.UnixMilli(k.Slice(time.Now()) * k.SliceLen().Milliseconds())
	// A set written at any moment of a slice lives until the end of the RedisSlices-th
	// slice after it, and a little more for clock skew.
	for _, off := range []time.Duration{0, time.Minute, k.SliceLen() - time.Millisecond} {
		at := start.Add(off)
		end := start.Add(time.Duration(RedisSlices+1) * k.SliceLen())
		if got := at.Add(k.TTL(at)); got.Before(end) || got.After(end.Add(redisClockSkew)) {
			t.Errorf("a set written %v into its slice expires %v after the slice's start, want %v",
				off, got.Sub(start), end.Sub(start))
		}
	}
	if k.Key("{1f}", 42) != "p:{1f}:42" {
		t.Errorf("Key = %q", k.Key("{1f}", 42))
	}
}
