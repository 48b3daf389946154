package sqlitestore

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evp-dev/evp/internal/blocks"
	"github.com/evp-dev/evp/internal/store"
)

// Analytics come from a blocks.Engine fed with the stored events in seq order (feed.go).
// Sealed hour blocks are persisted, with the dictionaries and the engine's watermark, in
// analytics_block, analytics_name and the counter blocks_seq, all in one transaction: a
// start installs them and feeds the events after the watermark that no block holds, so
// that exact figures are back in seconds after a crash. Only one process persists at a
// time (the holder of analytics_lease); every process that opens the store keeps its own
// engine and answers from it. Retention drops hours from the engine, which then drops the
// names only those hours held from its dictionaries, and the next write is of everything.

const (
	feedEvery = time.Second     // how often the engine takes new events without a query asking
	sealEvery = 5 * time.Second // how often head hours are considered for sealing
	// maxHead bounds the events the head holds (they are fed again after a crash): past it
	// the largest head hours are sealed.
	maxHead = 2_000_000
	// sealOpenAt is how many events of an hour still open (the current one, or later) make
	// it worth sealing; also half of what the hour's block holds.
	sealOpenAt = 200_000
	leaseFor   = 30 * time.Second
)

// noTime is before every time the store holds (event times reach back to 1678, negative
// Unix ns): the cut-off of no retention.
const noTime = math.MinInt64

const hourNs = int64(time.Hour)

// hourExpr is the expression events_hour indexes: SQLite's integer division, which, like
// Go's, truncates toward zero (so it is not the Unix hour before 1970, only monotonic in
// the time). A query that bounds it with indexHour of its time bounds uses the index.
const hourExpr = `ts / 3600000000000`

// indexHour is hourExpr of the Unix-nanosecond time ns.
func indexHour(ns int64) int64 { return ns / hourNs }

// analyticsState is the engine and what keeps it in step with the events table.
type analyticsState struct {
	eng *blocks.Engine

	feedMu   sync.Mutex // one feed at a time: events go to the engine in seq order
	forgetMu sync.Mutex // one call applying deletions at a time; it guards the two below
	// forgetHours are the hours still to rebuild for the analytics_forget entries up to
	// forgetTarget (forget.go); nil until the first pass.
	forgetHours  map[int64]bool
	forgetTarget int64
	cutoff       atomic.Int64 // the retention cut-off the engine has applied (Unix ns)
	// forgotten is the last analytics_forget entry the engine has applied (forget.go).
	forgotten atomic.Int64

	sealMu      sync.Mutex              // one sealing pass at a time
	unpersisted map[int64]*blocks.Block // sealed, not yet written; nil: delete the hour's
	names       [2]int                  // dictionary names written (users, types)
	lastSizes   map[int64]int           // head hours' sizes at the previous pass
	owner       string                  // this process's lease token
	// gen is the blocks_gen of the persisted state this engine extends (read at start,
	// or written last); -1 when it extends none. Another writer meanwhile changes it.
	// unpersisted then no longer says what to write: the whole state is.
	gen int64

	log     *slog.Logger // nil: no log
	warned  time.Time    // when a full dictionary was last reported
	refused [2]int64     // the names refused then (users, types)

	stop, done chan struct{}
}

// openAnalytics builds the engine: the persisted blocks, then the events after the
// watermark, logging progress on log when that is long.
func (s *Store) openAnalytics(ctx context.Context, log *slog.Logger) error {
	a := &s.an
	a.log = log
	a.cutoff.Store(noTime)
	a.unpersisted, a.lastSizes = map[int64]*blocks.Block{}, map[int64]int{}
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	a.owner = hex.EncodeToString(token)
	w, blocksCutoff, err := s.loadBlocks(ctx)
	if err != nil {
		if log != nil {
			log.Warn("analytics blocks unreadable: rebuilding them from the stored events", "err", err)
		}
		a.eng, w, blocksCutoff, a.gen = blocks.NewEngine(blocks.NewDicts()), 0, noTime, -1
		// Rows deleted before now are not read: the entries so far need no applying.
		var forgotten int64
		if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM analytics_forget`).Scan(&forgotten); err != nil {
			return err
		}
		a.forgotten.Store(forgotten)
	}
	cut, err := s.retentionCutoff(ctx)
	if err != nil {
		return err
	}
	a.cutoff.Store(blocksCutoff)
	if err := s.replay(ctx, w, log); err != nil {
		return err
	}
	if cut > a.cutoff.Load() {
		if err := s.applyCutoff(ctx, cut); err != nil {
			return err
		}
	}
	if err := s.applyForgets(ctx); err != nil {
		return err
	}
	s.compact(false)
	return nil
}

// compact drops the names no block or head refers to any more from the dictionaries
// (see blocks.Engine.Compact); the next write is then of the whole state.
func (s *Store) compact(all bool) {
	s.an.sealMu.Lock()
	defer s.an.sealMu.Unlock()
	if s.an.eng.Compact(all) {
		s.an.gen = -1
	}
}

// loadBlocks reads the persisted dictionaries and blocks into a new engine, and returns
// the watermark and retention cut-off written with them.
func (s *Store) loadBlocks(ctx context.Context) (w, cutoff int64, err error) {
	a := &s.an
	d := blocks.NewDicts()
	a.eng = blocks.NewEngine(d)
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT kind, id, name FROM analytics_name ORDER BY kind, id`)
	if err != nil {
		return 0, 0, err
	}
	var names [2][]string
	for rows.Next() {
		var kind, id int
		var name string
		if err := rows.Scan(&kind, &id, &name); err != nil {
			rows.Close()
			return 0, 0, err
		}
		if kind < 0 || kind > 1 || id != len(names[kind]) {
			rows.Close()
			return 0, 0, fmt.Errorf("name %d of kind %d out of order", id, kind)
		}
		names[kind] = append(names[kind], name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if !d.Users.Load(names[0]) || !d.Types.Load(names[1]) {
		return 0, 0, errors.New("a name is numbered twice")
	}
	a.names = [2]int{len(names[0]), len(names[1])}
	rows, err = tx.QueryContext(ctx, `SELECT data FROM analytics_block`)
	if err != nil {
		return 0, 0, err
	}
	var blks []*blocks.Block
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			rows.Close()
			return 0, 0, err
		}
		blk, err := blocks.Decode(data)
		if err != nil {
			rows.Close()
			return 0, 0, err
		}
		blks = append(blks, blk)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	a.eng.Install(blks...)
	if err := a.eng.Snapshot().Check(); err != nil {
		return 0, 0, err
	}
	var ws, cs, gs, fs sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT value FROM counters WHERE name = 'blocks_seq'), (SELECT value FROM counters WHERE name = 'blocks_cutoff'),
		(SELECT value FROM counters WHERE name = 'blocks_gen'), (SELECT value FROM counters WHERE name = 'blocks_forget')`).Scan(&ws, &cs, &gs, &fs); err != nil {
		return 0, 0, err
	}
	a.gen = gs.Int64
	a.forgotten.Store(fs.Int64)
	cutoff = noTime
	if cs.Valid {
		cutoff = cs.Int64
	}
	return ws.Int64, cutoff, nil
}

// logReplayAbove is how many events to feed at start before progress is logged.
var logReplayAbove int64 = 1_000_000

// replay feeds the engine the stored events after seq w that no installed block holds.
func (s *Store) replay(ctx context.Context, w int64, log *slog.Logger) error {
	a := &s.an
	var backlog int64 // seqs after w: the events to read, less any deleted
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) - ? FROM events`, w).Scan(&backlog); err != nil {
		return fmt.Errorf("sqlitestore: analytics backlog: %w", err)
	}
	logging := log != nil && backlog >= logReplayAbove
	if logging {
		log.Info("reading stored events into the analytics engine before serving (first start with this version, or after a crash)", "events", backlog)
	}
	start, last := time.Now(), time.Now()
	a.eng.Advance(w) // the installed blocks hold every event up to w
	blks := a.eng.Snapshot()
	var done int64
	for from := w; ; {
		rows, err := s.readRows(ctx, from)
		if err != nil {
			return fmt.Errorf("sqlitestore: analytics replay: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		evs := make([]blocks.Event, 0, len(rows))
		for _, r := range rows {
			if blk := blks.Block(blocks.HourOf(r.ts)); blk != nil && r.seq <= blk.Seq || r.ts < a.cutoff.Load() || r.ts == placeholderTS {
				continue
			}
			evs = append(evs, toEngineEvent(r))
		}
		_ = a.eng.Add(evs) // an event it refuses is not counted; the others are
		a.eng.Advance(rows[len(rows)-1].seq)
		from = rows[len(rows)-1].seq
		done += int64(len(rows))
		if logging && time.Since(last) >= 5*time.Second {
			last = time.Now()
			log.Info("reading stored events into the analytics engine", "done", done, "of", backlog, "percent", done*100/max(backlog, 1))
		}
	}
	if logging {
		log.Info("analytics engine ready", "events", done, "took", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}

func toEngineEvent(r feedRow) blocks.Event {
	return blocks.Event{Time: time.Unix(0, r.ts), Type: r.typ, User: r.user, Session: r.session, Seq: r.seq}
}

// feed gives the engine the events stored since its last feed, and applies a retention
// cut-off another process (or Prune) set meanwhile. (Deletions of users' events are applied
// by runAnalytics and ForgetUser: forget.go.)
func (s *Store) feed(ctx context.Context) error {
	s.an.feedMu.Lock()
	defer s.an.feedMu.Unlock()
	return s.feedLocked(ctx)
}

// feedLocked is feed with feedMu held.
func (s *Store) feedLocked(ctx context.Context) error {
	a := &s.an
	cut, err := s.retentionCutoff(ctx)
	if err != nil {
		return err
	}
	if cut > a.cutoff.Load() {
		if err := s.applyCutoff(ctx, cut); err != nil {
			return err
		}
	}
	for {
		from := a.eng.LastSeq()
		rows := s.handoff.take(from, feedChunk)
		if rows == nil {
			var err error
			if rows, err = s.readRows(ctx, from); err != nil {
				return fmt.Errorf("sqlitestore: analytics feed: %w", err)
			}
		}
		if len(rows) == 0 {
			return nil
		}
		evs := make([]blocks.Event, 0, len(rows))
		for _, r := range rows {
			if r.ts >= a.cutoff.Load() && r.ts != placeholderTS { // older ones are retention's to delete
				evs = append(evs, toEngineEvent(r))
			}
		}
		_ = a.eng.Add(evs)
		a.eng.Advance(rows[len(rows)-1].seq)
	}
}

// applyCutoff makes the engine forget the events before cut, which retention deletes: the
// hours before cut's whole, and the events of cut's hour before it, by reading that hour
// again from the events table and sealing it at once. Called with feedMu held.
func (s *Store) applyCutoff(ctx context.Context, cut int64) error {
	a := &s.an
	hour := blocks.HourOf(cut)
	a.eng.Drop(hour)
	// The hour's persisted block still holds what retention deletes: the next write
	// replaces it (or deletes it), with the new cut-off.
	if err := s.rebuildHour(ctx, hour, cut); err != nil {
		return err
	}
	a.cutoff.Store(cut)
	s.compact(false)
	return nil
}

// Analytics implements store.Analyzer from the engine, after feeding it every event stored
// before the call. Every figure comes from one snapshot of the engine.
func (s *Store) Analytics(ctx context.Context, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	if err := s.feed(ctx); err != nil {
		return store.AnalyticsResult{}, err
	}
	res, err := s.an.eng.Query(q)
	if err != nil {
		return store.AnalyticsResult{}, fmt.Errorf("sqlitestore: analytics: %w", err)
	}
	return res, nil
}

var _ store.Resident = (*Store)(nil)

// ResidentBytes implements store.Resident: the analytics engine's blocks, head and
// dictionaries.
func (s *Store) ResidentBytes() int64 { return s.an.eng.Snapshot().Bytes() }

// runAnalytics feeds the engine every feedEvery (or when the handoff fills), applies the
// deletions of users' events other processes made, and seals every sealEvery, until stop.
func (s *Store) runAnalytics() {
	a := &s.an
	defer close(a.done)
	feed := time.NewTicker(feedEvery)
	defer feed.Stop()
	seal := time.NewTicker(sealEvery)
	defer seal.Stop()
	// A long pass applying deletions ends when the store closes.
	stopped, cancelStopped := context.WithCancel(context.Background())
	defer cancelStopped()
	stop := a.stop
	go func() {
		select {
		case <-stop:
			cancelStopped()
		case <-stopped.Done():
		}
	}()
	run := func(f func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = f(ctx) // a failure is retried at the next tick
	}
	for {
		select {
		case <-a.stop:
			return
		case <-s.handoff.kick:
			run(s.feed)
		case <-feed.C:
			run(s.feed)
			if a.forgetMu.TryLock() { // not while ForgetUser applies them
				ctx, cancel := context.WithTimeout(stopped, forgetApplyTimeout)
				_ = s.applyForgets(ctx) // retried at the next tick
				cancel()
				a.forgetMu.Unlock()
			}
		case <-seal.C:
			run(s.feed)
			run(func(ctx context.Context) error { return s.seal(ctx, false) })
			s.warnFull()
		}
	}
}

// warnFull logs, at most hourly, that a dictionary is full and has refused names since
// the last report (see blocks.MaxUsers).
func (s *Store) warnFull() {
	a := &s.an
	d := a.eng.Snapshot().Dicts()
	refused := [2]int64{d.Users.Refused(), d.Types.Refused()}
	if a.log == nil || refused == a.refused || time.Since(a.warned) < time.Hour {
		return
	}
	a.warned, a.refused = time.Now(), refused
	a.log.Warn("analytics tell apart only so many user ids and event types: the events of those past the bound count as one user or type (other)",
		"maxUsers", blocks.MaxUsers, "usersRefused", refused[0], "maxTypes", blocks.MaxTypes, "typesRefused", refused[1])
}

// seal seals the head hours that are due (all of them when all is set) and persists what
// is sealed. An hour is due once it has closed (it is before the current hour) and either
// took no events since the last pass or holds half as many in the head as in its block; an
// open hour when its head reaches sealOpenAt and half its block; and the largest hours when
// the head holds more than maxHead events.
func (s *Store) seal(ctx context.Context, all bool) error {
	a := &s.an
	a.sealMu.Lock()
	defer a.sealMu.Unlock()
	now := blocks.Hour(time.Now())
	heads := a.eng.HeadHours()
	total := 0
	for _, h := range heads {
		total += h.Events
	}
	due := map[int64]bool{}
	for _, h := range heads {
		grown := h.Events*2 >= h.Sealed
		switch {
		case all:
			due[h.Hour] = true
		case h.Hour < now && (grown || a.lastSizes[h.Hour] == h.Events):
			due[h.Hour] = true
		case h.Events >= sealOpenAt && grown:
			due[h.Hour] = true
		}
	}
	if total > maxHead { // the largest first
		rest := total
		for _, h := range largestFirst(heads) {
			if rest <= maxHead/2 {
				break
			}
			due[h.Hour] = true
			rest -= h.Events
		}
	}
	clear(a.lastSizes)
	for _, h := range heads {
		if !due[h.Hour] {
			a.lastSizes[h.Hour] = h.Events
		}
	}
	for hour := range due {
		blk, err := a.eng.Seal(hour)
		if err != nil {
			return fmt.Errorf("sqlitestore: seal hour %d: %w", hour, err)
		}
		if blk != nil {
			a.unpersisted[hour] = blk
		}
	}
	return s.persist(ctx)
}

func largestFirst(hs []blocks.HeadHour) []blocks.HeadHour {
	out := slices.Clone(hs)
	slices.SortFunc(out, func(x, y blocks.HeadHour) int { return cmp.Compare(y.Events, x.Events) })
	return out
}

// persist writes the sealed blocks not yet written, the names numbered since the last
// write and the watermark, in one transaction, if this process holds (or can take) the
// lease. A process that takes the lease from another that wrote meanwhile writes
// everything again (the other numbered names in its own order), and so does one whose
// dictionaries were compacted. Called with sealMu held.
func (s *Store) persist(ctx context.Context) (err error) {
	a := &s.an
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: persist analytics: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	now := time.Now()
	res, err := tx.ExecContext(ctx, `UPDATE analytics_lease SET owner = ?, until = ? WHERE id = 1 AND (owner = ? OR until < ?)`,
		a.owner, now.Add(leaseFor).UnixNano(), a.owner, now.UnixNano())
	if err != nil {
		return fmt.Errorf("sqlitestore: persist analytics: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Another process persists; this one answers from memory and keeps its sealed
		// blocks for when it takes the lease (whole, if the other wrote meanwhile).
		return tx.Rollback()
	}
	var gen sql.NullInt64
	if err = tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'blocks_gen'`).Scan(&gen); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlitestore: persist analytics: %w", err)
	}
	snap := a.eng.Snapshot()
	write := a.unpersisted
	if gen.Int64 != a.gen { // another process wrote, or compact renumbered: write the state whole
		for _, q := range []string{`DELETE FROM analytics_name`, `DELETE FROM analytics_block`} {
			if _, err = tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("sqlitestore: persist analytics: %w", err)
			}
		}
		a.names = [2]int{}
		write = snap.Blocks()
	}
	names := [2][]string{snap.Dicts().Users.Names(), snap.Dicts().Types.Names()}
	for kind, all := range names {
		if err = insertNames(ctx, tx, kind, a.names[kind], all[a.names[kind]:]); err != nil {
			return fmt.Errorf("sqlitestore: persist analytics: %w", err)
		}
	}
	var buf []byte
	for hour, blk := range write {
		if blk == nil {
			if _, err = tx.ExecContext(ctx, `DELETE FROM analytics_block WHERE hour = ?`, hour); err != nil {
				return fmt.Errorf("sqlitestore: persist analytics: %w", err)
			}
			continue
		}
		if buf, err = blk.Encode(buf[:0]); err != nil {
			return fmt.Errorf("sqlitestore: persist analytics: %w", err)
		}
		if _, err = tx.ExecContext(ctx, `INSERT INTO analytics_block(hour, data) VALUES (?,?) ON CONFLICT(hour) DO UPDATE SET data = excluded.data`, hour, buf); err != nil {
			return fmt.Errorf("sqlitestore: persist analytics: %w", err)
		}
	}
	cutoff := a.cutoff.Load()
	if cutoff != noTime {
		if _, err = tx.ExecContext(ctx, `DELETE FROM analytics_block WHERE hour < ?`, blocks.HourOf(cutoff)); err != nil {
			return fmt.Errorf("sqlitestore: persist analytics: %w", err)
		}
	}
	for name, v := range map[string]int64{"blocks_seq": a.eng.Watermark(), "blocks_cutoff": cutoff, "blocks_gen": gen.Int64 + 1, "blocks_forget": a.forgotten.Load()} {
		if _, err = tx.ExecContext(ctx, `INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value`, name, v); err != nil {
			return fmt.Errorf("sqlitestore: persist analytics: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: persist analytics: %w", err)
	}
	a.gen = gen.Int64 + 1
	a.names = [2]int{len(names[0]), len(names[1])}
	clear(a.unpersisted)
	return nil
}

// insertNames writes names numbered from first on, of kind (0: users, 1: types).
func insertNames(ctx context.Context, tx *sql.Tx, kind, first int, names []string) error {
	const chunk = 200
	for len(names) > 0 {
		n := min(len(names), chunk)
		args := make([]any, 0, 3*n)
		for i, name := range names[:n] {
			args = append(args, kind, first+i, name)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO analytics_name(kind, id, name) VALUES (?,?,?)`+strings.Repeat(`,(?,?,?)`, n-1), args...); err != nil {
			return err
		}
		names, first = names[n:], first+n
	}
	return nil
}
