// Package mattn benchmarks github.com/mattn/go-sqlite3 (cgo: the SQLite C library), the
// driver evp uses.
package mattn

import (
	"os"
	"testing"

	"github.com/evp-dev/evp/tools/sqlitedrivers/workload"
	_ "github.com/mattn/go-sqlite3"
)

// driver's DSN is the one internal/sqlitedb builds: mattn's own underscore keys.
var driver = workload.Driver{
	Name: "sqlite3",
	DSN: func(path, sync string) string {
		return "file:" + path + "?_journal_mode=WAL&_synchronous=" + sync +
			"&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate"
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
