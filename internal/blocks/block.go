// Package blocks is evp's analytics engine. The events of each hour of event time are
// summed up in one immutable hour block: a header with what unfiltered questions about
// whole hours need (event counts per minute and type, the users with their counts, a
// HyperLogLog of the sessions), and a body with one fixed-width entry per event (minute,
// time within the minute, type, session), grouped by user, for filtered questions and
// the edges of a range. User ids and event types are numbered by dictionaries that all
// blocks share (Dicts). Query answers an analytics query from the blocks of its range;
// it does not know where blocks are kept: a store builds them (Builder), persists them
// (Encode, Decode) and hands Query the ones a consistent snapshot holds.
package blocks

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"
)

// Event is what a block keeps of one event, and the event's place in its store's order of
// commits (Seq), by which a store tells which events a persisted block holds.
type Event struct {
	Time                time.Time
	Type, User, Session string
	Seq                 int64
}

// An entry is one event in a block's body: bits 0-5 its minute in the hour, 6-41 its
// nanosecond in the minute, 42-63 its type (an index into the block's types).
const (
	minuteBits  = 6
	nanoBits    = 36
	typeShift   = minuteBits + nanoBits
	maxTypes    = 1 << (64 - typeShift) // event types one block can number
	nanoMask    = 1<<nanoBits - 1
	hourNanos   = int64(time.Hour)
	minuteNanos = int64(time.Minute)
)

func entryMinute(e uint64) int   { return int(e & (1<<minuteBits - 1)) }
func entryNano(e uint64) int64   { return int64(e >> minuteBits & nanoMask) }
func entryType(e uint64) uint32  { return uint32(e >> typeShift) }
func entryInHour(e uint64) int64 { return int64(entryMinute(e))*minuteNanos + entryNano(e) }
func makeEntry(inHour int64, typ uint32) uint64 {
	return uint64(inHour/minuteNanos) | uint64(inHour%minuteNanos)<<minuteBits | uint64(typ)<<typeShift
}

// Block is the sealed summary of one hour of events. It never changes once built; a hour
// that gets late events is sealed again into a block of a higher Version.
type Block struct {
	Hour    int64  // Unix hour: the block covers [Hour*3600 s, (Hour+1)*3600 s)
	Version uint64 // which sealing of the hour this is; the store chooses
	Events  int
	// Seq is the highest Seq of the events it holds: it holds every event of its hour up to
	// Seq that its engine was given, and none after.
	Seq int64

	types   []uint32 // the block's type indexes to global type ids, ascending
	cells   []cell   // events per minute and type, by minute then type
	users   []user   // the users of the hour, by global id
	entries []uint64 // one per event, user by user (users order), by time within a user
	session []uint32 // each entry's session: an index into sessionHashes
	// sessionHashes are the hashes of the hour's session ids, ascending; sessions is their
	// HyperLogLog.
	sessionHashes []uint64
	sessions      *hyperloglog.Sketch
}

// cell counts the events of one minute and type.
type cell struct {
	minute uint8
	typ    uint32 // index into types
	n      uint32
}

// user is one user's events in a block: entries[first : first+n].
type user struct {
	id       uint32
	first, n uint32
}

// Builder gathers the events of one hour and seals them into a Block. Not safe for
// concurrent use.
type Builder struct {
	hour int64
	d    Dicts
	rows []row
	seq  int64 // the highest Seq added
}

// row is an event as the builder keeps it.
type row struct {
	user, typ uint32 // global ids
	inHour    int64  // nanoseconds since the start of the hour
	session   uint64 // hash of the session id
}

// NewBuilder returns a builder for the Unix hour hour, numbering ids with d.
func NewBuilder(d Dicts, hour int64) *Builder { return &Builder{hour: hour, d: d} }

// Hour is the Unix hour of the events t falls in.
func Hour(t time.Time) int64 { return HourOf(t.UnixNano()) }

// HourOf is the Unix hour of the Unix-nanosecond time ns.
func HourOf(ns int64) int64 { return floorDiv(ns, hourNanos) }

// Add adds an event of the builder's hour.
func (b *Builder) Add(e Event) error {
	if h := Hour(e.Time); h != b.hour {
		return fmt.Errorf("blocks: an event of hour %d added to hour %d", h, b.hour)
	}
	b.rows = append(b.rows, row{
		user: b.d.Users.ID(e.User), typ: b.d.Types.ID(e.Type),
		inHour: e.Time.UnixNano() - b.hour*hourNanos, session: xxhash.Sum64String(e.Session),
	})
	b.seq = max(b.seq, e.Seq)
	return nil
}

// AddBlock adds the events of blk, a block of the same hour and dictionaries: how late
// events join an hour already sealed.
func (b *Builder) AddBlock(blk *Block) error {
	if blk.Hour != b.hour {
		return fmt.Errorf("blocks: a block of hour %d added to hour %d", blk.Hour, b.hour)
	}
	b.seq = max(b.seq, blk.Seq)
	for _, u := range blk.users {
		for i := u.first; i < u.first+u.n; i++ {
			e := blk.entries[i]
			b.rows = append(b.rows, row{
				user: u.id, typ: blk.types[entryType(e)],
				inHour: entryInHour(e), session: blk.sessionHashes[blk.session[i]],
			})
		}
	}
	return nil
}

// errTooManyTypes is Seal's error for an hour of more event types than a block numbers.
var errTooManyTypes = errors.New("blocks: more event types in one hour than a block can hold")

// Seal returns the block of the events added, as version version. The builder may go on
// gathering (for a later version).
func (b *Builder) Seal(version uint64) (*Block, error) {
	rows := sortRows(b.rows)
	blk := &Block{Hour: b.hour, Version: version, Events: len(rows), Seq: b.seq, sessions: hyperloglog.NewNoSparse()}

	localType := map[uint32]uint32{}
	for _, r := range rows {
		localType[r.typ] = 0
	}
	if len(localType) > maxTypes {
		return nil, errTooManyTypes
	}
	for typ := range localType {
		blk.types = append(blk.types, typ)
	}
	slices.Sort(blk.types)
	for i, typ := range blk.types {
		localType[typ] = uint32(i)
	}

	// Sessions: the distinct hashes, ascending; each row's index found by binary search.
	hashes := make([]uint64, len(rows))
	for i, r := range rows {
		hashes[i] = r.session
	}
	slices.Sort(hashes)
	blk.sessionHashes = slices.Compact(hashes)
	for _, h := range blk.sessionHashes {
		blk.sessions.InsertHash(h)
	}

	counts := make([]uint32, 60*len(blk.types)) // by minute, then type
	blk.entries = make([]uint64, len(rows))
	blk.session = make([]uint32, len(rows))
	for i, r := range rows {
		if len(blk.users) == 0 || blk.users[len(blk.users)-1].id != r.user {
			blk.users = append(blk.users, user{id: r.user, first: uint32(i)})
		}
		blk.users[len(blk.users)-1].n++
		typ := localType[r.typ]
		blk.entries[i] = makeEntry(r.inHour, typ)
		si, _ := slices.BinarySearch(blk.sessionHashes, r.session)
		blk.session[i] = uint32(si)
		counts[int(r.inHour/minuteNanos)*len(blk.types)+int(typ)]++
	}
	for k, n := range counts {
		if n > 0 {
			blk.cells = append(blk.cells, cell{minute: uint8(k / len(blk.types)), typ: uint32(k % len(blk.types)), n: n})
		}
	}
	return blk, nil
}

// sortRows returns a copy of rows by user, then time: the order of a block's entries.
// It sorts integer keys (user and position) rather than the rows, then each user's rows
// by time, which costs a third of sorting the rows with a comparison.
func sortRows(rows []row) []row {
	keys := make([]uint64, len(rows))
	for i, r := range rows {
		keys[i] = uint64(r.user)<<32 | uint64(i)
	}
	slices.Sort(keys)
	out := make([]row, len(rows))
	for i, k := range keys {
		out[i] = rows[uint32(k)]
	}
	for start := 0; start < len(out); {
		end := start + 1
		for end < len(out) && out[end].user == out[start].user {
			end++
		}
		if end-start > 1 {
			slices.SortFunc(out[start:end], func(x, y row) int { return cmp.Compare(x.inHour, y.inHour) })
		}
		start = end
	}
	return out
}

// bytes is about how much memory blk's arrays take.
func (blk *Block) bytes() int64 {
	return int64(len(blk.types)*4 + len(blk.cells)*12 + len(blk.users)*12 + len(blk.entries)*8 +
		len(blk.session)*4 + len(blk.sessionHashes)*8 + 1<<14) // the sketch: 2^14 registers
}

// userRow returns the block's row of the user with global id id.
func (blk *Block) userRow(id uint32) (user, bool) {
	i, ok := slices.BinarySearchFunc(blk.users, id, func(u user, id uint32) int { return cmp.Compare(u.id, id) })
	if !ok {
		return user{}, false
	}
	return blk.users[i], true
}

// localType returns the block's index of the global type id typ.
func (blk *Block) localType(typ uint32) (uint32, bool) {
	i, ok := slices.BinarySearch(blk.types, typ)
	return uint32(i), ok
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
