// Package ingestrate counts accepted events across every API replica through Redis, so
// that ingestionRate covers the whole deployment, as the contract asks.
package ingestrate

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Window is the rate's span in whole seconds.
const Window = 10

// Redis adds this replica's counts to one Redis key per second (expiring after the window)
// and reads the rate as the sum of the last Window full seconds. Counts are gathered in
// process and flushed every flushEvery, so the hot path never waits on Redis.
type Redis struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time

	mu      sync.Mutex
	pending map[int64]int64 // second -> count not yet flushed

	stop chan struct{}
	done chan struct{}
}

const flushEvery = 250 * time.Millisecond

// NewRedis starts the flush loop; Close stops it after a last flush.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	r := &Redis{client: client, prefix: prefix, now: time.Now, pending: map[int64]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// key is the counter of one second. The hash tag {ingest} keeps every second in one Redis
// Cluster slot, so that Rate's MGET of the window is valid on a cluster.
func (r *Redis) key(sec int64) string { return r.prefix + "{ingest}:" + strconv.FormatInt(sec, 10) }

// Add counts n accepted events now.
func (r *Redis) Add(n int64) {
	sec := r.now().Unix()
	r.mu.Lock()
	r.pending[sec] += n
	r.mu.Unlock()
}

func (r *Redis) loop() {
	defer close(r.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.flush()
		case <-r.stop:
			r.flush()
			return
		}
	}
}

// flush writes the gathered counts; on failure they are kept for the next try (within the
// window, older seconds no longer matter).
func (r *Redis) flush() {
	r.mu.Lock()
	counts := r.pending
	r.pending = map[int64]int64{}
	r.mu.Unlock()
	if len(counts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sec, n := range counts {
			p.IncrBy(ctx, r.key(sec), n)
			p.Expire(ctx, r.key(sec), 2*Window*time.Second)
		}
		return nil
	})
	if err != nil {
		cut := r.now().Unix() - Window
		r.mu.Lock()
		for sec, n := range counts {
			if sec >= cut {
				r.pending[sec] += n
			}
		}
		r.mu.Unlock()
	}
}

// Rate returns accepted events per second over the last Window full seconds, all replicas.
func (r *Redis) Rate(ctx context.Context) (float64, error) {
	now := r.now().Unix()
	keys := make([]string, Window)
	for i := range keys {
		keys[i] = r.key(now - 1 - int64(i))
	}
	vals, err := r.client.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, fmt.Errorf("ingestrate: %w", err)
	}
	var total int64
	for _, v := range vals {
		if s, ok := v.(string); ok {
			n, _ := strconv.ParseInt(s, 10, 64)
			total += n
		}
	}
	return float64(total) / Window, nil
}

// Close flushes what is left and stops the loop.
func (r *Redis) Close() {
	close(r.stop)
	<-r.done
}
