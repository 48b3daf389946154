// Package sqlitequeue is the embedded durable buffer: a SQLite table written by one
// group-committing writer and read by any number of workers in the same process.
//
// Group commit: every Enqueue, Ack and Nack is a request to a single writer goroutine. The
// writer takes one request, then everything that queued up meanwhile, and applies them all
// in one transaction with one fsync; then it answers each request. An idle system commits a
// single request at once; under load batches grow by themselves, so there is no fixed wait.
//
// Delivery state (which entries are in flight) lives in memory: after a restart every entry
// still in the table is delivered again, which is what at-least-once asks for.
package sqlitequeue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/sqlitedb"
)

// Options configures a Queue. Zero values take the defaults noted.
type Options struct {
	Sync      sqlitedb.Sync // SyncFull by default: a 202 survives power loss
	ClaimIdle time.Duration // in-flight entries older than this are delivered again; 60 s
	// MaxGroup bounds how many entries one commit takes; 20000.
	MaxGroup int
}

// Queue implements queue.Queue on SQLite.
type Queue struct {
	wdb, rdb *sql.DB
	stmts    writeStmts // prepared once on the single write connection
	lock     *os.File
	opts     Options

	reqs      chan *writeReq
	writerErr chan struct{} // closed when the writer exits
	closeOnce sync.Once
	closed    chan struct{}

	mu     sync.Mutex
	cursor int64 // highest id handed out by the forward scan
	// fresh holds entries appended since the scan caught up, in id order, so that workers
	// get them without reading the table back. freshOK is false while the table may hold
	// entries above cursor that fresh lacks (after a start, or when fresh overflowed);
	// then take reads the table.
	fresh    []queue.Message
	freshOK  bool
	inflight map[int64]time.Time // id -> when delivered
	retry    []int64             // nacked ids waiting for redelivery
	signal   chan struct{}       // closed and replaced after entries are added
	enqueued int64               // total ever enqueued (persisted)
	acked    int64               // total ever acknowledged (persisted)
}

type writeReq struct {
	entries []queue.Entry
	ack     []int64
	nack    []int64
	done    chan error
}

var migrations = []sqlitedb.Migration{
	{Version: 1, Name: "buffer", SQL: `
CREATE TABLE entries (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id TEXT NOT NULL,
	data BLOB NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE counters (
	name TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO counters(name, value) VALUES ('enqueued', 0), ('acked', 0);`},
}

// Open opens the buffer in dir (file buffer.db), taking an exclusive lock so that no second
// process shares it.
func Open(ctx context.Context, dir string, opts Options) (*Queue, error) {
	if opts.Sync == "" {
		opts.Sync = sqlitedb.SyncFull
	}
	if opts.ClaimIdle <= 0 {
		opts.ClaimIdle = 60 * time.Second
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 20000
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "buffer.db")
	wdb, err := sqlitedb.Open(path, opts.Sync, 1)
	if err != nil {
		lock.Close()
		return nil, err
	}
	if _, err := sqlitedb.Migrate(ctx, wdb, migrations); err != nil {
		wdb.Close()
		lock.Close()
		return nil, err
	}
	rdb, err := sqlitedb.Open(path, opts.Sync, 4)
	if err != nil {
		wdb.Close()
		lock.Close()
		return nil, err
	}
	q := &Queue{
		wdb: wdb, rdb: rdb, lock: lock, opts: opts,
		reqs:      make(chan *writeReq, 4096),
		writerErr: make(chan struct{}),
		closed:    make(chan struct{}),
		inflight:  make(map[int64]time.Time),
		signal:    make(chan struct{}),
	}
	if err := wdb.QueryRowContext(ctx, `SELECT
		(SELECT value FROM counters WHERE name='enqueued'),
		(SELECT value FROM counters WHERE name='acked')`).Scan(&q.enqueued, &q.acked); err != nil {
		q.closeDBs()
		return nil, fmt.Errorf("sqlitequeue: read counters: %w", err)
	}
	if q.stmts, err = prepareWrites(ctx, wdb); err != nil {
		q.closeDBs()
		return nil, err
	}
	go q.writer()
	return q, nil
}

// writeStmts are the writer's statements, prepared once: preparing them in every
// transaction cost a fifth of the writer's time with small groups.
type writeStmts struct {
	insertOne, insertChunk, ackRange, nack, count *sql.Stmt
}

func prepareWrites(ctx context.Context, db *sql.DB) (writeStmts, error) {
	var w writeStmts
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&w.insertOne, `INSERT INTO entries(event_id, data) VALUES (?,?)`},
		{&w.insertChunk, insertChunkSQL},
		{&w.ackRange, `DELETE FROM entries WHERE id BETWEEN ? AND ?`},
		{&w.nack, `UPDATE entries SET attempts = attempts + 1 WHERE id = ?`},
		{&w.count, `UPDATE counters SET value = value + CASE name WHEN 'enqueued' THEN ? ELSE ? END`},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return w, fmt.Errorf("sqlitequeue: prepare: %w", err)
		}
		*p.dst = st
	}
	return w, nil
}

// lockDir takes an exclusive, non-blocking flock on dir/buffer.lock. The kernel drops it
// when the process dies, so a crash never leaves a stale lock.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "buffer.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitequeue: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("sqlitequeue: %s is in use by another evp process (%w)", dir, err)
	}
	return f, nil
}

func (q *Queue) submit(ctx context.Context, r *writeReq) error {
	r.done = make(chan error, 1)
	select {
	case q.reqs <- r:
	case <-q.closed:
		return queue.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once submitted the request will be committed or failed; wait for the answer even if
	// ctx ends, so that a caller never reports failure for an entry that was stored.
	select {
	case err := <-r.done:
		return err
	case <-q.writerErr:
		// The writer answers before it exits: if it answered this request, that answer
		// counts (select picks at random when both are ready).
		select {
		case err := <-r.done:
			return err
		default:
			return queue.ErrClosed
		}
	}
}

// Enqueue implements queue.Queue.
func (q *Queue) Enqueue(ctx context.Context, entries []queue.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	return q.submit(ctx, &writeReq{entries: entries})
}

// Ack implements queue.Queue.
func (q *Queue) Ack(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return q.submit(ctx, &writeReq{ack: ids})
}

// Nack implements queue.Queue.
func (q *Queue) Nack(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return q.submit(ctx, &writeReq{nack: ids})
}

func (q *Queue) writer() {
	defer close(q.writerErr)
	for {
		var first *writeReq
		select {
		case first = <-q.reqs:
		case <-q.closed:
			// Drain what was already submitted so no caller waits forever.
			for {
				select {
				case r := <-q.reqs:
					q.commit([]*writeReq{r})
				default:
					return
				}
			}
		}
		group := []*writeReq{first}
		n := len(first.entries) + len(first.ack) + len(first.nack)
	drain:
		for n < q.opts.MaxGroup {
			select {
			case r := <-q.reqs:
				group = append(group, r)
				n += len(r.entries) + len(r.ack) + len(r.nack)
			default:
				break drain
			}
		}
		q.commit(group)
	}
}

// commit applies a group of requests in one transaction and answers each of them.
func (q *Queue) commit(group []*writeReq) {
	added, acked, err := q.apply(group)
	if err == nil {
		q.mu.Lock()
		q.enqueued += int64(len(added))
		q.acked += acked
		q.handOff(added)
		for _, r := range group {
			for _, id := range r.ack {
				delete(q.inflight, id)
			}
			for _, id := range r.nack {
				if _, ok := q.inflight[id]; ok {
					delete(q.inflight, id)
					q.retry = append(q.retry, id)
				}
			}
		}
		if len(added) > 0 {
			close(q.signal)
			q.signal = make(chan struct{})
		}
		q.mu.Unlock()
	}
	for _, r := range group {
		r.done <- err
	}
}

// insertChunk entries go into one INSERT statement: one call into SQLite instead of many.
const insertChunk = 64

var insertChunkSQL = `INSERT INTO entries(event_id, data) VALUES (?,?)` + strings.Repeat(",(?,?)", insertChunk-1)

// apply runs a group in one transaction. It returns the appended entries as messages with
// their ids, and how many entries the acknowledgements removed.
func (q *Queue) apply(group []*writeReq) (added []queue.Message, acked int64, err error) {
	ctx := context.Background()
	tx, err := q.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlitequeue: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var entries []queue.Entry
	var acks, nacks []int64
	for _, r := range group {
		entries = append(entries, r.entries...)
		acks = append(acks, r.ack...)
		nacks = append(nacks, r.nack...)
	}
	if added, err = q.insertEntries(ctx, tx, entries); err != nil {
		return nil, 0, err
	}
	// Acknowledgements mostly come as runs of consecutive ids: delete by range.
	slices.Sort(acks)
	for i := 0; i < len(acks); {
		j := i
		for j+1 < len(acks) && acks[j+1] <= acks[j]+1 {
			j++
		}
		res, err2 := tx.StmtContext(ctx, q.stmts.ackRange).ExecContext(ctx, acks[i], acks[j])
		if err2 != nil {
			err = fmt.Errorf("sqlitequeue: ack %d..%d: %w", acks[i], acks[j], err2)
			return nil, 0, err
		}
		n, _ := res.RowsAffected()
		acked += n
		i = j + 1
	}
	for _, id := range nacks {
		if _, err = tx.StmtContext(ctx, q.stmts.nack).ExecContext(ctx, id); err != nil {
			return nil, 0, fmt.Errorf("sqlitequeue: nack %d: %w", id, err)
		}
	}
	if len(added) > 0 || acked > 0 {
		if _, err = tx.StmtContext(ctx, q.stmts.count).ExecContext(ctx, len(added), acked); err != nil {
			return nil, 0, fmt.Errorf("sqlitequeue: count: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return nil, 0, fmt.Errorf("sqlitequeue: commit: %w", err)
	}
	return added, acked, nil
}

// insertEntries appends entries, 64 rows per statement and the rest one by one. A
// statement's rows get consecutive ids (AUTOINCREMENT, one writer), so each id follows from
// the statement's last one.
func (q *Queue) insertEntries(ctx context.Context, tx *sql.Tx, entries []queue.Entry) ([]queue.Message, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	msgs := make([]queue.Message, len(entries))
	args := make([]any, 0, 2*insertChunk)
	chunk, one := tx.StmtContext(ctx, q.stmts.insertChunk), tx.StmtContext(ctx, q.stmts.insertOne)
	for start := 0; start < len(entries); {
		n := 1
		st := one
		if len(entries)-start >= insertChunk {
			n, st = insertChunk, chunk
		}
		args = args[:0]
		for _, e := range entries[start : start+n] {
			args = append(args, e.EventID, e.Data)
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlitequeue: append %d entries: %w", n, err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("sqlitequeue: append: %w", err)
		}
		for i := start; i < start+n; i++ {
			msgs[i] = queue.Message{ID: last - int64(start+n-1-i), EventID: entries[i].EventID, Data: entries[i].Data}
		}
		start += n
	}
	return msgs, nil
}

// maxFresh bounds the entries kept in memory for hand-over; past it workers read the table.
const maxFresh = 50000

// handOff passes newly committed entries to take. Called with mu held. The entries must
// continue exactly where the hand-over list (or the cursor) ends; anything else means a
// scan already saw them or some are missing, and the table becomes the source again.
func (q *Queue) handOff(added []queue.Message) {
	if len(added) == 0 || !q.freshOK {
		return
	}
	tail := q.cursor
	if len(q.fresh) > 0 {
		tail = q.fresh[len(q.fresh)-1].ID
	}
	if added[0].ID != tail+1 || len(q.fresh)+len(added) > maxFresh {
		q.freshOK, q.fresh = false, nil
		return
	}
	q.fresh = append(q.fresh, added...)
}

// Fetch implements queue.Queue.
func (q *Queue) Fetch(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	if max <= 0 {
		return nil, nil
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case <-q.closed:
			return nil, queue.ErrClosed
		default:
		}
		msgs, signal, err := q.take(ctx, max)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		select {
		case <-signal:
		case <-deadline.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.closed:
			return nil, queue.ErrClosed
		}
	}
}

// Touch implements queue.Toucher: the entries count as delivered now.
func (q *Queue) Touch(_ context.Context, ids []int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	for _, id := range ids {
		if _, ok := q.inflight[id]; ok {
			q.inflight[id] = now
		}
	}
	return nil
}

// take hands out up to max entries: redeliveries first (nacked, then in flight for longer
// than the claim timeout), then new entries in order.
func (q *Queue) take(ctx context.Context, max int) ([]queue.Message, <-chan struct{}, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	var again []int64
	for len(q.retry) > 0 && len(again) < max {
		again = append(again, q.retry[0])
		q.retry = q.retry[1:]
	}
	if len(again) < max {
		for id, at := range q.inflight {
			if now.Sub(at) > q.opts.ClaimIdle {
				again = append(again, id)
				if len(again) == max {
					break
				}
			}
		}
	}
	var msgs []queue.Message
	if len(again) > 0 {
		rows, err := q.selectIDs(ctx, again)
		if err != nil {
			q.retry = append(again, q.retry...)
			return nil, q.signal, err
		}
		msgs = rows
	}
	if n := max - len(msgs); n > 0 && q.freshOK {
		// New entries straight from the writer, no read of the table.
		n = min(n, len(q.fresh))
		msgs = append(msgs, q.fresh[:n]...)
		q.fresh = q.fresh[n:]
		if n > 0 {
			q.cursor = msgs[len(msgs)-1].ID
		}
	} else if n > 0 {
		rows, err := q.rdb.QueryContext(ctx, `SELECT id, event_id, data, attempts FROM entries WHERE id > ? ORDER BY id LIMIT ?`, q.cursor, n)
		if err != nil {
			return msgs, q.signal, fmt.Errorf("sqlitequeue: fetch: %w", err)
		}
		fresh, err := scanMessages(rows)
		if err != nil {
			return msgs, q.signal, err
		}
		if len(fresh) > 0 {
			q.cursor = fresh[len(fresh)-1].ID
		}
		msgs = append(msgs, fresh...)
		if len(fresh) < n {
			// Caught up with the table: later appends can be handed over in memory.
			q.freshOK, q.fresh = true, nil
		}
	}
	for _, m := range msgs {
		q.inflight[m.ID] = now
	}
	return msgs, q.signal, nil
}

func (q *Queue) selectIDs(ctx context.Context, ids []int64) ([]queue.Message, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	query := `SELECT id, event_id, data, attempts FROM entries WHERE id IN (?` + strings.Repeat(",?", len(ids)-1) + `) ORDER BY id`
	rows, err := q.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitequeue: redeliver: %w", err)
	}
	return scanMessages(rows)
}

func scanMessages(rows *sql.Rows) ([]queue.Message, error) {
	defer rows.Close()
	var msgs []queue.Message
	for rows.Next() {
		var m queue.Message
		if err := rows.Scan(&m.ID, &m.EventID, &m.Data, &m.Attempts); err != nil {
			return msgs, fmt.Errorf("sqlitequeue: scan: %w", err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return msgs, fmt.Errorf("sqlitequeue: scan: %w", err)
	}
	return msgs, nil
}

// PendingEventIDs implements queue.Queue.
func (q *Queue) PendingEventIDs(ctx context.Context, fn func(string)) error {
	select {
	case <-q.closed:
		return queue.ErrClosed
	default:
	}
	rows, err := q.rdb.QueryContext(ctx, `SELECT event_id FROM entries`)
	if err != nil {
		return fmt.Errorf("sqlitequeue: pending ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("sqlitequeue: pending ids: %w", err)
		}
		fn(id)
	}
	return rows.Err()
}

// Stats implements queue.Queue.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	select {
	case <-q.closed:
		return queue.Stats{}, queue.ErrClosed
	default:
	}
	q.mu.Lock()
	s := queue.Stats{
		Length:        q.enqueued - q.acked,
		Pending:       int64(len(q.inflight)),
		TotalEnqueued: q.enqueued,
	}
	q.mu.Unlock()
	return s, nil
}

// Ping implements queue.Queue.
func (q *Queue) Ping(ctx context.Context) error {
	select {
	case <-q.closed:
		return queue.ErrClosed
	default:
	}
	var one int
	if err := q.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlitequeue: ping: %w", err)
	}
	return nil
}

// Close stops the writer after it has answered every submitted request, then closes the
// database and releases the lock.
func (q *Queue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.closed)
		<-q.writerErr
		err = q.closeDBs()
	})
	return err
}

func (q *Queue) closeDBs() error {
	err := errors.Join(q.rdb.Close(), q.wdb.Close())
	if q.lock != nil {
		q.lock.Close()
	}
	return err
}
