package event

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Unmarshal decodes an event written by Marshal, exactly as encoding/json.Unmarshal would.
// What appendJSON writes (strings without escapes, metadata and payload objects) is read by
// hand in one pass; anything else is left to encoding/json.
func Unmarshal(data []byte, e *Event) error {
	if unmarshalFast(data, e) {
		return nil
	}
	return json.Unmarshal(data, e)
}

// bufferStrings are the keys of Event's string fields, with what precedes each in
// appendJSON's output.
var bufferStrings = [...]string{`{"eventId":`, `,"eventType":`, `,"userId":`, `,"sessionId":`}

// unmarshalFast decodes data into e, as encoding/json would, when data has exactly the shape
// appendJSON writes: the keys in Event's order without whitespace, strings without escapes
// and of valid UTF-8, metadata and payload (each optional) objects, and an integer priority.
// It reports false, having changed nothing, for anything else. The eventId gets its own
// string, the other strings share one, metadata and payload one array: nothing aliases data.
func unmarshalFast(data []byte, e *Event) bool {
	var str [len(bufferStrings)]span
	i := 0
	for k, key := range bufferStrings {
		if !hasLiteral(data, i, key) {
			return false
		}
		s, end, ok := plainString(data, i+len(key))
		if !ok {
			return false
		}
		str[k], i = span{s, end}, end+1
	}
	ts, i, ok := bufferTime(data, i, `,"timestamp":`)
	if !ok {
		return false
	}
	meta, i, ok := bufferObject(data, i, `,"metadata":`)
	if !ok {
		return false
	}
	pay, i, ok := bufferObject(data, i, `,"payload":`)
	if !ok || !hasLiteral(data, i, `,"priority":`) {
		return false
	}
	i += len(`,"priority":`)
	end, ok := skipNumber(data, i)
	if !ok {
		return false
	}
	priority, err := strconv.Atoi(string(data[i:end]))
	if err != nil {
		return false
	}
	received, i, ok := bufferTime(data, end, `,"receivedAt":`)
	if !ok {
		return false
	}
	source := ""
	if hasLiteral(data, i, `,"source":`) {
		s, end, ok := plainString(data, i+len(`,"source":`))
		if !ok {
			return false
		}
		source, i = knownSource(data[s:end]), end+1
	}
	if i != len(data)-1 || data[i] != '}' {
		return false
	}

	var sb strings.Builder
	sb.Grow(str[1].end - str[1].start + str[2].end - str[2].start + str[3].end - str[3].start)
	for _, s := range str[1:] {
		sb.Write(data[s.start:s.end])
	}
	joined := sb.String()
	field := func(k int) string {
		n := str[k].end - str[k].start
		s := joined[:n]
		joined = joined[n:]
		return s
	}
	e.EventID = string(data[str[0].start:str[0].end])
	e.EventType, e.UserID, e.SessionID = field(1), field(2), field(3)
	e.Timestamp, e.Priority, e.ReceivedAt, e.Source = ts, priority, received, source
	if meta.start >= 0 || pay.start >= 0 {
		raw := make([]byte, 0, max(meta.end-meta.start, 0)+max(pay.end-pay.start, 0))
		for _, r := range [...]struct {
			s   span
			dst *json.RawMessage
		}{{meta, &e.Metadata}, {pay, &e.Payload}} {
			if r.s.start >= 0 {
				n := len(raw)
				raw = append(raw, data[r.s.start:r.s.end]...)
				*r.dst = raw[n:len(raw):len(raw)]
			}
		}
	}
	return true
}

// bufferTime reads key and the time string after it at data[i:], as encoding/json reads a
// time.Time, and returns the index after it.
func bufferTime(data []byte, i int, key string) (time.Time, int, bool) {
	if !hasLiteral(data, i, key) {
		return time.Time{}, 0, false
	}
	i += len(key)
	s, end, ok := plainString(data, i)
	if !ok {
		return time.Time{}, 0, false
	}
	var t time.Time
	if t.UnmarshalJSON(data[s-1:end+1]) != nil {
		return time.Time{}, 0, false
	}
	return t, end + 1, true
}

// bufferObject reads key and the object after it at data[i:], when data[i:] starts with key,
// and returns its span (start < 0 when key is absent) and the index after it.
func bufferObject(data []byte, i int, key string) (span, int, bool) {
	if !hasLiteral(data, i, key) {
		return span{-1, -1}, i, true
	}
	i += len(key)
	if i >= len(data) || data[i] != '{' {
		return span{}, 0, false
	}
	end, ok := skipValue(data, i, MaxDepth)
	if !ok {
		return span{}, 0, false
	}
	return span{i, end}, end, true
}

// knownSource returns s as a string, without allocating for the Source constants.
func knownSource(s []byte) string {
	for _, k := range [...]string{SourceAPI, SourceSegment, SourcePostHog, SourceImport} {
		if string(s) == k {
			return k
		}
	}
	return string(s)
}
