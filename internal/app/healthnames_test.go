package app

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/evp-dev/evp/internal/testutil"
	"github.com/evp-dev/evp/internal/testutil/ferret"
)

// /api/health names every backend in use: the embedded ones by evp's own names, and the
// servers the original system also used by its names (redis, mongodb, postgres), which its
// dashboard looks for.
func TestHealthNamesPerBackendMix(t *testing.T) {
	cases := []struct {
		name string
		env  func(t *testing.T) map[string]string
		want []string
	}{
		{"embedded", func(*testing.T) map[string]string { return nil },
			[]string{"accountStore", "buffer", "eventStore"}},
		{"Redis and PostgreSQL", func(t *testing.T) map[string]string {
			prefix := testutil.RedisPrefix(t, testutil.Redis(t))
			return map[string]string{"REDIS_URL": testutil.RedisURL(), "EVP_STREAM": prefix + "events_stream",
				"EVP_REDIS_PREFIX": prefix, "DATABASE_URL": testutil.PostgresDB(t), "JWT_SECRET": strings.Repeat("k", 40)}
		}, []string{"accountStore", "eventStore", "postgres", "redis"}},
		{"MongoDB", func(t *testing.T) map[string]string {
			return map[string]string{"MONGO_URI": ferret.Start(t).URI(), "MONGO_DATABASE": "evphealth"}
		}, []string{"accountStore", "buffer", "mongodb"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := start(t, "", c.env(t))
			r := in.do("GET", "/api/health", nil, noKey())
			services, _ := r.body["services"].(map[string]any)
			if got := slices.Sorted(maps.Keys(services)); r.status != 200 || !slices.Equal(got, c.want) {
				t.Fatalf("health: %d, services %v, want %v: %s", r.status, got, c.want, r.raw)
			}
			for name, s := range services {
				if s.(map[string]any)["status"] != "up" {
					t.Errorf("%s: %v, want up", name, s)
				}
			}
		})
	}
}
