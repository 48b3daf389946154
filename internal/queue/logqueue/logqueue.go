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
// It replaced a SQLite table: the same work cost about a third of evp's CPU in SQLite
// (B-tree inserts and deletes, WAL pages, cgo calls) and is now a few memory copies and
// one system call per group.
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
	SegmentSize int64         // a new segment file is started past this size; 64 MiB
	MaxGroup    int           // entries, acks and nacks one commit takes at most; 20000
	Log         *slog.Logger  // replay progress at open; discarded when nil
}

// Queue implements queue.Queue and queue.Toucher on a log of segment files in one
// directory.
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

	mu       sync.Mutex
	segs     []*segment // oldest first; the last is the head the writer appends to
	nextID   int64      // id of the next entry to be appended
	length   int64      // entries not yet acknowledged
	failed   error      // set when a write could not be made durable or undone
	cur      position   // where the scan of the files continues
	fresh    []freshMsg // committed entries past cur, in order, while freshOK
	freshOK  bool
	inflight map[int64]flight
	retry    []queue.Message // nacked entries waiting for redelivery
	attempts map[int64]int   // deliveries recorded in the log for entries not yet delivered
	signal   chan struct{}   // closed and replaced after entries are added
	idleScan time.Time       // when in-flight entries were last checked for the claim timeout
	rbuf     []byte          // the scan's read buffer
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
	ack     []int64
	nack    []int64
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
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 20000
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
		q.closeFiles()
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
		f.Close()
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

// maxFresh bounds the committed entries kept in memory for workers; past it they are read
// back from the files.
const maxFresh = 50000

// take hands out up to max entries: redeliveries first (nacked, then in flight for longer
// than the claim timeout), then new entries in order. Called without mu.
func (q *Queue) take(max int) ([]queue.Message, <-chan struct{}, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	msgs := make([]queue.Message, 0, min(max, len(q.retry)+len(q.fresh)+64))
	n := min(max, len(q.retry))
	msgs = append(msgs, q.retry[:n]...)
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
	if want := max - len(msgs); want > 0 && q.freshOK {
		// New entries straight from the writer, no read of the files.
		k := min(want, len(q.fresh))
		for _, f := range q.fresh[:k] {
			msgs = append(msgs, f.msg)
		}
		if k > 0 {
			q.cur = q.fresh[k-1].end
			clear(q.fresh[:k])
			q.fresh = q.fresh[k:]
		}
	} else if want > 0 {
		scanned, err := q.scan(want)
		msgs = append(msgs, scanned...)
		if err != nil {
			q.markDelivered(msgs, now)
			return msgs, q.signal, err
		}
	}
	q.markDelivered(msgs, now)
	return msgs, q.signal, nil
}

func (q *Queue) markDelivered(msgs []queue.Message, now time.Time) {
	for _, m := range msgs {
		q.inflight[m.ID] = flight{msg: m, at: now}
	}
}

// readChunk is how much the scan reads from a file at once.
const readChunk = 1 << 20

// scan reads up to max unacknowledged entries from the files at cur. When it reaches the
// committed end of the head it switches the workers over to the in-memory hand-over.
// Called with mu held.
func (q *Queue) scan(max int) ([]queue.Message, error) {
	var msgs []queue.Message
	for len(msgs) < max {
		seg := q.cur.seg
		if q.cur.off >= seg.size {
			i := slices.Index(q.segs, seg)
			if i == len(q.segs)-1 {
				// Caught up: later commits are handed over in memory.
				q.freshOK, q.fresh = true, nil
				break
			}
			q.cur = position{seg: q.segs[i+1]}
			continue
		}
		end, err := walk(seg, q.cur.off, seg.size, &q.rbuf, func(r record, end int64) bool {
			q.cur.off = end
			if r.kind != kindEntry || seg.isAcked(r.id) {
				return true
			}
			// Copy out: the read buffer is reused.
			m := queue.Message{ID: r.id, EventID: string(r.eventID), Data: slices.Clone(r.data)}
			m.Attempts = r.attempts + q.attempts[r.id]
			msgs = append(msgs, m)
			return len(msgs) < max
		})
		if err != nil {
			return msgs, fmt.Errorf("logqueue: read %s at %d: %w", seg.path, end, err)
		}
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
	for _, s := range q.segs {
		bytes += s.size
	}
	return len(q.segs), bytes
}

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
