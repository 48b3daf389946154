package redisqueue

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/queue"
)

func TestEnqueueUnique(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "u"})
	dp := prefix + "dedup:"
	e := func(id string) queue.Entry { return queue.Entry{EventID: id, Data: []byte("data-" + id)} }

	added, err := q.EnqueueUnique(ctx, []queue.Entry{e("a"), e("b"), e("a")}, dp, time.Minute)
	if err != nil || !slices.Equal(added, []bool{true, true, false}) {
		t.Fatalf("first call = %v, %v; want a, b appended and the repeat of a not", added, err)
	}
	added, err = q.EnqueueUnique(ctx, []queue.Entry{e("b"), e("c")}, dp, time.Minute)
	if err != nil || !slices.Equal(added, []bool{false, true}) {
		t.Fatalf("second call = %v, %v; want b a duplicate, c appended", added, err)
	}
	if ttl := c.PTTL(ctx, dp+"a").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("dedup key TTL %v, want up to a minute", ttl)
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
