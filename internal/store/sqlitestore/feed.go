package sqlitestore

import (
	"context"
	"database/sql"
	"sort"
	"sync"
)

// Events reach the analytics engine in seq order (rows commit in seq order: SQLite has one
// writer at a time): those this process inserted through the handoff, straight from the
// commit, and those of other processes (or stored along with duplicates, whose seqs are not
// known) read back from the events table.

// feedRow is what the analytics engine takes of a stored event.
type feedRow struct {
	seq                int64
	user, session, typ string
	ts                 int64
}

// feedChunk bounds the events one read of the events table returns.
const feedChunk = 50000

// readRowsSQL reads the events after a seq, in seq order, up to a number.
const readRowsSQL = `SELECT seq, user_id, session_id, event_type, ts FROM events WHERE seq > ? ORDER BY seq LIMIT ?`

// readRows reads up to feedChunk events after seq from, in seq order.
func (s *Store) readRows(ctx context.Context, from int64) ([]feedRow, error) {
	rows, err := s.rdb.QueryContext(ctx, readRowsSQL, from, feedChunk)
	if err != nil {
		return nil, err
	}
	return scanFeedRows(rows)
}

func scanFeedRows(rows *sql.Rows) ([]feedRow, error) {
	defer rows.Close()
	var out []feedRow
	for rows.Next() {
		var r feedRow
		if err := rows.Scan(&r.seq, &r.user, &r.session, &r.typ, &r.ts); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// maxHandoffRows bounds the rows waiting in the handoff; past it (nothing taking them in
// this process) they are dropped and the feeder reads the events table.
const maxHandoffRows = 200_000

// kickHandoffRows is how many waiting rows start a feed before the next tick, so that a
// process storing more than maxHandoffRows a second does not overflow the handoff (and then
// read every row back from the events table).
const kickHandoffRows = maxHandoffRows / 2

// handoff holds the rows this process inserted, with their seqs, from the commit until the
// feeder takes them: it then reads from the events table only the rows another
// process inserted, or that were stored along with duplicates (their seqs are not known).
type handoff struct {
	mu   sync.Mutex
	segs []handoffSeg
	rows int
	kick chan struct{} // holds a value once rows reach kickHandoffRows; the feeder takes it
}

// handoffSeg is rows with consecutive seqs from the first one's.
type handoffSeg []feedRow

// add hands over committed segments.
func (h *handoff) add(segs []handoffSeg) {
	if len(segs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sg := range segs {
		h.segs = append(h.segs, sg)
		h.rows += len(sg)
	}
	if h.rows > maxHandoffRows {
		h.segs, h.rows = nil, 0
	}
	if h.rows >= kickHandoffRows && h.kick != nil {
		select {
		case h.kick <- struct{}{}:
		default: // a feed is already due
		}
	}
}

// take returns up to limit rows with the seqs right after from, or nil when the rows after
// from are not all there (the caller reads the events table). Segments at or before from
// are dropped.
func (h *handoff) take(from int64, limit int) []feedRow {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Commits are serial but their hand-overs may arrive out of order: sort by seq.
	sort.Slice(h.segs, func(i, j int) bool { return h.segs[i][0].seq < h.segs[j][0].seq })
	k := 0
	for k < len(h.segs) && h.segs[k][len(h.segs[k])-1].seq <= from {
		h.rows -= len(h.segs[k])
		k++
	}
	h.segs = h.segs[k:]
	if len(h.segs) == 0 || h.segs[0][0].seq > from+1 {
		return nil
	}
	n := 0
	for _, sg := range h.segs {
		n += len(sg)
	}
	out := make([]feedRow, 0, min(n, limit))
	next := from + 1
	for _, sg := range h.segs {
		if sg[0].seq > next || len(out) >= limit {
			break // a gap: rows of another process; this feed stops before it
		}
		i := int(next - sg[0].seq)
		j := min(len(sg), i+limit-len(out))
		out = append(out, sg[i:j]...)
		next = sg[j-1].seq + 1
	}
	return out
}
