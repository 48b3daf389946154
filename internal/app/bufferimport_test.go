package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/queue/logqueue"
	"github.com/evp-dev/evp/internal/sqlitedb"
)

// A data directory from a version with the SQLite buffer: its waiting entries move into
// the log, in order, and buffer.db goes.
func TestImportSQLiteBuffer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlitedb.Open(filepath.Join(dir, "buffer.db"), sqlitedb.SyncFull, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The old buffer's table, as its migration created it.
	if _, err := db.Exec(`CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, data BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)`); err != nil {
		t.Fatal(err)
	}
	const n = 2500
	for i := range n {
		if _, err := db.Exec(`INSERT INTO entries(event_id, data) VALUES (?, ?)`, fmt.Sprintf("old-%04d", i), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	lq, err := logqueue.Open(ctx, filepath.Join(dir, "buffer"), logqueue.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lq.Close()
	if err := importSQLiteBuffer(ctx, dir, lq, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("import: %v", err)
	}
	for _, name := range []string{"buffer.db", "buffer.db-wal", "buffer.db-shm"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s still there after the import (%v)", name, err)
		}
	}
	got := 0
	for got < n {
		msgs, err := lq.Fetch(ctx, 1000, time.Second)
		if err != nil || len(msgs) == 0 {
			t.Fatalf("fetched %d of %d imported entries (%v)", got, n, err)
		}
		for _, m := range msgs {
			if want := fmt.Sprintf("old-%04d", got); m.EventID != want || string(m.Data) != fmt.Sprintf(`{"n":%d}`, got) {
				t.Fatalf("entry %d = %s %s, want %s", got, m.EventID, m.Data, want)
			}
			got++
		}
	}
	// Nothing left to import the second time.
	if err := importSQLiteBuffer(ctx, dir, lq, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if s, _ := lq.Stats(ctx); s.TotalEnqueued != n {
		t.Errorf("TotalEnqueued %d after a second import, want %d", s.TotalEnqueued, n)
	}
}
