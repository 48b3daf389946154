package redisqueue

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/testutil"
)

// BenchmarkEnqueueUnique100 runs EnqueueUnique on batches of 100 new ~300-byte entries
// (each id checked against the dedup window, appended and recorded), from one goroutine
// and from GOMAXPROCS*4 goroutines like API handlers, against a private redis-server. It
// reports entries/s and the CPU time Redis spent per entry (INFO cpu), which bounds what
// one Redis can take whatever else runs on the machine.
func BenchmarkEnqueueUnique100(b *testing.B) {
	data := make([]byte, 300)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	var seq atomic.Int64
	batch := func() []queue.Entry {
		n := seq.Add(1)
		es := make([]queue.Entry, 100)
		for i := range es {
			es[i] = queue.Entry{EventID: fmt.Sprintf("evt_%016d_%08d", n, i), Data: data}
		}
		return es
	}
	run := func(b *testing.B, parallel bool) {
		srv := testutil.StartRedisServer(b)
		rc := srv.Client()
		q := open(b, Options{URL: srv.URL(), WatchEvery: time.Hour})
		ctx := context.Background()
		cpu0 := redisCPU(b, rc)
		b.ResetTimer()
		start := time.Now()
		if parallel {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := q.EnqueueUnique(ctx, batch(), "dedup:", 10*time.Minute); err != nil {
						b.Error(err)
						return
					}
				}
			})
		} else {
			for range b.N {
				if _, err := q.EnqueueUnique(ctx, batch(), "dedup:", 10*time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "entries/s")
		b.ReportMetric((redisCPU(b, rc)-cpu0)*1e6/float64(b.N*100), "redis-cpu-us/entry")
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}

// BenchmarkFetchAck100 drains batches of 100 (Fetch, then Ack) from a private
// redis-server, reporting entries/s and Redis's CPU time per entry.
func BenchmarkFetchAck100(b *testing.B) {
	srv := testutil.StartRedisServer(b)
	rc := srv.Client()
	q := open(b, Options{URL: srv.URL(), WatchEvery: time.Hour})
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
	cpu0 := redisCPU(b, rc)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		msgs, err := q.Fetch(ctx, 100, time.Second)
		if err != nil || len(msgs) != 100 {
			b.Fatalf("Fetch = %d, %v", len(msgs), err)
		}
		ids := make([]int64, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		if err := q.Ack(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "entries/s")
	b.ReportMetric((redisCPU(b, rc)-cpu0)*1e6/float64(b.N*100), "redis-cpu-us/entry")
}

// redisCPU is the CPU time, in seconds, the server has used (INFO cpu, user and system).
func redisCPU(b *testing.B, rc *redis.Client) float64 {
	b.Helper()
	info, err := rc.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}

// BenchmarkDedupBytesPerID measures the Redis memory of the dedup window per id: ids
// (EVP_BENCH_DEDUP_IDS, 3,000,000 by default) go through EnqueueUnique into one slice of a
// private redis-server, then the stream is deleted, and the growth of used_memory is
// divided by the ids. Run it once: -bench DedupBytesPerID -benchtime 1x.
func BenchmarkDedupBytesPerID(b *testing.B) {
	n := 3_000_000
	if v := os.Getenv("EVP_BENCH_DEDUP_IDS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	srv := testutil.StartRedisServer(b)
	rc := srv.Client()
	ctx := context.Background()
	q := open(b, Options{URL: srv.URL(), WatchEvery: time.Hour})
	now := time.Now()
	q.now = func() time.Time { return now }
	memory := func() int64 {
		info, err := rc.Info(ctx, "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		used, _ := parseMemory(info)
		return used
	}
	before := memory()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			es := make([]queue.Entry, 100)
			for {
				first := next.Add(100) - 100
				if first >= int64(n) {
					return
				}
				for i := range es {
					es[i] = queue.Entry{EventID: fmt.Sprintf("evt_%026d", first+int64(i)), Data: []byte("x")}
				}
				if _, err := q.EnqueueUnique(ctx, es, "dedup:", 10*time.Minute); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := rc.Del(ctx, q.Key()).Err(); err != nil {
		b.Fatal(err)
	}
	after := memory()
	keys := rc.DBSize(ctx).Val()
	b.ReportMetric(float64(after-before)/float64(n), "bytes/id")
	b.ReportMetric(float64(n)/float64(keys), "ids/set")
	// MEMORY USAGE of a sample of sets, per member.
	var bytes, members int64
	for range 200 {
		k := rc.RandomKey(ctx).Val()
		bytes += rc.MemoryUsage(ctx, k).Val()
		members += rc.SCard(ctx, k).Val()
	}
	b.ReportMetric(float64(bytes)/float64(members), "sampled-bytes/id")
	b.Logf("%d ids in %d sets: used_memory %d -> %d", n, keys, before, after)
}
