package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// pruneChunk bounds the rows one pruning transaction deletes, so that inserts (which share
// the single write connection) wait at most one short transaction.
const pruneChunk = 5000

// Prune deletes events whose event time is before cutoff and lowers the stored-event
// counters to match (EVP_RETENTION_DAYS); the analytics engine then forgets them (every
// process's, at its next feed: the cut-off is in the counters) and persists the hour the
// cut-off falls in again. It works in short transactions and returns how many events it
// deleted.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	cut := cutoff.UnixNano()
	// Before the deletes, so that no query relies on the engine's copy of deleted events.
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO counters(name, value) VALUES ('retention_cutoff', ?)
		ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)`, cut); err != nil {
		return 0, fmt.Errorf("sqlitestore: prune: %w", err)
	}
	if err := s.feed(ctx); err != nil {
		return 0, fmt.Errorf("sqlitestore: prune: %w", err)
	}
	var total int64
	for {
		n, err := s.pruneChunk(ctx, cut)
		total += n
		if err != nil {
			return total, fmt.Errorf("sqlitestore: prune: %w", err)
		}
		if n < pruneChunk {
			break
		}
	}
	if err := s.seal(ctx, false); err != nil {
		return total, fmt.Errorf("sqlitestore: prune: %w", err)
	}
	return total, nil
}

// pruneWhere picks up to a number of events before a time (its indexHour bounds them first,
// through events_hour), not the placeholder.
const pruneWhere = `seq IN (SELECT seq FROM events WHERE ` + hourExpr + ` <= ? AND ts < ? AND ts <> ? LIMIT ?)`

// pruneChunk deletes up to pruneChunk events before cut in one transaction.
func (s *Store) pruneChunk(ctx context.Context, cut int64) (n int64, err error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if n, _, err = deleteEvents(ctx, tx, pruneWhere, indexHour(cut), cut, int64(placeholderTS), pruneChunk); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}
