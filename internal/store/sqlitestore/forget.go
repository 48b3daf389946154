package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/evp-dev/evp/internal/blocks"
	"github.com/evp-dev/evp/internal/store"
)

// Forgetting a user (store.Forgetter): their rows are deleted a chunk at a time, and each
// chunk's transaction also lowers the counters and records in analytics_forget the hours
// it touched (no user id). Every process's engine reads that log and rebuilds those hours
// from the events table (the deleting process before it answers, the others in the
// background, starting within a second), then drops the names nothing refers to any
// more from its dictionaries; the persisted blocks carry the last entry they reflect
// (blocks_forget), so a start after a crash rebuilds what was not persisted.
//
// SQLite numbers a new row one past the highest seq left, so deleting the row of the
// highest seq would let a later event take its seq, and every feed that had read up to it
// would skip that event. That row becomes a placeholder instead (deleteEvents, for
// retention too): no id, no user, no type, stamped before any event time (placeholderTS),
// which feeds and readers skip and no counter counts. There is one at most; the next
// deletion removes it once a newer row exists.

// placeholderTS is the event time of the placeholder row: before event.MinTime, so before
// every event and every range a reader asks.
const placeholderTS = math.MinInt64

// forgetChunk bounds the rows one forget transaction deletes.
const forgetChunk = 5000

// forgetApplyTimeout bounds one background pass applying deletions: rebuilding every hour
// of a user active all along reads the whole events table.
const forgetApplyTimeout = 10 * time.Minute

var _ store.Forgetter = (*Store)(nil)

// ForgetUser implements store.Forgetter. The user's rows are found through the hours the
// analytics engine has them in (fed first), or the whole table when the engine cannot tell
// (its dictionary refused names); and among the rows before the retention cut-off, which
// the engine no longer holds and the next prune would delete.
func (s *Store) ForgetUser(ctx context.Context, userID string) (n int64, err error) {
	if err := s.feed(ctx); err != nil {
		return 0, err
	}
	// Every page the deletion frees is zeroed too (not only the rows within pages written
	// anyway), and the log is emptied into the file at the end: no copy of the user's rows
	// or name stays readable. One write connection: the setting holds for this call's writes.
	if _, err := s.wdb.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return 0, fmt.Errorf("sqlitestore: forget: %w", err)
	}
	defer func() {
		_, e1 := s.wdb.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = FAST`)
		_, e2 := s.wdb.ExecContext(context.WithoutCancel(ctx), `PRAGMA wal_checkpoint(TRUNCATE)`)
		if err == nil && errors.Join(e1, e2) != nil {
			err = fmt.Errorf("sqlitestore: forget: %w", errors.Join(e1, e2))
		}
	}()
	seqs, err := s.userSeqs(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: forget: %w", err)
	}
	var total int64
	for len(seqs) > 0 {
		n := min(len(seqs), forgetChunk)
		deleted, err := s.forgetChunk(ctx, userID, seqs[:n])
		total += deleted
		if err != nil {
			return total, fmt.Errorf("sqlitestore: forget: %w", err)
		}
		seqs = seqs[n:]
	}
	// The engine rebuilds the hours now (waiting for a call applying deletions already), so
	// that the answer comes after analytics stopped counting the events; then the new
	// blocks and dictionaries are persisted.
	s.an.forgetMu.Lock()
	err = s.applyForgets(ctx)
	s.an.forgetMu.Unlock()
	if err != nil {
		return total, err
	}
	if err := s.seal(ctx, false); err != nil {
		return total, fmt.Errorf("sqlitestore: forget: %w", err)
	}
	letters, err := store.ForgetDeadLetters(ctx, s, userID)
	return total + int64(letters), err
}

// userSeqs returns the seqs of the user's stored events.
func (s *Store) userSeqs(ctx context.Context, user string) ([]int64, error) {
	snap := s.an.eng.Snapshot()
	if _, _, decided := snap.HourBefore(user, "", math.MaxInt64); !decided {
		return s.querySeqs(ctx, `SELECT seq FROM events WHERE user_id = ?`, user)
	}
	cut := s.an.cutoff.Load()
	out, err := s.querySeqs(ctx, `SELECT seq FROM events WHERE `+hourExpr+` <= ? AND ts < ? AND user_id = ?`, indexHour(cut), cut, user)
	if err != nil {
		return nil, err
	}
	for before := int64(math.MaxInt64); ; {
		h, ok, _ := snap.HourBefore(user, "", before)
		if !ok {
			return out, nil
		}
		seqs, err := s.querySeqs(ctx, `SELECT seq FROM events WHERE `+hourExpr+` BETWEEN ? AND ? AND ts >= ? AND ts < ? AND user_id = ?`,
			indexHour(h*hourNs), indexHour((h+1)*hourNs-1), h*hourNs, (h+1)*hourNs, user)
		if err != nil {
			return nil, err
		}
		out = append(out, seqs...)
		before = h
	}
}

// forgetChunk deletes the user's rows among seqs in one transaction, with the log entry
// of the hours they were in, and returns how many it deleted.
func (s *Store) forgetChunk(ctx context.Context, user string, seqs []int64) (n int64, err error) {
	list, _ := json.Marshal(seqs)
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	n, hours, err := deleteEvents(ctx, tx, `seq IN (SELECT value FROM json_each(?)) AND user_id = ?`, string(list), user)
	if err != nil || n == 0 {
		return 0, errors.Join(err, tx.Commit())
	}
	hourList, _ := json.Marshal(slices.Sorted(maps.Keys(hours)))
	if _, err = tx.ExecContext(ctx, `INSERT INTO analytics_forget(hours, at) VALUES (?, ?)`, string(hourList), time.Now().UnixNano()); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// deleteEvents deletes, in tx, the rows of events that where (a condition on its columns,
// with args) picks, and keeps what the store relies on: the counters lowered, the row of
// the highest seq replaced by the placeholder, an older placeholder gone once a newer row
// exists. It returns how many events it deleted and the Unix hours of their event times.
func deleteEvents(ctx context.Context, tx *sql.Tx, where string, args ...any) (n int64, hours map[int64]bool, err error) {
	var top int64
	if err = tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&top); err != nil {
		return 0, nil, err
	}
	if _, err = tx.ExecContext(ctx, `DELETE FROM events WHERE event_id = '' AND seq < ?`, top); err != nil {
		return 0, nil, err
	}
	rows, err := tx.QueryContext(ctx, `DELETE FROM events WHERE `+where+` RETURNING seq, event_type, ts`, args...)
	if err != nil {
		return 0, nil, err
	}
	byType, hours, hadTop := map[string]int64{}, map[int64]bool{}, false
	for rows.Next() {
		var seq, ts int64
		var typ string
		if err = rows.Scan(&seq, &typ, &ts); err != nil {
			rows.Close()
			return 0, nil, err
		}
		byType[typ]++
		hours[blocks.HourOf(ts)] = true
		hadTop = hadTop || seq == top
		n++
	}
	rows.Close()
	if err = rows.Err(); err != nil || n == 0 {
		return 0, nil, err
	}
	if hadTop {
		if _, err = tx.ExecContext(ctx, `INSERT INTO events(seq, event_id, event_type, user_id, session_id, ts, priority, received_at, processed_at)
			VALUES (?, '', '', '', '', ?, 0, 0, 0)`, top, int64(placeholderTS)); err != nil {
			return 0, nil, err
		}
	}
	return n, hours, lowerCounters(ctx, tx, n, byType)
}

// lowerCounters takes n deleted events, byType of each type, off the stored-event counters.
func lowerCounters(ctx context.Context, tx *sql.Tx, n int64, byType map[string]int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = value - ? WHERE name = 'events'`, n); err != nil {
		return err
	}
	for t, c := range byType {
		if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = value - ? WHERE name = 'type:' || ?`, c, t); err != nil {
			return err
		}
	}
	return nil
}

// applyForgets rebuilds the hours of the analytics_forget entries this engine has not
// applied, then drops the names no longer referred to. Each hour is rebuilt under feedMu
// after feeding the engine (it may have taken rows since deleted, from the handoff, and it
// then holds every row the entry's deletion left), and feedMu is let go between hours, so
// that queries wait one hour's rebuild at most. The hours still to rebuild are kept across
// calls (forgetHours), so that a pass cut short goes on where it stopped. Called with
// forgetMu held.
func (s *Store) applyForgets(ctx context.Context) error {
	a := &s.an
	if a.forgetHours == nil {
		a.forgetHours, a.forgetTarget = map[int64]bool{}, a.forgotten.Load()
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, hours FROM analytics_forget WHERE id > ? ORDER BY id`, a.forgetTarget)
	if err != nil {
		return fmt.Errorf("sqlitestore: analytics forget: %w", err)
	}
	hours, last := a.forgetHours, a.forgetTarget
	for rows.Next() {
		var list string
		var hs []int64
		if err := rows.Scan(&last, &list); err != nil {
			rows.Close()
			return fmt.Errorf("sqlitestore: analytics forget: %w", err)
		}
		if err := json.Unmarshal([]byte(list), &hs); err != nil {
			rows.Close()
			return fmt.Errorf("sqlitestore: analytics forget entry %d: %w", last, err)
		}
		for _, h := range hs {
			hours[h] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: analytics forget: %w", err)
	}
	a.forgetTarget = last
	if last == a.forgotten.Load() {
		return nil
	}
	for _, h := range slices.Sorted(maps.Keys(hours)) {
		a.feedMu.Lock()
		err := s.feedLocked(ctx)
		if cut := a.cutoff.Load(); err == nil && (h+1)*hourNs > cut { // else retention dropped it
			err = s.rebuildHour(ctx, h, max(cut, h*hourNs))
		}
		a.feedMu.Unlock()
		if err != nil {
			return err
		}
		delete(hours, h)
	}
	a.forgotten.Store(last)
	s.compact(true)
	return nil
}

// rebuildHour makes the engine's copy of hour the events the table holds of it from event
// time from on (up to the engine's last seq), sealed at once; the next write persists the
// block (or deletes the hour's: nil). Called with feedMu held.
func (s *Store) rebuildHour(ctx context.Context, hour, from int64) error {
	a := &s.an
	end := (hour + 1) * hourNs
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, user_id, session_id, event_type, ts FROM events
		WHERE `+hourExpr+` BETWEEN ? AND ? AND ts >= ? AND ts < ? AND seq <= ? ORDER BY seq`,
		indexHour(from), indexHour(end-1), from, end, a.eng.LastSeq())
	if err != nil {
		return fmt.Errorf("sqlitestore: analytics rebuild: %w", err)
	}
	kept, err := scanFeedRows(rows)
	if err != nil {
		return fmt.Errorf("sqlitestore: analytics rebuild: %w", err)
	}
	evs := make([]blocks.Event, len(kept))
	for i, r := range kept {
		evs[i] = toEngineEvent(r)
	}
	// Under sealMu from Replace on, so that no sealing pass seals and persists the new head
	// first (Seal would then return nil, which says the hour's block is to be deleted).
	a.sealMu.Lock()
	defer a.sealMu.Unlock()
	if err := a.eng.Replace(hour, evs); err != nil {
		return err
	}
	blk, err := a.eng.Seal(hour)
	if err != nil {
		return err
	}
	a.unpersisted[hour] = blk
	return nil
}
