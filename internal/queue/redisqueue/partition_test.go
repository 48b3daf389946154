package redisqueue

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/queue"
)

func TestKeySlot(t *testing.T) {
	// The check value of CRC-16/XMODEM, and the hash tag rule, from the Redis Cluster spec.
	if s := KeySlot("123456789"); s != 0x31C3 {
		t.Errorf("KeySlot(123456789) = %d, want %d", s, 0x31C3)
	}
	if KeySlot("{user1000}.following") != KeySlot("user1000") {
		t.Error("hash tag not honoured")
	}
	if KeySlot("foo{{bar}}zap") != KeySlot("{bar") {
		t.Error(`"foo{{bar}}zap" must hash "{bar"`)
	}
}

// One partition keeps the key a single stream always had, so that upgrading changes nothing.
func TestOnePartitionKeepsStreamKey(t *testing.T) {
	keys, err := partitionKeys("evp:events_stream", 1)
	if err != nil || !slices.Equal(keys, []string{"evp:events_stream"}) {
		t.Fatalf("partitionKeys(1) = %v, %v", keys, err)
	}
	c := testClient(t)
	prefix := testPrefix(t, c)
	q := open(t, Options{Client: c, KeyPrefix: prefix, Partitions: 1})
	if got := q.Keys(); !slices.Equal(got, []string{prefix + DefaultStream}) || q.Key() != prefix+DefaultStream {
		t.Fatalf("Keys() = %v, Key() = %s", got, q.Key())
	}
	ctx := context.Background()
	if err := q.Enqueue(ctx, entries("one", 5)); err != nil {
		t.Fatal(err)
	}
	if n := c.XLen(ctx, prefix+DefaultStream).Val(); n != 5 {
		t.Errorf("XLEN %s = %d, want 5", prefix+DefaultStream, n)
	}
	if n := c.Exists(ctx, registryKey(prefix+DefaultStream)).Val(); n != 0 {
		t.Error("one partition wrote the partition registry")
	}
}

// Partition i of n hashes into the i-th of n equal slot ranges, so n partitions spread over
// the masters of a cluster made by redis-cli --cluster create.
func TestPartitionKeysSpreadOverSlots(t *testing.T) {
	for _, n := range []int{2, 3, 4, 5, 6, 9, 12, 16, 64, MaxPartitions} {
		keys, err := partitionKeys("events_stream", n)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n
			if s := KeySlot(k); s < lo || s >= hi {
				t.Errorf("n=%d: %s in slot %d, want [%d, %d)", n, k, s, lo, hi)
			}
		}
	}
	if _, err := partitionKeys("{evp}:events_stream", 3); err == nil {
		t.Error("a hash tag in the prefix was accepted with 3 partitions")
	}
	if _, err := partitionKeys("events_stream", MaxPartitions+1); err == nil {
		t.Error("too many partitions accepted")
	}
}

func TestPartitionIDs(t *testing.T) {
	for _, n := range []int{1, 2, 3, 256} {
		pb := partBits(n)
		for _, p := range []int{0, n - 1} {
			for _, sid := range []string{"1700000000000-0", "1700000000000-17"} {
				id, ok := encodePartID(sid, p, pb)
				if !ok || id < 0 {
					t.Fatalf("n=%d: encode %s/%d failed", n, sid, p)
				}
				if back, bp := decodePartID(id, pb); back != sid || bp != p {
					t.Errorf("n=%d: %s/%d -> %d -> %s/%d", n, sid, p, id, back, bp)
				}
			}
		}
	}
	// With 256 streams, 12 bits are left to seq.
	if _, ok := encodePartID("1700000000000-4096", 0, partBits(256)); ok {
		t.Error("seq 4096 fit in 12 bits")
	}
}

// With several streams the contract suite runs with its order checks per stream
// (TestContractPartitioned, TestClusterContract). These tests cover what is particular to
// several streams.

// Entries in flight when a consumer stops are handed back, on every stream, to the same
// consumer name at once after a restart.
func TestPartitionedRestartRedelivers(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	opts := Options{Client: c, KeyPrefix: prefix, Partitions: 3, Consumer: "stable"}
	q, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, entries("rs", 60)); err != nil {
		t.Fatal(err)
	}
	first := fetchAll(t, q, 60, time.Second)
	if err := q.Ack(ctx, ids(first[:20])); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q2 := open(t, opts)
	again := fetchAll(t, q2, 40, time.Second)
	want := eventIDSet(first[20:])
	if got := eventIDSet(again); len(again) != 40 || !maps.Equal(got, want) {
		t.Fatalf("after restart fetched %d, want the 40 unacknowledged", len(again))
	}
	for _, m := range again {
		if m.Attempts != 1 {
			t.Errorf("%s: Attempts %d, want 1", m.EventID, m.Attempts)
		}
	}
}

func eventIDSet(msgs []queue.Message) map[string]bool {
	out := map[string]bool{}
	for _, m := range msgs {
		out[m.EventID] = true
	}
	return out
}

// Entries spread over every stream; Fetch, Ack, Nack and Touch reach the right one.
func TestPartitionedRoundTrip(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Partitions: 4, ClaimIdle: 200 * time.Millisecond})
	if err := q.Enqueue(ctx, entries("rt", 400)); err != nil {
		t.Fatal(err)
	}
	for _, k := range q.Keys() {
		if n := c.XLen(ctx, k).Val(); n < 50 {
			t.Errorf("%s holds %d of 400 entries", k, n)
		}
	}
	msgs := fetchAll(t, q, 400, time.Second)
	if len(msgs) != 400 {
		t.Fatalf("fetched %d of 400", len(msgs))
	}
	// Nack 10 spread over the streams: they come back (claimed at once), with Attempts 1.
	if err := q.Touch(ctx, ids(msgs[:50])); err != nil {
		t.Fatal(err)
	}
	if err := q.Nack(ctx, ids(msgs[:10])); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(ctx, ids(msgs[10:])); err != nil {
		t.Fatal(err)
	}
	again := fetchAll(t, q, 10, time.Second)
	if len(again) != 10 {
		t.Fatalf("fetched %d of 10 nacked", len(again))
	}
	for _, m := range again {
		if m.Attempts != 1 {
			t.Errorf("%s: Attempts %d, want 1", m.EventID, m.Attempts)
		}
	}
	if err := q.Ack(ctx, ids(again)); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil || st.Length != 0 || st.Pending != 0 || st.TotalEnqueued != 400 {
		t.Errorf("Stats = %+v, %v", st, err)
	}
}

// A Fetch asking for fewer entries than there are streams still reaches every stream in
// turn, and a worker blocked on an empty stream sees entries of another within one slice.
func TestPartitionedFetchIsFair(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Partitions: 4})
	seen := map[string]bool{}
	for i := range 200 {
		id := fmt.Sprintf("f-%d", i)
		if err := q.Enqueue(ctx, []queue.Entry{{EventID: id, Data: []byte("{}")}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 8 {
		msgs, err := q.Fetch(ctx, 1, 0)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("Fetch = %d, %v", len(msgs), err)
		}
		seen[q.parts[partitionOf(msgs[0].EventID, 4)].key] = true
	}
	if len(seen) != 4 {
		t.Errorf("8 fetches of 1 reached %d of 4 streams", len(seen))
	}
	// Drain, then block while one entry arrives in some stream.
	for {
		msgs, err := q.Fetch(ctx, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		if err := q.Ack(ctx, ids(msgs)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		id := fmt.Sprintf("late-%d", i)
		go func() {
			time.Sleep(20 * time.Millisecond)
			if err := q.Enqueue(ctx, []queue.Entry{{EventID: id, Data: []byte("{}")}}); err != nil {
				t.Error(err)
			}
		}()
		start := time.Now()
		msgs, err := q.Fetch(ctx, 10, 2*time.Second)
		if err != nil || len(msgs) != 1 || msgs[0].EventID != id {
			t.Fatalf("Fetch = %v, %v", msgs, err)
		}
		// Blocking on one stream only would often wait out a whole slice (250 ms).
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Errorf("entry of stream %d arrived after %v", partitionOf(id, 4), d)
		}
		if err := q.Ack(ctx, ids(msgs)); err != nil {
			t.Fatal(err)
		}
	}
}

// Changing the partition count loses nothing: a queue opened with another count reads the
// streams of the old one until they are empty.
func TestPartitionCountChange(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	enqueueWith := func(n int, tag string) {
		q, err := Open(ctx, Options{Client: c, KeyPrefix: prefix, Partitions: n})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		if err := q.Enqueue(ctx, entries(tag, 30)); err != nil {
			t.Fatal(err)
		}
	}
	enqueueWith(1, "one")
	enqueueWith(3, "three")
	enqueueWith(5, "five")
	q := open(t, Options{Client: c, KeyPrefix: prefix, Partitions: 2})
	if len(q.Keys()) != 2+1+3+5 {
		t.Fatalf("reads %d streams, want 11: %v", len(q.Keys()), q.Keys())
	}
	msgs := fetchAll(t, q, 90, time.Second)
	if len(msgs) != 90 {
		t.Fatalf("fetched %d of 90", len(msgs))
	}
	if err := q.Ack(ctx, ids(msgs)); err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(ctx); st.Length != 0 {
		t.Errorf("Length %d after acking all", st.Length)
	}
	// Emptied streams of other counts are no longer read by the next queue.
	q2 := open(t, Options{Client: c, KeyPrefix: prefix, Partitions: 2, Consumer: "later"})
	if len(q2.Keys()) != 2 {
		t.Errorf("reads %v, want only its own 2 streams", q2.Keys())
	}
}

func TestEnqueueUniquePartitioned(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Partitions: 3})
	es := entries("u", 60)
	added, err := q.EnqueueUnique(ctx, append(es, es[:10]...), prefix+"dedup:", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := countTrue(added); n != 60 {
		t.Errorf("added %d, want 60", n)
	}
	for _, k := range q.Keys() {
		if n := c.XLen(ctx, k).Val(); n == 0 {
			t.Errorf("%s empty", k)
		}
	}
	if st, _ := q.Stats(ctx); st.Length != 60 {
		t.Errorf("Length %d, want 60", st.Length)
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
