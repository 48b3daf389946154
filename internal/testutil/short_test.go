package testutil_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evp-dev/evp/internal/testutil"
	"github.com/evp-dev/evp/internal/testutil/ferret"
)

// shortHelpers are the helpers that reach a service or start a process.
var shortHelpers = map[string]func(t *testing.T){
	"Redis":            func(t *testing.T) { testutil.Redis(t) },
	"PostgresDB":       func(t *testing.T) { testutil.PostgresDB(t) },
	"StartRedisServer": func(t *testing.T) { testutil.StartRedisServer(t) },
	"RedisCluster":     func(t *testing.T) { testutil.RedisCluster(t, 3) },
	"Tmpfs":            func(t *testing.T) { testutil.Tmpfs(t, filepath.Join(t.TempDir(), "fs"), 1<<20) },
	"ferret.Start":     func(t *testing.T) { ferret.Start(t) },
}

// TestHelperShort is not a test: TestShortSkipsServicesAndProcesses runs it with -short in a
// process of its own, and every helper must skip there.
func TestHelperShort(t *testing.T) {
	if os.Getenv("EVP_TESTUTIL_SHORT_HELPER") != "1" {
		return
	}
	for name, helper := range shortHelpers {
		t.Run(name, func(t *testing.T) {
			helper(t)
			t.Error("ran under -short")
		})
	}
}

// Under -short every helper that reaches a service or starts a process skips the test and
// says why, even where CI requires the services (EVP_REQUIRE_SERVICES=1).
func TestShortSkipsServicesAndProcesses(t *testing.T) {
	testutil.SkipShort(t, "starts a test process")
	cmd := exec.Command(os.Args[0], "-test.short", "-test.v", "-test.run=^TestHelperShort$")
	cmd.Env = append(os.Environ(), "EVP_TESTUTIL_SHORT_HELPER=1", "EVP_REQUIRE_SERVICES=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helpers under -short: %v\n%s", err, out)
	}
	for name := range shortHelpers {
		if !strings.Contains(string(out), "--- SKIP: TestHelperShort/"+name+" ") {
			t.Errorf("%s did not skip under -short:\n%s", name, out)
		}
	}
	if n := strings.Count(string(out), "-short: "); n != len(shortHelpers) {
		t.Errorf("%d skip reasons naming -short, want %d:\n%s", n, len(shortHelpers), out)
	}
}
