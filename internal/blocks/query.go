package blocks

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/evp-dev/evp/internal/store"
)

// topUsers is how many users an answer lists.
const topUsers = 10

// part is what Query reads an hour from: a sealed Block, or a view of the head's events
// of an hour. An hour may have both (late events after it was sealed).
type part interface {
	hourOf() int64
	// within reports whether the part numbers only users below users and types below types.
	within(users, types int) bool
	// addTo adds the part's events in minutes [lo, hi) of its hour that pass a's filters.
	addTo(a *adder, lo, hi int) error
	// detailOf adds the events in minutes [lo, hi) that pass a's filters of the users in
	// tops to their details.
	detailOf(a *adder, lo, hi int, tops map[uint32]*detail)
}

// Query answers q from blks, the blocks of one consistent snapshot, in any order, built
// with d before the call; those outside q's range are skipped (see Snapshot.Query).
func Query(blks []*Block, d Dicts, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	parts := make([]part, len(blks))
	for i, blk := range blks {
		parts[i] = blk
	}
	return query(parts, d, q)
}

// query answers q from parts. Counts and unique users are exact; unique sessions come from
// HyperLogLog sketches (about 0.8 % error).
//
// A whole hour of an unfiltered query is read from its block's header; an hour cut by the
// range, every hour of a filtered query and the head, from their entries, skipping the
// users a userId filter leaves out. Top users' last times and types come from their own
// entries only.
func query(parts []part, d Dicts, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	t, err := store.NewTally(q)
	if err != nil {
		return store.AnalyticsResult{}, err
	}
	var res store.AnalyticsResult
	f, ok := newFilter(d, q, t)
	if !ok { // a type or user nobody sent: nothing matches
		t.Finish(&res)
		return res, nil
	}
	a := &adder{
		t: t, f: f, typeNames: d.Types.Names(),
		perUser:  newUserCounts(len(d.Users.Names())),
		sessions: hyperloglog.NewNoSparse(), // dense: an insert costs the same at any size
	}
	var in []part // the parts of the range
	for _, p := range parts {
		if lo, hi := a.window(p.hourOf()); lo < hi {
			if !p.within(a.perUser.n, len(a.typeNames)) {
				return store.AnalyticsResult{}, fmt.Errorf("blocks: the events of hour %d number users or types the dictionaries do not hold", p.hourOf())
			}
			in = append(in, p)
		}
	}
	for _, p := range in {
		if err := a.add(p); err != nil {
			return store.AnalyticsResult{}, err
		}
	}
	a.perUser.each(func(uint32, int64) { res.UniqueUsers++ })
	res.UniqueSessions = int64(a.sessions.Estimate())
	res.TopUsers = a.top(in, d.Users.Names())
	t.Finish(&res)
	return res, nil
}

// filter is a query's filters resolved against the dictionaries.
type filter struct {
	typ     uint32 // global type id, when byType
	byType  bool
	users   []uint64 // bitset of the global user ids a userId filter matches; nil: every user
	matches bool     // whether any filter is set
}

// newFilter resolves q's filters; ok is false when nothing can match.
func newFilter(d Dicts, q store.AnalyticsQuery, t *store.Tally) (f filter, ok bool) {
	if q.EventType != "" {
		if f.typ, ok = d.Types.Lookup(q.EventType); !ok {
			return f, false
		}
		f.byType, f.matches = true, true
	}
	if q.UserID != "" {
		names := d.Users.Names()
		f.users = make([]uint64, (len(names)+63)/64)
		matched := false
		for id, name := range names {
			if t.MatchUser(name) {
				f.users[id/64] |= 1 << (id % 64)
				matched = true
			}
		}
		if !matched {
			return f, false
		}
		f.matches = true
	}
	return f, true
}

func (f *filter) user(id uint32) bool { return f.users == nil || f.users[id/64]&(1<<(id%64)) != 0 }

// adder adds blocks into one answer.
type adder struct {
	t         *store.Tally
	f         filter
	typeNames []string
	perUser   userCounts // events per global user id
	sessions  *hyperloglog.Sketch

	// per block, reused
	perMinute [60]int64
	perType   []int64 // per block type index
	seen      []uint64
}

// window is the minutes [lo, hi) of the Unix hour hour that the range holds.
func (a *adder) window(hour int64) (lo, hi int) {
	first := hour * 60
	lo = int(max(a.t.StartMin-first, 0))
	hi = int(min(a.t.EndMin-first, 60))
	return lo, hi
}

// add adds what p holds of the range.
func (a *adder) add(p part) error {
	lo, hi := a.window(p.hourOf())
	clear(a.perMinute[:])
	if err := p.addTo(a, lo, hi); err != nil {
		return err
	}
	hour := p.hourOf()
	for m, n := range a.perMinute {
		if n > 0 {
			a.t.Buckets[(hour*60+int64(m)-a.t.StartMin)/a.t.BucketMin] += n
		}
	}
	return nil
}

// addTypes adds the counts of a.perType (see typeCounts), per type index of a part whose
// indexes name the global types types, to the tally.
func (a *adder) addTypes(types []uint32) {
	for i, n := range a.perType[:len(types)] {
		if n > 0 {
			a.t.ByType[a.typeNames[types[i]]] += n
		}
	}
}

// typeCounts returns a.perType sized for n type indexes, zeroed.
func (a *adder) typeCounts(n int) []int64 {
	a.perType = slices.Grow(a.perType[:0], n)[:n]
	clear(a.perType)
	return a.perType
}

// sessionBits returns a.seen sized for n sessions, zeroed.
func (a *adder) sessionBits(n int) []uint64 {
	w := (n + 63) / 64
	a.seen = slices.Grow(a.seen[:0], w)[:w]
	clear(a.seen)
	return a.seen
}

// addSessions adds the sessions whose bits a.seen sets, hashes[i] for bit i.
func (a *adder) addSessions(hashes []uint64) {
	for w, word := range a.seen {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			a.sessions.InsertHash(hashes[w*64+b])
			word &= word - 1
		}
	}
}

// top returns the users with the most events in the range, most first (ties by id), with
// the time of their last event and their types in the range, read from their entries in
// parts (the parts of the range).
func (a *adder) top(parts []part, names []string) []store.TopUser {
	var ids []uint32
	a.perUser.each(func(id uint32, _ int64) {
		if names[id] == OtherUsers {
			return
		}
		ids = append(ids, id)
		if len(ids) > 4*topUsers { // keep the candidate list short
			ids = a.best(ids, names)
		}
	})
	ids = a.best(ids, names)
	tops := make(map[uint32]*detail, len(ids))
	for _, id := range ids {
		tops[id] = &detail{types: map[uint32]bool{}}
	}
	for _, p := range parts {
		lo, hi := a.window(p.hourOf())
		p.detailOf(a, lo, hi, tops)
	}
	out := make([]store.TopUser, len(ids))
	for k, id := range ids {
		d := tops[id]
		out[k] = store.TopUser{UserID: names[id], EventCount: a.perUser.get(id), LastEventAt: time.Unix(0, d.last).UTC(), EventTypes: []string{}}
		for typ := range d.types {
			out[k].EventTypes = append(out[k].EventTypes, a.typeNames[typ])
		}
		slices.Sort(out[k].EventTypes)
	}
	return out
}

// best sorts ids best first and keeps the first topUsers.
func (a *adder) best(ids []uint32, names []string) []uint32 {
	slices.SortFunc(ids, func(x, y uint32) int {
		if nx, ny := a.perUser.get(x), a.perUser.get(y); nx != ny {
			return cmp.Compare(ny, nx)
		}
		return strings.Compare(names[x], names[y])
	})
	return ids[:min(len(ids), topUsers)]
}

// detail is what the answer says of a top user besides the count: the time of the last
// event (Unix nanoseconds) and the global types.
type detail struct {
	last  int64
	found bool
	types map[uint32]bool
}

// add records an event at Unix nanosecond at of global type typ.
func (d *detail) add(at int64, typ uint32) {
	d.types[typ] = true
	if !d.found || at > d.last {
		d.last, d.found = at, true
	}
}
