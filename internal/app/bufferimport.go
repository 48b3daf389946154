package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/logqueue"
	"github.com/evp-dev/evp/internal/sqlitedb"
)

// importSQLiteBuffer moves what an older evp left in its SQLite buffer (dataDir/buffer.db)
// into the log, then deletes that file. A crash half-way imports the whole file again at
// the next start: the store keeps each event once, so that costs only time. Delivery
// counts start again from zero.
func importSQLiteBuffer(ctx context.Context, dataDir string, lq *logqueue.Queue, log *slog.Logger) error {
	path := filepath.Join(dataDir, "buffer.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := sqlitedb.Open(path, sqlitedb.SyncFull, 1)
	if err != nil {
		return fmt.Errorf("import old buffer %s: %w", path, err)
	}
	n, err := func() (int, error) {
		defer db.Close()
		var exists int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='entries'`).Scan(&exists); err != nil || exists == 0 {
			return 0, err
		}
		rows, err := db.QueryContext(ctx, `SELECT event_id, data FROM entries ORDER BY id`)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		var batch []queue.Entry
		n := 0
		flush := func() error {
			err := lq.Enqueue(ctx, batch)
			n += len(batch)
			batch = nil
			return err
		}
		for rows.Next() {
			var e queue.Entry
			if err := rows.Scan(&e.EventID, &e.Data); err != nil {
				return n, err
			}
			if batch = append(batch, e); len(batch) == 1000 {
				if err := flush(); err != nil {
					return n, err
				}
			}
		}
		if err := rows.Err(); err != nil {
			return n, err
		}
		return n, flush()
	}()
	if err != nil {
		return fmt.Errorf("import old buffer %s: %w", path, err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("import old buffer: %w", err)
		}
	}
	_ = os.Remove(filepath.Join(dataDir, "buffer.lock")) // the old buffer's lock: a leftover is harmless
	log.Info("buffer: moved the entries of the old SQLite buffer into the log", "entries", n, "from", path, "to", lq.Dir())
	return nil
}
