// Package workload is the SQLite workload that the driver benchmarks share: evp's events
// table (internal/store/sqlitestore), written the way sqlitestore.InsertBatch writes it and
// read by event id range. Each driver has its own test package (mattn, modernc, ncruces)
// because two of the drivers register the same database/sql name, "sqlite3", and so cannot
// be linked into one binary.
package workload

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Driver says how to reach one SQLite driver through database/sql.
type Driver struct {
	// Name is the database/sql driver name the package registers.
	Name string
	// DSN returns the data source name for the file at path with evp's settings: WAL,
	// the given synchronous mode ("NORMAL" or "FULL"), a 10 s busy timeout, foreign keys
	// on and BEGIN IMMEDIATE transactions. Each driver spells these differently.
	DSN func(path, sync string) string
}

// Sizes of the workload.
const (
	// Batch is the number of rows in one insert transaction.
	Batch = 1000
	// Chunk is the number of rows in one multi-row INSERT statement (as in sqlitestore).
	Chunk = 50
	// Preload is the number of rows every benchmark database starts with, so that the
	// insert benchmarks do not measure an empty table and every driver starts from the
	// same state whatever b.N it is given.
	Preload = 100_000
	// ReadRows is the number of rows one read query returns.
	ReadRows = 1000
)

// Schema is the events table of sqlitestore's migration 1 and its counter table.
const Schema = `
CREATE TABLE events (
	seq INTEGER PRIMARY KEY,
	event_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	user_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	ts INTEGER NOT NULL,
	metadata TEXT,
	payload TEXT,
	priority INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	processed_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_event_id ON events(event_id);
CREATE INDEX events_ts ON events(ts);
CREATE TABLE counters (
	name TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO counters(name, value) VALUES ('events', 0);`

const (
	insertCols = `INSERT INTO events(event_id, event_type, user_id, session_id, ts, metadata, payload, priority, received_at, processed_at) VALUES `
	insertRow  = `(?,?,?,?,?,?,?,?,?,?)`
	insertTail = ` ON CONFLICT(event_id) DO NOTHING`
	countSQL   = `UPDATE counters SET value = value + ? WHERE name = 'events'`
	// ReadSQL reads ReadRows whole rows from an event id on, through the unique index.
	ReadSQL = `SELECT seq, event_id, event_type, user_id, session_id, ts, metadata, payload, priority, received_at, processed_at
FROM events WHERE event_id >= ? ORDER BY event_id LIMIT 1000`
)

var (
	insertOneSQL  = insertCols + insertRow + insertTail
	insertManySQL = insertCols + insertRow + strings.Repeat(","+insertRow, Chunk-1) + insertTail
)

// Event is one row to insert.
type Event struct {
	ID, Type, User, Session string
	TS                      int64
	Metadata, Payload       string
	Priority                int
	ReceivedAt              int64
}

var eventTypes = []string{"page_view", "click", "purchase", "signup", "login", "logout", "add_to_cart", "search", "share", "video_play"}

var browsers = []string{"chrome", "firefox", "safari", "edge"}

// base is the time of event 0: 2026-01-01T00:00:00Z.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// EventAt returns event number i of a fixed, reproducible stream. Ids are ULID-shaped
// (26 Crockford base-32 characters: 48-bit millisecond time, then 80 random bits) and
// increase with i, as evp's ULIDs do; rows are about 300 bytes.
func EventAt(i int) Event {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	ts := base.Add(time.Duration(i) * time.Millisecond)
	var id [26]byte
	ms := uint64(ts.UnixMilli())
	for k := 9; k >= 0; k-- {
		id[k] = crockford[ms&31]
		ms >>= 5
	}
	hi, lo := r.Uint64()&(1<<40-1), r.Uint64()&(1<<40-1)
	for k := 25; k >= 18; k-- {
		id[k] = crockford[lo&31]
		lo >>= 5
	}
	for k := 17; k >= 10; k-- {
		id[k] = crockford[hi&31]
		hi >>= 5
	}
	user := r.IntN(10_000)
	return Event{
		ID:      string(id[:]),
		Type:    eventTypes[i%len(eventTypes)],
		User:    "user_" + strconv.Itoa(user),
		Session: "sess_" + strconv.Itoa(user*5+r.IntN(5)),
		TS:      ts.UnixNano(),
		Metadata: `{"source":"web","browser":"` + browsers[r.IntN(len(browsers))] + `","os":"linux","appVersion":"2.` +
			strconv.Itoa(r.IntN(20)) + `.` + strconv.Itoa(r.IntN(100)) + `","country":"DE","ip":"203.0.113.` + strconv.Itoa(r.IntN(255)) + `"}`,
		Payload: `{"page":"/products/` + strconv.Itoa(r.IntN(5000)) + `","referrer":"https://example.com/search?q=shoes+size+` +
			strconv.Itoa(r.IntN(50)) + `","durationMs":` + strconv.Itoa(r.IntN(60_000)) + `,"scrollDepth":` + strconv.Itoa(r.IntN(100)) + `}`,
		Priority:   r.IntN(3),
		ReceivedAt: ts.Add(time.Duration(r.IntN(50)) * time.Millisecond).UnixNano(),
	}
}

// Events returns events from, from+1, ..., from+n-1.
func Events(from, n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = EventAt(from + i)
	}
	return out
}

// Open opens the database at path through d with maxConns connections and checks that the
// DSN took effect (journal mode, synchronous, busy timeout, foreign keys).
func Open(d Driver, path, sync string, maxConns int) (*sql.DB, error) {
	db, err := sql.Open(d.Name, d.DSN(path, sync))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(0)
	if err := checkPragmas(db, sync); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func checkPragmas(db *sql.DB, sync string) error {
	wantSync := map[string]string{"OFF": "0", "NORMAL": "1", "FULL": "2", "EXTRA": "3"}[sync]
	for _, p := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", wantSync},
		{"busy_timeout", "10000"},
		{"foreign_keys", "1"},
	} {
		var got string
		if err := db.QueryRow("PRAGMA " + p.pragma).Scan(&got); err != nil {
			return fmt.Errorf("PRAGMA %s: %w", p.pragma, err)
		}
		if !strings.EqualFold(got, p.want) {
			return fmt.Errorf("PRAGMA %s = %s, want %s: the DSN did not take effect", p.pragma, got, p.want)
		}
	}
	return nil
}

// Writer inserts batches the way sqlitestore.InsertBatch does: one transaction per batch,
// Chunk-row INSERT ... ON CONFLICT(event_id) DO NOTHING statements prepared once on the
// single write connection, then the row counter update.
type Writer struct {
	DB                    *sql.DB
	insertOne, insertMany *sql.Stmt
	count                 *sql.Stmt
	args                  []any
}

// NewWriter opens path for writing (one connection), creating the schema if the file is new.
func NewWriter(d Driver, path, sync string) (*Writer, error) {
	db, err := Open(d, path, sync, 1)
	if err != nil {
		return nil, err
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'events'`).Scan(&n); err != nil {
		db.Close()
		return nil, err
	}
	if n == 0 {
		if _, err := db.Exec(Schema); err != nil {
			db.Close()
			return nil, fmt.Errorf("schema: %w", err)
		}
	}
	w := &Writer{DB: db, args: make([]any, 0, 10*Chunk)}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{{&w.insertOne, insertOneSQL}, {&w.insertMany, insertManySQL}, {&w.count, countSQL}} {
		if *p.dst, err = db.Prepare(p.query); err != nil {
			w.Close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
	}
	return w, nil
}

// Close closes the statements and the database.
func (w *Writer) Close() error {
	for _, s := range []*sql.Stmt{w.insertOne, w.insertMany, w.count} {
		if s != nil {
			s.Close()
		}
	}
	return w.DB.Close()
}

// InsertBatch inserts events in one transaction and returns how many were new.
func (w *Writer) InsertBatch(ctx context.Context, events []Event, processedAt int64) (inserted int, err error) {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	many, one := tx.StmtContext(ctx, w.insertMany), tx.StmtContext(ctx, w.insertOne)
	for start := 0; start < len(events); {
		n, st := 1, one
		if len(events)-start >= Chunk {
			n, st = Chunk, many
		}
		w.args = w.args[:0]
		for i := start; i < start+n; i++ {
			e := &events[i]
			w.args = append(w.args, e.ID, e.Type, e.User, e.Session, e.TS,
				nullable(e.Metadata), nullable(e.Payload), e.Priority, e.ReceivedAt, processedAt)
		}
		res, err := st.ExecContext(ctx, w.args...)
		if err != nil {
			return 0, fmt.Errorf("insert %d rows: %w", n, err)
		}
		affected, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		inserted += int(affected)
		start += n
	}
	if inserted > 0 {
		if _, err = tx.StmtContext(ctx, w.count).ExecContext(ctx, inserted); err != nil {
			return 0, fmt.Errorf("count: %w", err)
		}
	}
	return inserted, tx.Commit()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ReadRange runs st (prepared from ReadSQL) from event id from and scans every column of
// every row, as a drill-down read would. It returns the number of rows read.
func ReadRange(ctx context.Context, st *sql.Stmt, from string) (int, error) {
	rows, err := st.QueryContext(ctx, from)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	var (
		seq, ts, priority, received, processed int64
		id, typ, user, session                 string
		meta, payload                          sql.NullString
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &id, &typ, &user, &session, &ts, &meta, &payload, &priority, &received, &processed); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// Template databases: one per driver and process, holding Preload rows written by that
// driver and checkpointed, copied into each benchmark's own directory.
var (
	templatesMu sync.Mutex
	templates   = map[string]string{}
	templateDir string
)

func templatePath(d Driver) (string, error) {
	templatesMu.Lock()
	defer templatesMu.Unlock()
	if p, ok := templates[d.Name]; ok {
		return p, nil
	}
	if templateDir == "" {
		dir, err := os.MkdirTemp(Dir(), "sqlitedrivers-template-")
		if err != nil {
			return "", err
		}
		templateDir = dir
	}
	p := filepath.Join(templateDir, d.Name+".db")
	w, err := NewWriter(d, p, "NORMAL")
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	for i := 0; i < Preload; i += Batch {
		if _, err := w.InsertBatch(ctx, Events(i, Batch), time.Now().UnixNano()); err != nil {
			w.Close()
			return "", err
		}
	}
	if _, err := w.DB.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		w.Close()
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	templates[d.Name] = p
	return p, nil
}

// Dir is where databases are made: $SQLITEDRIVERS_DIR, or the system temporary directory.
// It should be on the disk evp writes to, not a tmpfs, or synchronous=FULL costs nothing.
func Dir() string {
	if d := os.Getenv("SQLITEDRIVERS_DIR"); d != "" {
		return d
	}
	return os.TempDir()
}

// Cleanup removes the template databases. Call it from TestMain after m.Run.
func Cleanup() {
	templatesMu.Lock()
	defer templatesMu.Unlock()
	if templateDir != "" {
		os.RemoveAll(templateDir)
		templateDir = ""
		clear(templates)
	}
}

// PreloadedCopy returns the path of a fresh copy, in a new directory that tb removes, of
// the database holding Preload rows.
func PreloadedCopy(tb testing.TB, d Driver) string {
	tb.Helper()
	src, err := templatePath(d)
	if err != nil {
		tb.Fatal(err)
	}
	dir, err := os.MkdirTemp(Dir(), "sqlitedrivers-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	dst := filepath.Join(dir, "events.db")
	if err := copyFile(src, dst); err != nil {
		tb.Fatal(err)
	}
	return dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	// Flush the copy now so that its write-back does not land inside the timed loop.
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BenchInsert measures 1000-row insert transactions into a table that starts with Preload
// rows, with the given synchronous mode, and reports rows/s.
func BenchInsert(b *testing.B, d Driver, sync string) {
	ctx := context.Background()
	w, err := NewWriter(d, PreloadedCopy(b, d), sync)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	batches := make([][]Event, b.N)
	for i := range batches {
		batches[i] = Events(Preload+i*Batch, Batch)
	}
	processedAt := time.Now().UnixNano()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := w.InsertBatch(ctx, batches[i], processedAt)
		if err != nil {
			b.Fatal(err)
		}
		if n != Batch {
			b.Fatalf("inserted %d rows, want %d", n, Batch)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*Batch)/b.Elapsed().Seconds(), "rows/s")
}

// BenchRead measures reads of ReadRows rows by event id range (random start points in the
// Preload rows) and reports rows/s.
func BenchRead(b *testing.B, d Driver) {
	ctx := context.Background()
	db, err := Open(d, PreloadedCopy(b, d), "NORMAL", 4)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st, err := db.Prepare(ReadSQL)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(1, 2))
	starts := make([]string, 256)
	for i := range starts {
		starts[i] = EventAt(r.IntN(Preload - ReadRows)).ID
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := ReadRange(ctx, st, starts[i%len(starts)])
		if err != nil {
			b.Fatal(err)
		}
		if n != ReadRows {
			b.Fatalf("read %d rows, want %d", n, ReadRows)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*ReadRows)/b.Elapsed().Seconds(), "rows/s")
}

// Check is the functional test every driver package runs: the DSN takes effect, batches
// insert, a repeated batch is all duplicates, the counter and the range read agree.
func Check(t *testing.T, d Driver) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "events.db")
	for _, sync := range []string{"NORMAL", "FULL"} {
		w, err := NewWriter(d, path, sync)
		if err != nil {
			t.Fatalf("%s: %v", sync, err)
		}
		w.Close()
	}
	w, err := NewWriter(d, path, "FULL")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, want := range []int{Batch, Batch, 0} {
		from := i * Batch
		if i == 2 {
			from = Batch // the second batch again
		}
		n, err := w.InsertBatch(ctx, Events(from, Batch), time.Now().UnixNano())
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("batch %d: inserted %d, want %d", i, n, want)
		}
	}
	// An odd-sized batch takes the one-row statement for its tail.
	if n, err := w.InsertBatch(ctx, Events(2*Batch, 73), 1); err != nil || n != 73 {
		t.Fatalf("73-row batch: inserted %d, %v", n, err)
	}
	var count, rows int64
	var avg float64
	var version string
	if err := w.DB.QueryRow(`SELECT value FROM counters WHERE name = 'events'`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if err := w.DB.QueryRow(`SELECT count(*), avg(length(event_id) + length(event_type) + length(user_id) + length(session_id) +
		length(metadata) + length(payload) + 4*8) FROM events`).Scan(&rows, &avg); err != nil {
		t.Fatal(err)
	}
	if want := int64(2*Batch + 73); count != want || rows != want {
		t.Fatalf("counter %d, rows %d, want %d", count, rows, want)
	}
	if err := w.DB.QueryRow(`SELECT sqlite_version()`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: SQLite %s, %.0f bytes of data per row", d.Name, version, avg)
	st, err := w.DB.Prepare(ReadSQL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := ReadRange(ctx, st, EventAt(500).ID); err != nil || n != ReadRows {
		t.Fatalf("read: %d rows, %v", n, err)
	}
	for i := 1; i < 2000; i++ {
		if EventAt(i-1).ID >= EventAt(i).ID {
			t.Fatalf("ids do not increase at %d", i)
		}
	}
}
