package logqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record is a 4-byte body length, a CRC-32C of the body, then the body: a kind byte and
// the kind's fields, all little-endian.
//
//	entry: id u64, attempts u32, eventID length u16, eventID, data (the rest)
//	ack:   one or more ranges of acknowledged ids: first u64, count u32
//	nack:  one or more ids u64, each delivered once more
//
// The checksum finds the torn tail a crash leaves behind: replay stops at the first record
// that does not check out and the file is cut there.
const (
	headerSize = 8
	kindEntry  = 1
	kindAck    = 2
	kindNack   = 3

	entryFixed = 1 + 8 + 4 + 2
	ackRange   = 12
	// maxBody bounds one record: anything larger in a length field is damage, not data.
	maxBody = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errTorn = errors.New("torn or damaged record")

// appendRecord frames the body that fill appends (n bytes) onto buf.
func appendRecord(buf []byte, n int, fill func(b []byte) []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, headerSize)...)
	buf = fill(buf)
	if len(buf)-start-headerSize != n {
		panic("logqueue: record body length mismatch")
	}
	body := buf[start+headerSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(n))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(body, castagnoli))
	return buf
}

// entrySize is the size in the log of an entry record.
func entrySize(eventID string, data []byte) int64 {
	return int64(headerSize + entryFixed + len(eventID) + len(data))
}

func appendEntry(buf []byte, id int64, attempts int, eventID string, data []byte) []byte {
	n := entryFixed + len(eventID) + len(data)
	return appendRecord(buf, n, func(b []byte) []byte {
		b = append(b, kindEntry)
		b = binary.LittleEndian.AppendUint64(b, uint64(id))
		b = binary.LittleEndian.AppendUint32(b, uint32(attempts))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(eventID)))
		b = append(b, eventID...)
		return append(b, data...)
	})
}

// appendAcks writes sorted ids as runs of consecutive ids.
func appendAcks(buf []byte, sorted []int64) []byte {
	if len(sorted) == 0 {
		return buf
	}
	runs := 0
	for i := range sorted {
		if i == 0 || sorted[i] != sorted[i-1]+1 {
			runs++
		}
	}
	return appendRecord(buf, 1+runs*ackRange, func(b []byte) []byte {
		b = append(b, kindAck)
		for i := 0; i < len(sorted); {
			j := i
			for j+1 < len(sorted) && sorted[j+1] == sorted[j]+1 {
				j++
			}
			b = binary.LittleEndian.AppendUint64(b, uint64(sorted[i]))
			b = binary.LittleEndian.AppendUint32(b, uint32(j-i+1))
			i = j + 1
		}
		return b
	})
}

func appendNacks(buf []byte, ids []int64) []byte {
	if len(ids) == 0 {
		return buf
	}
	return appendRecord(buf, 1+8*len(ids), func(b []byte) []byte {
		b = append(b, kindNack)
		for _, id := range ids {
			b = binary.LittleEndian.AppendUint64(b, uint64(id))
		}
		return b
	})
}

// record is one decoded record; its slices point into the buffer it was read from.
type record struct {
	kind     byte
	id       int64 // entry
	attempts int   // entry
	eventID  []byte
	data     []byte
	body     []byte // ack ranges or nack ids, after the kind byte
}

// parseRecord decodes the record at the start of b. It returns errShort when b holds only
// part of it (need says how many bytes the whole record takes, when known) and errTorn when
// the bytes cannot be a record.
func parseRecord(b []byte) (r record, size int, err error) {
	if len(b) < headerSize {
		return r, headerSize, errShort
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n == 0 || n > maxBody {
		return r, 0, errTorn
	}
	size = headerSize + n
	if len(b) < size {
		return r, size, errShort
	}
	body := b[headerSize:size]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return r, 0, errTorn
	}
	r.kind = body[0]
	switch r.kind {
	case kindEntry:
		if n < entryFixed {
			return r, 0, errTorn
		}
		r.id = int64(binary.LittleEndian.Uint64(body[1:]))
		r.attempts = int(binary.LittleEndian.Uint32(body[9:]))
		idLen := int(binary.LittleEndian.Uint16(body[13:]))
		if entryFixed+idLen > n {
			return r, 0, errTorn
		}
		r.eventID = body[entryFixed : entryFixed+idLen]
		r.data = body[entryFixed+idLen:]
	case kindAck:
		if (n-1)%ackRange != 0 {
			return r, 0, errTorn
		}
		r.body = body[1:]
	case kindNack:
		if (n-1)%8 != 0 {
			return r, 0, errTorn
		}
		r.body = body[1:]
	default:
		return r, 0, fmt.Errorf("%w: unknown kind %d", errTorn, r.kind)
	}
	return r, size, nil
}

var errShort = errors.New("short record")

// ackRanges calls fn for each range of an ack record's body.
func ackRanges(body []byte, fn func(first int64, count int)) {
	for ; len(body) >= ackRange; body = body[ackRange:] {
		fn(int64(binary.LittleEndian.Uint64(body)), int(binary.LittleEndian.Uint32(body[8:])))
	}
}

// nackIDs calls fn for each id of a nack record's body.
func nackIDs(body []byte, fn func(id int64)) {
	for ; len(body) >= 8; body = body[8:] {
		fn(int64(binary.LittleEndian.Uint64(body)))
	}
}
