package blocks

import "math/bits"

// Compact renumbers the dictionaries to hold only the users and types that the sealed
// blocks and the head still refer to, when at most half of their names are: retention
// drops hours, and the names only those hours held would otherwise stay in memory for
// good. With all set it renumbers whenever a name is no longer referred to (a user's events
// were deleted: the name itself is theirs to have erased). The renumbering keeps the order of ids, so that a block only has its user and type
// ids rewritten (its users and types stay sorted, its entries untouched). Queries on older
// snapshots go on with the old dictionaries. It returns whether it renumbered: a store
// then persists the whole state again, every block and name having changed.
func (e *Engine) Compact(all bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.Snapshot()
	names := [2][]string{e.d.Users.Names(), e.d.Types.Names()}
	live := [2][]uint64{make([]uint64, (len(names[0])+63)/64), make([]uint64, (len(names[1])+63)/64)}
	mark := func(kind int, id uint32) { live[kind][id/64] |= 1 << (id % 64) }
	for _, blk := range cur.blocks {
		for _, u := range blk.users {
			mark(0, u.id)
		}
		for _, t := range blk.types {
			mark(1, t)
		}
	}
	for _, hh := range e.heads {
		for _, u := range hh.users {
			mark(0, u)
		}
		for _, t := range hh.types {
			mark(1, t)
		}
	}
	count := func(set []uint64) (n int) {
		for _, w := range set {
			n += bits.OnesCount64(w)
		}
		return n
	}
	users, types := count(live[0]), count(live[1])
	if all && users == len(names[0]) && types == len(names[1]) ||
		!all && users*2 > len(names[0]) && types*2 > len(names[1]) {
		return false
	}

	// The new ids: each live name's rank among the live names.
	d := Dicts{Users: e.d.Users.empty(), Types: e.d.Types.empty()}
	var renum [2][]uint32
	for kind, dict := range []*Dict{d.Users, d.Types} {
		renum[kind] = make([]uint32, len(names[kind]))
		var keep []string
		for id, name := range names[kind] {
			if live[kind][id/64]&(1<<(id%64)) != 0 {
				renum[kind][id] = uint32(len(keep))
				keep = append(keep, name)
			}
		}
		dict.Load(keep) // distinct: they were distinct in the old dictionary
	}
	blocks := make(map[int64]*Block, len(cur.blocks))
	for h, blk := range cur.blocks {
		blocks[h] = blk.renumber(renum[0], renum[1])
	}
	for h, hh := range e.heads {
		e.heads[h] = hh.renumber(d, renum[0], renum[1])
	}
	e.d = d
	e.publishBlocks(blocks)
	return true
}

// renumber returns a copy of blk whose user and type ids are users[id] and types[id]
// (a renumbering that keeps their order); it shares the rest with blk.
func (blk *Block) renumber(users, types []uint32) *Block {
	b := *blk
	b.users = make([]user, len(blk.users))
	for i, u := range blk.users {
		u.id = users[u.id]
		b.users[i] = u
	}
	b.types = make([]uint32, len(blk.types))
	for i, t := range blk.types {
		b.types[i] = types[t]
	}
	return &b
}

// renumber returns a copy of h numbered with d, whose ids of the old are users[id] and
// types[id].
func (h *headHour) renumber(d Dicts, users, types []uint32) *headHour {
	out := newHeadHour(d, h.hour)
	for i, e := range h.entries {
		_ = out.push(types[h.types[entryType(e)]], h.hashes[h.sessions[i]], users[h.users[i]], entryInHour(e), h.seqs[i]) // no more types than h held
	}
	return out
}
