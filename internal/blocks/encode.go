package blocks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/axiomhq/hyperloglog"
)

// A block as bytes: the magic "EVPB", the format (1), the fields below as varints (header
// first, so that a reader could stop after it), and a CRC-32 (Castagnoli) of all before it.
//
//	hour, version, events, seq
//	types:    count, then each global id as the difference from the one before
//	cells:    count, then minute, type, n
//	users:    count, then id (difference from the one before), n
//	sessions: the HyperLogLog's length and bytes; count, then each hash (8 bytes, little-endian)
//	entries:  per user, per entry: time in the hour (difference from the entry before, the
//	          first from 0), type, session
const (
	magic  = "EVPB"
	format = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Encode appends blk's bytes to dst.
func (blk *Block) Encode(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, magic...)
	dst = append(dst, format)
	dst = binary.AppendVarint(dst, blk.Hour)
	dst = binary.AppendUvarint(dst, blk.Version)
	dst = binary.AppendUvarint(dst, uint64(blk.Events))
	dst = binary.AppendVarint(dst, blk.Seq)

	dst = binary.AppendUvarint(dst, uint64(len(blk.types)))
	prev := uint32(0)
	for _, typ := range blk.types {
		dst = binary.AppendUvarint(dst, uint64(typ-prev))
		prev = typ
	}
	dst = binary.AppendUvarint(dst, uint64(len(blk.cells)))
	for _, c := range blk.cells {
		dst = append(dst, c.minute)
		dst = binary.AppendUvarint(dst, uint64(c.typ))
		dst = binary.AppendUvarint(dst, uint64(c.n))
	}
	dst = binary.AppendUvarint(dst, uint64(len(blk.users)))
	prev = 0
	for _, u := range blk.users {
		dst = binary.AppendUvarint(dst, uint64(u.id-prev))
		dst = binary.AppendUvarint(dst, uint64(u.n))
		prev = u.id
	}
	sk, err := blk.sessions.MarshalBinary()
	if err != nil {
		return nil, err
	}
	dst = binary.AppendUvarint(dst, uint64(len(sk)))
	dst = append(dst, sk...)
	dst = binary.AppendUvarint(dst, uint64(len(blk.sessionHashes)))
	for _, h := range blk.sessionHashes {
		dst = binary.LittleEndian.AppendUint64(dst, h)
	}
	for _, u := range blk.users {
		at := int64(0)
		for i := u.first; i < u.first+u.n; i++ {
			e := blk.entries[i]
			inHour := entryInHour(e)
			dst = binary.AppendUvarint(dst, uint64(inHour-at))
			dst = binary.AppendUvarint(dst, uint64(entryType(e)))
			dst = binary.AppendUvarint(dst, uint64(blk.session[i]))
			at = inHour
		}
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable)), nil
}

// errCorrupt is the error of Decode for bytes that are not a block.
var errCorrupt = errors.New("blocks: not a block, or a damaged one")

// Decode reads a block that Encode wrote. It checks the checksum and every count and index
// against what the bytes can hold, so damaged bytes give an error, never a block that would
// make a query fail.
func Decode(b []byte) (*Block, error) {
	if len(b) < len(magic)+1+4 || string(b[:len(magic)]) != magic {
		return nil, errCorrupt
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	if body[len(magic)] != format {
		return nil, fmt.Errorf("blocks: format %d, this evp reads format %d", body[len(magic)], format)
	}
	r := reader{b: body[len(magic)+1:]}
	blk := &Block{Hour: r.varint(), Version: r.uvarint(), Events: r.count(len(r.b) / 3)} // an entry takes 3 bytes or more
	blk.Seq = r.varint()

	blk.types = make([]uint32, r.count(maxTypes))
	prev := uint64(0)
	for i := range blk.types {
		prev += r.uvarint()
		blk.types[i] = uint32(r.max(prev, 1<<32-1))
	}
	blk.cells = make([]cell, r.count(60*len(blk.types)))
	for i := range blk.cells {
		blk.cells[i] = cell{minute: uint8(r.max(uint64(r.byte()), 59)), typ: r.index(len(blk.types)), n: uint32(r.max(r.uvarint(), 1<<32-1))}
	}
	blk.users = make([]user, r.count(blk.Events))
	prev = 0
	first := uint64(0)
	for i := range blk.users {
		delta := r.uvarint()
		if i > 0 && delta == 0 {
			r.fail() // ids ascend strictly
		}
		prev += delta
		n := r.uvarint()
		blk.users[i] = user{id: uint32(r.max(prev, 1<<32-1)), first: uint32(first), n: uint32(r.max(n, uint64(blk.Events)))}
		first += n
	}
	if first != uint64(blk.Events) {
		r.fail()
	}
	blk.sessions = hyperloglog.New14()
	if sk := r.bytes(r.count(len(r.b))); r.err == nil {
		if err := blk.sessions.UnmarshalBinary(sk); err != nil {
			return nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
	}
	blk.sessionHashes = make([]uint64, r.count(min(blk.Events, len(r.b)/8)))
	for i := range blk.sessionHashes {
		blk.sessionHashes[i] = binary.LittleEndian.Uint64(r.bytes(8))
	}
	blk.entries = make([]uint64, blk.Events)
	blk.session = make([]uint32, blk.Events)
	for _, u := range blk.users {
		at := uint64(0)
		for i := u.first; i < u.first+u.n && r.err == nil; i++ {
			at = r.max(at+r.uvarint(), uint64(hourNanos-1))
			blk.entries[i] = makeEntry(int64(at), r.index(len(blk.types)))
			blk.session[i] = r.index(len(blk.sessionHashes))
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errCorrupt
	}
	return blk, nil
}

// reader reads varints off b, remembering the first failure (and then reading zeros).
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errCorrupt
	}
	r.b = nil
}

// skip moves past a varint of n bytes (binary.Uvarint's or Varint's count: 0 or less for
// none), reporting whether there was one.
func (r *reader) skip(n int) bool {
	if n <= 0 {
		r.fail()
		return false
	}
	r.b = r.b[n:]
	return true
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if !r.skip(n) {
		return 0
	}
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if !r.skip(n) {
		return 0
	}
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n int) []byte {
	if len(r.b) < n {
		r.fail()
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// count reads a length of at most limit (what the bytes or the block can hold), so that a
// damaged one cannot make Decode allocate without bound.
func (r *reader) count(limit int) int { return int(r.max(r.uvarint(), uint64(max(limit, 0)))) }

// index reads an index into a table of n.
func (r *reader) index(n int) uint32 {
	v := r.uvarint()
	if v >= uint64(n) {
		r.fail()
		return 0
	}
	return uint32(v)
}

// max returns v, failing when it is over limit.
func (r *reader) max(v, limit uint64) uint64 {
	if v > limit {
		r.fail()
		return 0
	}
	return v
}
