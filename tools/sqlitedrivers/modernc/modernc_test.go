// Package modernc benchmarks modernc.org/sqlite (pure Go: SQLite's C translated to Go).
package modernc

import (
	"os"
	"testing"

	"github.com/evp-dev/evp/tools/sqlitedrivers/workload"
	_ "modernc.org/sqlite"
)

// driver's DSN sets the pragmas with _pragma=name(value); _txlock is modernc's own key.
var driver = workload.Driver{
	Name: "sqlite",
	DSN: func(path, sync string) string {
		return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync +
			")&_pragma=foreign_keys(on)&_txlock=immediate"
	},
}

func TestMain(m *testing.M) {
	code := m.Run()
	workload.Cleanup()
	os.Exit(code)
}

func TestWorkload(t *testing.T) { workload.Check(t, driver) }

func BenchmarkInsert(b *testing.B) {
	for _, sync := range []string{"NORMAL", "FULL"} {
		b.Run(sync, func(b *testing.B) { workload.BenchInsert(b, driver, sync) })
	}
}

func BenchmarkRead(b *testing.B) { workload.BenchRead(b, driver) }
