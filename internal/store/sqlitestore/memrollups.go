package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// Rollups kept in memory and written about once a second, not in every insert
// transaction:
//
//   - HyperLogLog sketches of user and session ids per minute and hour (sketch_minute,
//     sketch_hour). Reading, merging and rewriting two 16 KB sketch pairs per batch cost more
//     than the insert itself on small batches.
//   - Per-user counts per minute and hour (user_minute, user_hour: events, last event time,
//     the set of event types as bits) for topUsers. Only events actually inserted count.
//
// Nothing is lost or counted twice in a crash: each flush writes, in one transaction, the
// rollups of exactly the events with seq in (counters.rollup_seq, S] and sets rollup_seq to
// S. Open adds the events after rollup_seq again before serving. (The sketches would
// tolerate a replay anyway: adding an id twice changes nothing.)

// memFlushEvery is how often the memory rollups are written.
const memFlushEvery = time.Second

// maxCleanSketches bounds the clean (already written) sketches kept for reuse.
const maxCleanSketches = 256

// maxTypeBits is how many event types the per-user rollups can name (bits of an int64);
// rarer types beyond the first 63 seen are counted but not listed in topUsers' eventTypes.
const maxTypeBits = 63

type sketchKey struct {
	hour bool
	k    int64 // Unix minute or hour
}

type sketchEntry struct {
	pair  *sketchPair
	dirty bool
	// partial: the stored sketch could not be read when this entry was made; it is merged
	// in before the entry is written.
	partial bool
	used    uint64
}

type userKey struct {
	hour bool
	k    int64
	user string
}

type userAgg struct {
	count, last int64 // events, newest event time (Unix ns)
	types       int64 // bit i: the type with bit i in event_type_bits
}

type memRollups struct {
	// mu is held from an insert's commit until its rollups are added, and while a flush
	// takes its snapshot, so a snapshot holds exactly the events committed before it.
	mu       sync.Mutex
	sketches map[sketchKey]*sketchEntry
	users    map[userKey]*userAgg // since the last snapshot
	typeBits map[string]int       // event type -> bit
	newTypes []string             // bits assigned since the last snapshot
	// minuteFloor: user_minute rows before this minute were pruned (userMinuteKeep).
	minuteFloor int64
	tick        uint64

	flushMu sync.Mutex // one flush at a time
	stop    chan struct{}
	done    chan struct{}
}

// newRow is an event this store inserted (not a duplicate), for the per-user rollups.
type newRow struct {
	userID, eventType string
	ts                int64
}

func (s *Store) loadTypeBits(ctx context.Context) error {
	m := &s.mem
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE((SELECT value FROM counters WHERE name = 'user_minute_floor'), 0)`).Scan(&m.minuteFloor); err != nil {
		return fmt.Errorf("sqlitestore: user minute floor: %w", err)
	}
	m.typeBits = map[string]int{}
	rows, err := s.rdb.QueryContext(ctx, `SELECT event_type, bit FROM event_type_bits`)
	if err != nil {
		return fmt.Errorf("sqlitestore: type bits: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var b int
		if err := rows.Scan(&t, &b); err != nil {
			return fmt.Errorf("sqlitestore: type bits: %w", err)
		}
		m.typeBits[t] = b
	}
	return rows.Err()
}

// sketchEntry returns the entry for key, reading the stored sketch the first time. Called
// with mu held. It does not fail: an unreadable stored sketch is merged at flush time.
func (s *Store) sketchEntry(ctx context.Context, key sketchKey) *sketchEntry {
	m := &s.mem
	m.tick++
	if e := m.sketches[key]; e != nil {
		e.used = m.tick
		return e
	}
	e := &sketchEntry{pair: newPair(), used: m.tick}
	if err := s.readSketch(ctx, key, e.pair); err != nil {
		e.partial = true
	}
	m.sketches[key] = e
	return e
}

// readSketch merges the stored sketch of key (if any) into p.
func (s *Store) readSketch(ctx context.Context, key sketchKey, p *sketchPair) error {
	q := `SELECT users, sessions FROM sketch_minute WHERE minute = ?`
	if key.hour {
		q = `SELECT users, sessions FROM sketch_hour WHERE hour = ?`
	}
	var u, ss []byte
	switch err := s.rdb.QueryRowContext(ctx, q, key.k).Scan(&u, &ss); err {
	case nil:
		stored := newPair()
		if err := stored.unmarshal(u, ss); err != nil {
			return fmt.Errorf("sqlitestore: sketch %v: %w", key, err)
		}
		return p.merge(stored)
	case sql.ErrNoRows:
		return nil
	default:
		return fmt.Errorf("sqlitestore: sketch %v: %w", key, err)
	}
}

// addRollups adds a committed batch: every event's ids to the sketches (duplicates too,
// harmlessly) and the inserted rows to the per-user counts. Called with mu held.
func (s *Store) addRollups(ctx context.Context, events []event.Event, rows []newRow) {
	m := &s.mem
	var last [2]sketchKey
	var lastE [2]*sketchEntry
	for i := range events {
		ev := &events[i]
		min := unixMinute(ev.Timestamp.UnixNano())
		for lvl, key := range [2]sketchKey{{k: min}, {hour: true, k: floorDiv(min, 60)}} {
			e := lastE[lvl]
			if e == nil || last[lvl] != key {
				e = s.sketchEntry(ctx, key)
				last[lvl], lastE[lvl] = key, e
			}
			e.pair.users.Insert([]byte(ev.UserID))
			e.pair.sessions.Insert([]byte(ev.SessionID))
			e.dirty = true
		}
	}
	for _, r := range rows {
		bit, ok := m.typeBits[r.eventType]
		if !ok && len(m.typeBits) < maxTypeBits {
			bit, ok = len(m.typeBits), true
			m.typeBits[r.eventType] = bit
			m.newTypes = append(m.newTypes, r.eventType)
		}
		var mask int64
		if ok {
			mask = 1 << bit
		}
		min := unixMinute(r.ts)
		for _, key := range [2]userKey{{k: min, user: r.userID}, {hour: true, k: floorDiv(min, 60), user: r.userID}} {
			a := m.users[key]
			if a == nil {
				a = &userAgg{}
				m.users[key] = a
			}
			a.count++
			a.last = max(a.last, r.ts)
			a.types |= mask
		}
	}
}

type sketchRow struct {
	key       sketchKey
	users, ss []byte
}

// memSnapshot is what one flush writes.
type memSnapshot struct {
	sketches []sketchRow
	users    map[userKey]*userAgg
	newTypes []string
	seq      int64 // the rollups cover every event up to this seq
}

// FlushRollups writes the memory rollups: the sketches changed and the per-user counts
// gathered since the last flush, with the seq they cover.
func (s *Store) FlushRollups(ctx context.Context) error {
	m := &s.mem
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	snap, err := s.snapshot(ctx)
	if err == nil {
		err = s.writeSnapshot(ctx, snap)
	}
	if err != nil {
		s.restore(snap)
		return fmt.Errorf("sqlitestore: flush rollups: %w", err)
	}
	s.evictCleanSketches()
	return nil
}

func (s *Store) snapshot(ctx context.Context) (*memSnapshot, error) {
	m := &s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := &memSnapshot{users: m.users, newTypes: m.newTypes}
	m.users, m.newTypes = map[userKey]*userAgg{}, nil
	for k, e := range m.sketches {
		if !e.dirty {
			continue
		}
		if e.partial {
			if err := s.readSketch(ctx, k, e.pair); err != nil {
				return snap, err
			}
			e.partial = false
		}
		u, err := e.pair.users.MarshalBinary()
		if err != nil {
			return snap, fmt.Errorf("sqlitestore: sketch: %w", err)
		}
		ss, err := e.pair.sessions.MarshalBinary()
		if err != nil {
			return snap, fmt.Errorf("sqlitestore: sketch: %w", err)
		}
		snap.sketches = append(snap.sketches, sketchRow{k, u, ss})
		e.dirty = false
	}
	// Every committed insert has added its rollups (commit and add happen under mu), so
	// the newest committed seq is what this snapshot covers.
	err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&snap.seq)
	return snap, err
}

// restore puts a snapshot that was not written back, so that the next flush writes it.
func (s *Store) restore(snap *memSnapshot) {
	if snap == nil {
		return
	}
	m := &s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range snap.sketches {
		if e := m.sketches[r.key]; e != nil {
			e.dirty = true
		}
	}
	for k, a := range snap.users {
		cur := m.users[k]
		if cur == nil {
			m.users[k] = a
			continue
		}
		cur.count += a.count
		cur.last = max(cur.last, a.last)
		cur.types |= a.types
	}
	m.newTypes = append(snap.newTypes, m.newTypes...)
}

func (s *Store) writeSnapshot(ctx context.Context, snap *memSnapshot) (err error) {
	if len(snap.sketches) == 0 && len(snap.users) == 0 && len(snap.newTypes) == 0 {
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	minPut, hourPut := tx.StmtContext(ctx, s.minSketchPut), tx.StmtContext(ctx, s.hourSketchPut)
	for _, r := range snap.sketches {
		put := minPut
		if r.key.hour {
			put = hourPut
		}
		if _, err = put.ExecContext(ctx, r.key.k, r.users, r.ss); err != nil {
			return err
		}
	}
	userMin, userHour := tx.StmtContext(ctx, s.userMinuteAdd), tx.StmtContext(ctx, s.userHourAdd)
	for k, a := range snap.users {
		put := userMin
		if k.hour {
			put = userHour
		}
		if _, err = put.ExecContext(ctx, k.k, k.user, a.count, a.last, a.types); err != nil {
			return err
		}
	}
	for _, t := range snap.newTypes {
		if _, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO event_type_bits(event_type, bit) VALUES (?, ?)`, t, s.typeBit(t)); err != nil {
			return err
		}
	}
	if _, err = tx.ExecContext(ctx, `UPDATE counters SET value = MAX(value, ?) WHERE name = 'rollup_seq'`, snap.seq); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *Store) typeBit(t string) int {
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	return s.mem.typeBits[t]
}

func (s *Store) evictCleanSketches() {
	m := &s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.sketches) > maxCleanSketches {
		var oldest sketchKey
		var oldestUsed uint64
		found := false
		for k, e := range m.sketches {
			if !e.dirty && (!found || e.used < oldestUsed) {
				oldest, oldestUsed, found = k, e.used, true
			}
		}
		if !found {
			return
		}
		delete(m.sketches, oldest)
	}
}

// recoverRollups adds the events stored after the last flush (a crash lost their rollups
// from memory, or the per-user rollups are new to this store) and writes them, a chunk at a
// time.
func (s *Store) recoverRollups(ctx context.Context, log *slog.Logger) error {
	var from, last int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'rollup_seq'`).Scan(&from); err != nil {
		return fmt.Errorf("sqlitestore: rollup watermark: %w", err)
	}
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&last); err != nil {
		return fmt.Errorf("sqlitestore: rollup watermark: %w", err)
	}
	if from >= last {
		return nil
	}
	started, todo, done := time.Now(), last-from, int64(0)
	const chunk = 50000
	for {
		rows, err := s.rdb.QueryContext(ctx, `SELECT seq, user_id, session_id, event_type, ts FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, from, chunk)
		if err != nil {
			return fmt.Errorf("sqlitestore: rollup recovery: %w", err)
		}
		var evs []event.Event
		var nrs []newRow
		for rows.Next() {
			var e event.Event
			var ts int64
			if err := rows.Scan(&from, &e.UserID, &e.SessionID, &e.EventType, &ts); err != nil {
				rows.Close()
				return fmt.Errorf("sqlitestore: rollup recovery: %w", err)
			}
			e.Timestamp = time.Unix(0, ts)
			evs = append(evs, e)
			nrs = append(nrs, newRow{userID: e.UserID, eventType: e.EventType, ts: ts})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlitestore: rollup recovery: %w", err)
		}
		s.mem.mu.Lock()
		s.addRollups(ctx, evs, nrs)
		s.mem.mu.Unlock()
		// The snapshot covers MAX(seq), which is this chunk's end only on the last chunk;
		// write earlier chunks with their own end.
		if err := s.flushRecovered(ctx, from); err != nil {
			return err
		}
		done += int64(len(evs))
		if len(evs) < chunk {
			break
		}
		if log != nil && time.Since(started) > 5*time.Second {
			log.Info("building analytics rollups from stored events", "done", done, "of", todo)
			started = time.Now()
		}
	}
	return nil
}

// flushRecovered writes what recovery added, covering events up to seq.
func (s *Store) flushRecovered(ctx context.Context, seq int64) error {
	m := &s.mem
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	snap, err := s.snapshot(ctx)
	if err == nil {
		snap.seq = seq
		err = s.writeSnapshot(ctx, snap)
	}
	if err != nil {
		s.restore(snap)
		return fmt.Errorf("sqlitestore: rollup recovery: %w", err)
	}
	s.evictCleanSketches()
	return nil
}

// runFlusher writes the memory rollups every memFlushEvery until Close.
func (s *Store) runFlusher() {
	m := &s.mem
	defer close(m.done)
	t := time.NewTicker(memFlushEvery)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = s.FlushRollups(ctx) // a failure keeps everything for the next tick
			if tick%300 == 299 {    // every 5 minutes
				_ = s.pruneUserMinutes(ctx, time.Now())
			}
			cancel()
		}
	}
}

// pruneUserMinutes deletes per-user minute rollups older than userMinuteKeep; queries
// then count range edges before that by whole hours.
func (s *Store) pruneUserMinutes(ctx context.Context, now time.Time) error {
	floor := unixMinute(now.Add(-userMinuteKeep).UnixNano())
	s.mem.mu.Lock()
	if floor > s.mem.minuteFloor {
		s.mem.minuteFloor = floor // before the delete: no query may rely on rows being removed
	}
	s.mem.mu.Unlock()
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM user_minute WHERE minute < ?`, floor); err != nil {
		return fmt.Errorf("sqlitestore: prune user minutes: %w", err)
	}
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO counters(name, value) VALUES ('user_minute_floor', ?)
		ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)`, floor)
	return err
}
