package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxDepth bounds how deeply a field's value may nest objects and arrays. Levels count from
// the event: the event object is level 0, each field's value (an object or array) level 1,
// and an object or array directly inside one at level n is at level n+1. A body with an
// object or array at level MaxDepth+1 anywhere is refused, whatever the field: metadata,
// payload, another contract field or one the contract ignores. In a batch, each element of
// events is level 0, and so is the body object for its own fields (events when it is not an
// array, and the fields the contract ignores). A body or an element of events that is not an
// object is level 0 too.
const MaxDepth = 64

// MinTime and MaxTime bound the timestamps evp accepts: the whole years that every store
// holds exactly as int64 nanoseconds since 1970 (from 1677-09-21 to 2262-04-11).
var (
	MinTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2261, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
)

// TimeRangeReason is the reason given for an instant outside [MinTime, MaxTime].
const TimeRangeReason = "must be from 1678-01-01T00:00:00Z to 2261-12-31T23:59:59.999999999Z"

// TimeInRange reports whether t lies within [MinTime, MaxTime].
func TimeInRange(t time.Time) bool {
	return !t.Before(MinTime) && !t.After(MaxTime)
}

var (
	depthReason = fmt.Sprintf("must not nest objects and arrays more than %d levels deep", MaxDepth)
	textReason  = `must be valid UTF-8, without invalid bytes or unpaired surrogate escapes such as \ud800`
)

// plainByte marks the bytes a string may hold as they are: printable ASCII but '"' and '\\'.
var plainByte [256]bool

func init() {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		plainByte[c] = c != '"' && c != '\\'
	}
}

// stringEnd checks the JSON string at b[i] (b[i] must be '"') against JSON's grammar, as
// encoding/json's scanner does, and returns the index after it. text is false when the
// string holds invalid UTF-8 or a \u escape of a surrogate that is not one of a pair, both
// of which encoding/json would replace with U+FFFD.
func stringEnd(b []byte, i int) (end int, text, ok bool) {
	text = true
	for i++; i < len(b); {
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, text, true
		case c < 0x20:
			return 0, text, false
		case c == '\\':
			if i+1 >= len(b) {
				return 0, text, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return 0, text, false
				}
				i += 6
				switch {
				case r < 0xd800 || r >= 0xe000:
				case r < 0xdc00 && i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u':
					if lo, ok := hex4(b, i+2); ok && lo >= 0xdc00 && lo < 0xe000 {
						i += 6
					} else {
						text = false // the next escape is checked on its own
					}
				default:
					text = false
				}
			default:
				return 0, text, false
			}
		default: // c >= 0x80
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				text = false
			}
			i += size
		}
	}
	return 0, text, false
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, h := range b[i : i+4] {
		switch {
		case h >= '0' && h <= '9':
			h -= '0'
		case h >= 'a' && h <= 'f':
			h -= 'a' - 10
		case h >= 'A' && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}

// checkLimits walks a whole body, without recursion, and returns one FieldError for each
// field that nests deeper than MaxDepth or holds text that is not valid UTF-8 (the first
// such failure of the field), in body order. batch selects the paths of DecodeBatch
// ("events[3].metadata") over those of DecodeOne ("metadata"). A field the contract does not
// know is named by its event ("body", "events[3]") and its key given in the reason.
// wellFormed is false when body is not well-formed JSON; nesting deeper than encoding/json
// allows is not counted as malformed.
func checkLimits(body []byte, batch bool) (fields []FieldError, wellFormed bool) {
	s := limitScan{b: body, batch: batch, index: -1}
	i := skipWS(body, 0)
	var ok bool
	for {
		// A value starts at i.
		if i >= len(body) {
			return s.fields, false
		}
		switch c := body[i]; c {
		case '{', '[':
			s.open(c == '{')
			i = skipWS(body, i+1)
			if i < len(body) && body[i] == c+2 { // '}' or ']'
				i++
				s.close()
				break
			}
			if c == '{' {
				if i, ok = s.member(i); !ok {
					return s.fields, false
				}
			} else {
				s.element()
			}
			continue
		default:
			if i, ok = s.scalar(i); !ok {
				return s.fields, false
			}
		}
		// After a value: close what ends here, up to the start of the next value.
		for {
			if s.depth == 0 {
				return s.fields, skipWS(body, i) == len(body)
			}
			if i = skipWS(body, i); i >= len(body) {
				return s.fields, false
			}
			obj := s.inObject()
			if body[i] == ',' {
				i = skipWS(body, i+1)
				if !obj {
					s.element()
				} else if i, ok = s.member(i); !ok {
					return s.fields, false
				}
				break
			}
			if obj && body[i] != '}' || !obj && body[i] != ']' {
				return s.fields, false
			}
			i++
			s.close()
		}
	}
}

// limitScan is the state of checkLimits.
type limitScan struct {
	b      []byte
	batch  bool
	fields []FieldError
	seen   map[string]bool // paths with a FieldError

	kinds []uint64 // a bit per open container, set for an object
	depth int      // open containers
	root  int      // the depth of the level-0 value: 2 inside a batch's events, else 0

	inEvents bool   // inside the events array of a batch
	index    int    // the element of events being read; -1 outside events
	field    string // the contract field being read ("events" in a batch body); "" for none
	key      []byte // the raw key of a field the contract does not know
	blamed   bool   // the field being read has its FieldError
}

func (s *limitScan) inObject() bool {
	d := s.depth - 1
	return s.kinds[d/64]&(1<<(d%64)) != 0
}

func (s *limitScan) open(obj bool) {
	if s.depth-s.root > MaxDepth {
		s.blame(depthReason)
	}
	if s.batch && s.depth == 1 && !obj && s.field == "events" {
		s.inEvents, s.index, s.root = true, -1, 2
	}
	d := s.depth
	if d/64 == len(s.kinds) {
		s.kinds = append(s.kinds, 0)
	}
	if obj {
		s.kinds[d/64] |= 1 << (d % 64)
	} else {
		s.kinds[d/64] &^= 1 << (d % 64)
	}
	s.depth++
}

func (s *limitScan) close() {
	s.depth--
	if s.inEvents && s.depth == 1 {
		s.inEvents, s.index, s.root = false, -1, 0
	}
}

// element notes the start of an array element: in a batch's events, a new event.
func (s *limitScan) element() {
	if s.inEvents && s.depth == 2 {
		s.index++
		s.at("", nil)
	}
}

// member reads the key of an object member at b[i] and its colon, and returns the index of
// its value. A key of the event object (or of the batch body) names the field being read.
func (s *limitScan) member(i int) (int, bool) {
	if i >= len(s.b) || s.b[i] != '"' {
		return 0, false
	}
	end, text, ok := stringEnd(s.b, i)
	if !ok {
		return 0, false
	}
	key := s.b[i+1 : end-1]
	switch {
	case s.batch && s.depth == 1:
		if keyIs(key, "events") {
			s.at("events", nil)
		} else {
			s.at("", key)
		}
	case !s.batch && s.depth == 1 || s.inEvents && s.depth == 3:
		s.at(contractField(key), key)
	}
	if !text {
		s.blame(textReason)
	}
	i = skipWS(s.b, end)
	if i >= len(s.b) || s.b[i] != ':' {
		return 0, false
	}
	return skipWS(s.b, i+1), true
}

// at starts reading a field: a contract field, or one the contract does not know (field
// empty, key its raw key), or an event as a whole (both empty).
func (s *limitScan) at(field string, key []byte) {
	s.field, s.key, s.blamed = field, nil, false
	if field == "" {
		s.key = key
	}
}

// scalar checks the string, number or literal at b[i] and returns the index after it.
func (s *limitScan) scalar(i int) (int, bool) {
	switch c := s.b[i]; {
	case c == '"':
		end, text, ok := stringEnd(s.b, i)
		if ok && !text {
			s.blame(textReason)
		}
		return end, ok
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(s.b, i)
	case c == 't':
		return i + 4, hasLiteral(s.b, i, "true")
	case c == 'f':
		return i + 5, hasLiteral(s.b, i, "false")
	case c == 'n':
		return i + 4, hasLiteral(s.b, i, "null")
	}
	return 0, false
}

// blame records reason for the field being read, unless it has a FieldError already.
func (s *limitScan) blame(reason string) {
	if s.blamed {
		return
	}
	s.blamed = true
	path := s.path()
	if s.seen[path] {
		return
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[path] = true
	if s.key != nil {
		reason = fmt.Sprintf("field %.64q %s", keyText(s.key), reason)
	}
	s.fields = append(s.fields, FieldError{Path: path, Reason: reason})
}

// path names the field being read as the decoder's other errors do.
func (s *limitScan) path() string {
	if s.inEvents && s.depth >= 2 && s.index >= 0 {
		p := string(appendIndexPath(nil, s.index))
		if s.field == "" {
			return p[:len(p)-1]
		}
		return p + s.field
	}
	if s.field == "" {
		return "body"
	}
	return s.field
}

// contractField returns the name of the contract field that key names, matched as
// encoding/json matches keys to fields (case-insensitively), or "".
func contractField(key []byte) string {
	for _, name := range [...]string{"eventType", "userId", "sessionId", "timestamp", "metadata", "payload", "priority", "eventId"} {
		if keyIs(key, name) {
			return name
		}
	}
	return ""
}

// keyIs reports whether the raw key (the bytes between its quotes) names name.
func keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		return bytes.EqualFold([]byte(keyText(key)), []byte(name))
	}
	return bytes.EqualFold(key, []byte(name))
}

// keyText decodes a raw key, escapes included.
func keyText(key []byte) string {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key)
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s); err != nil {
		return string(key)
	}
	return s
}

// CheckJSON refuses, before encoding/json reads body, what evp refuses in any JSON it is
// sent: objects and arrays nested more than depth levels deep (the body's own object is
// level 1) and text that is not valid UTF-8. It leaves the grammar to the decoder: a
// malformed body passes. Errors name "body".
func CheckJSON(body []byte, depth int) error {
	d := 0
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			end, text, ok := stringEnd(body, i)
			if !ok {
				return nil
			}
			if !text {
				return &ValidationError{Fields: []FieldError{{Path: "body", Reason: textReason}}}
			}
			i = end - 1
		case '{', '[':
			if d++; d > depth {
				return &ValidationError{Fields: []FieldError{{Path: "body", Reason: fmt.Sprintf("must not nest objects and arrays more than %d levels deep", depth)}}}
			}
		case '}', ']':
			d--
		}
	}
	return nil
}

// Valid reports, in one pass, whether body is one well-formed JSON value of valid UTF-8
// nesting objects and arrays at most depth levels deep (surrounding whitespace allowed):
// what CheckJSON and encoding/json together accept. Callers that must say why a body is
// refused ask those.
func Valid(body []byte, depth int) bool {
	i, ok := skipValue(body, skipWS(body, 0), depth)
	return ok && skipWS(body, i) == len(body)
}
