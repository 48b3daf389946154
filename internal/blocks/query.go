package blocks

import (
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

// Query answers q from blks: the blocks of one consistent snapshot, at most one an hour, in
// any order, built with d before the call; those outside q's range are skipped. Counts and unique users are exact;
// unique sessions come from HyperLogLog sketches (about 0.8 % error).
//
// A whole hour of an unfiltered query is read from its block's header; an hour cut by the
// range, and every hour of a filtered query, from its entries, skipping the users a userId
// filter leaves out. Top users' last times and types come from their own entries only.
func Query(blks []*Block, d Dicts, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
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
		perUser:  make([]int64, len(d.Users.Names())),
		sessions: hyperloglog.New14(),
	}
	var in []*Block // the blocks of the range, by hour
	for _, blk := range blks {
		if lo, hi := a.window(blk); lo < hi {
			if !blk.within(len(a.perUser), len(a.typeNames)) {
				return store.AnalyticsResult{}, fmt.Errorf("blocks: the block of hour %d numbers users or types the dictionaries do not hold", blk.Hour)
			}
			in = append(in, blk)
		}
	}
	slices.SortFunc(in, func(x, y *Block) int { return cmpI64(x.Hour, y.Hour) })
	for _, blk := range in {
		if err := a.add(blk); err != nil {
			return store.AnalyticsResult{}, err
		}
	}
	for _, n := range a.perUser {
		if n > 0 {
			res.UniqueUsers++
		}
	}
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
	perUser   []int64 // events per global user id
	sessions  *hyperloglog.Sketch

	// per block, reused
	perMinute [60]int64
	perType   []int64 // per block type index
	seen      []uint64
}

// window is the minutes [lo, hi) of blk's hour that the range holds.
func (a *adder) window(blk *Block) (lo, hi int) {
	first := blk.Hour * 60
	lo = int(max(a.t.StartMin-first, 0))
	hi = int(min(a.t.EndMin-first, 60))
	return lo, hi
}

// add adds what blk holds of the range.
func (a *adder) add(blk *Block) error {
	lo, hi := a.window(blk)
	clear(a.perMinute[:])
	a.perType = slices.Grow(a.perType[:0], len(blk.types))[:len(blk.types)]
	clear(a.perType)
	if lo == 0 && hi == 60 && !a.f.matches {
		if err := a.addHeader(blk); err != nil {
			return err
		}
	} else {
		a.scan(blk, lo, hi)
	}
	for m, n := range a.perMinute {
		if n > 0 {
			a.t.Buckets[(blk.Hour*60+int64(m)-a.t.StartMin)/a.t.BucketMin] += n
		}
	}
	for i, n := range a.perType {
		if n > 0 {
			a.t.ByType[a.typeNames[blk.types[i]]] += n
		}
	}
	return nil
}

// addHeader adds the whole hour of blk from its header.
func (a *adder) addHeader(blk *Block) error {
	for _, c := range blk.cells {
		a.perMinute[c.minute] += int64(c.n)
		a.perType[c.typ] += int64(c.n)
	}
	for _, u := range blk.users {
		a.perUser[u.id] += int64(u.n)
	}
	if err := a.sessions.Merge(blk.sessions); err != nil {
		return fmt.Errorf("blocks: the sessions of hour %d: %w", blk.Hour, err)
	}
	return nil
}

// scan adds the entries of blk in minutes [lo, hi) that pass the filters.
func (a *adder) scan(blk *Block, lo, hi int) {
	typ, wantType := uint32(0), a.f.byType
	if wantType {
		var ok bool
		if typ, ok = blk.localType(a.f.typ); !ok {
			return
		}
	}
	a.seen = slices.Grow(a.seen[:0], (len(blk.sessionHashes)+63)/64)[:(len(blk.sessionHashes)+63)/64]
	clear(a.seen)
	for _, u := range blk.users {
		if !a.f.user(u.id) {
			continue
		}
		var n int64
		for i := u.first; i < u.first+u.n; i++ {
			e := blk.entries[i]
			m := entryMinute(e)
			if m < lo || m >= hi || wantType && entryType(e) != typ {
				continue
			}
			n++
			a.perMinute[m]++
			a.perType[entryType(e)]++
			s := blk.session[i]
			a.seen[s/64] |= 1 << (s % 64)
		}
		a.perUser[u.id] += n
	}
	for w, word := range a.seen {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			a.sessions.InsertHash(blk.sessionHashes[w*64+b])
			word &= word - 1
		}
	}
}

// top returns the users with the most events in the range, most first (ties by id), with
// the time of their last event and their types in the range, read from their entries in
// blks (the blocks of the range, by hour).
func (a *adder) top(blks []*Block, names []string) []store.TopUser {
	var ids []uint32
	for id, n := range a.perUser {
		if n == 0 {
			continue
		}
		ids = append(ids, uint32(id))
		if len(ids) > 4*topUsers { // keep the candidate list short
			ids = a.best(ids, names)
		}
	}
	ids = a.best(ids, names)
	out := make([]store.TopUser, len(ids))
	for k, id := range ids {
		out[k] = a.detail(blks, id, names[id])
	}
	return out
}

// best sorts ids best first and keeps the first topUsers.
func (a *adder) best(ids []uint32, names []string) []uint32 {
	slices.SortFunc(ids, func(x, y uint32) int {
		if nx, ny := a.perUser[x], a.perUser[y]; nx != ny {
			return cmpI64(ny, nx)
		}
		return strings.Compare(names[x], names[y])
	})
	return ids[:min(len(ids), topUsers)]
}

// detail is user id's line in the answer.
func (a *adder) detail(blks []*Block, id uint32, name string) store.TopUser {
	tu := store.TopUser{UserID: name, EventCount: a.perUser[id], EventTypes: []string{}}
	last, found := int64(0), false
	types := map[uint32]bool{}
	for _, blk := range blks {
		u, ok := blk.userRow(id)
		if !ok {
			continue
		}
		lo, hi := a.window(blk)
		typ, wantType := uint32(0), a.f.byType
		if wantType {
			if typ, ok = blk.localType(a.f.typ); !ok {
				continue
			}
		}
		for i := u.first; i < u.first+u.n; i++ {
			e := blk.entries[i]
			m := entryMinute(e)
			if m < lo || m >= hi || wantType && entryType(e) != typ {
				continue
			}
			types[blk.types[entryType(e)]] = true
			if at := blk.Hour*hourNanos + int64(m)*minuteNanos + entryNano(e); !found || at > last {
				last, found = at, true
			}
		}
	}
	for typ := range types {
		tu.EventTypes = append(tu.EventTypes, a.typeNames[typ])
	}
	slices.Sort(tu.EventTypes)
	tu.LastEventAt = time.Unix(0, last).UTC()
	return tu
}
