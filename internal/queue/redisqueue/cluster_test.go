package redisqueue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/testutil"
)

// TestCluster runs the partitioned buffer on a real 3-master Redis Cluster started by the
// test: the partitions land on different masters, 20,000 entries appended by 4 producers
// are acknowledged exactly once by 2 consumers (with entries a third consumer abandoned
// claimed by them), and pending drains to 0.
func TestCluster(t *testing.T) {
	addrs := testutil.RedisCluster(t, 3)
	cc := testutil.RedisClusterClient(t, addrs)
	ctx := context.Background()

	for _, n := range []int{3, 6} {
		t.Run(fmt.Sprintf("partitions=%d", n), func(t *testing.T) {
			testClusterPartitions(t, ctx, cc, n)
		})
	}
}

func testClusterPartitions(t *testing.T, ctx context.Context, cc *redis.ClusterClient, n int) {
	prefix := fmt.Sprintf("evptest:p%d:", n)
	opts := Options{Client: cc, KeyPrefix: prefix, Partitions: n, ClaimIdle: 300 * time.Millisecond}
	newQueue := func(consumer string) *Queue {
		o := opts
		o.Consumer = consumer
		return open(t, o)
	}
	prod := newQueue("producer")
	perNode := map[string]int{}
	for _, k := range prod.Keys() {
		node, err := cc.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		perNode[node.Options().Addr]++
	}
	if len(perNode) != 3 {
		t.Fatalf("%d partitions on %d masters, want all 3: %v", n, len(perNode), perNode)
	}
	for addr, k := range perNode {
		if k != n/3 {
			t.Errorf("master %s holds %d partitions, want %d", addr, k, n/3)
		}
	}
	if _, err := prod.EnqueueUnique(ctx, entries("u", 2), prefix+"dedup:", time.Minute); !errors.Is(err, ErrUniqueUnsupported) {
		t.Errorf("EnqueueUnique on a cluster: %v, want ErrUniqueUnsupported", err)
	}
	if err := prod.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	const total, batch = 20000, 100
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for b := w; b < total/batch; b += 4 {
				if err := prod.Enqueue(ctx, entries(fmt.Sprintf("c%d", b), batch)); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	// A consumer that takes entries and dies: the others claim them after ClaimIdle.
	dead := newQueue("dead")
	if msgs, err := dead.Fetch(ctx, 150, time.Second); err != nil || len(msgs) == 0 {
		t.Fatalf("dead consumer fetched %d, %v", len(msgs), err)
	}
	dead.Close()

	var mu sync.Mutex
	acked := map[string]int{}
	consume := func(q *Queue) {
		for idle := 0; idle < 3; {
			msgs, err := q.Fetch(ctx, 100, 500*time.Millisecond)
			if err != nil {
				t.Errorf("Fetch: %v", err)
				return
			}
			if len(msgs) == 0 {
				idle++
				continue
			}
			idle = 0
			if err := q.Ack(ctx, ids(msgs)); err != nil {
				t.Errorf("Ack: %v", err)
				return
			}
			mu.Lock()
			for _, m := range msgs {
				acked[m.EventID]++
			}
			mu.Unlock()
		}
	}
	for _, name := range []string{"w1", "w2"} {
		q := newQueue(name)
		for range 2 {
			wg.Go(func() { consume(q) })
		}
	}
	wg.Wait()

	if len(acked) != total {
		t.Errorf("acknowledged %d distinct entries, want %d", len(acked), total)
	}
	for id, k := range acked {
		if k != 1 {
			t.Errorf("%s acknowledged %d times", id, k)
		}
	}
	st, err := prod.Stats(ctx)
	if err != nil || st.Length != 0 || st.Pending != 0 || st.TotalEnqueued != total {
		t.Errorf("Stats = %+v, %v; want empty after %d", st, err, total)
	}
	gs, err := prod.Groups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Pending != 0 || gs[0].Lag != 0 || gs[0].EntriesRead < total {
		t.Errorf("Groups = %+v, %v", gs, err)
	}
	var pending []string
	if err := prod.PendingEventIDs(ctx, func(id string) { pending = append(pending, id) }); err != nil || len(pending) != 0 {
		t.Errorf("PendingEventIDs = %v, %v", pending, err)
	}
	// Nack and Touch route to each entry's stream on the cluster too.
	if err := prod.Enqueue(ctx, entries("nack", 30)); err != nil {
		t.Fatal(err)
	}
	w := newQueue("w3")
	msgs := fetchAll(t, w, 30, time.Second)
	if err := w.Touch(ctx, ids(msgs)); err != nil {
		t.Fatal(err)
	}
	if err := w.Nack(ctx, ids(msgs)); err != nil {
		t.Fatal(err)
	}
	again := fetchAll(t, w, 30, time.Second)
	if len(again) != 30 || again[0].Attempts != 1 {
		t.Fatalf("after Nack fetched %d (attempts %d), want 30 (1)", len(again), again[0].Attempts)
	}
	if err := w.Ack(ctx, ids(again)); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Stats(ctx); st.Length != 0 {
		t.Errorf("Length %d, want 0", st.Length)
	}
}

var _ queue.Queue = (*Queue)(nil)
