package config

import (
	"errors"
	"io"
	"testing"
)

func load(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	c, _, err := Load("evp", args, func(k string) string { return env[k] }, io.Discard, nil)
	return c, err
}

func TestStreamPartitions(t *testing.T) {
	c, err := load(t, nil)
	if err != nil || c.StreamPartitions != 1 || c.RedisCluster {
		t.Fatalf("defaults: partitions %d, cluster %v, %v", c.StreamPartitions, c.RedisCluster, err)
	}
	c, err = load(t, map[string]string{"EVP_STREAM_PARTITIONS": "6"})
	if err != nil || c.StreamPartitions != 6 {
		t.Fatalf("EVP_STREAM_PARTITIONS=6: %d, %v", c.StreamPartitions, err)
	}
	c, err = load(t, map[string]string{"EVP_STREAM_PARTITIONS": "6"}, "--stream-partitions", "3")
	if err != nil || c.StreamPartitions != 3 {
		t.Fatalf("flag over env: %d, %v", c.StreamPartitions, err)
	}
	for _, v := range []string{"0", "257", "-1", "x"} {
		_, err := load(t, map[string]string{"EVP_STREAM_PARTITIONS": v})
		var ce *Error
		if !errors.As(err, &ce) || ce.Setting != "EVP_STREAM_PARTITIONS" || ce.Value != v {
			t.Errorf("EVP_STREAM_PARTITIONS=%s: %v, want an error naming the setting", v, err)
		}
	}
	_, err = load(t, map[string]string{"EVP_STREAM_PARTITIONS": "3", "EVP_STREAM": "{evp}events"})
	var ce *Error
	if !errors.As(err, &ce) || ce.Setting != "EVP_STREAM_PARTITIONS" {
		t.Errorf("hash tag in EVP_STREAM with 3 partitions: %v", err)
	}
	if _, err := load(t, map[string]string{"EVP_STREAM": "{evp}events"}); err != nil {
		t.Errorf("hash tag in EVP_STREAM with 1 partition: %v", err)
	}
}

func TestRedisCluster(t *testing.T) {
	c, err := load(t, map[string]string{"REDIS_URL": "redis://10.0.0.1:7000", "EVP_REDIS_CLUSTER": "true"})
	if err != nil || !c.RedisCluster {
		t.Fatalf("EVP_REDIS_CLUSTER=true: %v, %v", c, err)
	}
	_, err = load(t, map[string]string{"EVP_REDIS_CLUSTER": "true"})
	var ce *Error
	if !errors.As(err, &ce) || ce.Setting != "EVP_REDIS_CLUSTER" {
		t.Errorf("EVP_REDIS_CLUSTER without REDIS_URL: %v", err)
	}
}
