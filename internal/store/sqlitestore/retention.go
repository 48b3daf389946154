package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// pruneChunk bounds the rows one pruning transaction deletes, so that inserts (which share
// the single write connection) wait at most one short transaction.
const pruneChunk = 5000

// Prune deletes events whose event time is before cutoff, with their minute and hour
// rollups, and lowers the stored-event counters to match (EVP_RETENTION_DAYS). It works in
// short transactions and returns how many events it deleted.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	cut := cutoff.UnixNano()
	// Before the deletes, so that no query relies on the digest's copy of deleted events:
	// this process's digest at once, the others' when they next read the cut-off.
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO counters(name, value) VALUES ('retention_cutoff', ?)
		ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)`, cut); err != nil {
		return 0, fmt.Errorf("sqlitestore: prune: %w", err)
	}
	s.digest.mu.Lock()
	s.digest.applyCutoff(cut)
	s.digest.mu.Unlock()
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
	cutMin := floorDiv(cutoff.Unix(), 60)
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{`DELETE FROM rollup_minute WHERE minute < ?`, cutMin},
		{`DELETE FROM sketch_minute WHERE minute < ?`, cutMin},
		{`DELETE FROM sketch_hour WHERE hour < ?`, floorDiv(cutMin, 60)},
		{`DELETE FROM user_minute WHERE minute < ?`, cutMin},
		{`DELETE FROM user_hour WHERE hour < ?`, floorDiv(cutMin, 60)},
		// Their generations go too, so that cached counts of those units are dropped.
		{`DELETE FROM rollup_gen WHERE hour = 0 AND unit < ?`, cutMin},
		{`DELETE FROM rollup_gen WHERE hour = 1 AND unit < ?`, floorDiv(cutMin, 60)},
		// The minute and hour the cutoff falls in lost events: a new generation for them
		// (negative, unlike any build's) makes cached results of them be computed again.
		{`UPDATE rollup_gen SET seq = -ABS(seq) - 1 WHERE hour = 0 AND unit = ?`, cutMin},
		{`UPDATE rollup_gen SET seq = -ABS(seq) - 1 WHERE hour = 1 AND unit = ?`, floorDiv(cutMin, 60)},
	} {
		if _, err := s.wdb.ExecContext(ctx, q.sql, q.arg); err != nil {
			return total, fmt.Errorf("sqlitestore: prune rollups: %w", err)
		}
	}
	return total, nil
}

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
	rows, err := tx.QueryContext(ctx, `DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts < ? LIMIT ?) RETURNING event_type`, cut, pruneChunk)
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
