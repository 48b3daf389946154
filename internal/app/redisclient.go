package app

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/config"
)

// newRedisClient connects to REDIS_URL: a cluster client when EVP_REDIS_CLUSTER is set
// (REDIS_URL names one node, more seeds as ?addr=host:port, go-redis's ParseClusterURL),
// otherwise a client of one server, which must not be a cluster node: it would answer MOVED
// for the keys of other nodes' slots, so evp refuses to start with a message saying what
// to set.
func newRedisClient(ctx context.Context, cfg *config.Config) (redis.UniversalClient, error) {
	if cfg.RedisCluster {
		copts, err := redis.ParseClusterURL(cfg.RedisURL)
		if err != nil {
			return nil, &config.Error{Setting: "REDIS_URL", Value: "(hidden)", Reason: "with EVP_REDIS_CLUSTER=true: " + err.Error()}
		}
		return redis.NewClusterClient(copts), nil
	}
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, &config.Error{Setting: "REDIS_URL", Value: "(hidden)", Reason: err.Error()}
	}
	client := redis.NewClient(ropts)
	if isClusterNode(ctx, client) {
		_ = client.Close()
		return nil, &config.Error{Setting: "EVP_REDIS_CLUSTER", Value: "false",
			Reason: "REDIS_URL is a node of a Redis Cluster: set EVP_REDIS_CLUSTER=true"}
	}
	return client, nil
}

// isClusterNode reports whether the server says it runs in cluster mode. When it cannot
// tell (unreachable, INFO disabled), the buffer's own start reports what is wrong.
func isClusterNode(ctx context.Context, c *redis.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "cluster").Result()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}
