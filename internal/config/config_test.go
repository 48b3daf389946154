package config

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
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

func TestByteLimits(t *testing.T) {
	c, err := load(t, nil)
	if err != nil || c.BufferMaxBytes != 1<<30 || c.InflightMaxBytes != 128<<20 || c.StreamMaxLen != 1_000_000 {
		t.Fatalf("defaults: buffer %d, inflight %d, stream %d, %v", c.BufferMaxBytes, c.InflightMaxBytes, c.StreamMaxLen, err)
	}
	c, err = load(t, map[string]string{"EVP_BUFFER_MAX_BYTES": "64MiB", "EVP_STREAM_MAX_LEN": "0"}, "--inflight-max-bytes", "6 MB")
	if err != nil || c.BufferMaxBytes != 64<<20 || c.InflightMaxBytes != 6_000_000 || c.StreamMaxLen != 0 {
		t.Fatalf("64MiB, 6 MB, 0: buffer %d, inflight %d, stream %d, %v", c.BufferMaxBytes, c.InflightMaxBytes, c.StreamMaxLen, err)
	}
	for _, tc := range []struct{ env, value string }{
		{"EVP_BUFFER_MAX_BYTES", "1KiB"}, {"EVP_BUFFER_MAX_BYTES", "lots"}, {"EVP_BUFFER_MAX_BYTES", "-5"},
		{"EVP_STREAM_MAX_LEN", "10"}, {"EVP_STREAM_MAX_LEN", "-1"},
		{"EVP_INFLIGHT_MAX_BYTES", "2MiB"}, // below EVP_MAX_BODY_BYTES (5 MiB)
	} {
		_, err := load(t, map[string]string{tc.env: tc.value})
		var ce *Error
		if !errors.As(err, &ce) || ce.Setting != tc.env {
			t.Errorf("%s=%s: %v, want an error naming the setting", tc.env, tc.value, err)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	_, err := load(t, map[string]string{"EVP_TRUSTED_PROXIES": "10.1.2.3"})
	if ce := (*Error)(nil); !errors.As(err, &ce) || ce.Setting != "EVP_TRUSTED_PROXIES" {
		t.Errorf("EVP_TRUSTED_PROXIES without EVP_TRUST_PROXY: %v, want an error naming it", err)
	}
	c, err := load(t, map[string]string{"EVP_TRUST_PROXY": "true", "EVP_TRUSTED_PROXIES": "10.1.2.3, 192.168.0.0/16,fd00::/8"})
	if err != nil || len(c.TrustedProxies) != 3 {
		t.Fatalf("three proxies: %v, %v", c.TrustedProxies, err)
	}
	if got := c.TrustedProxies[0].String(); got != "10.1.2.3/32" {
		t.Errorf("a bare address is its own /32: %s", got)
	}
	for _, v := range []string{"10.0.0.0/33", "proxy.local", "10.0.0.1/8/2"} {
		_, err := load(t, map[string]string{"EVP_TRUST_PROXY": "true", "EVP_TRUSTED_PROXIES": v})
		var ce *Error
		if !errors.As(err, &ce) || ce.Setting != "EVP_TRUSTED_PROXIES" {
			t.Errorf("EVP_TRUSTED_PROXIES=%s: %v", v, err)
		}
	}
}

// The help of a setting with a fixed set of values names every value the setting accepts.
func TestUsageNamesEveryAcceptedValue(t *testing.T) {
	var out bytes.Buffer
	Usage(&out, "evp")
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "--") {
			lines[f[0]] = l
		}
	}
	for flag, values := range map[string][]string{
		"env":         {"development", "production", "test"},
		"log-level":   {"debug", "info", "warn", "error"},
		"log-format":  {"auto", "json", "text"},
		"buffer-sync": {"full", "normal"},
		"store-sync":  {"full", "normal"},
	} {
		line, ok := lines["--"+flag]
		if !ok {
			t.Errorf("help has no line for --%s:\n%s", flag, out.String())
			continue
		}
		for _, v := range values {
			if _, err := load(t, map[string]string{"JWT_SECRET": strings.Repeat("k", 32)}, "--"+flag, v); err != nil {
				t.Errorf("--%s %s: %v", flag, v, err)
			}
			if !regexp.MustCompile(`\b` + v + `\b`).MatchString(line) {
				t.Errorf("help of --%s omits %q, which it accepts: %s", flag, v, line)
			}
		}
	}
}
