package event

import (
	"time"
	"unicode/utf8"
)

// The single-event fast path. decodeOneFast reads a body of the common shape (one object
// whose keys are exactly the contract's names, each at most once, and whose string fields
// hold no escapes) in one pass over the bytes, without reflection, and validates it with
// the same wireEvent.validate as DecodeOne's general path. Anything else (another key or a
// key in another case, an escape, a wrong type, malformed JSON) makes it give up before
// deciding anything, and DecodeOne takes the general path, which alone judges errors.

// Field indexes of the string fields in fastSpans.str.
const (
	fEventType = iota
	fUserID
	fSessionID
	fTimestamp
	fEventID
	nStrFields
)

type span struct{ start, end int }

// fastSpans locates the fields of one event in its body.
type fastSpans struct {
	str               [nStrFields]span // start < 0: absent or null
	metadata, payload span             // the raw value; start < 0: absent
	priority          span
}

// maxFastDepth bounds the nesting of metadata and payload on the fast path (encoding/json
// allows 10,000; deeper bodies take the general path).
const maxFastDepth = 100

// decodeOneFast decodes body into ev as DecodeOne would and reports true, or reports false
// when the body is not one it handles.
func decodeOneFast(body []byte, now time.Time, ev *Event) (handled bool, err error) {
	var sp fastSpans
	if !scanEvent(body, &sp) {
		return false, nil
	}
	// One string for the string fields but eventId, one array for both raw objects: none
	// aliases body. The eventId has its own: the dedup window keeps it long after the
	// request, and should not keep the other fields with it.
	var strBuf [256]byte
	all := strBuf[:0]
	for i, s := range sp.str {
		if s.start >= 0 && i != fEventID {
			all = append(all, body[s.start:s.end]...)
		}
	}
	joined := string(all)
	var vals [nStrFields]string
	var w wireEvent
	off := 0
	for i, s := range sp.str {
		if s.start < 0 || i == fEventID {
			continue
		}
		n := s.end - s.start
		vals[i] = joined[off : off+n]
		off += n
	}
	if s := sp.str[fEventID]; s.start >= 0 {
		vals[fEventID] = string(body[s.start:s.end])
	}
	ptr := func(i int) *string {
		if sp.str[i].start < 0 {
			return nil
		}
		return &vals[i]
	}
	w.EventType, w.UserID, w.SessionID, w.Timestamp, w.EventID =
		ptr(fEventType), ptr(fUserID), ptr(fSessionID), ptr(fTimestamp), ptr(fEventID)
	var md, pl []byte
	if sp.metadata.start >= 0 {
		md = body[sp.metadata.start:sp.metadata.end]
	}
	if sp.payload.start >= 0 {
		pl = body[sp.payload.start:sp.payload.end]
	}
	if len(md)+len(pl) > 0 {
		raw := make([]byte, len(md)+len(pl))
		copy(raw, md)
		copy(raw[len(md):], pl)
		if md != nil {
			w.Metadata = raw[:len(md):len(md)]
		}
		if pl != nil {
			w.Payload = raw[len(md):]
		}
	}
	if sp.priority.start >= 0 {
		w.Priority = body[sp.priority.start:sp.priority.end] // read by validate only
	}
	var fields []FieldError
	if !w.validate("", now, ev, &fields) {
		*ev = Event{}
		return true, &ValidationError{Fields: fields}
	}
	return true, nil
}

// scanEvent checks that body is one JSON object of the fast path's shape and records
// where its fields are.
func scanEvent(b []byte, sp *fastSpans) bool {
	for i := range sp.str {
		sp.str[i].start = -1
	}
	sp.metadata.start, sp.payload.start, sp.priority.start = -1, -1, -1
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	var seen [8]bool
	for {
		// A key: a plain string naming one of the contract's fields.
		ks, ke, ok := plainString(b, i)
		if !ok {
			return false
		}
		k := fieldOf(b[ks:ke])
		if k < 0 || seen[k] {
			return false
		}
		seen[k] = true
		i = skipWS(b, ke+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return false
		}
		switch {
		case k < nStrFields:
			if b[i] == 'n' {
				if !hasLiteral(b, i, "null") {
					return false
				}
				i += 4
				break
			}
			vs, ve, ok := plainString(b, i)
			if !ok || !utf8.Valid(b[vs:ve]) {
				return false
			}
			sp.str[k] = span{vs, ve}
			i = ve + 1
		default:
			end, ok := skipValue(b, i, 0)
			if !ok {
				return false
			}
			switch k {
			case kMetadata:
				sp.metadata = span{i, end}
			case kPayload:
				sp.payload = span{i, end}
			case kPriority:
				sp.priority = span{i, end}
			}
			i = end
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return skipWS(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
}

// Keys beyond the string fields.
const (
	kMetadata = nStrFields + iota
	kPayload
	kPriority
)

// fieldOf returns the index of the field named exactly key, or -1.
func fieldOf(key []byte) int {
	switch string(key) {
	case "eventType":
		return fEventType
	case "userId":
		return fUserID
	case "sessionId":
		return fSessionID
	case "timestamp":
		return fTimestamp
	case "eventId":
		return fEventID
	case "metadata":
		return kMetadata
	case "payload":
		return kPayload
	case "priority":
		return kPriority
	}
	return -1
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// plainString reads a string at b[i] without escapes or control characters and returns the
// bounds of its contents (b[end] is the closing quote).
func plainString(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i + 1, j, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// skipValue checks the JSON value at b[i] as encoding/json's scanner does (strings may hold
// any bytes from 0x20 up, valid UTF-8 or not) and returns the index after it.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		if depth >= maxFastDepth {
			return 0, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			end, ok := skipString(b, i)
			if !ok {
				return 0, false
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = skipValue(b, skipWS(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	case c == '[':
		if depth >= maxFastDepth {
			return 0, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	case c == '"':
		return skipString(b, i)
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't':
		return i + 4, hasLiteral(b, i, "true")
	case c == 'f':
		return i + 5, hasLiteral(b, i, "false")
	case c == 'n':
		return i + 4, hasLiteral(b, i, "null")
	}
	return 0, false
}

// skipString checks the string at b[i], escapes included, and returns the index after it.
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i <= 4 {
					return 0, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, false
					}
				}
				i += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

// skipNumber checks the number at b[i] against JSON's grammar and returns the index after it.
func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
