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
	if err := s.recountCutUnits(ctx, cut); err != nil {
		return total, fmt.Errorf("sqlitestore: prune: recount the cut hour: %w", err)
	}
	return total, nil
}

// cutUnit is a per-user rollup unit (hour or minute) the retention cut-off falls in.
type cutUnit struct {
	table, col string
	hour       bool
	k, end     int64 // the unit, and its end in Unix ns
}

// userCount is one user's events in a unit.
type userCount struct {
	user               string
	count, last, types int64
}

// recountCutUnits counts the cut-off's minute's per-type counts, and the per-user rows of
// the hour the cut-off falls in (and of its minute, while minute rows are kept), again from
// the events retention left there: they still counted the deleted events, and so did the
// totals and topUsers over them. For the per-user rows only events the rollups
// cover are counted (seq up to rollup_seq; the builder adds later ones): this process's
// builder waits meanwhile, and a build by another process (rollup_seq moved) makes it give
// up until the next prune. The per-user counts are read from a snapshot, then written in
// one short transaction with new generations, so that cached copies are read again.
func (s *Store) recountCutUnits(ctx context.Context, cut int64) error {
	s.mem.buildMu.Lock()
	defer s.mem.buildMu.Unlock()
	cutHour, cutMin := floorDiv(cut, hourNs), floorDiv(cut, minuteNs)
	units := []cutUnit{{"user_hour", "hour", true, cutHour, (cutHour + 1) * hourNs}}
	s.mem.mu.Lock()
	keepFrom := s.mem.minuteFloor
	s.mem.mu.Unlock()
	if cutMin >= keepFrom {
		units = append(units, cutUnit{"user_minute", "minute", false, cutMin, (cutMin + 1) * minuteNs})
	}
	rtx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer rtx.Rollback()
	const rollupSeq = `SELECT value FROM counters WHERE name = 'rollup_seq'`
	var seq int64
	if err := rtx.QueryRowContext(ctx, rollupSeq).Scan(&seq); err != nil {
		return err
	}
	counts := make([][]userCount, len(units))
	for i, u := range units {
		rows, err := rtx.QueryContext(ctx, `SELECT e.user_id, COUNT(*), MAX(e.ts), COALESCE(SUM(DISTINCT 1 << b.bit), 0)
			FROM events e LEFT JOIN event_type_bits b ON b.event_type = e.event_type
			WHERE e.ts >= ? AND e.ts < ? AND e.seq <= ? GROUP BY e.user_id`, cut, u.end, seq)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c userCount
			if err := rows.Scan(&c.user, &c.count, &c.last, &c.types); err != nil {
				rows.Close()
				return err
			}
			counts[i] = append(counts[i], c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	rtx.Rollback()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The cut minute's per-type counts, which inserts keep (all its events, built or not).
	if _, err := tx.ExecContext(ctx, `DELETE FROM rollup_minute WHERE minute = ?`, cutMin); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_minute(minute, event_type, count)
		SELECT ?, event_type, COUNT(*) FROM events WHERE ts >= ? AND ts < ? GROUP BY event_type`, cutMin, cut, (cutMin+1)*minuteNs); err != nil {
		return err
	}
	for _, u := range units { // new generations: cached copies of these units are read again
		if _, err := tx.ExecContext(ctx, `UPDATE rollup_gen SET seq = -ABS(seq) - 1 WHERE hour = ? AND unit = ?`, u.hour, u.k); err != nil {
			return err
		}
	}
	var now int64
	if err := tx.QueryRowContext(ctx, rollupSeq).Scan(&now); err != nil {
		return err
	}
	if now != seq {
		return tx.Commit() // another process built meanwhile: the next prune recounts the per-user rows
	}
	for i, u := range units {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+u.table+` WHERE `+u.col+` = ?`, u.k); err != nil {
			return err
		}
		put, err := tx.PrepareContext(ctx, `INSERT INTO `+u.table+`(`+u.col+`, user_id, count, last_ts, types) VALUES (?,?,?,?,?)`)
		if err != nil {
			return err
		}
		for _, c := range counts[i] {
			if _, err := put.ExecContext(ctx, u.k, c.user, c.count, c.last, c.types); err != nil {
				_ = put.Close()
				return err
			}
		}
		_ = put.Close()
	}
	return tx.Commit()
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
