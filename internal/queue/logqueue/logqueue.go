// Package logqueue is the embedded durable buffer: an append-only log of segment files,
// written by one group-committing writer and read by any number of workers in the same
// process.
//
// Every Enqueue, Ack and Nack is a request to the writer goroutine. The writer takes one
// request and everything that queued up meanwhile, encodes them as records (entries, then
// acknowledgements and redeliveries), appends them with one write and one fdatasync, and
// answers each request. An idle system commits a single request at once; under load the
// groups grow by themselves.
//
// Workers get new entries from memory as they are committed, without reading the files;
// only after a restart, or when workers fall far behind, are entries read back from disk.
// A segment file is deleted once every entry in it and in all older segments has been
// acknowledged. Which entries are in flight lives in memory: after a restart every
// unacknowledged entry is delivered again, which is what at-least-once asks for.
//
// Disk and memory are bounded in bytes: the files by Options.MaxBytes (Enqueue refuses
// past it), the entries kept in memory for the workers by Options.HandOffBytes (past it
// they are read back from the files), and the entries delivered and not yet acknowledged
// by Options.DeliveredBytes (past it Fetch hands out nothing new).
//
// Files rather than a SQLite table: a group costs a few memory copies and one system call,
// not B-tree inserts and deletes, WAL pages and cgo calls.
package logqueue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/evp-dev/evp/internal/queue"
)

// Options configures a Queue. Zero values take the defaults noted.
type Options struct {
	// NoFsync skips the fdatasync after each group: a committed entry then survives a
	// killed process (it is in the page cache) but not a power cut.
	NoFsync     bool
	ClaimIdle   time.Duration // in-flight entries older than this are delivered again; 60 s
	SegmentSize int64         // a new segment file is started past this size; 64 MiB, at most MaxBytes/8
	MaxGroup    int           // entries, acks and nacks one commit takes at most; 20000
	Log         *slog.Logger  // replay progress at open; discarded when nil
	// MaxBytes bounds the segment files: an Enqueue that would take them past it appends
	// nothing and fails with an error wrapping queue.ErrFull, until acknowledgements let
	// segments be deleted. Acks and nacks are never refused. A fully acknowledged head
	// segment does not count (the next new segment deletes it), and a request larger than
	// the bound is taken when nothing else counts. 0: no bound. evp sets it from
	// EVP_BUFFER_MAX_BYTES, which the error names.
	MaxBytes int64
	// HandOffBytes bounds the committed entries kept in memory for the workers (see
	// memCost); past it the workers read them back from the files. 32 MiB.
	HandOffBytes int64
	// DeliveredBytes bounds the entries delivered and not yet acknowledged (see memCost):
	// past it Fetch hands out no new entries, only redeliveries, until acknowledgements
	// come. One entry is always handed out when none is out, however large. 64 MiB.
	DeliveredBytes int64
	// Group names, in Describe, the one consumer group: the workers of this process.
	Group string
}

// Queue implements queue.Queue, queue.Toucher and queue.Bounded on a log of segment files
// in one directory.
type Queue struct {
	dir  string
	lock *os.File
	opts Options
	log  *slog.Logger

	reqs       chan *writeReq
	writerDone chan struct{}
	closeOnce  sync.Once
	closed     chan struct{}
	wbuf       []byte // the writer's encoding buffer

	mu         sync.Mutex
	segs       []*segment // oldest first; the last is the head the writer appends to
	fileBytes  int64      // sum of the segments' sizes
	nextID     int64      // id of the next entry to be appended
	length     int64      // entries not yet acknowledged
	failed     error      // set when a write could not be made durable or undone
	writeErr   error      // the last append's error, until an append succeeds
	refused    int64      // bytes of the last request refused for MaxBytes, until one is taken
	cur        position   // where the scan of the files continues
	fresh      []freshMsg // committed entries past cur, in order, while freshOK
	freshOK    bool
	freshBytes int64 // memCost of fresh
	inflight   map[int64]flight
	retry      []queue.Message // nacked entries waiting for redelivery
	held       int64           // memCost of the entries in inflight and retry
	starved    bool            // a Fetch found entries but DeliveredBytes held them back
	attempts   map[int64]int   // deliveries recorded in the log for entries not yet delivered
	signal     chan struct{}   // closed and replaced after entries are added or room is made
	idleScan   time.Time       // when in-flight entries were last checked for the claim timeout
	rbuf       []byte          // the scan's read buffer
}

type position struct {
	seg *segment
	off int64
}

type freshMsg struct {
	msg queue.Message
	end position // just past its record
}

type flight struct {
	msg queue.Message
	at  time.Time
}

type writeReq struct {
	entries []queue.Entry
	bytes   int64 // entries' size in the log
	ack     []int64
	nack    []int64
	refused error // set by the writer when the entries are not taken (MaxBytes)
	done    chan error
}

// Open opens the log in dir (created if missing), taking an exclusive lock so that no
// second process shares it, and replays it: acknowledged entries are skipped and the
// rest will be delivered again. A torn record at the end of the newest segment, left by a
// crash in the middle of a write that was never acknowledged, is cut off.
func Open(ctx context.Context, dir string, opts Options) (*Queue, error) {
	if opts.ClaimIdle <= 0 {
		opts.ClaimIdle = 60 * time.Second
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 64 << 20
	}
	if opts.MaxBytes > 0 {
		// Small against the bound, so that acknowledged segments are deleted and space
		// comes back long before the bound is reached.
		opts.SegmentSize = min(opts.SegmentSize, max(opts.MaxBytes/8, 64<<10))
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 20000
	}
	if opts.HandOffBytes <= 0 {
		opts.HandOffBytes = 32 << 20
	}
	if opts.DeliveredBytes <= 0 {
		opts.DeliveredBytes = 64 << 20
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("logqueue: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	q := &Queue{
		dir: dir, lock: lock, opts: opts, log: log,
		reqs:       make(chan *writeReq, 4096),
		writerDone: make(chan struct{}),
		closed:     make(chan struct{}),
		inflight:   make(map[int64]flight),
		attempts:   make(map[int64]int),
		signal:     make(chan struct{}),
	}
	if err := q.replay(ctx); err != nil {
		_ = q.closeFiles()
		return nil, err
	}
	q.cur = position{seg: q.segs[0]}
	go q.writer()
	return q, nil
}

// lockDir takes an exclusive, non-blocking flock on dir/buffer.lock. The kernel drops it
// when the process dies, so a crash never leaves a stale lock.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "buffer.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("logqueue: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("logqueue: %s is in use by another evp process (%w)", dir, err)
	}
	return f, nil
}

// Dir is the directory holding the segment files.
func (q *Queue) Dir() string { return q.dir }

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
	case <-q.writerDone:
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
	var n int64
	for _, e := range entries {
		n += entrySize(e.EventID, e.Data)
	}
	return q.submit(ctx, &writeReq{entries: entries, bytes: n})
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
		msgs, signal, err := q.take(max)
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
		if f, ok := q.inflight[id]; ok {
			f.at = now
			q.inflight[id] = f
		}
	}
	return nil
}

// maxFresh bounds the committed entries kept in memory for workers, as HandOffBytes bounds
// their bytes; past either they are read back from the files.
const maxFresh = 50000

// msgOverhead is what a message costs in memory besides its data and event id: the
// Message, its place in the lists and maps that hold it.
const msgOverhead = 128

// memCost is what m holds in memory, as HandOffBytes and DeliveredBytes count it: its data
// and event id, and its decoded event when it carries one (counted as large as the data).
func memCost(m *queue.Message) int64 {
	n := int64(msgOverhead + len(m.EventID) + len(m.Data))
	if m.Event != nil {
		n += int64(len(m.Data))
	}
	return n
}

// take hands out up to max entries: redeliveries first (nacked, then in flight for longer
// than the claim timeout), then new entries in order, as far as DeliveredBytes leaves room.
// Called without mu.
func (q *Queue) take(max int) ([]queue.Message, <-chan struct{}, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	msgs := make([]queue.Message, 0, min(max, len(q.retry)+len(q.fresh)+64))
	n := min(max, len(q.retry))
	msgs = append(msgs, q.retry[:n]...)
	clear(q.retry[:n])
	q.retry = q.retry[n:]
	if len(msgs) < max && now.Sub(q.idleScan) > q.opts.ClaimIdle/10 {
		q.idleScan = now
		for _, f := range q.inflight {
			if now.Sub(f.at) > q.opts.ClaimIdle {
				msgs = append(msgs, f.msg)
				if len(msgs) == max {
					break
				}
			}
		}
	}
	again := len(msgs) // redeliveries: their bytes are counted in held already
	room := q.opts.DeliveredBytes - q.held
	if want := max - len(msgs); want > 0 && q.freshOK {
		// New entries straight from the writer, no read of the files.
		k := 0
		for k < min(want, len(q.fresh)) {
			c := memCost(&q.fresh[k].msg)
			if !q.fits(c, room, k) {
				q.starved = true
				break
			}
			room -= c
			q.freshBytes -= c
			msgs = append(msgs, q.fresh[k].msg)
			k++
		}
		if k > 0 {
			q.cur = q.fresh[k-1].end
			clear(q.fresh[:k])
			q.fresh = q.fresh[k:]
		}
	} else if want > 0 {
		scanned, err := q.scan(want, room)
		msgs = append(msgs, scanned...)
		if err != nil {
			q.markDelivered(msgs, again, now)
			return msgs, q.signal, err
		}
	}
	q.markDelivered(msgs, again, now)
	return msgs, q.signal, nil
}

// fits reports whether a new entry of cost bytes may be handed out with room bytes left
// under DeliveredBytes, taken new entries handed out by this call before it: always when
// it is the only one out. Called with mu held.
func (q *Queue) fits(cost, room int64, taken int) bool {
	return cost <= room || (q.held == 0 && taken == 0)
}

// markDelivered records msgs as in flight from now; those from index again on are new
// deliveries, whose bytes start to count in held. Called with mu held.
func (q *Queue) markDelivered(msgs []queue.Message, again int, now time.Time) {
	for i, m := range msgs {
		if i >= again {
			q.held += memCost(&m)
		}
		q.inflight[m.ID] = flight{msg: m, at: now}
	}
}

// readChunk is how much the scan reads from a file at once.
const readChunk = 1 << 20

// scan reads up to max unacknowledged entries from the files at cur, as many as room bytes
// of DeliveredBytes take. When it reaches the committed end of the head it switches the
// workers over to the in-memory hand-over. Called with mu held.
func (q *Queue) scan(max int, room int64) ([]queue.Message, error) {
	var msgs []queue.Message
	defer func() {
		if cap(q.rbuf) > readChunk {
			q.rbuf = nil // grown for one large record: not kept
		}
	}()
	full := false // the next entry does not fit in room
	for len(msgs) < max && !full {
		seg := q.cur.seg
		if q.cur.off >= seg.size {
			i := slices.Index(q.segs, seg)
			if i == len(q.segs)-1 {
				// Caught up: later commits are handed over in memory.
				q.freshOK, q.fresh, q.freshBytes = true, nil, 0
				break
			}
			q.cur = position{seg: q.segs[i+1]}
			continue
		}
		end, err := walk(seg, q.cur.off, seg.size, &q.rbuf, func(r record, end int64) bool {
			if r.kind == kindEntry && !seg.isAcked(r.id) {
				c := int64(msgOverhead + len(r.eventID) + len(r.data))
				if !q.fits(c, room, len(msgs)) {
					full = true // cur stays at this record
					return false
				}
				room -= c
				// Copy out: the read buffer is reused.
				m := queue.Message{ID: r.id, EventID: string(r.eventID), Data: slices.Clone(r.data)}
				m.Attempts = r.attempts + q.attempts[r.id]
				msgs = append(msgs, m)
			}
			q.cur.off = end
			return len(msgs) < max
		})
		if err != nil {
			return msgs, fmt.Errorf("logqueue: read %s at %d: %w", seg.path, end, err)
		}
	}
	if full {
		q.starved = true
	}
	return msgs, nil
}

// walk reads the records of seg in [off, limit), calling fn with each record and the
// offset just past it, until fn returns false. It returns the offset it stopped at; when
// the bytes there are not a whole record it returns errTorn (a partial record at limit
// included).
func walk(seg *segment, off, limit int64, buf *[]byte, fn func(r record, end int64) bool) (int64, error) {
	need := int64(0) // set when one record is larger than a chunk
	for off < limit {
		want := min(max(int64(readChunk), need), limit-off)
		if int64(cap(*buf)) < want {
			*buf = make([]byte, want)
		}
		b := (*buf)[:want]
		if _, err := seg.file.ReadAt(b, off); err != nil {
			return off, err
		}
		for len(b) > 0 {
			r, size, err := parseRecord(b)
			if errors.Is(err, errShort) {
				if off+int64(size) > limit || size == 0 {
					return off, errTorn
				}
				if len(b) == int(want) {
					need = int64(size) // one record larger than a chunk: read it whole
				}
				break // read again from this record
			}
			if err != nil {
				return off, err
			}
			need = 0
			off += int64(size)
			b = b[size:]
			if !fn(r, off) {
				return off, nil
			}
		}
	}
	return off, nil
}

// PendingEventIDs implements queue.Queue. It reads every segment with unacknowledged
// entries while holding the queue's lock: meant for start-up, before traffic arrives.
func (q *Queue) PendingEventIDs(ctx context.Context, fn func(string)) error {
	if q.isClosed() {
		return queue.ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var buf []byte
	for _, seg := range q.segs {
		if seg.unacked() == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		end, err := walk(seg, 0, seg.size, &buf, func(r record, _ int64) bool {
			if r.kind == kindEntry && !seg.isAcked(r.id) {
				fn(string(r.eventID))
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("logqueue: read %s at %d: %w", seg.path, end, err)
		}
	}
	return nil
}

// Stats implements queue.Queue.
func (q *Queue) Stats(context.Context) (queue.Stats, error) {
	if q.isClosed() {
		return queue.Stats{}, queue.ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return queue.Stats{Length: q.length, Pending: int64(len(q.inflight)), TotalEnqueued: q.nextID - 1}, nil
}

// Segments reports how many segment files the log has and their total size in bytes.
func (q *Queue) Segments() (files int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.segs), q.fileBytes
}

// Fill implements queue.Bounded: the bytes of segment files counted against MaxBytes, and
// MaxBytes (0: no bound).
func (q *Queue) Fill(context.Context) (used, limit int64, err error) {
	if q.isClosed() {
		return 0, 0, queue.ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.used(), q.opts.MaxBytes, nil
}

// used is the bytes of segment files counted against MaxBytes: all but a fully
// acknowledged head with no older segment left, which the next new segment deletes.
// Called with mu held.
func (q *Queue) used() int64 {
	if len(q.segs) == 1 && q.segs[0].unacked() == 0 {
		return 0
	}
	return q.fileBytes
}

// Refusal reports why Enqueue refuses entries now, or nil: the last append failed (a full
// disk, say), until an append succeeds again; or MaxBytes is reached, until
// acknowledgements make room for the last request refused. For the health check: Ping
// reports only what needs a restart.
func (q *Queue) Refusal() error {
	if q.isClosed() {
		return queue.ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.writeErr != nil {
		return fmt.Errorf("buffer write failed: %w; ingestion is refused until a write succeeds", q.writeErr)
	}
	if used := q.used(); q.refused > 0 && used+q.refused > q.opts.MaxBytes {
		return fmt.Errorf("buffer full: %s of %s; ingestion is refused until the workers catch up", mib(used), mib(q.opts.MaxBytes))
	}
	return nil
}

// mib formats n bytes as MiB with one decimal.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Ping implements queue.Queue: it fails once a write could not be made durable.
func (q *Queue) Ping(context.Context) error {
	if q.isClosed() {
		return queue.ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed != nil {
		return q.failed
	}
	if _, err := q.segs[len(q.segs)-1].file.Stat(); err != nil {
		return fmt.Errorf("logqueue: %w", err)
	}
	return nil
}

func (q *Queue) isClosed() bool {
	select {
	case <-q.closed:
		return true
	default:
		return false
	}
}

// Close stops the writer after it has answered every submitted request, then closes the
// files and releases the lock.
func (q *Queue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.closed)
		<-q.writerDone
		err = q.closeFiles()
	})
	return err
}

func (q *Queue) closeFiles() error {
	var errs []error
	for _, s := range q.segs {
		if s.file != nil {
			errs = append(errs, s.file.Close())
		}
	}
	if q.lock != nil {
		errs = append(errs, q.lock.Close())
	}
	return errors.Join(errs...)
}

// segmentFor finds the live segment holding id. Called with mu held (or before the writer
// starts).
func (q *Queue) segmentFor(id int64) *segment {
	i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].firstID > id }) - 1
	if i < 0 {
		return nil
	}
	return q.segs[i]
}
