package logqueue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// replay reads every segment once at open: it counts the entries, marks the acknowledged
// ones, restores delivery counts and cuts a torn tail off the newest segment. Then it
// deletes segments nothing in which is waiting any more.
func (q *Queue) replay(ctx context.Context) error {
	segs, err := listSegments(q.dir)
	if err != nil {
		return fmt.Errorf("logqueue: %w", err)
	}
	q.segs = segs
	if len(segs) == 0 {
		q.nextID = 1
		if _, err := q.startSegment(1); err != nil {
			return err
		}
		return nil
	}
	started, lastReport := time.Now(), time.Now()
	var buf []byte
	var bytes int64
	for i, s := range segs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.file, err = os.OpenFile(s.path, os.O_RDWR, 0); err != nil {
			return fmt.Errorf("logqueue: %w", err)
		}
		if i > 0 {
			prev := segs[i-1]
			if s.firstID != prev.firstID+prev.count {
				return fmt.Errorf("logqueue: %s should start at entry %d: entries are missing; move the directory %s aside to start with an empty buffer",
					s.path, prev.firstID+prev.count, q.dir)
			}
		}
		info, err := s.file.Stat()
		if err != nil {
			return fmt.Errorf("logqueue: %w", err)
		}
		var bad error
		end, err := walk(s, 0, info.Size(), &buf, func(r record, _ int64) bool {
			switch r.kind {
			case kindEntry:
				if r.id != s.firstID+s.count {
					bad = fmt.Errorf("entry %d where %d was expected", r.id, s.firstID+s.count)
					return false
				}
				s.count++
				if r.attempts > 0 {
					q.attempts[r.id] = r.attempts
				}
			case kindAck:
				ackRanges(r.body, func(first int64, n int) {
					for id := first; id < first+int64(n); id++ {
						if seg := q.segmentFor(id); seg != nil && seg.firstID <= s.firstID {
							seg.ack(id)
							delete(q.attempts, id)
						}
					}
				})
			case kindNack:
				nackIDs(r.body, func(id int64) {
					if seg := q.segmentFor(id); seg != nil && !seg.isAcked(id) {
						q.attempts[id]++
					}
				})
			}
			return true
		})
		if bad != nil {
			return fmt.Errorf("logqueue: %s at byte %d: %w", s.path, end, bad)
		}
		if err != nil {
			if !errors.Is(err, errTorn) {
				return fmt.Errorf("logqueue: read %s: %w", s.path, err)
			}
			if i < len(segs)-1 {
				return fmt.Errorf("logqueue: %s is damaged at byte %d of %d (not its end, so not a torn write); move the directory %s aside to start with an empty buffer",
					s.path, end, info.Size(), q.dir)
			}
			// The tail of a write that was never acknowledged to anyone.
			if err := s.file.Truncate(end); err != nil {
				return fmt.Errorf("logqueue: cut torn tail of %s: %w", s.path, err)
			}
			q.log.Warn("buffer: cut off an incomplete record left by a crash", "file", s.path, "bytes", info.Size()-end)
		}
		s.size = end
		bytes += end
		if time.Since(lastReport) > 2*time.Second {
			lastReport = time.Now()
			q.log.Info("buffer: replaying", "segment", i+1, "of", len(segs), "bytes", bytes)
		}
	}
	q.fileBytes = bytes
	last := segs[len(segs)-1]
	q.nextID = last.firstID + last.count
	for _, s := range segs {
		q.length += s.unacked()
	}
	for _, s := range q.dropAcked() {
		_ = s.file.Close()
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("logqueue: delete acknowledged segment: %w", err)
		}
	}
	if d := time.Since(started); d > time.Second || q.length > 0 {
		q.log.Info("buffer: replayed", "segments", len(segs), "bytes", bytes, "waiting", q.length, "took", d.Round(time.Millisecond).String())
	}
	return nil
}
