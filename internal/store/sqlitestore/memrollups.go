package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/evp-dev/evp/internal/store"
)

// Rollups built from the events table rather than in every insert transaction:
//
//   - HyperLogLog sketches of user and session ids per minute and hour (sketch_minute,
//     sketch_hour). Reading, merging and rewriting two 16 KB sketch pairs per batch cost more
//     than the insert itself on small batches.
//   - Per-user counts per minute and hour (user_minute, user_hour: events, newest event
//     time, the set of event types as bits over event_type_bits) for topUsers.
//
// A builder reads the events after counters.rollup_seq in seq order (rows commit in seq
// order: SQLite has one writer at a time), aggregates them, and writes the rollups and the
// new rollup_seq in one transaction, so every stored event is counted exactly once, also
// across a crash. Several processes may open one store (evp api and evp worker on one
// machine): each may build, and a build commits only if rollup_seq still has the value it
// started from, so two builders never count the same events twice.

// buildEvery is how often the builder runs.
const buildEvery = time.Second

// buildChunk bounds the events one build transaction covers.
const buildChunk = 50000

// userChunk per-user rows go in one upsert statement: a build writes one row per active
// user and minute and per user and hour (20,000 a second with 10,000 active users), and
// one statement per row cost more in database/sql and cgo than in SQLite.
const userChunk = 64

// userUpsertSQL adds n per-user rows to table, keyed by unit (minute or hour) and user.
func userUpsertSQL(table, unit string, n int) string {
	return `INSERT INTO ` + table + `(` + unit + `, user_id, count, last_ts, types) VALUES (?,?,?,?,?)` +
		strings.Repeat(`,(?,?,?,?,?)`, n-1) +
		` ON CONFLICT(` + unit + `, user_id) DO UPDATE SET count = count + excluded.count, last_ts = MAX(last_ts, excluded.last_ts), types = types | excluded.types`
}

// maxCleanSketches bounds the sketches kept in memory for reuse between builds.
const maxCleanSketches = 256

// maxTypeBits is how many event types the per-user rollups can name (bits of an int64);
// types beyond the first 63 are counted but not listed in topUsers' eventTypes.
const maxTypeBits = 63

type sketchKey struct {
	hour bool
	k    int64 // Unix minute or hour
}

type sketchEntry struct {
	pair  *store.SketchPair
	dirty bool
	used  uint64
}

type userKey struct {
	hour bool
	k    int64
	user string
}

// userAgg is one user's events in one minute or hour of a build.
type userAgg struct {
	key         userKey
	count, last int64  // events, newest event time (Unix ns)
	types       uint64 // bits over the build's userAggs.types
}

// userAggs aggregates one build's events per user and minute; the hour rows are summed from
// the minute rows when written. A user's types are bits over the build's own list of type
// names, translated to event_type_bits when written, so no per-user map is allocated. (A
// build holding more than 64 types lists only its first 64 in topUsers' eventTypes.)
//
// One userAggs serves every build of a store (they run one at a time), emptied by reset, so
// that its maps and slices are not grown again each second.
type userAggs struct {
	index   map[userKey]int32
	aggs    []userAgg
	typeIdx map[string]int
	types   []string
	// hour rows (hours)
	hourIndex map[userKey]int32
	hourAggs  []userAgg
}

func newUserAggs() *userAggs {
	return &userAggs{index: map[userKey]int32{}, typeIdx: map[string]int{}, hourIndex: map[userKey]int32{}}
}

// reset empties u for the next build, keeping its memory.
func (u *userAggs) reset() {
	clear(u.index)
	clear(u.typeIdx)
	clear(u.hourIndex)
	clear(u.aggs) // drop the user ids they hold
	clear(u.hourAggs)
	u.aggs, u.types, u.hourAggs = u.aggs[:0], u.types[:0], u.hourAggs[:0]
}

func (u *userAggs) add(minute int64, user, typ string, ts int64) {
	t, ok := u.typeIdx[typ]
	if !ok {
		t = len(u.types)
		u.typeIdx[typ] = t
		u.types = append(u.types, typ)
	}
	key := userKey{k: minute, user: user}
	i, ok := u.index[key]
	if !ok {
		i = int32(len(u.aggs))
		u.index[key] = i
		u.aggs = append(u.aggs, userAgg{key: key, last: noTime})
	}
	a := &u.aggs[i]
	a.count++
	a.last = max(a.last, ts)
	if t < 64 {
		a.types |= 1 << t
	}
}

// hours sums the minute rows into hour rows.
func (u *userAggs) hours() []userAgg {
	clear(u.hourIndex)
	out := u.hourAggs[:0]
	for _, m := range u.aggs {
		key := userKey{hour: true, k: floorDiv(m.key.k, 60), user: m.key.user}
		i, ok := u.hourIndex[key]
		if !ok {
			i = int32(len(out))
			u.hourIndex[key] = i
			out = append(out, userAgg{key: key, last: noTime})
		}
		h := &out[i]
		h.count += m.count
		h.last = max(h.last, m.last)
		h.types |= m.types
	}
	u.hourAggs = out
	return out
}

type memRollups struct {
	buildMu sync.Mutex // one build at a time in this process
	// sketches caches stored sketches between builds; valid only while no other process
	// builds (checked through rollup_seq, see BuildRollups).
	sketches map[sketchKey]*sketchEntry
	tick     uint64
	lastSeq  int64     // rollup_seq after this process's last build
	users    *userAggs // reused by every build

	mu          sync.Mutex // guards minuteFloor (read by queries)
	minuteFloor int64      // user_minute rows before this minute were pruned (noTime: none)

	stop, done chan struct{}
	warmed     chan struct{} // closed when the start's warm-up of the user cache is over

	progress func(events int) // called after each build chunk while catchUpRollups runs
}

func (s *Store) loadMinuteFloor(ctx context.Context) error {
	var floor int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE((SELECT value FROM counters WHERE name = 'user_minute_floor'), ?)`, noTime).Scan(&floor); err != nil {
		return fmt.Errorf("sqlitestore: user minute floor: %w", err)
	}
	s.mem.mu.Lock()
	s.mem.minuteFloor = max(s.mem.minuteFloor, floor)
	s.mem.mu.Unlock()
	return nil
}

// errBuildRace means another process built the same events first.
var errBuildRace = errors.New("sqlitestore: rollups built by another process meanwhile")

// BuildRollups brings the sketches and per-user rollups up to date with every event
// committed before the call.
func (s *Store) BuildRollups(ctx context.Context) error {
	m := &s.mem
	m.buildMu.Lock()
	defer m.buildMu.Unlock()
	for races := 0; ; {
		var from int64
		if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'rollup_seq'`).Scan(&from); err != nil {
			return fmt.Errorf("sqlitestore: rollup watermark: %w", err)
		}
		if from != m.lastSeq {
			clear(m.sketches) // another process built since: the cached sketches may be stale
		}
		// The digest takes the events in seq order: first those another process built.
		if err := s.digestCatchUp(ctx, from); err != nil {
			return fmt.Errorf("sqlitestore: event digest: %w", err)
		}
		n, err := s.buildChunk(ctx, from)
		switch {
		case errors.Is(err, errBuildRace):
			clear(m.sketches)
			if races++; races > 100 {
				return err
			}
			continue
		case err != nil:
			clear(m.sketches) // partly merged; reread next time
			return fmt.Errorf("sqlitestore: build rollups: %w", err)
		}
		if m.progress != nil {
			m.progress(n)
		}
		if n < buildChunk {
			return nil
		}
	}
}

// logCatchUpAbove is the backlog of events from which catchUpRollups reports progress.
var logCatchUpAbove int64 = 500_000

// catchUpRollups builds the rollups of every event they do not cover yet, logging progress
// about every 5 seconds when that is a long job.
func (s *Store) catchUpRollups(ctx context.Context, log *slog.Logger) error {
	var backlog int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) - (SELECT value FROM counters WHERE name = 'rollup_seq') FROM events`).Scan(&backlog); err != nil {
		return fmt.Errorf("sqlitestore: rollup backlog: %w", err)
	}
	if log == nil || backlog < logCatchUpAbove {
		return s.BuildRollups(ctx)
	}
	log.Info("building analytics rollups for stored events before serving (first start with this version, or after a crash)", "events", backlog)
	start, last := time.Now(), time.Now()
	var done int64
	s.mem.progress = func(n int) {
		done += int64(n)
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			log.Info("building analytics rollups", "done", done, "of", backlog, "percent", done*100/backlog)
		}
	}
	defer func() { s.mem.progress = nil }()
	if err := s.BuildRollups(ctx); err != nil {
		return err
	}
	log.Info("analytics rollups built", "events", done, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// buildChunk adds up to buildChunk events after seq from and commits them with the new
// watermark. It returns how many events it covered.
func (s *Store) buildChunk(ctx context.Context, from int64) (int, error) {
	m := &s.mem
	rows := s.handoff.take(from, buildChunk)
	if rows == nil {
		var err error
		if rows, err = s.readRows(ctx, from); err != nil {
			return 0, err
		}
	}
	n := len(rows)
	if n == 0 {
		m.lastSeq = from
		return 0, nil
	}
	to := rows[n-1].seq
	if m.users == nil {
		m.users = newUserAggs()
	}
	users := m.users
	defer users.reset()
	var lastKeys [2]sketchKey
	var lastEntries [2]*sketchEntry
	for i := range rows {
		r := &rows[i]
		min := unixMinute(r.ts)
		for lvl, key := range [2]sketchKey{{k: min}, {hour: true, k: floorDiv(min, 60)}} {
			e := lastEntries[lvl]
			if e == nil || lastKeys[lvl] != key {
				var err error
				if e, err = s.sketchEntry(ctx, key); err != nil {
					return 0, err
				}
				lastKeys[lvl], lastEntries[lvl] = key, e
			}
			e.pair.Users.Insert([]byte(r.user))
			e.pair.Sessions.Insert([]byte(r.session))
			e.dirty = true
		}
		users.add(min, r.user, r.typ, r.ts)
	}
	// The events are stored whatever becomes of this build: the digest takes them now.
	s.digest.mu.Lock()
	if s.digest.active && s.digest.seq >= from {
		s.digest.feed(rows)
	}
	s.digest.mu.Unlock()
	if err := s.writeBuild(ctx, from, to, users); err != nil {
		return 0, err
	}
	m.lastSeq = to
	for _, e := range m.sketches {
		e.dirty = false
	}
	s.evictCleanSketches()
	return n, nil
}

// readRows reads up to buildChunk events after seq from, in seq order.
func (s *Store) readRows(ctx context.Context, from int64) ([]feedRow, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, user_id, session_id, event_type, ts FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, from, buildChunk)
	if err != nil {
		return nil, err
	}
	return scanFeedRows(rows)
}

// maxHandoffRows bounds the rows waiting in the handoff; past it (no builder taking them in
// this process) they are dropped and the builder reads the events table.
const maxHandoffRows = 200_000

// kickHandoffRows is how many waiting rows start a build before the next tick, so that a
// process storing more than maxHandoffRows a second does not overflow the handoff (and then
// read every row back from the events table).
const kickHandoffRows = maxHandoffRows / 2

// handoff holds the rows this process inserted, with their seqs, from the commit until the
// builder takes them: the builder then reads from the events table only the rows another
// process inserted, or that were stored along with duplicates (their seqs are not known).
type handoff struct {
	mu   sync.Mutex
	segs []handoffSeg
	rows int
	kick chan struct{} // holds a value once rows reach kickHandoffRows; the builder takes it
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
		default: // a build is already due
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
			break // a gap: rows of another process; this build stops before it
		}
		i := int(next - sg[0].seq)
		j := min(len(sg), i+limit-len(out))
		out = append(out, sg[i:j]...)
		next = sg[j-1].seq + 1
	}
	return out
}

// sketchEntry returns the cached sketch of key, reading the stored one the first time.
func (s *Store) sketchEntry(ctx context.Context, key sketchKey) (*sketchEntry, error) {
	m := &s.mem
	m.tick++
	if e := m.sketches[key]; e != nil {
		e.used = m.tick
		return e, nil
	}
	q := `SELECT users, sessions FROM sketch_minute WHERE minute = ?`
	if key.hour {
		q = `SELECT users, sessions FROM sketch_hour WHERE hour = ?`
	}
	p := store.NewSketchPair()
	var u, ss []byte
	switch err := s.rdb.QueryRowContext(ctx, q, key.k).Scan(&u, &ss); err {
	case nil:
		if err := p.Unmarshal(u, ss); err != nil {
			return nil, fmt.Errorf("sketch %v: %w", key, err)
		}
	case sql.ErrNoRows:
	default:
		return nil, fmt.Errorf("sketch %v: %w", key, err)
	}
	e := &sketchEntry{pair: p, used: m.tick}
	m.sketches[key] = e
	return e, nil
}

// writeBuild commits one build: the dirty sketches, the per-user rows and the watermark
// moved from from to to, or errBuildRace if the watermark is no longer from.
func (s *Store) writeBuild(ctx context.Context, from, to int64, users *userAggs) (err error) {
	// Everything that needs no database is done before the transaction: inserts wait for
	// the single write connection while it is open.
	type blob struct {
		key             sketchKey
		users, sessions []byte
	}
	var blobs []blob
	for k, e := range s.mem.sketches {
		if !e.dirty {
			continue
		}
		b := blob{key: k}
		if b.users, err = e.pair.Users.MarshalBinary(); err != nil {
			return err
		}
		if b.sessions, err = e.pair.Sessions.MarshalBinary(); err != nil {
			return err
		}
		blobs = append(blobs, b)
	}
	// The rows in key order, so that each statement's rows land on neighbouring B-tree
	// pages. Hour rows summed from sorted minute rows come sorted when the build's minutes
	// are in one hour, as they mostly are.
	byKey := func(a, b userAgg) int {
		return cmp.Or(cmp.Compare(a.key.k, b.key.k), strings.Compare(a.key.user, b.key.user))
	}
	slices.SortFunc(users.aggs, byKey)
	levels := [2][]userAgg{users.aggs, users.hours()}
	if !slices.IsSortedFunc(levels[1], byKey) {
		slices.SortFunc(levels[1], byKey)
	}

	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, `UPDATE counters SET value = ? WHERE name = 'rollup_seq' AND value = ?`, to, from)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errBuildRace
	}
	bits, err := typeBits(ctx, tx, users.types)
	if err != nil {
		return err
	}
	// globalMask translates a mask over users.types into one over event_type_bits.
	globalMask := func(local uint64) int64 {
		var mask int64
		for t := 0; local != 0; t, local = t+1, local>>1 {
			if local&1 != 0 {
				if b, ok := bits[users.types[t]]; ok {
					mask |= 1 << b
				}
			}
		}
		return mask
	}
	minPut, hourPut := tx.StmtContext(ctx, s.minSketchPut), tx.StmtContext(ctx, s.hourSketchPut)
	for _, b := range blobs {
		put := minPut
		if b.key.hour {
			put = hourPut
		}
		if _, err = put.ExecContext(ctx, b.key.k, b.users, b.sessions); err != nil {
			return err
		}
	}
	changed := map[sketchKey]bool{}
	args := make([]any, 0, 5*userChunk)
	for lvl, rows := range levels {
		one, many := s.userMinuteAdd, s.userMinuteMany
		if lvl == 1 {
			one, many = s.userHourAdd, s.userHourMany
		}
		oneTx, manyTx := tx.StmtContext(ctx, one), tx.StmtContext(ctx, many)
		for start := 0; start < len(rows); {
			n, put := 1, oneTx
			if len(rows)-start >= userChunk {
				n, put = userChunk, manyTx
			}
			args = args[:0]
			for _, a := range rows[start : start+n] {
				args = append(args, a.key.k, a.key.user, a.count, a.last, globalMask(a.types))
				changed[sketchKey{hour: a.key.hour, k: a.key.k}] = true
			}
			if _, err = put.ExecContext(ctx, args...); err != nil {
				return err
			}
			start += n
		}
	}
	genPut := tx.StmtContext(ctx, s.genPut)
	for k := range changed {
		if _, err = genPut.ExecContext(ctx, k.hour, k.k, to); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// typeBits returns the bit of every event type in types, giving new types the next free
// bits inside the build transaction, so that every process agrees on them.
func typeBits(ctx context.Context, tx *sql.Tx, types []string) (map[string]int, error) {
	bits := map[string]int{}
	rows, err := tx.QueryContext(ctx, `SELECT event_type, bit FROM event_type_bits`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var t string
		var b int
		if err := rows.Scan(&t, &b); err != nil {
			rows.Close()
			return nil, err
		}
		bits[t] = b
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, t := range types {
		if _, ok := bits[t]; ok || len(bits) >= maxTypeBits {
			continue
		}
		b := len(bits)
		if _, err := tx.ExecContext(ctx, `INSERT INTO event_type_bits(event_type, bit) VALUES (?, ?)`, t, b); err != nil {
			return nil, err
		}
		bits[t] = b
	}
	return bits, nil
}

func (s *Store) evictCleanSketches() {
	m := &s.mem
	for len(m.sketches) > maxCleanSketches {
		var oldest sketchKey
		var oldestUsed uint64
		found := false
		for k, e := range m.sketches {
			if !found || e.used < oldestUsed {
				oldest, oldestUsed, found = k, e.used, true
			}
		}
		if !found {
			return
		}
		delete(m.sketches, oldest)
	}
}

// runBuilder builds the rollups every buildEvery until Close.
func (s *Store) runBuilder() {
	m := &s.mem
	defer close(m.done)
	if s.warmDigest != nil {
		var wg sync.WaitGroup
		wg.Go(func() { s.warmDigest(m.stop) })
		defer wg.Wait()
	}
	s.warmUserCache()
	t := time.NewTicker(buildEvery)
	defer t.Stop()
	build := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.BuildRollups(ctx) // a failure leaves the watermark; the next build retries
	}
	for ticks := 1; ; {
		select {
		case <-m.stop:
			return
		case <-s.handoff.kick:
			build()
		case <-t.C:
			build()
			if ticks++; ticks%300 == 0 { // every 5 minutes
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_ = s.pruneUserMinutes(ctx, time.Now())
				cancel()
			}
		}
	}
}

// warmUserCache reads the per-user counts of the last 7 days (the longest preset range)
// into memory, so that the first analytics query after a start does not have to. Close
// interrupts it.
func (s *Store) warmUserCache() {
	m := &s.mem
	defer close(m.warmed)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := m.stop // Close sets m.stop to nil once the builder is done; this may outlive it
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return // a failure only leaves the cache cold
	}
	defer tx.Rollback()
	now := unixMinute(time.Now().UnixNano())
	_, _ = s.topUsersFromRollups(ctx, tx, now-7*24*60, now+1)
}

// pruneUserMinutes deletes per-user minute rollups older than userMinuteKeep; queries
// then count range edges before that by whole hours.
func (s *Store) pruneUserMinutes(ctx context.Context, now time.Time) error {
	floor := unixMinute(now.Add(-userMinuteKeep).UnixNano())
	s.mem.mu.Lock()
	if floor > s.mem.minuteFloor {
		s.mem.minuteFloor = floor // before the delete: no query may rely on rows being removed
	}
	s.mem.mu.Unlock()
	for _, q := range []string{`DELETE FROM user_minute WHERE minute < ?`, `DELETE FROM rollup_gen WHERE hour = 0 AND unit < ?`} {
		if _, err := s.wdb.ExecContext(ctx, q, floor); err != nil {
			return fmt.Errorf("sqlitestore: prune user minutes: %w", err)
		}
	}
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO counters(name, value) VALUES ('user_minute_floor', ?)
		ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)`, floor)
	return err
}
