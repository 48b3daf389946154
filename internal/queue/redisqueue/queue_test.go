package redisqueue

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/queuetest"
	"github.com/evp-dev/evp/internal/testutil"
)

// These tests run against a real Redis: 127.0.0.1:6379, or REDIS_URL. Each test uses its
// own random key prefix and deletes its keys at the end. Without Redis they skip, unless
// EVP_REQUIRE_SERVICES=1 (CI), where they fail.

func redisURL() string { return testutil.RedisURL() }

// testClient connects to the test Redis or skips (fails under EVP_REQUIRE_SERVICES=1).
func testClient(t testing.TB) *redis.Client { return testutil.Redis(t) }

// testPrefix returns a fresh key prefix and deletes every key under it when t ends.
func testPrefix(t testing.TB, c *redis.Client) string { return testutil.RedisPrefix(t, c) }

func TestContract(t *testing.T) {
	c := testClient(t)
	queuetest.Run(t, func(t *testing.T) queuetest.Storage {
		prefix := testPrefix(t, c)
		return func() (queue.Queue, error) {
			// A client of its own per queue (the URL path, closed by Close), and the same
			// consumer name across reopens, as with CONSUMER_NAME set.
			q, err := Open(context.Background(), Options{URL: redisURL(), KeyPrefix: prefix, Consumer: "contract"})
			if err != nil {
				return nil, err
			}
			return q, nil
		}
	})
}

func open(t testing.TB, opts Options) *Queue {
	t.Helper()
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func entries(prefix string, n int) []queue.Entry {
	out := make([]queue.Entry, n)
	for i := range out {
		id := fmt.Sprintf("%s-%d", prefix, i)
		out[i] = queue.Entry{EventID: id, Data: []byte(`{"eventId":"` + id + `"}`)}
	}
	return out
}

func ids(msgs []queue.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// fetchAll fetches from q until n messages arrived or wait passed without any.
func fetchAll(t *testing.T, q *Queue, n int, wait time.Duration) []queue.Message {
	t.Helper()
	var out []queue.Message
	for len(out) < n {
		msgs, err := q.Fetch(context.Background(), n-len(out), wait)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(msgs) == 0 {
			break
		}
		out = append(out, msgs...)
	}
	return out
}

func TestIDEncoding(t *testing.T) {
	for _, s := range []string{"0-0", "1-0", "0-1", "1700000000000-0", "1700000000000-1048575", "8796093022207-1048575"} {
		id, ok := EncodeID(s)
		if !ok || id < 0 {
			t.Errorf("EncodeID(%q) = %d, %v", s, id, ok)
			continue
		}
		if back := DecodeID(id); back != s {
			t.Errorf("DecodeID(EncodeID(%q)) = %q", s, back)
		}
	}
	a, _ := EncodeID("1700000000000-5")
	b, _ := EncodeID("1700000000000-6")
	c, _ := EncodeID("1700000000001-0")
	if !(a < b && b < c) {
		t.Errorf("encoding does not keep stream order: %d %d %d", a, b, c)
	}
	for _, s := range []string{"1700000000000-1048576", "8796093022208-0", "x-1", "12", "1-2-3"} {
		if id, ok := EncodeID(s); ok {
			t.Errorf("EncodeID(%q) = %d, want no fit", s, id)
		}
	}
	// Ids that do not fit get a negative alias that Ack and Nack accept.
	p0 := newPart(0, "s")
	q := &Queue{parts: []*part{p0}, aliases: map[int64]ref{}, aliasOf: map[ref]int64{}, nextAlias: -1}
	big := "1700000000000-2000000"
	id := q.encode(ref{p0, big})
	if id >= 0 || q.encode(ref{p0, big}) != id {
		t.Fatalf("alias of %s = %d, then %d", big, id, q.encode(ref{p0, big}))
	}
	got, err := q.decodeAll([]int64{id, b})
	if err != nil || got[0].sid != big || got[1].sid != "1700000000000-6" {
		t.Errorf("decodeAll = %v, %v", got, err)
	}
	if _, err := q.decodeAll([]int64{-99}); err == nil {
		t.Error("decodeAll of an unknown alias succeeded")
	}
}

func TestMessageIDsAreStreamIDs(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix})
	if err := q.Enqueue(ctx, entries("sid", 3)); err != nil {
		t.Fatal(err)
	}
	xms, err := c.XRange(ctx, q.Key(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	msgs := fetchAll(t, q, 3, time.Second)
	if len(msgs) != 3 {
		t.Fatalf("fetched %d of 3", len(msgs))
	}
	for i, m := range msgs {
		if DecodeID(m.ID) != xms[i].ID {
			t.Errorf("message %d: id %d decodes to %s, stream id %s", i, m.ID, DecodeID(m.ID), xms[i].ID)
		}
	}
}

// Two queues with different consumer names in one group share the entries without
// handing any out twice.
func TestTwoConsumersShareWork(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	a := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "a"})
	b := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "b"})
	const n = 2000
	es := entries("share", n)

	var mu sync.Mutex
	seen := map[string]int{}
	per := map[string]int{}
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	for _, q := range []*Queue{a, b} {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					msgs, err := q.Fetch(ctx, 10, 100*time.Millisecond)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for _, m := range msgs {
						seen[m.EventID]++
						per[q.Consumer()]++
					}
					total := len(seen)
					mu.Unlock()
					if err := q.Ack(ctx, ids(msgs)); err != nil {
						errs <- err
						return
					}
					if total == n {
						return
					}
				}
			}()
		}
	}
	for i := 0; i < n; i += 100 {
		if err := a.Enqueue(ctx, es[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, e := range es {
		if k := seen[e.EventID]; k != 1 {
			t.Errorf("%s handed out %d times", e.EventID, k)
		}
	}
	if per["a"] == 0 || per["b"] == 0 {
		t.Errorf("work not shared: a took %d, b took %d", per["a"], per["b"])
	}
	t.Logf("a took %d, b took %d", per["a"], per["b"])
	s, err := a.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Length != 0 || s.Pending != 0 || s.TotalEnqueued != n {
		t.Errorf("Stats = %+v, want Length 0, Pending 0, TotalEnqueued %d", s, n)
	}
}

// A consumer that fetched and died (never acks) has its entries claimed by another after
// ClaimIdle, with Attempts counting the lost delivery.
func TestDeadConsumerClaimed(t *testing.T) {
	const idle = 300 * time.Millisecond
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	dead := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "dead", ClaimIdle: idle})
	alive := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "alive", ClaimIdle: idle})
	if err := dead.Enqueue(ctx, entries("dead", 5)); err != nil {
		t.Fatal(err)
	}
	start := time.Now() // before the delivery: nothing may be claimed before start+idle
	taken := fetchAll(t, dead, 5, time.Second)
	if len(taken) != 5 {
		t.Fatalf("dead consumer fetched %d of 5", len(taken))
	}
	dead.Close() // dies holding them

	if time.Since(start) < idle/2 { // the check is meaningful only well before ClaimIdle
		if msgs, err := alive.Fetch(ctx, 10, 50*time.Millisecond); err != nil || len(msgs) != 0 {
			t.Fatalf("Fetch before ClaimIdle = %d messages, %v; want none", len(msgs), err)
		}
	}
	var got []queue.Message
	for len(got) < 5 && time.Since(start) < 5*time.Second {
		msgs, err := alive.Fetch(ctx, 10, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	elapsed := time.Since(start)
	if len(got) != 5 {
		t.Fatalf("alive consumer claimed %d of 5 within %v", len(got), elapsed)
	}
	// Redis measures idle time in whole milliseconds on its own clock: allow that much.
	if elapsed < idle-5*time.Millisecond {
		t.Errorf("claimed after %v, before ClaimIdle %v", elapsed, idle)
	}
	t.Logf("claimed 5 entries %v after the dead consumer's fetch", elapsed)
	for i, m := range got {
		if m.ID != taken[i].ID || m.EventID != taken[i].EventID || string(m.Data) != string(taken[i].Data) {
			t.Errorf("claimed %d %s %q, want %d %s %q", m.ID, m.EventID, m.Data, taken[i].ID, taken[i].EventID, taken[i].Data)
		}
		if m.Attempts != 1 {
			t.Errorf("claimed %s with Attempts %d, want 1", m.EventID, m.Attempts)
		}
	}
	gs, err := alive.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 {
		t.Fatalf("Groups = %+v, want one group", gs)
	}
	pend := map[string]int64{}
	for _, ci := range gs[0].Consumers {
		pend[ci.Name] = ci.Pending
	}
	if pend["alive"] != 5 || pend["dead"] != 0 || gs[0].Pending != 5 || gs[0].Lag != 0 {
		t.Errorf("Groups = %+v, want alive holding 5, dead 0, lag 0", gs[0])
	}
	if err := alive.Ack(ctx, ids(got)); err != nil {
		t.Fatal(err)
	}
	if s, _ := alive.Stats(ctx); s.Length != 0 || s.Pending != 0 {
		t.Errorf("Stats after ack = %+v", s)
	}
}

// Entries pending for this consumer name from before a restart come back at once, each
// exactly once even with concurrent fetchers racing new entries.
func TestRestartRecoveryConcurrent(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "w1"})
	old := entries("old", 300)
	if err := q.Enqueue(ctx, old); err != nil {
		t.Fatal(err)
	}
	if got := fetchAll(t, q, 300, time.Second); len(got) != 300 {
		t.Fatalf("fetched %d of 300", len(got))
	}
	q.Close()

	q = open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "w1"})
	fresh := entries("new", 300)
	var mu sync.Mutex
	seen := map[string]int{}
	attempts := map[string]int{}
	var wg sync.WaitGroup
	stop := time.Now().Add(10 * time.Second)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				msgs, err := q.Fetch(ctx, 7, 50*time.Millisecond)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, m := range msgs {
					seen[m.EventID]++
					attempts[m.EventID] = m.Attempts
				}
				n := len(seen)
				mu.Unlock()
				if n == 600 {
					return
				}
			}
		}()
	}
	for i := 0; i < 300; i += 30 {
		if err := q.Enqueue(ctx, fresh[i:i+30]); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for _, e := range append(old, fresh...) {
		if seen[e.EventID] != 1 {
			t.Errorf("%s handed out %d times", e.EventID, seen[e.EventID])
		}
	}
	for _, e := range old {
		if attempts[e.EventID] != 1 {
			t.Errorf("recovered %s with Attempts %d, want 1", e.EventID, attempts[e.EventID])
			break
		}
	}
	for _, e := range fresh {
		if attempts[e.EventID] != 0 {
			t.Errorf("new %s with Attempts %d, want 0", e.EventID, attempts[e.EventID])
			break
		}
	}
}

// Nack releases an entry at once, to any consumer; Attempts grows by one per Nack and
// Exhausted turns true at MaxDeliveries.
func TestNackAndMaxDeliveries(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	a := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "a", MaxDeliveries: 3})
	b := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "b", MaxDeliveries: 3})
	if err := a.Enqueue(ctx, entries("poison", 1)); err != nil {
		t.Fatal(err)
	}
	m := fetchAll(t, a, 1, time.Second)
	if len(m) != 1 || m[0].Attempts != 0 || a.Exhausted(m[0]) {
		t.Fatalf("first fetch = %+v", m)
	}
	// b may Nack nothing it does not own.
	if err := b.Nack(ctx, ids(m)); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.Stats(ctx); s.Pending != 1 {
		t.Errorf("Pending after a foreign Nack = %d, want 1", s.Pending)
	}
	holders := []*Queue{a, b}
	for want := 1; want <= 3; want++ {
		from := holders[(want-1)%2]
		if err := from.Nack(ctx, ids(m)); err != nil {
			t.Fatal(err)
		}
		if s, _ := a.Stats(ctx); s.Pending != 0 || s.Length != 1 {
			t.Errorf("Stats after Nack = %+v, want Pending 0, Length 1", s)
		}
		if gs, _ := a.Groups(ctx); len(gs) != 1 || gs[0].Nacked != 1 {
			t.Errorf("Groups after Nack = %+v, want Nacked 1", gs)
		}
		// The other queue takes it, at once (well before ClaimIdle).
		to := holders[want%2]
		start := time.Now()
		m = fetchAll(t, to, 1, 2*time.Second)
		if len(m) != 1 {
			t.Fatalf("after Nack %d: nothing redelivered to %s", want, to.Consumer())
		}
		if m[0].Attempts != want {
			t.Errorf("after Nack %d: Attempts %d", want, m[0].Attempts)
		}
		if got, wantEx := to.Exhausted(m[0]), want >= 3; got != wantEx {
			t.Errorf("after Nack %d: Exhausted %v, want %v", want, got, wantEx)
		}
		t.Logf("Nack %d: redelivered to %s after %v", want, to.Consumer(), time.Since(start))
	}
	if err := b.Ack(ctx, ids(m)); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.Stats(ctx); s.Pending != 0 || s.Length != 0 || s.TotalEnqueued != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

// Close leaves a client passed in by the caller open.
func TestCloseKeepsCallerClient(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	q := open(t, Options{Client: c, KeyPrefix: prefix})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Ping(context.Background()); err != queue.ErrClosed {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Errorf("caller's client after Close: %v", err)
	}
}

// Losing the stream key (FLUSHDB, Redis restarted without persistence) does not wedge the
// workers: the group is made again and new entries flow.
func TestStreamKeyLost(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix})
	if err := c.Del(ctx, q.Key()).Err(); err != nil {
		t.Fatal(err)
	}
	if msgs, err := q.Fetch(ctx, 10, 100*time.Millisecond); err != nil || len(msgs) != 0 {
		t.Fatalf("Fetch with the key gone = %d, %v", len(msgs), err)
	}
	if err := q.Enqueue(ctx, entries("after", 2)); err != nil {
		t.Fatal(err)
	}
	if got := fetchAll(t, q, 2, time.Second); len(got) != 2 {
		t.Fatalf("fetched %d of 2 after the key was lost", len(got))
	}
}

// Open deletes consumers long idle with nothing pending, and never one with entries.
func TestPruneConsumers(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	keep := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "holder"})
	if err := keep.Enqueue(ctx, entries("p", 1)); err != nil {
		t.Fatal(err)
	}
	if got := fetchAll(t, keep, 1, time.Second); len(got) != 1 {
		t.Fatal("fetch")
	}
	if err := c.XGroupCreateConsumer(ctx, keep.Key(), DefaultGroup, "idle-empty").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "new", PruneIdle: 50 * time.Millisecond})
	cs, err := c.XInfoConsumers(ctx, keep.Key(), DefaultGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, ci := range cs {
		names[ci.Name] = true
	}
	if names["idle-empty"] || !names["holder"] {
		t.Errorf("consumers after prune = %v, want holder kept and idle-empty gone", names)
	}
}

// BenchmarkEnqueue100 appends batches of 100 ~300-byte entries from one goroutine (one
// round trip per batch) and, in parallel, from GOMAXPROCS*4 goroutines like API handlers.
func BenchmarkEnqueue100(b *testing.B) {
	c := testClient(b)
	data := make([]byte, 300)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	batch := make([]queue.Entry, 100)
	for i := range batch {
		batch[i] = queue.Entry{EventID: fmt.Sprintf("evt_%026d", i), Data: data}
	}
	run := func(b *testing.B, parallel bool) {
		prefix := testPrefix(b, c)
		q := open(b, Options{Client: c, KeyPrefix: prefix})
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		if parallel {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := q.Enqueue(ctx, batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
		} else {
			for range b.N {
				if err := q.Enqueue(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "entries/s")
		c.Del(ctx, q.Key())
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}

// BenchmarkDrain100 measures the consumer side: Fetch 100 then Ack them, entries/s.
func BenchmarkDrain100(b *testing.B) {
	c := testClient(b)
	prefix := testPrefix(b, c)
	q := open(b, Options{Client: c, KeyPrefix: prefix})
	ctx := context.Background()
	data := make([]byte, 300)
	batch := make([]queue.Entry, 100)
	for i := range batch {
		batch[i] = queue.Entry{EventID: fmt.Sprintf("evt_%026d", i), Data: data}
	}
	for range b.N {
		if err := q.Enqueue(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		msgs, err := q.Fetch(ctx, 100, time.Second)
		if err != nil || len(msgs) != 100 {
			b.Fatalf("Fetch = %d, %v", len(msgs), err)
		}
		if err := q.Ack(ctx, ids(msgs)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "entries/s")
}
