package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// Distinct-count sketches are kept in memory and written to sketch_minute / sketch_hour
// about once a second, not in every insert transaction: reading, merging and rewriting two
// 16 KB HyperLogLog pairs per batch cost more than the insert itself on small batches.
//
// Nothing is lost in a crash: counters.sketch_seq records the last event (by seq) whose ids
// are in the written sketches, and Open adds the ids of every later event again before it
// serves. Adding an id twice changes nothing, so a replay is always safe.

// sketchFlushEvery is how often dirty sketches are written.
const sketchFlushEvery = time.Second

// maxCleanSketches bounds the clean (already written) sketches kept for reuse.
const maxCleanSketches = 256

type sketchKey struct {
	hour bool
	k    int64 // Unix minute or hour
}

type sketchEntry struct {
	pair  *sketchPair
	dirty bool
	used  uint64
}

type sketchCache struct {
	mu      sync.Mutex // held from an insert's commit until its ids are added, and by snapshot
	entries map[sketchKey]*sketchEntry
	tick    uint64
	// poisoned: an insert's ids could not be added; the watermark stays where it is until
	// a restart re-adds them from the events table.
	poisoned bool

	flushMu sync.Mutex // one flush at a time
	stop    chan struct{}
	done    chan struct{}
}

// load returns the entry for key, reading the stored sketch the first time. Called with
// mu held.
func (s *Store) sketchEntry(ctx context.Context, key sketchKey) (*sketchEntry, error) {
	c := &s.sketches
	c.tick++
	if e := c.entries[key]; e != nil {
		e.used = c.tick
		return e, nil
	}
	q := `SELECT users, sessions FROM sketch_minute WHERE minute = ?`
	if key.hour {
		q = `SELECT users, sessions FROM sketch_hour WHERE hour = ?`
	}
	p := newPair()
	var u, ss []byte
	switch err := s.rdb.QueryRowContext(ctx, q, key.k).Scan(&u, &ss); err {
	case nil:
		if err := p.unmarshal(u, ss); err != nil {
			return nil, fmt.Errorf("sqlitestore: sketch %v: %w", key, err)
		}
	case sql.ErrNoRows:
	default:
		return nil, fmt.Errorf("sqlitestore: sketch %v: %w", key, err)
	}
	e := &sketchEntry{pair: p, used: c.tick}
	c.entries[key] = e
	return e, nil
}

// addToSketches adds the events' user and session ids to their minute and hour sketches.
// Called with mu held.
func (s *Store) addToSketches(ctx context.Context, events []event.Event) error {
	var last [2]sketchKey
	var lastE [2]*sketchEntry
	for i := range events {
		ev := &events[i]
		m := unixMinute(ev.Timestamp.UnixNano())
		for lvl, key := range [2]sketchKey{{k: m}, {hour: true, k: floorDiv(m, 60)}} {
			e := lastE[lvl]
			if e == nil || last[lvl] != key {
				var err error
				if e, err = s.sketchEntry(ctx, key); err != nil {
					return err
				}
				last[lvl], lastE[lvl] = key, e
			}
			e.pair.users.Insert([]byte(ev.UserID))
			e.pair.sessions.Insert([]byte(ev.SessionID))
			e.dirty = true
		}
	}
	return nil
}

type sketchRow struct {
	key       sketchKey
	users, ss []byte
}

// FlushSketches writes the sketches changed since the last flush, with the seq they cover.
func (s *Store) FlushSketches(ctx context.Context) error {
	c := &s.sketches
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	var rows []sketchRow
	for k, e := range c.entries {
		if !e.dirty {
			continue
		}
		u, err := e.pair.users.MarshalBinary()
		if err == nil {
			var ss []byte
			if ss, err = e.pair.sessions.MarshalBinary(); err == nil {
				rows = append(rows, sketchRow{k, u, ss})
			}
		}
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("sqlitestore: sketch: %w", err)
		}
		e.dirty = false
	}
	// Every committed insert has added its ids (commit and add happen under mu), so the
	// newest committed seq is covered by what was just marshalled.
	var seq int64
	var err error
	if !c.poisoned {
		err = s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq)
	}
	c.mu.Unlock()
	if err == nil && len(rows) > 0 {
		err = s.writeSketches(ctx, rows, seq)
	}
	if err != nil {
		c.mu.Lock()
		for _, r := range rows { // write them next time
			if e := c.entries[r.key]; e != nil {
				e.dirty = true
			}
		}
		c.mu.Unlock()
		return fmt.Errorf("sqlitestore: flush sketches: %w", err)
	}
	s.evictCleanSketches()
	return nil
}

func (s *Store) writeSketches(ctx context.Context, rows []sketchRow, seq int64) (err error) {
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
	for _, r := range rows {
		put := minPut
		if r.key.hour {
			put = hourPut
		}
		if _, err = put.ExecContext(ctx, r.key.k, r.users, r.ss); err != nil {
			return err
		}
	}
	if _, err = tx.ExecContext(ctx, `UPDATE counters SET value = MAX(value, ?) WHERE name = 'sketch_seq'`, seq); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *Store) evictCleanSketches() {
	c := &s.sketches
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.entries) > maxCleanSketches {
		var oldest sketchKey
		var oldestUsed uint64
		found := false
		for k, e := range c.entries {
			if !e.dirty && (!found || e.used < oldestUsed) {
				oldest, oldestUsed, found = k, e.used, true
			}
		}
		if !found {
			return
		}
		delete(c.entries, oldest)
	}
}

// recoverSketches adds the ids of events stored after the last sketch flush (a crash lost
// them from memory), then writes the sketches.
func (s *Store) recoverSketches(ctx context.Context) error {
	var from int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'sketch_seq'`).Scan(&from); err != nil {
		return fmt.Errorf("sqlitestore: sketch watermark: %w", err)
	}
	const chunk = 10000
	for {
		rows, err := s.rdb.QueryContext(ctx, `SELECT seq, user_id, session_id, ts FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, from, chunk)
		if err != nil {
			return fmt.Errorf("sqlitestore: sketch recovery: %w", err)
		}
		var evs []event.Event
		for rows.Next() {
			var e event.Event
			var ts int64
			if err := rows.Scan(&from, &e.UserID, &e.SessionID, &ts); err != nil {
				rows.Close()
				return fmt.Errorf("sqlitestore: sketch recovery: %w", err)
			}
			e.Timestamp = time.Unix(0, ts)
			evs = append(evs, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlitestore: sketch recovery: %w", err)
		}
		s.sketches.mu.Lock()
		err = s.addToSketches(ctx, evs)
		s.sketches.mu.Unlock()
		if err != nil {
			return err
		}
		if len(evs) < chunk {
			break
		}
	}
	return s.FlushSketches(ctx)
}

// runSketchFlusher writes dirty sketches every sketchFlushEvery until Close.
func (s *Store) runSketchFlusher() {
	c := &s.sketches
	defer close(c.done)
	t := time.NewTicker(sketchFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = s.FlushSketches(ctx) // a failure keeps them dirty; the next tick retries
			cancel()
		}
	}
}
