package redisqueue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
)

// limits is what the last look at Redis found: the memory of the node closest to its
// maxmemory, and the length of each stream Enqueue appends to.
type limits struct {
	mu     sync.RWMutex
	used   int64   // used_memory
	maxmem int64   // maxmemory; 0: none, or not read
	node   string  // the node's address on a cluster; "" on one node
	lens   []int64 // XLEN of parts[:active]; nil before the first look
}

// refreshLimits reads Redis's memory and the streams' lengths into q.lim.
func (q *Queue) refreshLimits(ctx context.Context) error {
	return errors.Join(q.readLengths(ctx), q.readMemory(ctx))
}

// readLengths reads the length of every stream Enqueue appends to, in one pipeline.
func (q *Queue) readLengths(ctx context.Context) error {
	cmds := make([]*redis.IntCmd, q.active)
	_, err := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = pl.XLen(ctx, q.parts[i].key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisqueue: stream lengths: %w", err)
	}
	lens := make([]int64, len(cmds))
	for i, c := range cmds {
		lens[i] = c.Val()
	}
	q.lim.mu.Lock()
	q.lim.lens = lens
	q.lim.mu.Unlock()
	return nil
}

// readMemory reads INFO memory: of every master on a cluster, keeping the one closest to
// its maxmemory.
func (q *Queue) readMemory(ctx context.Context) error {
	if q.highWater <= 0 {
		return nil
	}
	var used, maxmem int64
	var node string
	cc, ok := q.rdb.(*redis.ClusterClient)
	if !ok {
		info, err := q.rdb.Info(ctx, "memory").Result()
		if err != nil {
			return fmt.Errorf("redisqueue: info memory: %w", err)
		}
		used, maxmem = parseMemory(info)
	} else {
		var mu sync.Mutex
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			info, err := c.Info(ctx, "memory").Result()
			if err != nil {
				return err
			}
			u, m := parseMemory(info)
			mu.Lock()
			defer mu.Unlock()
			if m > 0 && (maxmem == 0 || float64(u)/float64(m) > float64(used)/float64(maxmem)) {
				used, maxmem, node = u, m, c.Options().Addr
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("redisqueue: info memory: %w", err)
		}
	}
	q.lim.mu.Lock()
	q.lim.used, q.lim.maxmem, q.lim.node = used, maxmem, node
	q.lim.mu.Unlock()
	return nil
}

// parseMemory reads used_memory and maxmemory from INFO memory.
func parseMemory(info string) (used, maxmem int64) {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		switch k {
		case "used_memory":
			used, _ = strconv.ParseInt(v, 10, 64)
		case "maxmemory":
			maxmem, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return used, maxmem
}

// memoryFull is an error wrapping queue.ErrFull when Redis's memory had reached the high
// water mark at the last look.
func (q *Queue) memoryFull() error {
	q.lim.mu.RLock()
	used, maxmem, node := q.lim.used, q.lim.maxmem, q.lim.node
	q.lim.mu.RUnlock()
	if q.highWater <= 0 || maxmem <= 0 || float64(used) < q.highWater*float64(maxmem) {
		return nil
	}
	where := "Redis"
	if node != "" {
		where = "Redis node " + node
	}
	return fmt.Errorf("%w: %s uses %d bytes of its maxmemory %d; ingestion stops at %.0f%% until workers drain the stream",
		queue.ErrFull, where, used, maxmem, q.highWater*100)
}

// lengthFull is an error wrapping queue.ErrFull when stream i held MaxLen entries or more
// at the last look.
func (q *Queue) lengthFull(i int) error {
	if q.maxLen <= 0 {
		return nil
	}
	q.lim.mu.RLock()
	var n int64
	if i < len(q.lim.lens) {
		n = q.lim.lens[i]
	}
	q.lim.mu.RUnlock()
	if n < q.maxLen {
		return nil
	}
	return fmt.Errorf("%w: stream %s holds %d entries not yet acknowledged, the bound is %d", queue.ErrFull, q.parts[i].key, n, q.maxLen)
}

// admit is Enqueue's check of the bounds against the last look: whether Redis's memory
// or a stream the entries go to is full.
func (q *Queue) admit(entries []queue.Entry) error {
	if err := q.memoryFull(); err != nil {
		return err
	}
	if q.maxLen <= 0 {
		return nil
	}
	if q.active == 1 {
		return q.lengthFull(0)
	}
	checked := make([]bool, q.active)
	for _, e := range entries {
		i := partitionOf(e.EventID, q.active)
		if !checked[i] {
			checked[i] = true
			if err := q.lengthFull(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// full is the first bound found reached at the last look, or nil.
func (q *Queue) full() error {
	if err := q.memoryFull(); err != nil {
		return err
	}
	for i := range q.active {
		if err := q.lengthFull(i); err != nil {
			return err
		}
	}
	return nil
}

// scriptFull turns the refusal of uniqueScript into an error wrapping queue.ErrFull.
func scriptFull(err error) error {
	msg, found := strings.CutPrefix(err.Error(), "EVPFULL ")
	if !found {
		return err
	}
	return fmt.Errorf("%w: %s", queue.ErrFull, msg)
}

// Fill implements queue.Bounded with the figures of a fresh look: the bound closer to
// refusing ingestion, as used and limit, both in its unit. The stream bound: the
// longest stream's length and MaxLen. The memory bound: Redis's used_memory and the high
// water mark of its maxmemory (MemoryHighWater of it; on a cluster, of the master closest
// to it). With neither bound, limit is 0 and used the longest stream's length. When
// Redis's memory cannot be read (INFO refused), only the stream bound counts.
func (q *Queue) Fill(ctx context.Context) (used, limit int64, err error) {
	if err := q.enter(); err != nil {
		return 0, 0, err
	}
	defer q.leave()
	if err := q.readLengths(ctx); err != nil {
		return 0, 0, err
	}
	_ = q.readMemory(ctx)
	q.lim.mu.RLock()
	defer q.lim.mu.RUnlock()
	var longest, mem, memLimit int64
	for _, n := range q.lim.lens {
		longest = max(longest, n)
	}
	if q.highWater > 0 && q.lim.maxmem > 0 {
		mem, memLimit = q.lim.used, int64(q.highWater*float64(q.lim.maxmem))
	}
	used, limit = fuller(longest, q.maxLen, mem, memLimit)
	return used, limit, nil
}

// fuller picks of two bounds (used, limit; limit 0: none) the one closer to its limit;
// the first on a tie.
func fuller(used1, limit1, used2, limit2 int64) (used, limit int64) {
	switch {
	case limit2 <= 0:
		return used1, limit1
	case limit1 <= 0:
		return used2, limit2
	case float64(used2)/float64(limit2) > float64(used1)/float64(limit1):
		return used2, limit2
	default:
		return used1, limit1
	}
}
