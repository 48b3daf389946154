// Package jsonobj reads the members of a JSON object already known to be valid (checked by
// encoding/json) without decoding it again: each member's key and the raw bytes of its
// value, in body order. The SDK protocols use it to pick their fields out of a message and
// keep the rest byte for byte, at a fraction of the cost of a map of json.RawMessage.
package jsonobj

import (
	"bytes"
	"encoding/json"
)

// Member is one member of an object: its key (unescaped) and its value as written, and
// where the member starts and ends in the object (from its key's opening quote to the end
// of its value), so that a caller can cut it out. Key shares the object's bytes unless it
// holds escapes; compare it with string(m.Key) == name, which does not allocate.
type Member struct {
	Key        []byte
	Value      []byte
	Start, End int
}

// Members returns the members of obj, a valid JSON object of valid UTF-8 (surrounding
// whitespace allowed): none, not nil, for an empty object; nil for what is not an object.
func Members(obj []byte) []Member { return AppendMembers(nil, obj) }

// AppendMembers is Members appending to dst, so that a caller reading many objects in turn
// can reuse one slice: AppendMembers(ms[:0], obj).
func AppendMembers(dst []Member, obj []byte) []Member {
	if dst == nil {
		dst = make([]Member, 0, 16)
	}
	if !Each(obj, func(m Member) bool { dst = append(dst, m); return true }) {
		return nil
	}
	return dst
}

// Each calls fn with each member of obj in turn until fn returns false. It reports whether
// obj is an object.
func Each(obj []byte, fn func(Member) bool) bool {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipWS(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		start := i
		keyEnd := skipString(obj, i)
		key := obj[i+1 : keyEnd-1]
		i = skipWS(obj, keyEnd)
		i = skipWS(obj, i+1) // the colon
		valStart := i
		i = skipValue(obj, i)
		m := Member{Key: key, Value: obj[valStart:i], Start: start, End: i}
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			_ = json.Unmarshal(obj[start:keyEnd], &k)
			m.Key = []byte(k)
		}
		if !fn(m) {
			return true
		}
		i = skipWS(obj, i)
		if i < len(obj) && obj[i] == ',' {
			i = skipWS(obj, i+1)
		}
	}
	return true
}

// Find returns the value of the first member of obj named key, or nil.
func Find(obj []byte, key string) []byte {
	var v []byte
	Each(obj, func(m Member) bool {
		if string(m.Key) == key {
			v = m.Value
			return false
		}
		return true
	})
	return v
}

// Buffer holds copies of values read from objects, many to an allocation: a decoder keeps
// the payloads and metadata of a whole batch in one buffer sized to the request's body
// rather than in two allocations an event. What it returns never shares the read objects'
// bytes, and is capped, so that appending to one value cannot overwrite the next.
type Buffer struct{ b []byte }

// NewBuffer returns a Buffer with room for size bytes; it grows past them when it must.
func NewBuffer(size int) *Buffer { return &Buffer{b: make([]byte, 0, size)} }

// Copy returns a copy of v.
func (b *Buffer) Copy(v []byte) []byte {
	start := len(b.b)
	b.b = append(b.b, v...)
	return b.from(start)
}

// Without returns a copy of the object of members (Members(obj)) without those drop names,
// each kept member as written, led by lead (a member as JSON: `"type":"track"`) unless it
// is empty.
func (b *Buffer) Without(obj []byte, members []Member, lead string, drop func(key []byte) bool) []byte {
	start := len(b.b)
	b.b = append(b.b, '{')
	b.b = append(b.b, lead...)
	for _, m := range members {
		if drop(m.Key) {
			continue
		}
		if len(b.b) > start+1 {
			b.b = append(b.b, ',')
		}
		b.b = append(b.b, obj[m.Start:m.End]...)
	}
	b.b = append(b.b, '}')
	return b.from(start)
}

// from returns what was written since start, capped.
func (b *Buffer) from(start int) []byte { return b.b[start:len(b.b):len(b.b)] }

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i]: after the first
// quote that an even number of backslashes precedes.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			break
		}
		i += j
		escaped := false
		for k := i - 1; b[k] == '\\'; k-- { // stops at the opening quote at the latest
			escaped = !escaped
		}
		if !escaped {
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// Elements returns the elements of arr, a valid JSON array, as written; nil for anything
// that is not an array.
func Elements(arr []byte) [][]byte {
	i := skipWS(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return nil
	}
	var out [][]byte
	i = skipWS(arr, i+1)
	for i < len(arr) && arr[i] != ']' {
		start := i
		i = skipValue(arr, i)
		out = append(out, arr[start:i])
		i = skipWS(arr, i)
		if i < len(arr) && arr[i] == ',' {
			i = skipWS(arr, i+1)
		}
	}
	return out
}

// String decodes the JSON string raw; ok is false when raw is not a string.
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	return unescape(raw)
}

// unescape decodes a JSON string holding escapes; apart from String, so that String's
// result does not escape to the heap with the pointer given to json.Unmarshal.
func unescape(raw []byte) (string, bool) {
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil
}

// IsNull reports whether raw is absent (empty) or null.
func IsNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

// Text reads an optional string: "" for absent or null; ok is false for another type.
func Text(raw []byte) (string, bool) {
	if IsNull(raw) {
		return "", true
	}
	return String(raw)
}

// ID reads an optional id, a string or a number (kept as written): "" for absent or null;
// ok is false for another type.
func ID(raw []byte) (string, bool) {
	if IsNull(raw) {
		return "", true
	}
	if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		return string(raw), true
	}
	return String(raw)
}

// Get returns the value of the member of ms named key, or nil; the last one when the key
// repeats, as encoding/json reads it.
func Get(ms []Member, key string) []byte {
	var v []byte
	for _, m := range ms {
		if string(m.Key) == key {
			v = m.Value
		}
	}
	return v
}
