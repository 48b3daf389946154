package sqlitedb

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A reader's transaction is a snapshot that does not hold the write lock: the writer commits
// while it is open (before, each waited for the other up to the busy timeout), the reader
// keeps seeing what it saw, and the reader cannot write.
func TestReaderDoesNotBlockWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	w, err := Open(path, SyncNormal, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := OpenReader(path, SyncNormal, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.ExecContext(ctx, `CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	tx, err := r.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("count %d, %v", n, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	wtx, err := w.BeginTx(wctx, nil)
	if err != nil {
		t.Fatalf("writer could not begin while a reader's transaction is open: %v", err)
	}
	if _, err := wtx.ExecContext(wctx, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	if err := wtx.Commit(); err != nil {
		t.Fatalf("writer could not commit while a reader's transaction is open: %v", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("inside the reader's transaction: count %d, %v; want its snapshot's 1", n, err)
	}
	tx.Rollback()
	if err := r.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("after: count %d, %v; want 2", n, err)
	}
	if _, err := r.ExecContext(ctx, `INSERT INTO t VALUES (3)`); err == nil {
		t.Fatal("a write through the reader succeeded")
	}
}
