package blocks

import "fmt"

// How Query reads a sealed Block (see part).

func (blk *Block) hourOf() int64 { return blk.Hour }

func (blk *Block) within(users, types int) bool {
	return (len(blk.users) == 0 || int(blk.users[len(blk.users)-1].id) < users) &&
		(len(blk.types) == 0 || int(blk.types[len(blk.types)-1]) < types)
}

// addTo reads a whole hour of an unfiltered query from the header, anything else from the
// entries of the users the filter keeps.
func (blk *Block) addTo(a *adder, lo, hi int) error {
	perType := a.typeCounts(len(blk.types))
	if lo == 0 && hi == 60 && !a.f.matches {
		for _, c := range blk.cells {
			a.perMinute[c.minute] += int64(c.n)
			perType[c.typ] += int64(c.n)
		}
		for _, u := range blk.users {
			a.perUser.add(u.id, int64(u.n))
		}
		if err := a.sessions.Merge(blk.sessions); err != nil {
			return fmt.Errorf("blocks: the sessions of hour %d: %w", blk.Hour, err)
		}
		a.addTypes(blk.types)
		return nil
	}
	typ, ok := blk.filterType(a)
	if !ok {
		return nil
	}
	seen := a.sessionBits(len(blk.sessionHashes))
	for _, u := range blk.users {
		if !a.f.user(u.id) {
			continue
		}
		var n int64
		for i := u.first; i < u.first+u.n; i++ {
			e := blk.entries[i]
			m := entryMinute(e)
			if m < lo || m >= hi || a.f.byType && entryType(e) != typ {
				continue
			}
			n++
			a.perMinute[m]++
			perType[entryType(e)]++
			s := blk.session[i]
			seen[s/64] |= 1 << (s % 64)
		}
		a.perUser.add(u.id, n)
	}
	a.addSessions(blk.sessionHashes)
	a.addTypes(blk.types)
	return nil
}

// filterType is the block's index of the type a's filter asks for; ok is false when the
// filter asks for a type the block does not hold.
func (blk *Block) filterType(a *adder) (typ uint32, ok bool) {
	if !a.f.byType {
		return 0, true
	}
	return blk.localType(a.f.typ)
}

func (blk *Block) detailOf(a *adder, lo, hi int, tops map[uint32]*detail) {
	typ, ok := blk.filterType(a)
	if !ok {
		return
	}
	for id, d := range tops {
		u, ok := blk.userRow(id)
		if !ok {
			continue
		}
		for i := u.first; i < u.first+u.n; i++ {
			e := blk.entries[i]
			m := entryMinute(e)
			if m < lo || m >= hi || a.f.byType && entryType(e) != typ {
				continue
			}
			d.add(blk.Hour*hourNanos+entryInHour(e), blk.types[entryType(e)])
		}
	}
}
