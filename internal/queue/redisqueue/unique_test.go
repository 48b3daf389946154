package redisqueue

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/queue"
)

func TestEnqueueUnique(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "u"})
	dp := prefix + "dedup:"
	now := time.Now()
	q.now = func() time.Time { return now }
	e := func(id string) queue.Entry { return queue.Entry{EventID: id, Data: []byte("data-" + id)} }

	added, err := q.EnqueueUnique(ctx, []queue.Entry{e("a"), e("b"), e("a")}, dp, time.Minute)
	if err != nil || !slices.Equal(added, []bool{true, true, false}) {
		t.Fatalf("first call = %v, %v; want a, b appended and the repeat of a not", added, err)
	}
	added, err = q.EnqueueUnique(ctx, []queue.Entry{e("b"), e("c")}, dp, time.Minute)
	if err != nil || !slices.Equal(added, []bool{false, true}) {
		t.Fatalf("second call = %v, %v; want b a duplicate, c appended", added, err)
	}
	keys := dedup.RedisKeys{Prefix: dp, Window: time.Minute}
	set := keys.Key(dedup.HashID("a").Tag, keys.Slice(now))
	if ttl := c.PTTL(ctx, set).Val(); ttl <= 0 || ttl > keys.TTL(now) {
		t.Errorf("TTL of dedup set %s: %v, want up to %v", set, ttl, keys.TTL(now))
	}
	msgs := fetchAll(t, q, 3, time.Second)
	var got []string
	for _, m := range msgs {
		got = append(got, m.EventID+"="+string(m.Data))
	}
	if !slices.Equal(got, []string{"a=data-a", "b=data-b", "c=data-c"}) {
		t.Fatalf("stream holds %v", got)
	}
}

// Concurrent callers (API replicas) offering the same ids append each id once.
func TestEnqueueUniqueConcurrent(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "u"})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var es []queue.Entry
			for i := 0; i < 50; i++ {
				es = append(es, queue.Entry{EventID: fmt.Sprintf("id-%d", i), Data: []byte("x")})
			}
			added, err := q.EnqueueUnique(ctx, es, prefix+"dedup:", time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for i, ok := range added {
				if ok {
					wins[es[i].EventID]++
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(wins) != 50 {
		t.Fatalf("%d ids appended, want 50", len(wins))
	}
	for id, n := range wins {
		if n != 1 {
			t.Errorf("%s appended %d times", id, n)
		}
	}
	if n := c.XLen(ctx, q.Key()).Val(); n != 50 {
		t.Fatalf("stream length %d, want 50", n)
	}
}

// EnqueueUnique and dedup.Redis (the cluster path) share one window: each sees the ids
// the other recorded.
func TestEnqueueUniqueSharesDedupRedis(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, WatchEvery: time.Hour})
	dp := prefix + "dedup:"
	set := &dedup.Redis{Client: c, Prefix: dp, TTL: time.Minute}
	if _, err := q.EnqueueUnique(ctx, entries("q", 3), dp, time.Minute); err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, 4)
	if err := set.Seen(ctx, []string{"q-0", "q-1", "q-2", "s-0"}, seen); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []bool{true, true, true, false}) {
		t.Errorf("dedup.Redis sees %v of EnqueueUnique's ids", seen)
	}
	if err := set.Add(ctx, []string{"s-0"}); err != nil {
		t.Fatal(err)
	}
	added, err := q.EnqueueUnique(ctx, entries("s", 2), dp, time.Minute)
	if err != nil || !slices.Equal(added, []bool{false, true}) {
		t.Errorf("EnqueueUnique after dedup.Redis recorded s-0 = %v, %v", added, err)
	}
}

// An id appended at t is a duplicate for at least the window and at most the window and
// one slice after t.
func TestEnqueueUniqueWindowSpan(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, WatchEvery: time.Hour})
	const window = 10 * time.Minute
	slice := dedup.RedisKeys{Window: window}.SliceLen()
	added := time.Date(2026, 1, 1, 0, 0, 7, 0, time.UTC)
	for _, s := range []struct {
		at  time.Time
		new bool
	}{
		{added, true},
		{added.Add(window), false},
		{added.Add(window + slice - 8*time.Second), false},
		{added.Add(window + slice), true},
	} {
		q.now = func() time.Time { return s.at }
		got, err := q.EnqueueUnique(ctx, entries("w", 1), prefix+"dedup:", window)
		if err != nil || got[0] != s.new {
			t.Errorf("EnqueueUnique %v after the first = %v, %v; want appended %v", s.at.Sub(added), got, err, s.new)
		}
	}
}

// sameBucket returns n ids of the bucket of id, other than id.
func sameBucket(id string, n int) []string {
	b := dedup.HashID(id).Bucket
	var out []string
	for i := 0; len(out) < n; i++ {
		if c := fmt.Sprintf("%s-%d", id, i); dedup.HashID(c).Bucket == b {
			out = append(out, c)
		}
	}
	return out
}

// Every dedup set EnqueueUnique makes has a TTL, although it sets TTLs only when a record
// makes a set: also when the first id of a bucket in a slice was a duplicate from an
// earlier slice, alone in its call or followed by a new id of the bucket in the same call.
func TestEnqueueUniqueSetsExpire(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, WatchEvery: time.Hour})
	const window = 10 * time.Minute
	keys := dedup.RedisKeys{Window: window}
	earlier := time.Date(2026, 1, 1, 0, 0, 7, 0, time.UTC)
	later := earlier.Add(keys.SliceLen())
	e := func(ids ...string) []queue.Entry {
		es := make([]queue.Entry, len(ids))
		for i, id := range ids {
			es[i] = queue.Entry{EventID: id, Data: []byte("x")}
		}
		return es
	}
	for k, calls := range [][][]string{
		{{"x"}, {"y"}},      // the duplicate alone, then a new id of its bucket
		{{"x", "y"}},        // both in one call
		{{"x"}, {"x", "y"}}, // and both again
	} {
		dp := fmt.Sprintf("%sdedup%d:", prefix, k)
		others := sameBucket("x", 1)
		name := func(id string) string { return map[string]string{"x": "x", "y": others[0]}[id] }
		q.now = func() time.Time { return earlier }
		if _, err := q.EnqueueUnique(ctx, e("x"), dp, window); err != nil {
			t.Fatal(err)
		}
		q.now = func() time.Time { return later }
		for _, ids := range calls {
			named := make([]string, len(ids))
			for i, id := range ids {
				named[i] = name(id)
			}
			if _, err := q.EnqueueUnique(ctx, e(named...), dp, window); err != nil {
				t.Fatal(err)
			}
		}
		set := dedup.RedisKeys{Prefix: dp, Window: window}.Key(dedup.HashID("x").Tag, keys.Slice(later))
		if ttl := c.PTTL(ctx, set).Val(); ttl <= 0 {
			t.Errorf("calls %v: set %s has TTL %v", calls, set, ttl)
		}
	}
}
