package event

import (
	"encoding/json"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The fast path. decodeOneFast and decodeBatchFast read bodies of the common shape (event
// objects whose keys are exactly the contract's names, each at most once, and whose string
// fields hold no escapes) in one pass over the bytes, without reflection, and validate them
// with the same wireEvent.validate as the general path. Anything else (another key or a key
// in another case, an escape, a wrong type, malformed JSON, an empty or oversized batch,
// text that is not valid UTF-8, nesting deeper than MaxDepth) makes them give up before
// deciding anything, and DecodeOne or DecodeBatch takes the general path, which alone
// judges such bodies.

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

// decodeOneFast decodes body into ev as DecodeOne would and reports true, or reports false
// when the body is not one it handles.
func decodeOneFast(body []byte, now time.Time, ev *Event) (handled bool, err error) {
	var sp [1]fastSpans
	i, ok := scanObject(body, skipWS(body, 0), &sp[0])
	if !ok || skipWS(body, i) != len(body) {
		return false, nil
	}
	var w wireEvent
	var vals [nStrFields]string
	c := newCopier(body, sp[:])
	c.wire(&sp[0], &w, &vals)
	var fields []FieldError
	if !w.validate("", now, ev, &fields) {
		*ev = Event{}
		return true, &ValidationError{Fields: fields}
	}
	return true, nil
}

var spansPool = sync.Pool{New: func() any { s := make([]fastSpans, 0, 128); return &s }}

// decodeBatchFast decodes body as DecodeBatch would and reports true, or reports false
// when the body is not one it handles: {"events":[...]} with 1 to MaxBatch events, each
// of decodeOneFast's shape.
func decodeBatchFast(body []byte, now time.Time) (events []Event, handled bool, err error) {
	pooled := spansPool.Get().(*[]fastSpans)
	defer func() {
		if cap(*pooled) <= MaxBatch {
			spansPool.Put(pooled)
		}
	}()
	sps, ok := scanBatch(body, (*pooled)[:0])
	*pooled = sps[:0]
	if !ok {
		return nil, false, nil
	}
	c := newCopier(body, sps)
	var w wireEvent
	var vals [nStrFields]string // reused: validate copies the strings into the events
	events = make([]Event, len(sps))
	var fields []FieldError
	var pathBuf []byte
	for i := range sps {
		c.wire(&sps[i], &w, &vals)
		pathBuf = appendIndexPath(pathBuf[:0], i)
		w.validate(string(pathBuf), now, &events[i], &fields)
	}
	if len(fields) > 0 {
		return nil, true, &ValidationError{Fields: fields}
	}
	return events, true, nil
}

// scanBatch locates the events of a body {"events":[...]} of 1 to MaxBatch events in the
// fast path's shape, appending them to sps.
func scanBatch(body []byte, sps []fastSpans) ([]fastSpans, bool) {
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return sps, false
	}
	ks, ke, ok := plainString(body, skipWS(body, i+1))
	if !ok || string(body[ks:ke]) != "events" {
		return sps, false
	}
	i = skipWS(body, ke+1)
	if i >= len(body) || body[i] != ':' {
		return sps, false
	}
	i = skipWS(body, i+1)
	if i >= len(body) || body[i] != '[' {
		return sps, false
	}
	for i = skipWS(body, i+1); ; i = skipWS(body, i+1) {
		if len(sps) == MaxBatch {
			return sps, false
		}
		sps = append(sps, fastSpans{})
		if i, ok = scanObject(body, i, &sps[len(sps)-1]); !ok {
			return sps, false
		}
		if i = skipWS(body, i); i >= len(body) || body[i] != ',' {
			break
		}
	}
	if i >= len(body) || body[i] != ']' {
		return sps, false
	}
	i = skipWS(body, i+1)
	return sps, i < len(body) && body[i] == '}' && skipWS(body, i+1) == len(body)
}

// copier copies the located fields out of body, so that nothing decoded aliases it but
// the priorities, which validate only reads. The strings but eventIds go into one string,
// each eventId into its own (the dedup window keeps eventIds long after the request, and
// should not keep the other fields with them), metadata and payload into one array.
type copier struct {
	body   []byte
	joined string
	off    int
	raw    []byte
}

func newCopier(body []byte, sps []fastSpans) copier {
	strLen, rawLen := 0, 0
	for k := range sps {
		sp := &sps[k]
		for i, s := range sp.str {
			if s.start >= 0 && i != fEventID {
				strLen += s.end - s.start
			}
		}
		for _, s := range [...]span{sp.metadata, sp.payload} {
			if s.start >= 0 {
				rawLen += s.end - s.start
			}
		}
	}
	var sb strings.Builder
	sb.Grow(strLen)
	for k := range sps {
		for i, s := range sps[k].str {
			if s.start >= 0 && i != fEventID {
				sb.Write(body[s.start:s.end])
			}
		}
	}
	c := copier{body: body, joined: sb.String()}
	if rawLen > 0 {
		c.raw = make([]byte, 0, rawLen)
	}
	return c
}

// wire fills w with the next event's fields, sp, its strings held in vals. Events must
// be wired in the order they were given to newCopier.
func (c *copier) wire(sp *fastSpans, w *wireEvent, vals *[nStrFields]string) {
	var ptrs [nStrFields]*string
	for i, s := range sp.str {
		switch {
		case s.start < 0:
			continue
		case i == fEventID:
			vals[i] = string(c.body[s.start:s.end])
		default:
			n := s.end - s.start
			vals[i] = c.joined[c.off : c.off+n]
			c.off += n
		}
		ptrs[i] = &vals[i]
	}
	w.EventType, w.UserID, w.SessionID, w.Timestamp, w.EventID =
		ptrs[fEventType], ptrs[fUserID], ptrs[fSessionID], ptrs[fTimestamp], ptrs[fEventID]
	w.Metadata, w.Payload = c.copyRaw(sp.metadata), c.copyRaw(sp.payload)
	w.Priority = nil
	if sp.priority.start >= 0 {
		w.Priority = c.body[sp.priority.start:sp.priority.end] // read by validate only
	}
}

func (c *copier) copyRaw(s span) json.RawMessage {
	if s.start < 0 {
		return nil
	}
	n := len(c.raw)
	c.raw = append(c.raw, c.body[s.start:s.end]...)
	return c.raw[n:len(c.raw):len(c.raw)]
}

// scanObject checks that b[i:] starts with one JSON object of the fast path's shape,
// records where its fields are and returns the index after it.
func scanObject(b []byte, i int, sp *fastSpans) (int, bool) {
	for k := range sp.str {
		sp.str[k].start = -1
	}
	sp.metadata.start, sp.payload.start, sp.priority.start = -1, -1, -1
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	var seen [8]bool
	for {
		// A key: a plain string naming one of the contract's fields.
		ks, ke, ok := plainString(b, i)
		if !ok {
			return 0, false
		}
		k := fieldOf(b[ks:ke])
		if k < 0 || seen[k] {
			return 0, false
		}
		seen[k] = true
		i = skipWS(b, ke+1)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return 0, false
		}
		switch {
		case k < nStrFields:
			if b[i] == 'n' {
				if !hasLiteral(b, i, "null") {
					return 0, false
				}
				i += 4
				break
			}
			vs, ve, ok := plainString(b, i)
			if !ok {
				return 0, false
			}
			sp.str[k] = span{vs, ve}
			i = ve + 1
		default:
			end, ok := skipValue(b, i, MaxDepth)
			if !ok {
				return 0, false
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

// plainString reads a string at b[i] without escapes or control characters, holding valid
// UTF-8, and returns the bounds of its contents (b[end] is the closing quote).
func plainString(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); {
		for j < len(b) && plainByte[b[j]] {
			j++
		}
		if j >= len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			return i + 1, j, true
		case c < utf8.RuneSelf: // '\\' or a control character
			return 0, 0, false
		}
		r, size := utf8.DecodeRune(b[j:])
		if r == utf8.RuneError && size == 1 {
			return 0, 0, false
		}
		j += size
	}
	return 0, 0, false
}

// skipValue checks the JSON value at b[i] as encoding/json's scanner does and returns the
// index after it. It refuses what the general path refuses as well-formed: text that is not
// valid UTF-8, and objects and arrays nested more than room levels deep (the value at b[i]
// being the first level).
func skipValue(b []byte, i, room int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		if room <= 0 {
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
			if i, ok = skipValue(b, skipWS(b, i+1), room-1); !ok {
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
		if room <= 0 {
			return 0, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(b, i, room-1); !ok {
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
// It refuses text that is not valid UTF-8, as the general path does.
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	end, text, ok := stringEnd(b, i)
	return end, ok && text
}

// skipNumber checks the number at b[i] against JSON's grammar and returns the index after
// it; i may be len(b) (no number).
func skipNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
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
