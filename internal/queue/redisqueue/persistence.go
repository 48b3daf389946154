package redisqueue

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// persistence is the part of a Redis server's configuration that decides what a restart
// or a crash of it loses.
type persistence struct {
	appendOnly  string // "yes": every write goes to the append-only file
	appendFsync string // always, everysec or no
	save        string // RDB snapshot schedule; "": none
	policy      string // maxmemory-policy
}

// readPersistence reads the configuration of one server with CONFIG GET, which managed
// Redis services may refuse.
func readPersistence(ctx context.Context, c redis.Cmdable) (persistence, error) {
	names := []string{"appendonly", "appendfsync", "save", "maxmemory-policy"}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	_, err := c.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = pl.ConfigGet(ctx, n)
		}
		return nil
	})
	if err != nil {
		return persistence{}, err
	}
	return persistence{
		appendOnly:  cmds[0].Val()["appendonly"],
		appendFsync: cmds[1].Val()["appendfsync"],
		save:        cmds[2].Val()["save"],
		policy:      cmds[3].Val()["maxmemory-policy"],
	}, nil
}

// checkPersistence logs a warning for each way the Redis server (every master of a
// cluster) can lose buffered events, and an info line when it cannot tell.
func (q *Queue) checkPersistence(ctx context.Context) {
	check := func(ctx context.Context, c redis.Cmdable, node string) {
		p, err := readPersistence(ctx, c)
		if err != nil {
			q.log.Info("redis persistence unknown: CONFIG GET refused; make sure Redis runs with appendonly yes",
				"node", node, "err", err)
			return
		}
		q.logPersistence(p, node)
	}
	if cc, ok := q.rdb.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			check(ctx, c, c.Options().Addr)
			return nil
		})
		return
	}
	check(ctx, q.rdb, "")
}

func (q *Queue) logPersistence(p persistence, node string) {
	switch {
	case p.appendOnly != "yes" && p.save == "":
		q.log.Warn("redis persistence is off: a restart of Redis loses every buffered event; set appendonly yes",
			"node", node, "appendonly", p.appendOnly, "save", p.save)
	case p.appendOnly != "yes":
		q.log.Warn("redis append-only file is off: a restart of Redis loses the events buffered since its last snapshot; set appendonly yes",
			"node", node, "appendonly", p.appendOnly, "save", p.save)
	case p.appendFsync == "no":
		q.log.Warn("redis leaves fsync of its append-only file to the OS: a crash of the machine loses up to about 30 s of buffered events; set appendfsync everysec or always",
			"node", node, "appendfsync", p.appendFsync)
	default:
		q.log.Info("redis persistence", "node", node, "appendonly", p.appendOnly, "appendfsync", p.appendFsync)
	}
	if strings.HasPrefix(p.policy, "allkeys-") {
		q.log.Warn("redis may evict the buffer's streams when full: set maxmemory-policy noeviction",
			"node", node, "maxmemory_policy", p.policy)
	}
}
