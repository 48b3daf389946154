package event

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON appends e encoded exactly as encoding/json encodes
// an Event with HTML escaping: the fields in declaration order, strings escaped, times in
// RFC 3339 with nanoseconds, Metadata and Payload compacted. It reports false, having
// appended nothing, for what it does not handle the same way: a time whose year is outside
// 0-9999 (which encoding/json refuses).
//
// Metadata and Payload must be valid JSON, as DecodeOne and DecodeBatch leave them; unlike
// encoding/json, appendJSON does not check them.
func appendJSON(dst []byte, e *Event) ([]byte, bool) {
	if !encodableTime(e.Timestamp) || !encodableTime(e.ReceivedAt) {
		return dst, false
	}
	dst = append(dst, `{"eventId":`...)
	dst = appendString(dst, e.EventID)
	dst = append(dst, `,"eventType":`...)
	dst = appendString(dst, e.EventType)
	dst = append(dst, `,"userId":`...)
	dst = appendString(dst, e.UserID)
	dst = append(dst, `,"sessionId":`...)
	dst = appendString(dst, e.SessionID)
	dst = append(dst, `,"timestamp":"`...)
	dst = e.Timestamp.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if len(e.Metadata) > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = appendCompact(dst, e.Metadata)
	}
	if len(e.Payload) > 0 {
		dst = append(dst, `,"payload":`...)
		dst = appendCompact(dst, e.Payload)
	}
	dst = append(dst, `,"priority":`...)
	dst = strconv.AppendInt(dst, int64(e.Priority), 10)
	dst = append(dst, `,"receivedAt":"`...)
	dst = e.ReceivedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if e.Source != "" {
		dst = append(dst, `,"source":`...)
		dst = appendString(dst, e.Source)
	}
	return append(dst, '}'), true
}

// encodedLen is a close upper estimate of e's encoding, for sizing its buffer: exact unless
// strings need escaping or the raw objects hold spaces to drop.
func encodedLen(e *Event) int {
	const fixed = len(`{"eventId":"","eventType":"","userId":"","sessionId":"","timestamp":"","metadata":,"payload":,"priority":,"receivedAt":"","source":""}`)
	const timeLen = len("2006-01-02T15:04:05.999999999+07:00")
	return fixed + len(e.EventID) + len(e.EventType) + len(e.UserID) + len(e.SessionID) +
		len(e.Metadata) + len(e.Payload) + len(e.Source) + 2*timeLen + 20
}

// encodableTime reports whether encoding/json can encode t (its year is within 0-9999).
func encodableTime(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, byte for byte as encoding/json writes it (with
// HTML escaping).
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// appendString appends s as a JSON string the way encoding/json does with HTML escaping:
// '"' and '\\' escaped, control characters as \b \f \n \r \t or \u00XX, '<' '>' '&' as
// \u00XX, U+2028 and U+2029 escaped, and each byte of invalid UTF-8 as \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCompact appends the valid JSON value raw without the whitespace between its tokens,
// with '<', '>', '&', U+2028 and U+2029 inside strings escaped: what encoding/json writes
// for a json.RawMessage field with HTML escaping.
func appendCompact(dst []byte, raw []byte) []byte {
	start, i, n := 0, 0, len(raw)
	for i < n {
		// Outside a string: skip to a quote or whitespace.
		for i < n && !stopOutside[raw[i]] {
			i++
		}
		if i == n {
			break
		}
		if raw[i] != '"' {
			dst = append(dst, raw[start:i]...)
			i++
			start = i
			continue
		}
		// Inside a string, from after its opening quote to after its closing one.
		for i++; i < n; {
			for i < n && !stopInside[raw[i]] {
				i++
			}
			if i == n {
				break
			}
			c := raw[i]
			if c == '"' {
				i++
				break
			}
			switch {
			case c == '\\':
				i += 2 // the escaped byte is never one to rewrite
				continue
			case c == '<' || c == '>' || c == '&':
				dst = append(dst, raw[start:i]...)
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				i++
			case i+2 < n && raw[i+1] == 0x80 && (raw[i+2] == 0xa8 || raw[i+2] == 0xa9): // U+2028, U+2029
				dst = append(dst, raw[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[raw[i+2]&0xf])
				i += 3
			default: // 0xe2 starting another character
				i++
				continue
			}
			start = i
		}
	}
	if start < n {
		dst = append(dst, raw[start:]...)
	}
	return dst
}

// stopOutside and stopInside mark the bytes appendCompact must look at outside and inside
// strings.
var stopOutside, stopInside [256]bool

func init() {
	for _, c := range []byte{'"', ' ', '\t', '\n', '\r'} {
		stopOutside[c] = true
	}
	for _, c := range []byte{'"', '\\', '<', '>', '&', 0xe2} {
		stopInside[c] = true
	}
}
