package blocks

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// headHour gathers the events of one hour that no sealed block holds yet, in the order
// they come, appending only: what a view has seen never changes, so that a query reads a
// view without a lock while events go on arriving. Writers hold the Engine's lock.
type headHour struct {
	hour     int64
	d        Dicts
	typeIdx  map[uint32]uint32 // global type id to index into types
	sessIdx  map[uint64]uint32 // session hash to index into hashes
	types    []uint32          // the hour's type indexes to global type ids, in order seen
	entries  []uint64          // one per event, as in a Block
	users    []uint32          // each entry's global user id
	sessions []uint32          // each entry's session: an index into hashes
	seqs     []int64           // each entry's Seq
	hashes   []uint64          // session hashes, in order seen
	maxUser  uint32
	// firstSeq and maxSeq are the lowest and highest Seq of its events.
	firstSeq, maxSeq int64
}

func newHeadHour(d Dicts, hour int64) *headHour {
	return &headHour{hour: hour, d: d, typeIdx: map[uint32]uint32{}, sessIdx: map[uint64]uint32{}}
}

// add appends an event of the hour.
func (h *headHour) add(e Event) error {
	if Hour(e.Time) != h.hour {
		return fmt.Errorf("blocks: an event of hour %d added to hour %d", Hour(e.Time), h.hour)
	}
	return h.push(h.d.Types.ID(e.Type), xxhash.Sum64String(e.Session), h.d.Users.ID(e.User), e.Time.UnixNano()-h.hour*hourNanos, e.Seq)
}

// push appends an event: its global type and user ids, session hash and time in the hour.
func (h *headHour) push(typ uint32, session uint64, user uint32, inHour, seq int64) error {
	ti, ok := h.typeIdx[typ]
	if !ok {
		if len(h.types) == maxTypes {
			return errTooManyTypes
		}
		ti = uint32(len(h.types))
		h.typeIdx[typ] = ti
		h.types = append(h.types, typ)
	}
	si, ok := h.sessIdx[session]
	if !ok {
		si = uint32(len(h.hashes))
		h.sessIdx[session] = si
		h.hashes = append(h.hashes, session)
	}
	if len(h.entries) == 0 || seq < h.firstSeq {
		h.firstSeq = seq
	}
	h.maxSeq = max(h.maxSeq, seq)
	h.maxUser = max(h.maxUser, user)
	h.entries = append(h.entries, makeEntry(inHour, ti))
	h.users = append(h.users, user)
	h.sessions = append(h.sessions, si)
	h.seqs = append(h.seqs, seq)
	return nil
}

// view returns what the hour holds now. The slices are capped: the writer's appends never
// show through them.
func (h *headHour) view() *headView {
	n := len(h.entries)
	return &headView{
		hour: h.hour, types: h.types[:len(h.types):len(h.types)],
		entries: h.entries[:n:n], users: h.users[:n:n], sessions: h.sessions[:n:n],
		hashes: h.hashes[:len(h.hashes):len(h.hashes)], maxUser: h.maxUser, maxSeq: h.maxSeq,
		held: int64((cap(h.entries)+cap(h.seqs))*8 + (cap(h.users)+cap(h.sessions))*4 + cap(h.hashes)*8 + len(h.sessIdx)*24),
	}
}

// headView is a head hour's events at one moment, never changed: a part of a snapshot.
type headView struct {
	hour     int64
	types    []uint32
	entries  []uint64
	users    []uint32
	sessions []uint32
	hashes   []uint64
	maxUser  uint32
	maxSeq   int64
	held     int64 // bytes the hour's arrays (with their spare capacity) and index took then
}

// bytes is about how much memory the view's hour takes: its arrays (entries, users,
// sessions, seqs: 24 bytes an event) with the room they have grown for, and the session
// index.
func (v *headView) bytes() int64 { return v.held }

// addToBuilder adds the view's events to a builder (sealing).
func (v *headView) addToBuilder(b *Builder) {
	for i, e := range v.entries {
		b.rows = append(b.rows, row{
			user: v.users[i], typ: v.types[entryType(e)],
			inHour: entryInHour(e), session: v.hashes[v.sessions[i]],
		})
	}
	b.seq = max(b.seq, v.maxSeq)
}

// How Query reads a head view (see part): every question from the entries.

func (v *headView) hourOf() int64 { return v.hour }

func (v *headView) within(users, types int) bool {
	if len(v.entries) > 0 && int(v.maxUser) >= users {
		return false
	}
	for _, t := range v.types {
		if int(t) >= types {
			return false
		}
	}
	return true
}

// filterType is the view's index of the type a's filter asks for; ok is false when the
// filter asks for a type the view does not hold.
func (v *headView) filterType(a *adder) (uint32, bool) {
	if !a.f.byType {
		return 0, true
	}
	for i, t := range v.types {
		if t == a.f.typ {
			return uint32(i), true
		}
	}
	return 0, false
}

func (v *headView) addTo(a *adder, lo, hi int) error {
	typ, ok := v.filterType(a)
	if !ok {
		return nil
	}
	perType := a.typeCounts(len(v.types))
	seen := a.sessionBits(len(v.hashes))
	for i, e := range v.entries {
		m := entryMinute(e)
		if m < lo || m >= hi || a.f.byType && entryType(e) != typ || !a.f.user(v.users[i]) {
			continue
		}
		a.perMinute[m]++
		perType[entryType(e)]++
		a.perUser.add(v.users[i], 1)
		s := v.sessions[i]
		seen[s/64] |= 1 << (s % 64)
	}
	a.addSessions(v.hashes)
	a.addTypes(v.types)
	return nil
}

func (v *headView) detailOf(a *adder, lo, hi int, tops map[uint32]*detail) {
	typ, ok := v.filterType(a)
	if !ok || len(tops) == 0 {
		return
	}
	for i, e := range v.entries {
		m := entryMinute(e)
		if m < lo || m >= hi || a.f.byType && entryType(e) != typ {
			continue
		}
		if d := tops[v.users[i]]; d != nil {
			d.add(v.hour*hourNanos+entryInHour(e), v.types[entryType(e)])
		}
	}
}

// appendFrom appends src's entry i, an event of the same hour.
func (h *headHour) appendFrom(src *headHour, i int) {
	e := src.entries[i]
	_ = h.push(src.types[entryType(e)], src.hashes[src.sessions[i]], src.users[i], entryInHour(e), src.seqs[i]) // src held no more types
}
