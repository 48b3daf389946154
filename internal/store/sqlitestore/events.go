package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/evp-dev/evp/internal/blocks"
	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// Reading stored events (store.EventReader): an hour of event time at a time through
// events_hour (store.ScanHours), each hour's rows sorted by SQLite. Events before the
// retention cut-off are never shown, nor the placeholder row a deletion may leave
// (forget.go).

const eventCols = `seq, event_id, event_type, user_id, session_id, ts, metadata, payload, priority, received_at, processed_at, source`

// ScanEvents implements store.EventReader.
func (s *Store) ScanEvents(ctx context.Context, q store.EventQuery, fn func(*store.StoredEvent) bool) (*store.Position, error) {
	cut, err := s.visibleFrom(ctx)
	if err != nil {
		return nil, err
	}
	if q.From.IsZero() || q.From.UnixNano() < cut {
		q.From = time.Unix(0, cut)
	}
	if q.UserID != "" || q.SessionID != "" {
		// One user's or session's events: the analytics engine, fed first, knows which
		// hours hold them.
		if err := s.feed(ctx); err != nil {
			return nil, err
		}
		snap := s.an.eng.Snapshot()
		if _, _, decided := snap.HourBefore(q.UserID, q.SessionID, math.MaxInt64); decided {
			return store.ScanHours(ctx, &engineHours{eventRange: (*eventRange)(s), snap: snap, user: q.UserID, session: q.SessionID}, q, fn)
		}
	}
	return store.ScanHours(ctx, (*eventRange)(s), q, fn)
}

// engineHours is the store as a store.EventRange for one user's or session's events: its
// buckets are the hours the analytics engine has them in, so that a scan skips the hours
// without them (the engine holds every event stored before the scan began: it was fed then).
type engineHours struct {
	*eventRange
	snap          *blocks.Snapshot
	user, session string
}

// PrevBucket implements store.EventRange.
func (e *engineHours) PrevBucket(_ context.Context, from, before int64) (lo, hi int64, ok bool, err error) {
	h, ok, _ := e.snap.HourBefore(e.user, e.session, blocks.HourOf(before-1)+1)
	if !ok || (h+1)*hourNs <= from {
		return 0, 0, false, nil
	}
	return h * hourNs, (h + 1) * hourNs, true, nil
}

// GetEvent implements store.EventReader.
func (s *Store) GetEvent(ctx context.Context, eventID string) (store.StoredEvent, error) {
	cut, err := s.visibleFrom(ctx)
	if err != nil {
		return store.StoredEvent{}, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id = ? AND ts >= ?`, eventID, cut)
	if err != nil {
		return store.StoredEvent{}, fmt.Errorf("sqlitestore: get event: %w", err)
	}
	defer rows.Close()
	var e store.StoredEvent
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return e, fmt.Errorf("sqlitestore: get event: %w", err)
		}
		return e, store.ErrNotFound
	}
	if err := scanEvent(rows, &e); err != nil {
		return e, fmt.Errorf("sqlitestore: get event: %w", err)
	}
	return e, nil
}

// retentionCutoff is the event time before which events are gone (noTime: none).
func (s *Store) retentionCutoff(ctx context.Context) (int64, error) {
	var cut sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'retention_cutoff'`).Scan(&cut)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlitestore: retention cut-off: %w", err)
	}
	if !cut.Valid {
		return noTime, nil
	}
	return cut.Int64, nil
}

// visibleFrom is the earliest event time readers show: the retention cut-off, and never
// the placeholder's (which is before every event time).
func (s *Store) visibleFrom(ctx context.Context) (int64, error) {
	cut, err := s.retentionCutoff(ctx)
	return max(cut, event.MinTime.UnixNano()), err
}

// eventRange is the store as a store.EventRange: its buckets are events_hour's keys.
type eventRange Store

// bucketSpan is the event time span [lo, hi) of hourExpr's key h, which truncates toward
// zero: key 0 spans both sides of 1970, and a negative key's span ends at its hour.
func bucketSpan(h int64) (lo, hi int64) {
	switch {
	case h > 0:
		return h * hourNs, (h + 1) * hourNs
	case h == 0:
		return -hourNs + 1, hourNs
	default:
		return (h-1)*hourNs + 1, h*hourNs + 1
	}
}

// PrevBucket implements store.EventRange with one step of events_hour.
func (r *eventRange) PrevBucket(ctx context.Context, from, before int64) (lo, hi int64, ok bool, err error) {
	var h sql.NullInt64
	if err := r.rdb.QueryRowContext(ctx, `SELECT MAX(`+hourExpr+`) FROM events WHERE `+hourExpr+` BETWEEN ? AND ?`,
		indexHour(from), indexHour(before-1)).Scan(&h); err != nil {
		return 0, 0, false, fmt.Errorf("sqlitestore: events: %w", err)
	}
	if !h.Valid {
		return 0, 0, false, nil
	}
	lo, hi = bucketSpan(h.Int64)
	return lo, hi, true, nil
}

// ScanRange implements store.EventRange. SQLite sorts only (ts, seq) of the hour's
// matching rows, then the whole rows are read by seq: sorting whole rows took most of a
// page's time. With a limit (a page, collected before any reply), one query; without (an
// export, whose fn writes to a client that may be slow), the sorted seqs first and then the
// rows a few at a time, so that no read stays open while fn waits: an open read would keep
// the write-ahead log from being checkpointed for as long as the client dawdles.
func (r *eventRange) ScanRange(ctx context.Context, lo, hi int64, q *store.EventQuery, limit int, fn func(*store.StoredEvent) bool) error {
	match, args := matchingSeqs(lo, hi, q)
	if limit > 0 {
		return r.scan(ctx, fn, `SELECT `+eventCols+` FROM events WHERE seq IN (`+match+` LIMIT ?) ORDER BY ts DESC, seq DESC`, append(args, limit)...)
	}
	seqs, err := (*Store)(r).querySeqs(ctx, match, args...) // 8 bytes an event of one hour
	if err != nil {
		return fmt.Errorf("sqlitestore: events: %w", err)
	}
	for len(seqs) > 0 {
		n := min(len(seqs), exportFetch)
		chunk := make([]store.StoredEvent, 0, n)
		in := make([]any, n)
		for i, sq := range seqs[:n] {
			in[i] = sq
		}
		err := r.scan(ctx, func(e *store.StoredEvent) bool { chunk = append(chunk, *e); return true },
			`SELECT `+eventCols+` FROM events WHERE seq IN (?`+strings.Repeat(",?", n-1)+`) ORDER BY ts DESC, seq DESC`, in...)
		if err != nil {
			return err
		}
		for i := range chunk { // rows deleted meanwhile (retention) are simply not there
			if !fn(&chunk[i]) {
				return nil
			}
		}
		seqs = seqs[n:]
	}
	return nil
}

// querySeqs runs query, which selects seq, and returns the seqs in its order.
func (s *Store) querySeqs(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, err
		}
		out = append(out, seq)
	}
	return out, rows.Err()
}

// exportFetch is how many rows an export reads at a time (events are at most a few MiB).
const exportFetch = 32

// matchingSeqs is the query of the seqs of the events in [lo, hi) that match q and come
// after q.After, in the read order, and its arguments.
func matchingSeqs(lo, hi int64, q *store.EventQuery) (string, []any) {
	var sb strings.Builder
	sb.WriteString(`SELECT seq FROM events WHERE ` + hourExpr + ` BETWEEN ? AND ? AND ts >= ? AND ts < ?`)
	args := []any{indexHour(lo), indexHour(hi - 1), lo, hi}
	for _, c := range []struct{ col, v string }{{"event_type", q.EventType}, {"user_id", q.UserID}, {"session_id", q.SessionID}} {
		if c.v != "" {
			sb.WriteString(` AND ` + c.col + ` = ?`)
			args = append(args, c.v)
		}
	}
	for _, p := range q.Props {
		args = appendPropCond(&sb, args, p)
	}
	if a := q.After; a != nil {
		seq, err := strconv.ParseInt(a.Key, 10, 64)
		if a.Key == "" || err != nil {
			sb.WriteString(` AND ts < ?`)
			args = append(args, a.TS)
		} else {
			sb.WriteString(` AND (ts < ? OR (ts = ? AND seq < ?))`)
			args = append(args, a.TS, a.TS, seq)
		}
	}
	sb.WriteString(` ORDER BY ts DESC, seq DESC`)
	return sb.String(), args
}

// scan runs query and calls fn with each event it reads, until fn returns false.
func (r *eventRange) scan(ctx context.Context, fn func(*store.StoredEvent) bool, query string, args ...any) error {
	rows, err := r.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("sqlitestore: events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e store.StoredEvent
		if err := scanEvent(rows, &e); err != nil {
			return fmt.Errorf("sqlitestore: events: %w", err)
		}
		if !fn(&e) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: events: %w", err)
	}
	return nil
}

// appendPropCond writes p as SQL: the value at its path a string equal to p.Value, or a
// number equal to it, or the boolean it names.
func appendPropCond(sb *strings.Builder, args []any, p store.PropCond) []any {
	col := "metadata"
	if p.Field == "payload" {
		col = "payload"
	}
	var path strings.Builder
	path.WriteString("$")
	for _, k := range p.Path {
		path.WriteString(`."` + k + `"`) // keys hold no '"': the API refuses them
	}
	jp := path.String()
	sb.WriteString(` AND (json_type(` + col + `, ?) = 'text' AND json_extract(` + col + `, ?) = ?`)
	args = append(args, jp, jp, p.Value)
	if f, err := strconv.ParseFloat(p.Value, 64); err == nil {
		sb.WriteString(` OR json_type(` + col + `, ?) IN ('integer', 'real') AND json_extract(` + col + `, ?) = ?`)
		args = append(args, jp, jp, f)
	}
	if p.Value == "true" || p.Value == "false" {
		sb.WriteString(` OR json_type(` + col + `, ?) = ?`)
		args = append(args, jp, p.Value)
	}
	sb.WriteString(`)`)
	return args
}

// scanEvent reads one row of eventCols.
func scanEvent(rows *sql.Rows, e *store.StoredEvent) error {
	var seq, ts, received, processed int64
	var meta, pay, source sql.NullString
	if err := rows.Scan(&seq, &e.EventID, &e.EventType, &e.UserID, &e.SessionID, &ts, &meta, &pay,
		&e.Priority, &received, &processed, &source); err != nil {
		return err
	}
	e.Timestamp, e.ReceivedAt, e.ProcessedAt = time.Unix(0, ts).UTC(), time.Unix(0, received).UTC(), time.Unix(0, processed).UTC()
	if meta.Valid {
		e.Metadata = []byte(meta.String)
	}
	if pay.Valid {
		e.Payload = []byte(pay.String)
	}
	e.Source = source.String
	e.Pos = store.Position{TS: ts, Key: strconv.FormatInt(seq, 10)}
	return nil
}
