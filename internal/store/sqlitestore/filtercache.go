package sqlitestore

import (
	"context"
	"database/sql"
	"math/bits"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/evp-dev/evp/internal/store"
)

// A filtered query (eventType, userId substring) is answered from the in-memory digest of
// events for the hours it covers (digest.go), and from the raw events of the rest of its
// range, where a day of them is millions of rows. Past minutes and hours rarely change, so
// filterCache keeps each unit's partial result per filter, validated by the unit's
// generation in rollup_gen as userCache does: a repeated filtered query (the dashboard
// refreshing with a filter set) reads only the units that changed, in practice the current
// minute. Distinct users stay exact (interned ids); distinct sessions come from a
// HyperLogLog sketch per unit (dense, over sessionHash, so that it merges with the digest's
// registers), approximate like the unfiltered figures.

// maxFilterCacheBytes bounds the memory the partial results take (estimated).
const maxFilterCacheBytes = 32 << 20

type filterKey struct {
	eventType, userID string // userID lower-cased
	unit              sketchKey
}

// filterPartial is one unit's (or one uncached span's) result for one filter.
type filterPartial struct {
	gen      int64
	from     int64            // first minute covered
	byType   map[string]int64 // events per type
	minutes  []int64          // events per minute from from
	users    []int32          // interned user ids, with for each:
	counts   []uint32         //   events,
	last     []int64          //   newest event time (Unix ns),
	types    []uint64         //   event types as bits over filterCache.typeNames,
	unres    []int64          //   (digest parts only) see digestPart.unres
	sessions *hyperloglog.Sketch
	bytes    int
	used     uint64
}

type filterCache struct {
	mu        sync.Mutex
	users     interner
	typeIdx   map[string]int
	typeNames []string
	parts     map[filterKey]*filterPartial
	bytes     int
	tick      uint64
	loads     int // partial results computed from the events (for tests)
	lastReads int // newest event times read from the events (for tests)
	// scratch for merge, indexed by interned user id
	count, last, unres []int64
	types              []uint64
	// digest user id -> interned id here (-1: not yet), for digest epoch xlateEpoch
	xlate      []int32
	xlateEpoch uint64
}

// fspan is a half-open range of minutes (a whole hour when hour is set) answered as one
// partial result; cache is false for minutes whose generations are no longer kept.
type fspan struct {
	hour, cache bool
	a, b        int64
}

// filterSpans covers [startMin, endMin) with whole hours and, at the edges, single minutes;
// edge minutes before keepFrom (whose generations were pruned) form one uncached span.
func filterSpans(startMin, endMin, keepFrom int64) []fspan {
	var out []fspan
	edge := func(a, b int64) {
		if a < keepFrom && a < b {
			out = append(out, fspan{a: a, b: min(b, keepFrom)})
			a = min(b, keepFrom)
		}
		for m := a; m < b; m++ {
			out = append(out, fspan{cache: true, a: m, b: m + 1})
		}
	}
	firstHour, endHour := floorDiv(startMin+59, 60), floorDiv(endMin, 60)
	if firstHour >= endHour {
		edge(startMin, endMin)
		return out
	}
	edge(startMin, firstHour*60)
	for h := firstHour; h < endHour; h++ {
		out = append(out, fspan{hour: true, cache: true, a: h * 60, b: (h + 1) * 60})
	}
	edge(endHour*60, endMin)
	return out
}

// fromEvents answers a filtered query: every figure exact except distinct sessions. The
// minutes the digest covers come from it; the others from the events table.
func (s *Store) fromEvents(ctx context.Context, q store.AnalyticsQuery, startMin, endMin, bucketMin int64, buckets []int64, byType map[string]int64, res *store.AnalyticsResult) error {
	s.mem.mu.Lock()
	keepFrom := s.mem.minuteFloor
	s.mem.mu.Unlock()
	// One read transaction: the generations and the events come from one snapshot.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var cutoff int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT value FROM counters WHERE name = 'retention_cutoff'), ?)`, noTime).Scan(&cutoff); err != nil {
		return err
	}

	c := &s.filters
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parts == nil {
		c.reset()
	}
	userID := strings.ToLower(q.UserID)
	var parts []*filterPartial
	// The digest's part first: what it covers is fixed then, whatever it drops later.
	d := &s.digest
	d.mu.Lock()
	coverMin, digestSeq := d.cover(cutoff), d.seq
	rawEnd := endMin
	if coverMin < endMin {
		a := max(startMin, coverMin)
		parts = append(parts, c.fromDigest(d, d.partial(a, endMin, startMin, q.EventType, userID), startMin))
		rawEnd = a
	}
	d.mu.Unlock()
	if startMin < rawEnd {
		raw, err := c.fromRaw(ctx, tx, q.EventType, userID, startMin, rawEnd, keepFrom)
		if err != nil {
			return err
		}
		parts = append(parts, raw...)
	}
	lastIn := func(user string, minute int64) (int64, error) {
		where, args := `ts >= ? AND ts < ? AND user_id = ? AND seq <= ?`, []any{minute * minuteNs, (minute + 1) * minuteNs, user, digestSeq}
		if q.EventType != "" {
			where, args = where+` AND event_type = ?`, append(args, q.EventType)
		}
		var last sql.NullInt64
		// Outside the snapshot, which may lack events the digest holds; only the events
		// the digest's part holds (seq up to its seq), so that lastEventAt is a counted one's.
		if err := s.rdb.QueryRowContext(ctx, `SELECT MAX(ts) FROM events WHERE `+where, args...).Scan(&last); err != nil || !last.Valid {
			return noTime, err
		}
		return last.Int64, nil
	}
	if err := c.merge(parts, startMin, bucketMin, buckets, byType, res, lastIn); err != nil {
		return err
	}
	c.evict()
	return nil
}

// fromRaw returns the partial results of [startMin, endMin) from the events table, reusing
// the cached ones of units whose generation is unchanged.
func (c *filterCache) fromRaw(ctx context.Context, tx *sql.Tx, eventType, userID string, startMin, endMin, keepFrom int64) ([]*filterPartial, error) {
	spans := filterSpans(startMin, endMin, keepFrom)
	// Two reads for the generations: the hours and the minutes of the range.
	gens := map[sketchKey]int64{}
	for _, sp := range []span{{hour: true, a: floorDiv(startMin, 60), b: floorDiv(endMin+59, 60)}, {a: startMin, b: endMin}} {
		g, err := unitGens(ctx, tx, sp)
		if err != nil {
			return nil, err
		}
		for unit, seq := range g {
			gens[sketchKey{hour: sp.hour, k: unit}] = seq
		}
	}
	var parts []*filterPartial
	for _, sp := range spans {
		key := filterKey{eventType: eventType, userID: userID, unit: sketchKey{hour: sp.hour, k: unitOf(sp)}}
		c.tick++
		if sp.cache {
			if p := c.parts[key]; p != nil && p.gen == gens[key.unit] {
				p.used = c.tick
				parts = append(parts, p)
				continue
			}
		}
		// A unit without a generation (0) is scanned too: it may hold events stored since
		// the last build; the build after them gives it one.
		p := &filterPartial{gen: gens[key.unit], from: sp.a, byType: map[string]int64{}, used: c.tick}
		if err := c.scan(ctx, tx, eventType, userID, sp, p); err != nil {
			return nil, err
		}
		if sp.cache {
			if old := c.parts[key]; old != nil {
				c.bytes -= old.bytes
			}
			c.parts[key] = p
			c.bytes += p.bytes
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// fromDigest turns the digest's part into a partial result over this cache's user and type
// ids. The caller holds d.mu.
func (c *filterCache) fromDigest(d *eventDigest, dp *digestPart, startMin int64) *filterPartial {
	if c.xlateEpoch != d.epoch {
		c.xlate, c.xlateEpoch = c.xlate[:0], d.epoch
	}
	for len(c.xlate) < len(d.users.names) {
		c.xlate = append(c.xlate, -1)
	}
	var typeBit [64]int
	for t := 0; t < len(d.types) && t < 64; t++ {
		bit, ok := c.typeIdx[d.types[t]]
		if !ok {
			bit = len(c.typeNames)
			c.typeIdx[d.types[t]] = bit
			c.typeNames = append(c.typeNames, d.types[t])
		}
		typeBit[t] = bit
	}
	p := &filterPartial{from: startMin, byType: dp.byType, minutes: dp.minutes, sessions: dp.sessions,
		users: make([]int32, len(dp.users)), counts: make([]uint32, len(dp.users)), last: dp.last, unres: dp.unres,
		types: make([]uint64, len(dp.users))}
	for i, u := range dp.users {
		id := c.xlate[u]
		if id < 0 {
			id = c.users.id(d.users.names[u])
			c.xlate[u] = id
		}
		p.users[i], p.counts[i] = id, uint32(dp.count[i])
		for m := dp.types[i]; m != 0; m &= m - 1 {
			if bit := typeBit[bits.TrailingZeros64(m)]; bit < 64 {
				p.types[i] |= 1 << bit
			}
		}
	}
	return p
}

func unitOf(sp fspan) int64 {
	if sp.hour {
		return floorDiv(sp.a, 60)
	}
	return sp.a
}

// scan computes p from the events of sp that match the filter.
func (c *filterCache) scan(ctx context.Context, tx *sql.Tx, eventType, userID string, sp fspan, p *filterPartial) error {
	c.loads++
	where, args := `ts >= ? AND ts < ?`, []any{sp.a * int64(time.Minute), sp.b * int64(time.Minute)}
	if eventType != "" {
		where += ` AND event_type = ?`
		args = append(args, eventType)
	}
	if userID != "" {
		// lower() folds ASCII letters only.
		where += ` AND instr(lower(user_id), ?) > 0`
		args = append(args, userID)
	}
	rows, err := tx.QueryContext(ctx, `SELECT event_type, user_id, session_id, ts FROM events WHERE `+where, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	p.minutes = make([]int64, sp.b-sp.a)
	p.sessions = hyperloglog.NewNoSparse()
	index := map[int32]int{}
	for rows.Next() {
		var t, u, ss string
		var ts int64
		if err := rows.Scan(&t, &u, &ss, &ts); err != nil {
			return err
		}
		p.byType[t]++
		p.minutes[unixMinute(ts)-sp.a]++
		p.sessions.InsertHash(sessionHash(ss))
		id := c.users.id(u)
		bit, ok := c.typeIdx[t]
		if !ok {
			bit = len(c.typeNames)
			c.typeIdx[t] = bit
			c.typeNames = append(c.typeNames, t)
		}
		i, ok := index[id]
		if !ok {
			i = len(p.users)
			index[id] = i
			p.users = append(p.users, id)
			p.counts = append(p.counts, 0)
			p.last = append(p.last, noTime)
			p.types = append(p.types, 0)
		}
		p.counts[i]++
		p.last[i] = max(p.last[i], ts)
		if bit < 64 {
			p.types[i] |= 1 << bit
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	p.bytes = 24*len(p.users) + 8*len(p.minutes) + 48*len(p.byType) + 200 + 16<<10 // a dense sketch
	return nil
}

// merge adds up parts into the query's figures. lastIn returns the newest matching event
// time of a user in one minute (noTime when the events table no longer holds one), for a
// top user whose newest event a digest part knows only to the minute.
func (c *filterCache) merge(parts []*filterPartial, startMin, bucketMin int64, buckets []int64, byType map[string]int64, res *store.AnalyticsResult,
	lastIn func(user string, minute int64) (int64, error)) error {
	// Sums per interned user id, in scratch arrays kept between queries (emptied after use)
	// rather than four arrays as long as every name allocated per query.
	if n := len(c.users.names); len(c.count) < n {
		c.count, c.last, c.unres, c.types = make([]int64, n), make([]int64, n), make([]int64, n), make([]uint64, n)
		for i := range c.unres {
			c.last[i], c.unres[i] = noTime, noUnresolved
		}
	}
	count, last, unres, types := c.count, c.last, c.unres, c.types
	var seen []int32
	sessions := hyperloglog.NewNoSparse()
	for _, p := range parts {
		for t, k := range p.byType {
			byType[t] += k
		}
		for i, k := range p.minutes {
			if k != 0 {
				buckets[(p.from+int64(i)-startMin)/bucketMin] += k
			}
		}
		if p.sessions != nil && len(p.users) > 0 {
			_ = sessions.Merge(p.sessions) // same precision: cannot fail
		}
		for i, id := range p.users {
			if count[id] == 0 {
				seen = append(seen, id)
			}
			count[id] += int64(p.counts[i])
			last[id] = max(last[id], p.last[i])
			types[id] |= p.types[i]
			if p.unres != nil {
				unres[id] = max(unres[id], p.unres[i])
			}
		}
	}
	defer func() {
		for _, id := range seen {
			count[id], last[id], unres[id], types[id] = 0, noTime, noUnresolved, 0
		}
	}()
	res.UniqueUsers = int64(len(seen))
	if len(seen) > 0 {
		res.UniqueSessions = int64(sessions.Estimate())
	}
	sort.Slice(seen, func(i, j int) bool {
		a, b := seen[i], seen[j]
		return count[a] > count[b] || count[a] == count[b] && c.users.names[a] < c.users.names[b]
	})
	top := seen[:min(len(seen), topUsersLimit)]
	res.TopUsers = make([]store.TopUser, len(top))
	for i, id := range top {
		if m := unres[id]; m != noUnresolved && (m+1)*minuteNs > last[id] {
			c.lastReads++
			t, err := lastIn(c.users.names[id], m)
			if err != nil {
				return err
			}
			last[id] = max(last[id], t)
		}
		tu := store.TopUser{UserID: c.users.names[id], EventCount: count[id], LastEventAt: time.Unix(0, last[id]).UTC(), EventTypes: []string{}}
		for bit := 0; bit < len(c.typeNames) && bit < 64; bit++ {
			if types[id]&(1<<bit) != 0 {
				tu.EventTypes = append(tu.EventTypes, c.typeNames[bit])
			}
		}
		sort.Strings(tu.EventTypes)
		res.TopUsers[i] = tu
	}
	return nil
}

func (c *filterCache) reset() {
	c.parts, c.users, c.typeIdx, c.typeNames, c.bytes = map[filterKey]*filterPartial{}, newInterner(), map[string]int{}, nil, 0
	c.count, c.last, c.unres, c.types, c.xlate = nil, nil, nil, nil, nil
}

// evict drops the least recently used partial results above maxFilterCacheBytes, and
// starts over when the interned names outgrow what the cache holds.
func (c *filterCache) evict() {
	if len(c.users.names) > maxInternedUsers/2 || len(c.typeNames) > 64 {
		c.reset()
		return
	}
	c.bytes = evictLRU(c.parts, c.bytes, maxFilterCacheBytes,
		func(p *filterPartial) uint64 { return p.used }, func(p *filterPartial) int { return p.bytes })
}
