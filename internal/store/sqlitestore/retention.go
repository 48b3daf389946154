package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// pruneChunk bounds the rows one pruning transaction deletes, so that inserts (which share
// the single write connection) wait at most one short transaction.
const pruneChunk = 5000

// Prune deletes events whose event time is before cutoff (but the newest row: see
// pruneSQL) and lowers the stored-event counters to match (EVP_RETENTION_DAYS); the analytics engine then forgets them (every
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

// pruneSQL deletes up to a number of events before a time (its indexHour bounds them first,
// through events_hour), never the row of the highest seq: SQLite numbers a new row one past
// the highest left, and a later event that took a deleted seq would be skipped by every
// feed that reads by seq. That row goes at a later prune, once a newer one is stored; the
// analytics never count it (it is before the cut-off). The unary + keeps the planner on
// events_hour rather than the seq range.
const pruneSQL = `DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ` + hourExpr + ` <= ? AND ts < ?
	AND +seq < (SELECT MAX(seq) FROM events) LIMIT ?) RETURNING event_type`

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
	rows, err := tx.QueryContext(ctx, pruneSQL, indexHour(cut), cut, pruneChunk)
	if err != nil {
		return 0, err
	}
	byType := map[string]int64{}
	for rows.Next() {
		var t string
		if err = rows.Scan(&t); err != nil {
			rows.Close()
			return 0, err
		}
		byType[t]++
		n++
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, tx.Commit()
	}
	if _, err = tx.ExecContext(ctx, `UPDATE counters SET value = value - ? WHERE name = 'events'`, n); err != nil {
		return 0, err
	}
	for t, c := range byType {
		if _, err = tx.ExecContext(ctx, `UPDATE counters SET value = value - ? WHERE name = 'type:' || ?`, c, t); err != nil {
			return 0, err
		}
	}
	return n, tx.Commit()
}
