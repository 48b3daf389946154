// Package sqlitedb opens the embedded SQLite databases with the settings evp relies on and
// applies versioned migrations.
//
// Driver: github.com/mattn/go-sqlite3 (cgo, the SQLite C library itself). It was chosen over
// the pure-Go modernc.org/sqlite because bulk inserts are the embedded hot path and the C
// library is the faster of the two; gcc is part of the build environment.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// Sync chooses how hard SQLite pushes a commit to disk.
type Sync string

const (
	// SyncFull fsyncs the WAL on every commit: a commit survives power loss.
	SyncFull Sync = "FULL"
	// SyncNormal leaves the fsync to checkpoints: a commit survives a killed process, not
	// a power cut.
	SyncNormal Sync = "NORMAL"
)

// Open opens (creating if needed) the database at path in WAL mode with a busy timeout.
// maxConns bounds the pool; 1 makes the handle a single serialized writer. Transactions
// begin IMMEDIATE: they take the write lock at once, so that two writers never deadlock
// upgrading a read.
func Open(path string, sync Sync, maxConns int) (*sql.DB, error) {
	return open(path, sync, maxConns, "immediate", false)
}

// OpenReader opens a pool for reads only, beside a writer from Open. Its transactions begin
// DEFERRED, as plain reads of one snapshot: a reader that began IMMEDIATE (database/sql's
// ReadOnly option does not change that with this driver) held the write lock for as long as
// it read, so that a long analytics query or the event digest's warm-up stopped every insert
// meanwhile. Writes through it fail (query_only).
func OpenReader(path string, sync Sync, maxConns int) (*sql.DB, error) {
	return open(path, sync, maxConns, "deferred", true)
}

func open(path string, sync Sync, maxConns int, txlock string, queryOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", string(sync))
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", txlock)
	// Deleted rows are zeroed where that costs no extra write (their page is written
	// anyway): deletions on request should not leave the data readable in the file.
	q.Set("_secure_delete", "FAST")
	if queryOnly {
		q.Set("_query_only", "on")
	}
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	return db, nil
}

// Migration is one schema step. Versions start at 1 and increase by one.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrate applies, in order and each in its own transaction, the migrations whose version
// is above the one recorded in schema_migrations. It returns how many it applied.
func Migrate(ctx context.Context, db *sql.DB, migrations []Migration) (int, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("sqlitedb: create schema_migrations: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, fmt.Errorf("sqlitedb: read schema version: %w", err)
	}
	applied := 0
	for i, m := range migrations {
		if m.Version != i+1 {
			return applied, fmt.Errorf("sqlitedb: migration %q has version %d, want %d", m.Name, m.Version, i+1)
		}
		if m.Version <= current {
			continue
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return applied, fmt.Errorf("sqlitedb: migration %d: %w", m.Version, err)
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			tx.Rollback()
			return applied, fmt.Errorf("sqlitedb: migration %d (%s): %w", m.Version, m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UTC().Format(time.RFC3339)); err != nil {
			tx.Rollback()
			return applied, fmt.Errorf("sqlitedb: record migration %d: %w", m.Version, err)
		}
		if err := tx.Commit(); err != nil {
			return applied, fmt.Errorf("sqlitedb: commit migration %d: %w", m.Version, err)
		}
		applied++
	}
	return applied, nil
}
