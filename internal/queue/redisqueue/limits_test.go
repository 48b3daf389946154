package redisqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/testutil"
)

// A stream that holds MaxLen entries not yet acknowledged takes no more: EnqueueUnique
// refuses at once (its script reads XLEN) without recording the ids, Enqueue once it has
// read the length; Fill and Degraded say so; acknowledging makes room again.
func TestStreamMaxLen(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	dp := prefix + "dedup:"
	q := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "w", MaxLen: 20, WatchEvery: time.Hour})

	if err := q.Enqueue(ctx, entries("a", 15)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.EnqueueUnique(ctx, entries("b", 5), dp, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err := q.EnqueueUnique(ctx, entries("c", 1), dp, time.Minute)
	if !errors.Is(err, queue.ErrFull) || !strings.Contains(err.Error(), "20") {
		t.Fatalf("EnqueueUnique on a full stream = %v, want ErrFull naming the bound", err)
	}
	if err := q.refreshLimits(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, entries("d", 1)); !errors.Is(err, queue.ErrFull) {
		t.Fatalf("Enqueue on a full stream = %v, want ErrFull", err)
	}
	if n := c.XLen(ctx, q.Key()).Val(); n != 20 {
		t.Fatalf("stream holds %d entries, want the 20 of the bound", n)
	}
	if used, limit, err := q.Fill(ctx); used != 20 || limit != 20 || err != nil {
		t.Errorf("Fill() = %d, %d, %v; want 20, 20", used, limit, err)
	}
	if err := q.Degraded(); !errors.Is(err, queue.ErrFull) {
		t.Errorf("Degraded() = %v, want ErrFull", err)
	}

	msgs := fetchAll(t, q, 5, time.Second)
	if err := q.Ack(ctx, ids(msgs)); err != nil {
		t.Fatal(err)
	}
	added, err := q.EnqueueUnique(ctx, entries("c", 1), dp, time.Minute)
	if err != nil || !added[0] {
		t.Fatalf("EnqueueUnique of the refused id after acks = %v, %v; want it appended (refused ids are not recorded)", added, err)
	}
	if err := q.refreshLimits(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, entries("d", 1)); err != nil {
		t.Fatalf("Enqueue after acks: %v", err)
	}
	if err := q.Degraded(); err != nil {
		t.Errorf("Degraded() = %v with room in the stream", err)
	}
}

// With several streams the bound counts per stream.
func TestStreamMaxLenPartitioned(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Partitions: 3, MaxLen: 10, WatchEvery: time.Hour})
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		_, full = q.EnqueueUnique(ctx, entries(fmt.Sprintf("p%d", i), 1), prefix+"dedup:", time.Minute)
	}
	if !errors.Is(full, queue.ErrFull) {
		t.Fatalf("100 single appends to 3 streams bounded at 10: %v, want ErrFull", full)
	}
	var longest int64
	for _, k := range q.Keys() {
		longest = max(longest, c.XLen(ctx, k).Val())
	}
	if longest != 10 {
		t.Errorf("longest stream %d, want 10", longest)
	}
}

// memoryOf reads used_memory and maxmemory of a server.
func memoryOf(t *testing.T, srv *testutil.RedisServer) (used, maxmem int64) {
	t.Helper()
	info, err := srv.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	return parseMemory(info)
}

// A Redis with a maxmemory refuses ingestion with ErrFull at 90 % of it, before Redis
// itself refuses appends (OOM), and Fill reports the memory bound.
func TestMemoryHighWater(t *testing.T) {
	srv := testutil.StartRedisServer(t)
	ctx := context.Background()
	used, _ := memoryOf(t, srv)
	if err := srv.Client().ConfigSet(ctx, "maxmemory", strconv.FormatInt(used+8<<20, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	q := open(t, Options{URL: srv.URL(), Consumer: "w", WatchEvery: time.Hour})
	data := strings.Repeat("x", 1000)
	batch := func(tag string, i int) []queue.Entry {
		es := entries(fmt.Sprintf("%s%d", tag, i), 100)
		for j := range es {
			es[j].Data = []byte(data)
		}
		return es
	}
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		if err = q.refreshLimits(ctx); err == nil {
			err = q.Enqueue(ctx, batch("e", i))
		}
	}
	if !errors.Is(err, queue.ErrFull) || !strings.Contains(err.Error(), "maxmemory") {
		t.Fatalf("Enqueue into a filling Redis: %v, want ErrFull naming maxmemory before any OOM", err)
	}
	if _, err := q.EnqueueUnique(ctx, batch("u", 0), "dedup:", time.Minute); !errors.Is(err, queue.ErrFull) {
		t.Fatalf("EnqueueUnique into a full Redis: %v, want ErrFull", err)
	}
	u, maxmem := memoryOf(t, srv)
	if u >= maxmem {
		t.Errorf("Redis reached its maxmemory (%d of %d)", u, maxmem)
	}
	if used, limit, err := q.Fill(ctx); err != nil || limit != int64(0.9*float64(maxmem)) || used < limit {
		t.Errorf("Fill() = %d, %d, %v; want used_memory past 90%% of %d", used, limit, err, maxmem)
	}
}

// At maxmemory (noeviction) Redis refuses appends, but workers still fetch and
// acknowledge: no command of Fetch and Ack needs memory, and Ack runs no MULTI (whose
// queued commands Redis refuses at maxmemory, failing EXEC with EXECABORT).
func TestAckAtMaxmemory(t *testing.T) {
	srv := testutil.StartRedisServer(t)
	ctx := context.Background()
	q := open(t, Options{URL: srv.URL(), Consumer: "w", WatchEvery: time.Hour})
	if err := q.Enqueue(ctx, entries("e", 300)); err != nil {
		t.Fatal(err)
	}
	first := fetchAll(t, q, 100, time.Second)
	rc := srv.Client()
	if err := rc.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: q.Key(), Values: []any{"id", "x"}}).Err(); err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Fatalf("XADD at maxmemory: %v, want OOM", err)
	}
	if err := q.Ack(ctx, ids(first)); err != nil {
		t.Fatalf("Ack at maxmemory: %v", err)
	}
	rest := fetchAll(t, q, 200, time.Second)
	if len(rest) != 200 {
		t.Fatalf("fetched %d of 200 at maxmemory", len(rest))
	}
	if err := q.Ack(ctx, ids(rest)); err != nil {
		t.Fatalf("Ack at maxmemory: %v", err)
	}
	if n := rc.XLen(ctx, q.Key()).Val(); n != 0 {
		t.Errorf("stream holds %d entries after acknowledging all", n)
	}
	if err := q.watchOnce(ctx); err != nil {
		t.Errorf("watch at maxmemory: %v", err)
	}
}

func TestFuller(t *testing.T) {
	for _, c := range []struct{ u1, l1, u2, l2, u, l int64 }{
		{5, 10, 50, 200, 5, 10},     // the stream is fuller
		{5, 10, 150, 200, 150, 200}, // memory is fuller
		{5, 0, 150, 200, 150, 200},  // no stream bound
		{5, 10, 150, 0, 5, 10},      // no memory bound
		{7, 0, 0, 0, 7, 0},          // neither
		{5, 10, 10, 20, 5, 10},      // a tie: the stream
	} {
		if u, l := fuller(c.u1, c.l1, c.u2, c.l2); u != c.u || l != c.l {
			t.Errorf("fuller(%d/%d, %d/%d) = %d/%d, want %d/%d", c.u1, c.l1, c.u2, c.l2, u, l, c.u, c.l)
		}
	}
}

// An Ack cut between its XDEL and its XACK leaves the entry deleted but pending: the next
// claim pass drops it from the pending list instead of delivering it again.
func TestAckPartedHeals(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "w", ClaimIdle: time.Millisecond, WatchEvery: time.Hour})
	if err := q.Enqueue(ctx, entries("e", 1)); err != nil {
		t.Fatal(err)
	}
	got := fetchAll(t, q, 1, time.Second)
	if len(got) != 1 {
		t.Fatalf("fetched %d", len(got))
	}
	if err := c.XDel(ctx, q.Key(), DecodeID(got[0].ID)).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs, err := q.Fetch(ctx, 10, 20*time.Millisecond)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("Fetch after a parted ack = %v, %v; want nothing", msgs, err)
		}
		if st, err := q.Stats(ctx); err == nil && st.Pending == 0 && st.Length == 0 {
			break
		}
		if time.Now().After(deadline) {
			st, _ := q.Stats(ctx)
			t.Fatalf("after 10 s the deleted entry is still pending: %+v", st)
		}
	}
}
