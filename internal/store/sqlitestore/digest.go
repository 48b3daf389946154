package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"log/slog"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/axiomhq/hyperloglog"
)

// A filtered query (eventType, userId substring, or both) cannot be answered from the
// rollups: they are not kept per filter, and reading a day of raw events takes seconds.
// eventDigest keeps, in memory, every event of the hours it covers in a compact form the
// rollup builder fills from the rows it reads anyway (in seq order, so every stored event
// is in it once): per hour and user, the newest event time (and which types have an event
// then), and per event 4 bytes: its minute in the hour, its type and its session id as the
// HyperLogLog register it sets (sessionCode). About 4 bytes an event and 24 a user-hour
// once the hour is past (sealed): some 45 MB for 10 million events from 10,000 users,
// whether they span a day or a week, however types and sessions are spread.
//
// A filtered query reads the events of the users that match, for the minutes of its range.
// Counts and distinct users are exact; distinct sessions are a HyperLogLog estimate (as
// without a filter); topUsers' lastEventAt is exact: a top user's newest matching event is
// read from the events table, in the one minute the digest places it, when the digest's
// newest event time of that user and hour is not it (another type, or after the range).
//
// The digest serves at most 63 event types; past that it stops covering hours (queries read
// the events table instead).
//
// The digest covers the hours from `from` on: at start, taken back from the snapshot a clean
// shutdown left (digestsnap.go), or read from the events table (every hour of a small store
// before serving, else in the background the newest hours that fit); hours before that,
// and hours dropped to keep it under maxDigestBytes or cut by retention, are answered from
// the events table (filtercache.go).

// maxDigestBytes bounds the digest's memory (estimated); past it the oldest hours go.
const maxDigestBytes = 96 << 20

// digestReadAllBelow is the stored-event count under which a start reads every event into
// the digest before serving (a fresh or small store) rather than the last hours in the
// background.
const digestReadAllBelow = 100_000

// digestFeedBatch bounds the rows read from the events table per digest lock.
const digestFeedBatch = 10_000

const (
	minuteNs = int64(time.Minute)
	hourNs   = int64(time.Hour)
	// digestTypes is how many event types the digest can tell apart (6 bits).
	digestTypes = 63
	// noUnresolved marks a user whose newest matching event time is known exactly.
	noUnresolved = math.MinInt64
)

// digestGroup is one user's events in one hour, in an hour's open part.
type digestGroup struct {
	last      int64    // newest event time, Unix ns
	lastTypes uint64   // bits over type ids: the types with an event at last
	ev        []uint32 // per event: minute in the hour | type << 6 | sessionCode << 12
	user      int32
}

// sealedGroup is one user's events in one hour, in an hour's sealed part: 24 bytes where
// an open group costs about 72 with its slice header and index entry.
type sealedGroup struct {
	last      int64
	lastTypes uint64
	user      int32
	end       uint32 // its events are sev[the previous group's end:end]
}

// digestHour is one hour's events. Events are put into the open part; once no event has
// come for the hour in two feeds (or memory runs short), the open part is merged into the
// sealed part, which keeps a user's events of the hour in one array with the other users'.
// That more than halves what a past hour costs (about 28 bytes a user-hour where it was
// 72), so that a week of 10 million events fits in maxDigestBytes. Events that come late
// for a sealed hour go to a new open part, sealed in turn.
type digestHour struct {
	sealed []sealedGroup // by user id
	sev    []uint32
	groups []digestGroup   // the open part
	index  map[int32]int32 // user -> open group
	fed    uint64          // the feed that last put an event here
}

type eventDigest struct {
	mu     sync.Mutex
	active bool  // fed by the builder: false until the start's read of past hours is done
	seq    int64 // every event with seq <= seq whose hour is covered is in the digest
	from   int64 // first covered Unix hour: queries read the digest from it on
	// floor is the first hour events are put into: from, except while a start reads past
	// hours newest first, when the hours between are being filled (warmDigest).
	floor  int64
	cutoff int64 // the retention cut-off applied (Unix ns; noTime: none)
	hours  map[int64]*digestHour
	users  interner
	typeID map[string]uint16
	types  []string
	bytes  int
	epoch  uint64 // changes when user or type ids are renumbered
	feeds  uint64 // counts feeds, to tell which hours are quiet
	limit  int    // the memory bound: maxDigestBytes unless a test sets another
	// last hour fed, to skip the map lookup for runs of events in one hour
	lastHour  int64
	lastH     *digestHour
	matches   map[string]*userMatch // user id substring -> matching user ids
	matchTick uint64
	// scratch for partial, indexed by user id (emptied after use)
	count, last, unres []int64
	tbits              []uint64
	regs               []uint8 // HyperLogLog registers of the sessions
}

// userMatch is which interned users contain a substring, for the first len(match) ids.
type userMatch struct {
	match []bool
	used  uint64
}

// reset empties the digest; it then covers the hours from from on.
func (d *eventDigest) reset(from int64) {
	d.hours, d.users, d.typeID, d.types, d.bytes = map[int64]*digestHour{}, newInterner(), map[string]uint16{}, nil, 0
	d.from, d.floor, d.lastH, d.matches = from, from, nil, map[string]*userMatch{}
	d.count, d.last, d.unres, d.tbits = nil, nil, nil, nil
	d.epoch++
}

// feedRow is an event as the digest needs it.
type feedRow struct {
	seq                int64
	user, session, typ string
	ts                 int64
}

// feed adds the events after d.seq, which must come in seq order.
func (d *eventDigest) feed(rows []feedRow) {
	d.feeds++
	for i := range rows {
		r := &rows[i]
		if r.seq <= d.seq {
			continue
		}
		d.seq = r.seq
		d.put(r.user, r.session, r.typ, r.ts)
	}
	d.evict()
}

// put adds one event, unless its hour is not covered.
func (d *eventDigest) put(user, session, typ string, ts int64) {
	minute := floorDiv(ts, minuteNs)
	hour := floorDiv(minute, 60)
	if hour < d.floor {
		return
	}
	t, ok := d.typeID[typ]
	if !ok {
		if len(d.types) >= digestTypes {
			// Too many types to tell apart: cover only hours after every one seen so far.
			next := hour + 1
			for h := range d.hours {
				next = max(next, h+1)
			}
			d.reset(next)
			return
		}
		t = uint16(len(d.types))
		typ = strings.Clone(typ) // it may share memory with a whole batch's text
		d.typeID[typ] = t
		d.types = append(d.types, typ)
	}
	h := d.lastH
	if h == nil || d.lastHour != hour {
		if h = d.hours[hour]; h == nil {
			h = &digestHour{}
			d.hours[hour] = h
			d.bytes += 200
		}
		d.lastHour, d.lastH = hour, h
	}
	if h.index == nil { // new, or sealed since
		h.index = map[int32]int32{}
	}
	h.fed = d.feeds
	uid, ok := d.users.ids[user]
	if !ok {
		uid = d.users.id(strings.Clone(user)) // as for types above
		d.bytes += 2*len(user) + 64
	}
	gi, ok := h.index[uid]
	if !ok {
		gi = int32(len(h.groups))
		h.index[uid] = gi
		h.groups = append(h.groups, digestGroup{user: uid})
		d.bytes += 72 // the group (48), its map entry, slice headroom
	}
	g := &h.groups[gi]
	switch {
	case ts > g.last || len(g.ev) == 0:
		g.last, g.lastTypes = ts, 1<<t
	case ts == g.last:
		g.lastTypes |= 1 << t
	}
	g.ev = append(g.ev, uint32(minute-hour*60)|uint32(t)<<6|sessionCode(sessionHash(session))<<12)
	d.bytes += 4
}

// evict seals the hours no event came for in this feed or the one before (every hour but
// the newest when the digest is over maxDigestBytes), then drops the oldest hours while it
// is still over; it starts over (covering only later hours) when it interns too many user
// ids. It ends every feed.
func (d *eventDigest) evict() {
	newest := int64(math.MinInt64)
	for k := range d.hours {
		newest = max(newest, k)
	}
	if len(d.users.names) > maxInternedUsers {
		d.reset(max(d.from, d.floor, newest+1))
		return
	}
	limit := d.limit
	if limit == 0 {
		limit = maxDigestBytes
	}
	for k, h := range d.hours {
		if len(h.groups) > 0 && (h.fed+1 < d.feeds || d.bytes > limit && k != newest) {
			d.bytes -= h.bytesEstimate()
			h.seal()
			d.bytes += h.bytesEstimate()
		}
	}
	for d.bytes > limit && len(d.hours) > 0 {
		oldest := int64(math.MaxInt64)
		for h := range d.hours {
			oldest = min(oldest, h)
		}
		d.dropBefore(oldest + 1)
	}
}

// dropBefore stops covering the hours before hour.
func (d *eventDigest) dropBefore(hour int64) {
	if hour <= d.floor {
		return
	}
	for k, h := range d.hours {
		if k < hour {
			d.bytes -= h.bytesEstimate()
			delete(d.hours, k)
		}
	}
	d.floor, d.from, d.lastH = hour, max(d.from, hour), nil
}

func (h *digestHour) bytesEstimate() int {
	n := 200 + 24*len(h.sealed) + 4*len(h.sev) + 72*len(h.groups)
	for i := range h.groups {
		n += 4 * len(h.groups[i].ev)
	}
	return n
}

// seal merges the open part into the sealed part: one group per user, in user id order.
func (h *digestHour) seal() {
	if len(h.groups) == 0 {
		return
	}
	type part struct {
		user      int32
		last      int64
		lastTypes uint64
		ev        []uint32
	}
	parts := make([]part, 0, len(h.sealed)+len(h.groups))
	start := uint32(0)
	for _, g := range h.sealed {
		parts = append(parts, part{g.user, g.last, g.lastTypes, h.sev[start:g.end]})
		start = g.end
	}
	events := len(h.sev)
	for _, g := range h.groups {
		parts = append(parts, part{g.user, g.last, g.lastTypes, g.ev})
		events += len(g.ev)
	}
	slices.SortStableFunc(parts, func(a, b part) int { return cmp.Compare(a.user, b.user) })
	users := 0
	for i := range parts {
		if i == 0 || parts[i].user != parts[i-1].user {
			users++
		}
	}
	sealed, sev := make([]sealedGroup, 0, users), make([]uint32, 0, events)
	for _, p := range parts {
		if k := len(sealed); k > 0 && sealed[k-1].user == p.user {
			g := &sealed[k-1]
			switch {
			case p.last > g.last:
				g.last, g.lastTypes = p.last, p.lastTypes
			case p.last == g.last:
				g.lastTypes |= p.lastTypes
			}
		} else {
			sealed = append(sealed, sealedGroup{last: p.last, lastTypes: p.lastTypes, user: p.user})
		}
		sev = append(sev, p.ev...)
		sealed[len(sealed)-1].end = uint32(len(sev))
	}
	h.sealed, h.sev, h.groups, h.index = sealed, sev, nil, nil
}

// applyCutoff stops covering the hours retention deleted events from (before cutoff, Unix
// ns): the hour holding the cut-off lost some of its events, so it goes too.
func (d *eventDigest) applyCutoff(cutoff int64) {
	if cutoff <= d.cutoff {
		return
	}
	d.cutoff = cutoff
	d.dropBefore(floorDiv(cutoff+hourNs-1, hourNs))
}

// sessionHash is a 64-bit hash of a session id (FNV-1a, then a finalizer that spreads its
// bits, as HyperLogLog needs uniform ones). Filtered queries use it for every sketch, so
// that the digest's registers and sketches of raw events merge.
func sessionHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// sessionCode is what a hash does to a dense precision-14 HyperLogLog sketch (as
// hyperloglog.NewNoSparse builds): the register (top 14 bits) and the value it raises it
// to, packed in 32 bits. codeHash gives back a hash with the same effect.
func sessionCode(x uint64) uint32 {
	idx := x >> 50
	rho := uint64(bits.LeadingZeros64(x<<14|1<<13)) + 1
	return uint32(idx<<6 | rho)
}

func codeHash(c uint32) uint64 {
	idx, rho := uint64(c>>6), uint64(c&63)
	if rho > 50 {
		return idx << 50
	}
	return idx<<50 | 1<<(50-rho)
}

// asciiLower lower-cases ASCII letters only, as SQLite's lower() does.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// matching returns which user ids contain needle (lower-cased), as the events-table filter
// instr(lower(user_id), needle) decides.
func (d *eventDigest) matching(needle string) []bool {
	m := d.matches[needle]
	if m == nil {
		if len(d.matches) >= 16 {
			var oldest string
			var used uint64 = math.MaxUint64
			for k, v := range d.matches {
				if v.used < used {
					oldest, used = k, v.used
				}
			}
			delete(d.matches, oldest)
		}
		m = &userMatch{}
		d.matches[needle] = m
	}
	for id := len(m.match); id < len(d.users.names); id++ {
		m.match = append(m.match, strings.Contains(asciiLower(d.users.names[id]), needle))
	}
	d.matchTick++
	m.used = d.matchTick
	return m.match
}

// digestPart is a filtered query's result over covered minutes: what filterCache.merge adds
// to the partial results of uncovered ones. unres, when not noUnresolved, is the minute of a
// user's newest matching event when its time is not known exactly (last is then older).
type digestPart struct {
	byType   map[string]int64
	minutes  []int64 // from the first minute of the query range
	users    []int32 // digest user ids
	count    []int64
	last     []int64
	unres    []int64
	types    []uint64 // bits over digest type ids
	sessions *hyperloglog.Sketch
}

// partial adds up the events of minutes [a, b) matching eventType (exact; empty: any) and
// userID (lower-cased substring; empty: any), counted in minutes from startMin <= a.
func (d *eventDigest) partial(a, b, startMin int64, eventType, userID string) *digestPart {
	p := &digestPart{byType: map[string]int64{}, minutes: make([]int64, b-startMin), sessions: hyperloglog.NewNoSparse()}
	sc := digestScan{typ: -1}
	if eventType != "" {
		t, ok := d.typeID[eventType]
		if !ok {
			return p
		}
		sc.typ = int(t)
	}
	if userID != "" {
		sc.match = d.matching(userID)
	}
	if n := len(d.users.names); len(d.count) < n {
		d.count, d.last, d.unres, d.tbits = make([]int64, n), make([]int64, n), make([]int64, n), make([]uint64, n)
		for i := range d.unres {
			d.last[i], d.unres[i] = noTime, noUnresolved
		}
	}
	if d.regs == nil {
		d.regs = make([]uint8, 1<<14)
	}
	sc.count, sc.last, sc.unres, sc.tbits, sc.regs = d.count, d.last, d.unres, d.tbits, d.regs
	for hour := floorDiv(a, 60); hour*60 < b; hour++ {
		h := d.hours[hour]
		if h == nil {
			continue
		}
		sc.hour, sc.lo, sc.hi = hour, uint32(max(a-hour*60, 0)), uint32(min(b-hour*60, 60))
		sc.perMin = [60]int64{}
		start := uint32(0)
		for _, g := range h.sealed {
			sc.group(g.user, g.last, g.lastTypes, h.sev[start:g.end])
			start = g.end
		}
		for i := range h.groups {
			g := &h.groups[i]
			sc.group(g.user, g.last, g.lastTypes, g.ev)
		}
		for m, c := range sc.perMin {
			if c != 0 {
				p.minutes[hour*60+int64(m)-startMin] += c
			}
		}
	}
	for r, rho := range sc.regs {
		if rho != 0 {
			p.sessions.InsertHash(codeHash(uint32(r)<<6 | uint32(rho)))
			sc.regs[r] = 0
		}
	}
	for t, c := range sc.typeCounts {
		if c != 0 {
			p.byType[d.types[t]] = c
		}
	}
	seen := sc.seen
	p.users = seen
	p.count, p.last, p.unres, p.types = make([]int64, len(seen)), make([]int64, len(seen)), make([]int64, len(seen)), make([]uint64, len(seen))
	for i, u := range seen {
		p.count[i], p.last[i], p.unres[i], p.types[i] = sc.count[u], sc.last[u], sc.unres[u], sc.tbits[u]
		sc.count[u], sc.last[u], sc.unres[u], sc.tbits[u] = 0, noTime, noUnresolved, 0
	}
	return p
}

// digestScan is what partial adds up, per user id (count, last, unres, tbits: the digest's
// scratch, emptied after use), per minute of the hour being read, per type and per session
// register.
type digestScan struct {
	typ                int    // type id, or -1 for any
	match              []bool // by user id; nil: any
	hour               int64
	lo, hi             uint32 // the minutes of the hour in range
	count, last, unres []int64
	tbits              []uint64
	regs               []uint8
	seen               []int32
	perMin             [60]int64
	typeCounts         [digestTypes]int64
}

// group adds one user's events of the hour (a sealed or open group).
func (sc *digestScan) group(user int32, glast int64, lastTypes uint64, ev []uint32) {
	if sc.match != nil && !sc.match[user] {
		return
	}
	lo, hi, typ, regs := sc.lo, sc.hi, sc.typ, sc.regs
	var n int64
	var maxM uint32
	var types uint64
	if lo == 0 && hi == 60 && typ < 0 {
		// A whole hour, every type: no test per event (the common case of a userId filter).
		n, maxM = int64(len(ev)), 59
		for _, e := range ev {
			sc.perMin[e&63]++
			t := e >> 6 & 63
			types |= 1 << t
			sc.typeCounts[t]++
			if r, rho := e>>18, uint8(e>>12&63); rho > regs[r] {
				regs[r] = rho
			}
		}
	} else if lo == 0 && hi == 60 {
		// A whole hour, one type: one test per event.
		want := uint32(typ) << 6
		for _, e := range ev {
			if e&(63<<6) != want {
				continue
			}
			n++
			m := e & 63
			sc.perMin[m]++
			maxM = max(maxM, m)
			if r, rho := e>>18, uint8(e>>12&63); rho > regs[r] {
				regs[r] = rho
			}
		}
		if n > 0 {
			types = 1 << typ
			sc.typeCounts[typ] += n
		}
	} else {
		for _, e := range ev {
			m, t := e&63, int(e>>6&63)
			if m < lo || m >= hi || typ >= 0 && t != typ {
				continue
			}
			n++
			sc.perMin[m]++
			maxM = max(maxM, m)
			types |= 1 << t
			sc.typeCounts[t]++
			if r, rho := e>>18, uint8(e>>12&63); rho > regs[r] {
				regs[r] = rho
			}
		}
	}
	if n == 0 {
		return
	}
	if sc.count[user] == 0 {
		sc.seen = append(sc.seen, user)
	}
	sc.count[user] += n
	sc.tbits[user] |= types
	// The group's newest event is the newest matching one in range if it is in range (none
	// there is newer) and of a matching type; else the newest matching one is in minute
	// maxM, to be read from the events table if this user ranks.
	lm := uint32(floorDiv(glast, minuteNs) - sc.hour*60)
	if lm >= lo && lm < hi && (typ < 0 || lastTypes&(1<<typ) != 0) {
		sc.last[user] = max(sc.last[user], glast)
	} else {
		sc.unres[user] = max(sc.unres[user], sc.hour*60+int64(maxM))
	}
}

// digestCatchUp feeds the digest the events after its watermark up to seq upTo, when it is
// active and behind: events another process built the rollups of.
func (s *Store) digestCatchUp(ctx context.Context, upTo int64) error {
	d := &s.digest
	d.mu.Lock()
	from, active := d.seq, d.active
	d.mu.Unlock()
	if !active || from >= upTo {
		return nil
	}
	return s.digestRead(ctx, from, upTo)
}

// digestRead feeds the digest the events with seq in (from, upTo] (upTo 0: no bound).
func (s *Store) digestRead(ctx context.Context, from, upTo int64) error {
	if upTo == 0 {
		upTo = math.MaxInt64
	}
	for {
		rows, err := s.rdb.QueryContext(ctx, `SELECT seq, user_id, session_id, event_type, ts FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, from, upTo, digestFeedBatch)
		if err != nil {
			return err
		}
		batch, err := scanFeedRows(rows)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		s.digest.mu.Lock()
		s.digest.feed(batch)
		s.digest.mu.Unlock()
		from = batch[len(batch)-1].seq
		if len(batch) < digestFeedBatch {
			return nil
		}
	}
}

// storedBounds returns the newest stored event's seq and the retention cut-off applied
// (Unix ns; noTime when none).
func storedBounds(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (top, cutoff int64, err error) {
	err = q.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0), COALESCE((SELECT value FROM counters WHERE name = 'retention_cutoff'), ?) FROM events`, noTime).Scan(&top, &cutoff)
	return top, cutoff, err
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

// readDigest reads the stored events of the hours from fromHour on (every event when all is
// set) into an empty digest and activates it. Rows are read from one snapshot of the events
// table, at seq top; the events stored after it are fed by the builder.
//
// With all the digest is activated once every row is read. Without, it reads an hour at a
// time, newest first, and stops at the first hour the digest has no room for; it answers
// from the start, for the hours after the newest stored event, and for each past hour once
// that is read whole, while the builder puts later events into any hour from fromHour on.
// So after a start that found no snapshot, recent ranges are answered from the digest
// within milliseconds, a day within about a second.
func (s *Store) readDigest(ctx context.Context, fromHour int64, all bool) error {
	d := &s.digest
	d.mu.Lock()
	d.active, d.seq = false, 0
	d.reset(fromHour)
	d.mu.Unlock()
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	top, cutoff, err := storedBounds(ctx, tx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.applyCutoff(cutoff)
	d.mu.Unlock()
	batch := make([]feedRow, 0, digestFeedBatch)
	put := func() {
		d.mu.Lock()
		d.feeds++
		for i := range batch {
			d.put(batch[i].user, batch[i].session, batch[i].typ, batch[i].ts)
		}
		d.evict()
		d.mu.Unlock()
		batch = batch[:0]
	}
	read := func(q string, args ...any) error {
		rows, err := tx.QueryContext(ctx, `SELECT user_id, session_id, event_type, ts FROM events`+q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r feedRow
			if err := rows.Scan(&r.user, &r.session, &r.typ, &r.ts); err != nil {
				return err
			}
			if batch = append(batch, r); len(batch) == cap(batch) {
				put()
			}
		}
		put()
		return rows.Err()
	}
	if all {
		if err := read(``); err != nil {
			return err
		}
		tx.Rollback()
		return s.activateDigest(ctx, top, func() {})
	}
	var newest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(ts) FROM events`).Scan(&newest); err != nil {
		return err
	}
	err = s.activateDigest(ctx, top, func() {
		if newest.Valid {
			d.from = max(d.floor, floorDiv(newest.Int64, hourNs)+1)
		}
	})
	for err == nil && newest.Valid {
		hour := floorDiv(newest.Int64, hourNs)
		d.mu.Lock()
		room := hour >= d.floor // not before fromHour, the retention cut-off or hours evicted
		d.mu.Unlock()
		if !room {
			break
		}
		if err = read(` WHERE ts >= ? AND ts < ?`, hour*hourNs, (hour+1)*hourNs); err != nil {
			break
		}
		d.mu.Lock()
		if hour >= d.floor { // read whole: the hours from it on answer
			d.from = hour
		}
		d.mu.Unlock()
		if s.digestHourRead != nil {
			s.digestHourRead(hour)
		}
		err = tx.QueryRowContext(ctx, `SELECT MAX(ts) FROM events WHERE ts < ?`, hour*hourNs).Scan(&newest)
	}
	d.mu.Lock()
	if err == nil && !newest.Valid {
		d.from = d.floor // no stored event before the hours read: every hour from the floor is whole
	}
	d.dropBefore(d.from) // events are put from the first covered hour on only, as before the start
	d.mu.Unlock()
	return err
}

// activateDigest feeds the digest the events stored after seq top (under the build lock,
// so that no build feeds it meanwhile) and activates it: from then on the builder feeds it.
// init runs under the digest's lock before.
func (s *Store) activateDigest(ctx context.Context, top int64, init func()) error {
	d := &s.digest
	s.mem.buildMu.Lock()
	defer s.mem.buildMu.Unlock()
	d.mu.Lock()
	d.seq = top
	init()
	d.mu.Unlock()
	if err := s.digestRead(ctx, top, 0); err != nil {
		return err
	}
	d.mu.Lock()
	d.active = true
	d.mu.Unlock()
	return nil
}

// startDigest fills the digest at open: every event of a small store before serving, else
// the newest hours that fit in the background: the function returned, run until done
// or until stop is closed.
func (s *Store) startDigest(ctx context.Context, log *slog.Logger) (background func(stop <-chan struct{}), err error) {
	switch ok, err := s.loadDigest(ctx); {
	case ok:
		s.digestLoaded = true
		return nil, nil // the builder feeds it the events stored since the snapshot
	case err != nil && log != nil:
		log.Warn("event digest snapshot not used; reading the events instead", "err", err)
	}
	var n int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'events'`).Scan(&n); err != nil {
		return nil, err
	}
	if n < digestReadAllBelow {
		return nil, s.readDigest(ctx, math.MinInt64, true)
	}
	return func(stop <-chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		_ = s.readDigest(ctx, math.MinInt64, false) // a failure leaves it inactive: queries read events
	}, nil
}

// digestCover returns the first minute the digest answers for, or MaxInt64 when it does not
// answer yet, after applying a retention cut-off another process made.
func (d *eventDigest) cover(cutoff int64) int64 {
	if !d.active {
		return math.MaxInt64
	}
	d.applyCutoff(cutoff)
	if d.from <= math.MinInt64/60 {
		return math.MinInt64
	}
	return d.from * 60
}
