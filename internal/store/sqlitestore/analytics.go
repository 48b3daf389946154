package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/evp-dev/evp/internal/store"
)

// Rollups:
//
//   - rollup_minute (and the per-type counters): exact event counts per (Unix minute, event
//     type), written in the InsertBatch transaction for the rows the batch actually inserted
//     (RowsAffected, and when a chunk had duplicates the rows carrying this write's
//     processed_at), so a redelivered batch adds nothing.
//   - sketch_minute, sketch_hour (HyperLogLog, precision 14, standard error about 0.8 %, of
//     user and session ids) and user_minute, user_hour (per-user counts for topUsers):
//     built from the events table about once a second (memrollups.go).

type rollupKey struct {
	minute    int64
	eventType string
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// noTime is before every time the store holds (event times reach back to 1678, negative
// Unix ns): the newest time of no events, so that max(noTime, t) is t for every t, 0 and
// negative ones included.
const noTime = math.MinInt64

// unixMinute is the Unix minute of a Unix-nanosecond time.
func unixMinute(ns int64) int64 { return floorDiv(ns, int64(time.Minute)) }

// topUsersLimit is how many users topUsers lists.
const topUsersLimit = 10

// Analytics answers q. Without filters, counts come from rollup_minute (exact), distinct
// counts from the sketches (hour sketches for the whole hours of the range, minute sketches
// for the edges) and top users from the per-user rollups. With an eventType or userId filter
// every figure is computed from the raw events of the range, a minute or an hour at a time,
// with the partial results of past units kept in memory (filtercache.go); distinct sessions
// are then approximate too.
//
// Every figure of one answer covers the same events, as store.Analyzer requires: every
// event stored before the call, and maybe some stored during it. Without filters they are
// the events up to the rollup watermark (rollup_seq) of one database snapshot; with
// filters, those of the digest's part and of the partial results the answer adds up.
func (s *Store) Analytics(ctx context.Context, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	// The rollups are built about once a second; building here makes a query see every
	// event stored before it.
	if err := s.BuildRollups(ctx); err != nil {
		return store.AnalyticsResult{}, err
	}
	res, err := s.analytics(ctx, q)
	if err != nil {
		return store.AnalyticsResult{}, fmt.Errorf("sqlitestore: analytics: %w", err)
	}
	return res, nil
}

func (s *Store) analytics(ctx context.Context, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	t, err := store.NewTally(q)
	if err != nil {
		return store.AnalyticsResult{}, err
	}
	var res store.AnalyticsResult
	if q.UserID == "" && q.EventType == "" {
		if err := s.fromRollups(ctx, t.StartMin, t.EndMin, t.BucketMin, t.Buckets, t.ByType, &res); err != nil {
			return res, err
		}
	} else if err := s.fromEvents(ctx, q, t.StartMin, t.EndMin, t.BucketMin, t.Buckets, t.ByType, &res); err != nil {
		return res, err
	}
	t.Finish(&res)
	return res, nil
}

// fromRollups answers an unfiltered query: counts from rollup_minute (exact), distinct
// counts from the sketches (hour sketches for the whole hours of the range, minute sketches
// for the edges), top users from the per-user rollups. Whole hours come through hourCache.
//
// Every figure covers the events up to the rollup watermark of one snapshot: the sketches
// and per-user rows are at the watermark by construction (one build transaction), and
// rollup_minute, which the insert transaction keeps, counts the events past it too, so
// those are taken off the counts (unbuiltCounts).
func (s *Store) fromRollups(ctx context.Context, startMin, endMin, bucketMin int64, buckets []int64, byType map[string]int64, res *store.AnalyticsResult) error {
	// One read transaction: generations, counts, sketches and per-user rows come from one
	// snapshot, which its first statement fixes.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	unbuilt, err := unbuiltCounts(ctx, tx)
	if err != nil {
		return err
	}
	acc := store.NewSketchPair()
	edges := [][2]int64{{startMin, endMin}}
	if firstHour, endHour := floorDiv(startMin+59, 60), floorDiv(endMin, 60); firstHour < endHour {
		if err := s.hours.add(ctx, tx, firstHour, endHour, startMin, bucketMin, unbuilt, buckets, byType, acc); err != nil {
			return err
		}
		edges = [][2]int64{{startMin, firstHour * 60}, {endHour * 60, endMin}}
	}
	for _, e := range edges {
		if e[0] < e[1] {
			if err := minuteRollups(ctx, tx, e[0], e[1], startMin, bucketMin, unbuilt, buckets, byType, acc); err != nil {
				return err
			}
		}
	}
	res.UniqueUsers, res.UniqueSessions = int64(acc.Users.Estimate()), int64(acc.Sessions.Estimate())
	res.TopUsers, err = s.topUsersFromRollups(ctx, tx, startMin, endMin)
	return err
}

// unbuiltSQL reads the events past the rollup watermark, by seq: they are few (those
// committed since the last build), where the time range of a query can hold millions.
const unbuiltSQL = `SELECT ts, event_type FROM events WHERE seq > (SELECT value FROM counters WHERE name = 'rollup_seq')`

// unbuiltCounts returns the per-type counts per minute of the events past the rollup
// watermark (seq after rollup_seq): stored, so counted in rollup_minute, but not yet in the
// sketches and per-user rollups.
func unbuiltCounts(ctx context.Context, tx *sql.Tx) (map[rollupKey]int64, error) {
	rows, err := tx.QueryContext(ctx, unbuiltSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[rollupKey]int64
	for rows.Next() {
		var ts int64
		var t string
		if err := rows.Scan(&ts, &t); err != nil {
			return nil, err
		}
		if out == nil {
			out = map[rollupKey]int64{}
		}
		out[rollupKey{minute: unixMinute(ts), eventType: t}]++
	}
	return out, rows.Err()
}

// minuteCounts calls add with every per-type count of minutes [a, b), less the unbuilt
// events (see unbuiltCounts); counts that come to zero are left out.
func minuteCounts(ctx context.Context, tx *sql.Tx, a, b int64, unbuilt map[rollupKey]int64, add func(minute int64, typ string, n int64)) error {
	rows, err := tx.QueryContext(ctx, `SELECT minute, event_type, count FROM rollup_minute WHERE minute >= ? AND minute < ?`, a, b)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var m, n int64
		var t string
		if err := rows.Scan(&m, &t, &n); err != nil {
			return err
		}
		if n -= unbuilt[rollupKey{minute: m, eventType: t}]; n > 0 {
			add(m, t, n)
		}
	}
	return rows.Err()
}

// minuteRollups adds the counts (less the unbuilt events) and sketches of minutes [a, b)
// to buckets, byType and acc.
func minuteRollups(ctx context.Context, tx *sql.Tx, a, b, startMin, bucketMin int64, unbuilt map[rollupKey]int64, buckets []int64, byType map[string]int64, acc *store.SketchPair) error {
	err := minuteCounts(ctx, tx, a, b, unbuilt, func(m int64, t string, n int64) {
		byType[t] += n
		buckets[(m-startMin)/bucketMin] += n
	})
	if err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT users, sessions FROM sketch_minute WHERE minute >= ? AND minute < ?`, a, b)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var u, ss []byte
		if err := rows.Scan(&u, &ss); err != nil {
			return err
		}
		p := store.NewSketchPair()
		if err := p.Unmarshal(u, ss); err != nil {
			return err
		}
		if err := acc.Merge(p); err != nil {
			return err
		}
	}
	return rows.Err()
}

// userMinuteKeep is how long per-user minute rollups are kept (by event time); range
// edges before what is kept are counted by whole hours.
const userMinuteKeep = 48 * time.Hour

// span is a half-open range of minutes or hours.
type span struct {
	hour bool
	a, b int64
}

// userSpans covers [startMin, endMin) with whole hours and, at the edges, minutes. An edge
// before keepFrom (the oldest minute whose rows are kept) is widened to its whole hours.
func userSpans(startMin, endMin, keepFrom int64) []span {
	firstHour, endHour := floorDiv(startMin+59, 60), floorDiv(endMin, 60)
	var out []span
	edge := func(a, b int64) {
		if a >= b {
			return
		}
		if a < keepFrom {
			out = append(out, span{hour: true, a: floorDiv(a, 60), b: floorDiv(b-1, 60) + 1})
			return
		}
		out = append(out, span{a: a, b: b})
	}
	if firstHour >= endHour {
		edge(startMin, endMin)
		return out
	}
	edge(startMin, firstHour*60)
	out = append(out, span{hour: true, a: firstHour, b: endHour})
	edge(endHour*60, endMin)
	// Widened edges may overlap the whole hours; merge overlapping hour spans.
	var merged []span
	for _, sp := range out {
		if n := len(merged); n > 0 && sp.hour && merged[n-1].hour && sp.a <= merged[n-1].b {
			merged[n-1].b = max(merged[n-1].b, sp.b)
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// topUsersFromRollups answers topUsers from user_hour and user_minute, read through tx (so
// that the generations, the rows and the type names come from one snapshot): the cost grows
// with the distinct users per hour and minute of the range, not with its events, and units
// read once are summed from memory afterwards (usercache.go).
func (s *Store) topUsersFromRollups(ctx context.Context, tx *sql.Tx, startMin, endMin int64) ([]store.TopUser, error) {
	s.mem.mu.Lock()
	keepFrom := s.mem.minuteFloor
	s.mem.mu.Unlock()
	spans := userSpans(startMin, endMin, keepFrom)
	ranked, err := s.users.topCounts(ctx, tx, spans, topUsersLimit)
	if err != nil {
		return nil, err
	}
	out := make([]store.TopUser, len(ranked))
	for i, r := range ranked {
		out[i] = store.TopUser{UserID: r.user, EventCount: r.count}
	}
	names, err := typeNames(ctx, tx)
	if err != nil {
		return nil, err
	}
	for i := range out {
		last, types := int64(noTime), int64(0)
		for _, sp := range spans {
			q := `SELECT last_ts, types FROM user_minute WHERE user_id = ? AND minute >= ? AND minute < ?`
			if sp.hour {
				q = `SELECT last_ts, types FROM user_hour WHERE user_id = ? AND hour >= ? AND hour < ?`
			}
			r, err := tx.QueryContext(ctx, q, out[i].UserID, sp.a, sp.b)
			if err != nil {
				return nil, err
			}
			for r.Next() {
				var l, t int64
				if err := r.Scan(&l, &t); err != nil {
					r.Close()
					return nil, err
				}
				last, types = max(last, l), types|t
			}
			r.Close()
			if err := r.Err(); err != nil {
				return nil, err
			}
		}
		out[i].LastEventAt = time.Unix(0, last).UTC()
		out[i].EventTypes = []string{}
		for bit := 0; bit < maxTypeBits; bit++ {
			if types&(1<<bit) != 0 && names[bit] != "" {
				out[i].EventTypes = append(out[i].EventTypes, names[bit])
			}
		}
		sort.Strings(out[i].EventTypes)
	}
	return out, nil
}

// typeNames maps each type bit to its event type, reading the bits another process may
// have assigned.
func typeNames(ctx context.Context, tx *sql.Tx) ([maxTypeBits]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT event_type, bit FROM event_type_bits`)
	if err != nil {
		return [maxTypeBits]string{}, err
	}
	defer rows.Close()
	var names [maxTypeBits]string
	for rows.Next() {
		var t string
		var b int
		if err := rows.Scan(&t, &b); err != nil {
			return names, err
		}
		if b >= 0 && b < maxTypeBits {
			names[b] = t
		}
	}
	return names, rows.Err()
}
