package logqueue

import (
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/evp-dev/evp/internal/queue"
)

// maxGroupBytes bounds the entries' bytes one commit takes (one request is always taken
// whole); the writer keeps its encoding buffer for the next commit up to keepBufBytes.
const (
	maxGroupBytes = 64 << 20
	keepBufBytes  = 4 << 20
)

func (q *Queue) writer() {
	defer close(q.writerDone)
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
		n, size := len(first.entries)+len(first.ack)+len(first.nack), first.bytes
	drain:
		for n < q.opts.MaxGroup && size < maxGroupBytes {
			select {
			case r := <-q.reqs:
				group = append(group, r)
				n += len(r.entries) + len(r.ack) + len(r.nack)
				size += r.bytes
			default:
				break drain
			}
		}
		q.commit(group)
	}
}

// commit appends a group of requests with one write and one fdatasync, publishes the
// result to the readers and answers each request.
func (q *Queue) commit(group []*writeReq) {
	err := q.append(group)
	if err != nil {
		q.mu.Lock()
		q.writeErr = err
		q.mu.Unlock()
	}
	for _, r := range group {
		if r.refused != nil {
			r.done <- r.refused
		} else {
			r.done <- err
		}
	}
}

// admit decides which requests' entries the group takes under MaxBytes: it sets refused
// on the others. It returns the size of the smallest request refused, 0 when none was.
func (q *Queue) admit(group []*writeReq) (refused int64) {
	if q.opts.MaxBytes <= 0 {
		return 0
	}
	q.mu.Lock()
	used := q.used()
	q.mu.Unlock()
	for _, r := range group {
		if len(r.entries) == 0 {
			continue
		}
		if used > 0 && used+r.bytes > q.opts.MaxBytes {
			r.refused = fmt.Errorf("%w: the buffer files hold %s of at most %s (EVP_BUFFER_MAX_BYTES)",
				queue.ErrFull, mib(used), mib(q.opts.MaxBytes))
			if refused == 0 || r.bytes < refused {
				refused = r.bytes
			}
			continue
		}
		used += r.bytes
	}
	return refused
}

func (q *Queue) append(group []*writeReq) error {
	q.mu.Lock()
	failed, head, nextID := q.failed, q.segs[len(q.segs)-1], q.nextID
	q.mu.Unlock()
	if failed != nil {
		return failed
	}
	refused := q.admit(group)
	if head.size >= q.opts.SegmentSize {
		var err error
		if head, err = q.startSegment(nextID); err != nil {
			return err
		}
	}

	// Encode: entries get consecutive ids; acks are written as runs.
	buf := q.wbuf[:0]
	var added []freshMsg
	var acks, nacks []int64
	id := nextID
	for _, r := range group {
		if r.refused != nil {
			continue
		}
		for _, e := range r.entries {
			buf = appendEntry(buf, id, 0, e.EventID, e.Data)
			added = append(added, freshMsg{
				msg: queue.Message{ID: id, EventID: e.EventID, Data: e.Data, Event: e.Event},
				end: position{seg: head, off: head.size + int64(len(buf))},
			})
			id++
		}
		acks = append(acks, r.ack...)
		nacks = append(nacks, r.nack...)
	}
	slices.Sort(acks)
	acks = slices.Compact(acks)
	buf = appendAcks(buf, acks)
	buf = appendNacks(buf, nacks)
	q.wbuf = buf[:0]
	if cap(buf) > keepBufBytes {
		q.wbuf = nil // grown for large requests: not kept
	}
	if len(buf) == 0 { // every request was refused
		q.publish(head, 0, id, nil, nil, nil, refused)
		return nil
	}

	if _, err := head.file.WriteAt(buf, head.size); err != nil {
		// Cut off whatever part was written, so that later records follow whole ones.
		if terr := head.file.Truncate(head.size); terr != nil {
			q.fail(fmt.Errorf("logqueue: write to %s failed (%v) and could not be undone: %w", head.path, err, terr))
		}
		return fmt.Errorf("logqueue: write %s: %w", head.path, err)
	}
	if !q.opts.NoFsync {
		if err := syscall.Fdatasync(int(head.file.Fd())); err != nil {
			// After a failed fsync the kernel may have dropped the pages: nothing written
			// since the last good one can be trusted. Refuse further writes; a restart
			// replays what is really on disk.
			err = fmt.Errorf("logqueue: fsync %s: %w (restart evp to recover)", head.path, err)
			q.fail(err)
			return err
		}
	}
	q.publish(head, int64(len(buf)), id, added, acks, nacks, refused)
	return nil
}

func (q *Queue) fail(err error) {
	q.mu.Lock()
	if q.failed == nil {
		q.failed = err
	}
	q.mu.Unlock()
}

// publish makes a durable group visible: new entries to the workers, acknowledgements and
// redeliveries to the delivery state. Segments that became fully acknowledged are deleted.
// refused is the size of the smallest request refused for MaxBytes, 0 when none was.
func (q *Queue) publish(head *segment, written, nextID int64, added []freshMsg, acks, nacks []int64, refused int64) {
	q.mu.Lock()
	head.size += written
	q.fileBytes += written
	if written > 0 {
		q.writeErr = nil
	}
	if len(added) > 0 {
		q.refused = 0
	}
	if refused > 0 {
		q.refused = refused
	}
	head.count += nextID - q.nextID
	q.length += nextID - q.nextID
	q.nextID = nextID
	q.handOff(added)
	for _, id := range acks {
		if s := q.segmentFor(id); s != nil && s.ack(id) {
			q.length--
		}
		if f, ok := q.inflight[id]; ok {
			q.held -= memCost(&f.msg)
			delete(q.inflight, id)
		}
		delete(q.attempts, id)
	}
	for _, id := range nacks {
		if f, ok := q.inflight[id]; ok {
			delete(q.inflight, id)
			f.msg.Attempts++
			q.retry = append(q.retry, f.msg)
		}
	}
	drop := q.dropAcked()
	wake := q.starved && len(acks) > 0 // room under DeliveredBytes for the entries held back
	if wake {
		q.starved = false
	}
	if len(added) > 0 || len(nacks) > 0 || wake {
		close(q.signal)
		q.signal = make(chan struct{})
	}
	q.mu.Unlock()
	for _, s := range drop {
		_ = s.file.Close()
		if err := os.Remove(s.path); err != nil {
			q.log.Warn("buffer: could not delete an acknowledged segment", "file", s.path, "err", err)
		}
	}
}

// handOff passes newly committed entries to the workers. Called with mu held. When too
// many wait (maxFresh, HandOffBytes), the list is dropped and the workers read the files
// from cur, where every one of them still is.
func (q *Queue) handOff(added []freshMsg) {
	if len(added) == 0 || !q.freshOK {
		return
	}
	var n int64
	for i := range added {
		n += memCost(&added[i].msg)
	}
	if len(q.fresh)+len(added) > maxFresh || q.freshBytes+n > q.opts.HandOffBytes {
		q.freshOK, q.fresh, q.freshBytes = false, nil, 0
		return
	}
	q.fresh = append(q.fresh, added...)
	q.freshBytes += n
}

// dropAcked removes from the list the oldest segments whose entries, and all older ones,
// are acknowledged; the head stays. Their acknowledgements can only be in them or in
// newer segments, so no remaining entry loses one. Called with mu held; the caller
// deletes the files.
func (q *Queue) dropAcked() []*segment {
	var drop []*segment
	for len(q.segs) > 1 && q.segs[0].unacked() == 0 {
		s := q.segs[0]
		q.segs = q.segs[1:]
		q.fileBytes -= s.size
		if q.cur.seg == s {
			q.cur = position{seg: q.segs[0]}
		}
		drop = append(drop, s)
	}
	return drop
}

// startSegment creates the segment whose first entry will be nextID and makes it the head.
// Only the writer calls it.
func (q *Queue) startSegment(nextID int64) (*segment, error) {
	s := &segment{firstID: nextID, path: q.dir + string(os.PathSeparator) + segmentName(nextID)}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("logqueue: new segment: %w", err)
	}
	s.file = f
	if err := syncDir(q.dir); err != nil && !q.opts.NoFsync {
		_ = f.Close()
		_ = os.Remove(s.path)
		return nil, err
	}
	q.mu.Lock()
	q.segs = append(q.segs, s)
	q.mu.Unlock()
	return s, nil
}

// syncDir makes a new or removed file name in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("logqueue: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("logqueue: sync %s: %w", dir, err)
	}
	return nil
}
