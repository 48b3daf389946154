package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/ingestrate"
	"github.com/evp-dev/evp/internal/queue/redisqueue"
	"github.com/evp-dev/evp/internal/ratelimit"
	"github.com/evp-dev/evp/internal/testutil"
)

// TestRedisCluster runs `evp api` and two `evp worker` roles on a real 3-master Redis
// Cluster started by the test, with the buffer spread over 6 streams: 20,000 events sent
// through the API are stored exactly once, the buffer drains, repeats are duplicates
// through the dedup keys on the cluster, and the other Redis users (rate limits, ingestion
// rate) work across slots. Without EVP_REDIS_CLUSTER, evp refuses the cluster.
func TestRedisCluster(t *testing.T) {
	addrs := testutil.RedisCluster(t, 3)
	cc := testutil.RedisClusterClient(t, addrs)
	url := "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
	dir := t.TempDir()
	vars := map[string]string{
		"EVP_DATA_DIR": dir, "PORT": "0", "SERVER_HOST": "127.0.0.1",
		"REDIS_URL": url, "EVP_REDIS_CLUSTER": "true", "EVP_STREAM_PARTITIONS": "6",
		"WORKER_BATCH_TIMEOUT_MS": "20", "EVP_STORE_SYNC": "normal", "EVP_WORKERS": "3",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for k, v := range vars {
			if _, ok := m[k]; !ok {
				m[k] = v
			}
		}
		return m
	}
	api := &instance{t: t, url: startRole(t, RoleAPI, vars), dir: dir}
	api.key = createKey(t, dir)
	startRole(t, RoleWorker, with("CONSUMER_NAME", "w1"))
	wrk := &instance{t: t, url: startRole(t, RoleWorker, with("CONSUMER_NAME", "w2")), dir: dir, key: api.key}

	const batches, size = 200, 100
	batchOf := func(b int) []byte {
		events := make([]any, size)
		for i := range events {
			events[i] = ev(fmt.Sprintf("cl-%d-%d", b, i), "purchase")
		}
		return mustJSON(t, map[string]any{"events": events})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for b := g; b < batches; b += 4 {
				if r := api.do("POST", "/api/v1/events/batch", batchOf(b), nil); r.status != 202 || r.data()["accepted"] != float64(size) {
					t.Errorf("batch %d: %d %s", b, r.status, r.raw)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Repeats are duplicates: the dedup keys live on every node of the cluster.
	if r := api.do("POST", "/api/v1/events/batch", batchOf(7), nil); r.status != 202 || r.data()["accepted"] != 0.0 || r.data()["duplicates"] != float64(size) {
		t.Errorf("repeated batch: %d %s", r.status, r.raw)
	}
	if r := api.do("POST", "/api/v1/events", mustJSON(t, ev("cl-3-3", "purchase")), nil); r.status != 200 || r.data()["duplicate"] != true {
		t.Errorf("repeated event: %d %s", r.status, r.raw)
	}

	const total = batches * size
	api.waitStored(total)
	api.waitBufferEmpty()
	db := openEvents(t, dir)
	var rows, distinct int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != total || distinct != total {
		t.Errorf("store holds %d rows, %d distinct ids; want %d", rows, distinct, total)
	}

	r := wrk.do("GET", "/api/metrics/stream", nil, nil)
	d := r.data()
	groups, _ := d["groups"].([]any)
	if r.status != 200 || d["totalEnqueued"] != float64(total) || d["length"] != 0.0 || len(groups) != 1 {
		t.Fatalf("stream: %d %s", r.status, r.raw)
	}
	// Every partition is listed: six keys named after the stream, in six slots.
	streams, _ := d["streams"].([]any)
	slots := map[int]bool{}
	for _, s := range streams {
		k, _ := s.(string)
		if !strings.HasPrefix(k, d["stream"].(string)+":{") {
			t.Errorf("stream key %q is not a partition of %v", k, d["stream"])
		}
		slots[redisqueue.KeySlot(k)] = true
	}
	if d["partitions"] != 6.0 || len(streams) != 6 || len(slots) != 6 {
		t.Errorf("partitions %v, streams %v: want 6 in 6 slots", d["partitions"], d["streams"])
	}
	g := groups[0].(map[string]any)
	if g["pending"] != 0.0 || g["lag"] != 0.0 || len(g["consumers"].([]any)) < 2 {
		t.Errorf("group: %v", g)
	}
	if r := wrk.do("GET", "/api/health", nil, nil); r.status != 200 {
		t.Errorf("health: %d %s", r.status, r.raw)
	}

	// The rate-limit counters and the ingestion rate read several keys in one MGET.
	ctx := context.Background()
	rl := ratelimit.NewRedis(cc, "evp:ratelimit:")
	now := time.Now().Truncate(time.Minute)
	if err := rl.Increment("127.0.0.1", now); err != nil {
		t.Fatal(err)
	}
	if cur, _, err := rl.Get("127.0.0.1", now, now.Add(-time.Minute)); err != nil || cur != 1 {
		t.Errorf("rate limit on the cluster: %d, %v", cur, err)
	}
	rate := ingestrate.NewRedis(cc, "evp:")
	defer rate.Close()
	if _, err := rate.Rate(ctx); err != nil {
		t.Errorf("ingestion rate on the cluster: %v", err)
	}
	t.Run("PlainURLRefused", func(t *testing.T) { checkClusterNeedsSetting(t, addrs) })
}

// checkClusterNeedsSetting: a cluster node given as a plain REDIS_URL stops evp with a
// message naming the setting.
func checkClusterNeedsSetting(t *testing.T, addrs []string) {
	vars := map[string]string{"EVP_DATA_DIR": t.TempDir(), "PORT": "0", "SERVER_HOST": "127.0.0.1", "REDIS_URL": "redis://" + addrs[0]}
	cfg, _, err := config.Load("evp", nil, func(k string) string { return vars[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), RoleAPI, cfg, Options{Version: "test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Setting != "EVP_REDIS_CLUSTER" {
		t.Fatalf("Run with a cluster node as REDIS_URL: %v, want a config error naming EVP_REDIS_CLUSTER", err)
	}
}
