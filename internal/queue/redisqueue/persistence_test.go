package redisqueue

import (
	"log/slog"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// Open reads Redis's persistence settings and warns when a restart or a crash of Redis
// loses buffered events; when CONFIG is refused it says it cannot tell.
func TestPersistenceCheck(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		level slog.Level
		msg   string
	}{
		{"none", nil, slog.LevelWarn, "redis persistence is off"},
		{"snapshots only", []string{"--save", "3600 1"}, slog.LevelWarn, "redis append-only file is off"},
		{"aof without fsync", []string{"--appendonly", "yes", "--appendfsync", "no"}, slog.LevelWarn, "redis leaves fsync"},
		{"aof everysec", []string{"--appendonly", "yes"}, slog.LevelInfo, "redis persistence"},
		{"eviction", []string{"--appendonly", "yes", "--maxmemory-policy", "allkeys-lru"}, slog.LevelWarn, "redis may evict"},
		{"config refused", []string{"--rename-command", "CONFIG", ""}, slog.LevelInfo, "redis persistence unknown"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := testutil.StartRedisServer(t, c.args...)
			logs := &records{}
			open(t, Options{URL: srv.URL(), WatchEvery: time.Hour, Log: slog.New(logs)})
			if got := logs.find(c.level, c.msg); len(got) != 1 {
				t.Errorf("%d log lines %s %q, want 1", len(got), c.level, c.msg)
			}
			warnings := len(logs.find(slog.LevelWarn, ""))
			if want := map[bool]int{true: 1, false: 0}[c.level == slog.LevelWarn]; warnings != want {
				t.Errorf("%d warnings, want %d", warnings, want)
			}
		})
	}
}
