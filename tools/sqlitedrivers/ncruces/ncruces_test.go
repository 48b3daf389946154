// Package ncruces benchmarks github.com/ncruces/go-sqlite3 (pure Go: a Wasm build of SQLite
// translated to Go by wasm2go). Its driver registers "sqlite3", the name mattn's registers,
// which is why every driver has a package (a test binary) of its own.
package ncruces

import (
	"os"
	"testing"

	"github.com/evp-dev/evp/tools/sqlitedrivers/workload"
	_ "github.com/ncruces/go-sqlite3/driver"
)

// driver's DSN sets the pragmas with _pragma=name(value); _txlock=immediate is the
// driver's default, spelled out.
var driver = workload.Driver{
	Name: "sqlite3",
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
