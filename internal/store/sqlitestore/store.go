// Package sqlitestore is the embedded event store: SQLite in WAL mode, one file events.db.
//
// Indexes are chosen for insert speed (see BENCHMARKS.md): the unique event id that makes
// inserts idempotent, and the hour of the event time for drill-down and retention. Analytics are served
// by an analytics engine (analytics.go), not from this table, so no (userId, time) index is
// kept here.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
)

// Store implements store.EventStore.
type Store struct {
	dir      string
	wdb, rdb *sql.DB
	// Statements prepared once on the single write connection (not in every transaction).
	insertOne, insertMany, count, typeAdd *sql.Stmt
	// The analytics engine and what keeps it fed and persisted (analytics.go).
	an analyticsState
	// The rows this process inserted, handed to the analytics feed so that it need not
	// read them back (feed.go).
	handoff handoff
}

var migrations = []sqlitedb.Migration{
	{Version: 1, Name: "events", SQL: `
CREATE TABLE events (
	seq INTEGER PRIMARY KEY,
	event_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	user_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	ts INTEGER NOT NULL,            -- event time, Unix nanoseconds UTC
	metadata TEXT,
	payload TEXT,
	priority INTEGER NOT NULL,
	received_at INTEGER NOT NULL,   -- Unix nanoseconds
	processed_at INTEGER NOT NULL   -- Unix nanoseconds
);
CREATE UNIQUE INDEX events_event_id ON events(event_id);
CREATE INDEX events_ts ON events(ts);   -- replaced by events_hour (migration 8)
CREATE TABLE events_dlq (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id TEXT,
	data BLOB NOT NULL,
	error TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	failed_at INTEGER NOT NULL
);
CREATE TABLE counters (
	name TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO counters(name, value) VALUES ('events', 0);`},
	{Version: 2, Name: "rollups", SQL: `
CREATE TABLE rollup_minute (
	minute INTEGER NOT NULL,        -- Unix minute of the event time
	event_type TEXT NOT NULL,
	count INTEGER NOT NULL,
	PRIMARY KEY (minute, event_type)
) WITHOUT ROWID;
CREATE TABLE sketch_minute (
	minute INTEGER PRIMARY KEY,     -- Unix minute; HyperLogLog (precision 14) of user and session ids
	users BLOB NOT NULL,
	sessions BLOB NOT NULL
);
CREATE TABLE sketch_hour (
	hour INTEGER PRIMARY KEY,       -- Unix hour
	users BLOB NOT NULL,
	sessions BLOB NOT NULL
);`},
	// All-time count per event type for GET /api/metrics, kept with the events like the
	// total; existing stores start from their rollups.
	{Version: 3, Name: "type_counters", SQL: `
INSERT INTO counters(name, value) SELECT 'type:' || event_type, SUM(count) FROM rollup_minute GROUP BY event_type;`},
	// Rollups built from the events table (memrollups.go): rollup_seq is the last event they
	// cover. It starts at 0, so the first start builds them from every stored event
	// (re-adding ids to the sketches changes nothing; the per-user rollups are new).
	{Version: 4, Name: "memory_rollups", SQL: `
CREATE TABLE user_minute (
	minute INTEGER NOT NULL,
	user_id TEXT NOT NULL,
	count INTEGER NOT NULL,
	last_ts INTEGER NOT NULL,       -- newest event time, Unix ns
	types INTEGER NOT NULL,         -- bit set over event_type_bits
	PRIMARY KEY (minute, user_id)
) WITHOUT ROWID;
CREATE INDEX user_minute_user ON user_minute(user_id, minute);
CREATE TABLE user_hour (
	hour INTEGER NOT NULL,
	user_id TEXT NOT NULL,
	count INTEGER NOT NULL,
	last_ts INTEGER NOT NULL,
	types INTEGER NOT NULL,
	PRIMARY KEY (hour, user_id)
) WITHOUT ROWID;
CREATE INDEX user_hour_user ON user_hour(user_id, hour);
CREATE TABLE event_type_bits (
	event_type TEXT PRIMARY KEY,
	bit INTEGER NOT NULL UNIQUE
);
INSERT INTO counters(name, value) VALUES ('rollup_seq', 0);`},
	// The generation of every minute's and hour's per-user rows: the rollup_seq of the build
	// that last changed them (usercache.go). Existing rows start at the current watermark.
	{Version: 5, Name: "rollup_generations", SQL: `
CREATE TABLE rollup_gen (
	hour INTEGER NOT NULL,          -- 1: unit is a Unix hour (user_hour), 0: a minute (user_minute)
	unit INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	PRIMARY KEY (hour, unit)
) WITHOUT ROWID;
INSERT INTO rollup_gen(hour, unit, seq) SELECT 0, minute, (SELECT value FROM counters WHERE name = 'rollup_seq') FROM user_minute GROUP BY minute;
INSERT INTO rollup_gen(hour, unit, seq) SELECT 1, hour, (SELECT value FROM counters WHERE name = 'rollup_seq') FROM user_hour GROUP BY hour;`},
	// Per-user rows before 1970 (negative units) take their newest event time from the
	// events they count: builds that started the newest time from 0 left it at 0 there.
	{Version: 6, Name: "user_last_before_1970", SQL: `
UPDATE user_minute SET last_ts = COALESCE((SELECT MAX(e.ts) FROM events e
	WHERE e.ts >= user_minute.minute * 60000000000 AND e.ts < (user_minute.minute + 1) * 60000000000
	AND e.user_id = user_minute.user_id AND e.seq <= (SELECT value FROM counters WHERE name = 'rollup_seq')), last_ts)
WHERE minute < 0;
UPDATE user_hour SET last_ts = COALESCE((SELECT MAX(e.ts) FROM events e
	WHERE e.ts >= user_hour.hour * 3600000000000 AND e.ts < (user_hour.hour + 1) * 3600000000000
	AND e.user_id = user_hour.user_id AND e.seq <= (SELECT value FROM counters WHERE name = 'rollup_seq')), last_ts)
WHERE hour < 0;`},
	// The analytics engine (internal/blocks) replaces the rollups: its sealed hour blocks,
	// its dictionaries, and who may write them. blocks_seq starts at 0, so the first start
	// feeds every stored event to the engine.
	{Version: 7, Name: "analytics_blocks", SQL: `
DROP TABLE rollup_minute;
DROP TABLE sketch_minute;
DROP TABLE sketch_hour;
DROP TABLE user_minute;
DROP TABLE user_hour;
DROP TABLE event_type_bits;
DROP TABLE rollup_gen;
DELETE FROM counters WHERE name IN ('rollup_seq', 'user_minute_floor');
CREATE TABLE analytics_block (
	hour INTEGER PRIMARY KEY,       -- Unix hour
	data BLOB NOT NULL              -- the block, as blocks.Block.Encode writes it
);
CREATE TABLE analytics_name (
	kind INTEGER NOT NULL,          -- 0: user ids, 1: event types
	id INTEGER NOT NULL,
	name TEXT NOT NULL,
	PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE TABLE analytics_lease (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	owner TEXT NOT NULL,
	until INTEGER NOT NULL          -- Unix ns
);
INSERT INTO analytics_lease(id, owner, until) VALUES (1, '', 0);`},
	// Events by hour of event time instead of by time: events stamped at random over a
	// day (a backfill) went into random pages of the time index, and each 1000-event commit
	// wrote a thousand pages of it; by hour they join the end of their hour's run of the
	// index (rows of one key are in seq order). Queries bound the hour (indexHour) and then
	// the time.
	{Version: 8, Name: "events_by_hour", SQL: `
DROP INDEX events_ts;
CREATE INDEX events_hour ON events(ts / 3600000000000);`},
	// The route or SDK protocol each event came by (NULL for events stored before).
	{Version: 9, Name: "event_source", SQL: `
ALTER TABLE events ADD COLUMN source TEXT;`},
	// The hours of event time each deletion of a user's events touched (forget.go), for
	// every process's analytics engine to rebuild.
	{Version: 10, Name: "analytics_forget", SQL: `
CREATE TABLE analytics_forget (
	id INTEGER PRIMARY KEY,
	hours TEXT NOT NULL,            -- JSON array of Unix hours
	at INTEGER NOT NULL             -- Unix ns
);`},
}

// Open opens (creating if needed) dir/events.db.
func Open(ctx context.Context, dir string, sync sqlitedb.Sync) (*Store, error) {
	return OpenLogged(ctx, dir, sync, nil)
}

// OpenLogged is Open that reports on log (when not nil) the progress of a long start: the
// first start after an upgrade feeds every stored event to the analytics engine, which
// takes minutes for tens of millions.
func OpenLogged(ctx context.Context, dir string, sync sqlitedb.Sync, log *slog.Logger) (*Store, error) {
	path := filepath.Join(dir, "events.db")
	wdb, err := sqlitedb.Open(path, sync, 1)
	if err != nil {
		return nil, err
	}
	if _, err := sqlitedb.Migrate(ctx, wdb, migrations); err != nil {
		_ = wdb.Close()
		return nil, err
	}
	rdb, err := sqlitedb.OpenReader(path, sync, 4)
	if err != nil {
		_ = wdb.Close()
		return nil, err
	}
	st := &Store{dir: dir, wdb: wdb, rdb: rdb}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&st.insertOne, insertCols + insertRow + insertTail},
		{&st.insertMany, insertChunkSQL},
		{&st.count, `UPDATE counters SET value = value + ? WHERE name = 'events'`},
		{&st.typeAdd, `INSERT INTO counters(name, value) VALUES ('type:' || ?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value`},
	} {
		if *p.dst, err = wdb.PrepareContext(ctx, p.query); err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("sqlitestore: prepare: %w", err)
		}
	}
	_ = os.Remove(filepath.Join(dir, "digest.snapshot")) // left by versions before the analytics engine
	if err := st.openAnalytics(ctx, log); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("sqlitestore: analytics: %w", err)
	}
	st.an.stop, st.an.done = make(chan struct{}), make(chan struct{})
	st.handoff.kick = make(chan struct{}, 1)
	go st.runAnalytics()
	return st, nil
}

// insertChunk rows go in one INSERT statement: fewer statement executions per batch.
const insertChunk = 50

const insertCols = `INSERT INTO events(event_id, event_type, user_id, session_id, ts, metadata, payload, priority, received_at, processed_at, source) VALUES `
const insertRow = `(?,?,?,?,?,?,?,?,?,?,?)`
const insertTail = ` ON CONFLICT(event_id) DO NOTHING`

var insertChunkSQL = insertCols + insertRow + strings.Repeat(","+insertRow, insertChunk-1) + insertTail

// InsertBatch implements store.EventStore. The rows it stored go to the analytics engine
// through the handoff.
func (s *Store) InsertBatch(ctx context.Context, events []event.Event, processedAt time.Time) (inserted, duplicates int, err error) {
	if len(events) == 0 {
		return 0, 0, nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlitestore: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	args := make([]any, 0, 11*insertChunk)
	pa := processedAt.UnixNano()
	many, one := tx.StmtContext(ctx, s.insertMany), tx.StmtContext(ctx, s.insertOne)
	byType := map[string]int64{}
	var handed []handoffSeg
	for start := 0; start < len(events); {
		n, st := 1, one
		if len(events)-start >= insertChunk {
			n, st = insertChunk, many
		}
		args = args[:0]
		for i := start; i < start+n; i++ {
			e := &events[i]
			args = append(args, e.EventID, e.EventType, e.UserID, e.SessionID, e.Timestamp.UnixNano(),
				nullableJSON(e.Metadata), nullableJSON(e.Payload), e.Priority, e.ReceivedAt.UnixNano(), pa, nullableString(e.Source))
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return 0, 0, fmt.Errorf("sqlitestore: insert %d events: %w", n, err)
		}
		affected, _ := res.RowsAffected()
		inserted += int(affected)
		// Counters count only rows actually inserted, so a redelivered batch adds nothing.
		// Usually every row was new; otherwise ask which ones this write stored.
		switch {
		case int(affected) == n:
			for i := start; i < start+n; i++ {
				byType[events[i].EventType]++
			}
			// Every row was new, so their seqs are the n ending at the last insert id.
			if last, err := res.LastInsertId(); err == nil {
				sg := make(handoffSeg, n)
				for i := range sg {
					e := &events[start+i]
					sg[i] = feedRow{seq: last - int64(n-1-i), user: e.UserID, session: e.SessionID, typ: e.EventType, ts: e.Timestamp.UnixNano()}
				}
				handed = append(handed, sg)
			}
		case affected > 0:
			if err = countInserted(ctx, tx, events[start:start+n], pa, byType); err != nil {
				return 0, 0, err
			}
		}
		start += n
	}
	if inserted > 0 {
		if _, err = tx.StmtContext(ctx, s.count).ExecContext(ctx, inserted); err != nil {
			return 0, 0, fmt.Errorf("sqlitestore: count: %w", err)
		}
		typeAdd := tx.StmtContext(ctx, s.typeAdd)
		for t, c := range byType {
			if _, err = typeAdd.ExecContext(ctx, t, c); err != nil {
				return 0, 0, fmt.Errorf("sqlitestore: type count: %w", err)
			}
		}
	}
	if err = tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("sqlitestore: commit: %w", err)
	}
	s.handoff.add(handed)
	return inserted, len(events) - inserted, nil
}

func nullableJSON(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

func nullableString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// DeadLetter implements store.EventStore.
func (s *Store) DeadLetter(ctx context.Context, letters []store.DeadLetter) (err error) {
	if len(letters) == 0 {
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	for _, l := range letters {
		var id any
		if l.EventID != "" {
			id = l.EventID
		}
		if _, err = tx.ExecContext(ctx, `INSERT INTO events_dlq(event_id, data, error, attempts, failed_at) VALUES (?,?,?,?,?)`,
			id, l.Data, l.Error, l.Attempts, l.FailedAt.UnixNano()); err != nil {
			return fmt.Errorf("sqlitestore: dead-letter: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: dead-letter commit: %w", err)
	}
	return nil
}

// Count implements store.EventStore from a counter kept in the insert transaction, so it
// costs the same at any table size.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'events'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count: %w", err)
	}
	return n, nil
}

// CountByType returns how many events of each type are stored (store.TypeCounter).
func (s *Store) CountByType(ctx context.Context) (map[string]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT substr(name, 6), value FROM counters WHERE name >= 'type:' AND name < 'type;'`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: count by type: %w", err)
	}
	defer rows.Close()
	m := map[string]int64{}
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, fmt.Errorf("sqlitestore: count by type: %w", err)
		}
		m[t] = n
	}
	return m, rows.Err()
}

// DeadLetterCount implements store.EventStore.
func (s *Store) DeadLetterCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM events_dlq`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count dead letters: %w", err)
	}
	return n, nil
}

// recentScanSlack is how many consecutive rows older than the cut-off RecentEventIDs reads
// before it stops: rows are stored in nearly, not exactly, the order they were received
// (a redelivered batch lands late).
const recentScanSlack = 10000

// RecentEventIDs implements store.EventStore by walking the table from its newest row.
func (s *Store) RecentEventIDs(ctx context.Context, since time.Time, limit int, fn func(string, time.Time)) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT event_id, received_at FROM events ORDER BY seq DESC`)
	if err != nil {
		return fmt.Errorf("sqlitestore: recent ids: %w", err)
	}
	defer rows.Close()
	cut := since.UnixNano()
	older, n := 0, 0
	for rows.Next() && (limit <= 0 || n < limit) {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return fmt.Errorf("sqlitestore: recent ids: %w", err)
		}
		if at < cut {
			if older++; older >= recentScanSlack {
				break
			}
			continue
		}
		older = 0
		n++
		fn(id, time.Unix(0, at))
	}
	return rows.Err()
}

// Ping implements store.EventStore.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlitestore: ping: %w", err)
	}
	return nil
}

// Close implements store.EventStore. It seals the analytics head and persists it first, so
// that the next start need not feed the engine again.
func (s *Store) Close() error {
	var ferr error
	if s.an.stop != nil {
		close(s.an.stop)
		<-s.an.done
		s.an.stop = nil
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if ferr = s.feed(ctx); ferr == nil {
			ferr = s.seal(ctx, true)
		}
		// The next start (or another process) may write at once.
		_, err := s.wdb.ExecContext(ctx, `UPDATE analytics_lease SET until = 0 WHERE owner = ?`, s.an.owner)
		ferr = errors.Join(ferr, err)
		cancel()
	}
	return errors.Join(ferr, s.rdb.Close(), s.wdb.Close())
}

// DB exposes the write handle for tests that need to reach under the store (for example to
// install a failing trigger).
func (s *Store) DB() *sql.DB { return s.wdb }

// countInserted adds to byType the rows of chunk that this transaction stored: those whose
// processed_at is this write's (a duplicate keeps the processed_at of its first write). It
// relies on two writes never sharing a processedAt; the worker passes time.Now() to each.
func countInserted(ctx context.Context, tx *sql.Tx, chunk []event.Event, processedAt int64, byType map[string]int64) error {
	args := make([]any, 0, len(chunk)+1)
	args = append(args, processedAt)
	for i := range chunk {
		args = append(args, chunk[i].EventID)
	}
	rows, err := tx.QueryContext(ctx, `SELECT event_type FROM events WHERE processed_at = ? AND event_id IN (?`+
		strings.Repeat(",?", len(chunk)-1)+`)`, args...)
	if err != nil {
		return fmt.Errorf("sqlitestore: count inserted: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return fmt.Errorf("sqlitestore: count inserted: %w", err)
		}
		byType[t]++
	}
	return rows.Err()
}
