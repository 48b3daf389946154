package testutil

import (
	"context"
	"testing"
)

func TestRedisCluster(t *testing.T) {
	addrs := RedisCluster(t, 3)
	c := RedisClusterClient(t, addrs)
	ctx := context.Background()
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 3 {
		t.Fatalf("%d shards, want 3", len(shards))
	}
	slots := 0
	for _, s := range shards {
		for _, r := range s.Slots {
			slots += int(r.End - r.Start + 1)
		}
	}
	if slots != 16384 {
		t.Errorf("shards cover %d slots", slots)
	}
	// Keys in every slot range are served.
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := c.Set(ctx, k, 1, 0).Err(); err != nil {
			t.Errorf("SET %s: %v", k, err)
		}
	}
}
