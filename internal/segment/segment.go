// Package segment reads Segment's HTTP Tracking API (also spoken by RudderStack and Jitsu
// SDKs) into evp events, losing nothing a message carries.
//
// A request is one call (/v1/track, /v1/identify, ...: the body is one message) or a batch
// (/v1/batch: {"batch": [messages], "sentAt": ..., "writeKey": ...}). Each message becomes
// one event:
//
//   - eventId: messageId (an SDK's retry carries the same one, so it is stored once); a new
//     id when the message has none.
//   - eventType: the event name for track ("Order Completed"); the call type otherwise
//     ("identify", "page", "screen", "group", "alias").
//   - userId: userId, else anonymousId.
//   - sessionId: context.sessionId when the message has one; otherwise one session per device
//     and UTC day: anonymousId (else userId), "/", the event's date.
//   - timestamp: the message's timestamp (else originalTimestamp) corrected for the client's
//     clock as Segment does, received - (sentAt - timestamp), when the message or the batch
//     has sentAt; the time evp received it when the message has no time.
//   - payload: properties (track, page, screen) or traits (identify, group), whole.
//   - metadata: every other field of the message as sent (type, context, anonymousId,
//     integrations, name, groupId, previousId, ...), except writeKey, which is a secret.
package segment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/evp-dev/evp/internal/event"
)

// Limits of Segment's API, which its SDKs keep to.
const (
	MaxMessageBytes = 32 << 10  // one message
	MaxBodyBytes    = 500 << 10 // one request
	MaxBatch        = 2500      // messages in a batch (500 KB of the smallest messages)
)

// Calls are the message types and the eventType of each but track.
var Calls = []string{"track", "identify", "page", "screen", "group", "alias"}

// ShortCalls maps the one-letter paths of the browser library (/v1/t, ...) to call types.
var ShortCalls = map[string]string{"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}

// Request is a decoded request: its events and the write key its body carries, if any.
type Request struct {
	Events   []event.Event
	WriteKey string
}

// Decode reads body as one message of type call, or as a batch when call is "batch". It
// returns an *event.SyntaxError for a body that is not JSON and an *event.ValidationError
// naming every bad field ("batch[2].event") otherwise.
func Decode(body []byte, call string, received time.Time) (Request, error) {
	if err := checkText(body); err != nil {
		return Request{}, err
	}
	var req Request
	if call != "batch" {
		msg, err := object(body)
		if err != nil {
			return req, err
		}
		var fields []event.FieldError
		ev, ok := toEvent(msg, call, "", nil, received, &fields)
		if !ok {
			return req, &event.ValidationError{Fields: fields}
		}
		req.Events = []event.Event{ev}
		req.WriteKey = stringField(msg["writeKey"])
		return req, nil
	}
	top, err := object(body)
	if err != nil {
		return req, err
	}
	var msgs []json.RawMessage
	if raw, ok := top["batch"]; !ok || json.Unmarshal(raw, &msgs) != nil || len(msgs) == 0 {
		return req, invalid("batch", "must be a non-empty array of messages")
	}
	if len(msgs) > MaxBatch {
		return req, invalid("batch", fmt.Sprintf("must hold at most %d messages, got %d", MaxBatch, len(msgs)))
	}
	sentAt := top["sentAt"]
	var fields []event.FieldError
	req.Events = make([]event.Event, 0, len(msgs))
	for i, raw := range msgs {
		path := "batch[" + strconv.Itoa(i) + "]"
		if len(raw) > MaxMessageBytes {
			fields = append(fields, event.FieldError{Path: path, Reason: fmt.Sprintf("must be at most %d bytes, got %d", MaxMessageBytes, len(raw))})
			continue
		}
		var msg map[string]json.RawMessage
		if json.Unmarshal(raw, &msg) != nil || msg == nil {
			fields = append(fields, event.FieldError{Path: path, Reason: "must be a JSON object"})
			continue
		}
		if ev, ok := toEvent(msg, "", path+".", sentAt, received, &fields); ok {
			req.Events = append(req.Events, ev)
		}
		if req.WriteKey == "" {
			req.WriteKey = stringField(msg["writeKey"])
		}
	}
	if len(fields) > 0 {
		return Request{}, &event.ValidationError{Fields: fields}
	}
	if k := stringField(top["writeKey"]); k != "" {
		req.WriteKey = k
	}
	return req, nil
}

// toEvent maps one message. call is the type the route implies ("" in a batch: the
// message's own type). prefix names the message in errors ("batch[2]." or "").
func toEvent(msg map[string]json.RawMessage, call, prefix string, batchSentAt json.RawMessage, received time.Time, fields *[]event.FieldError) (event.Event, bool) {
	n := len(*fields)
	bad := func(field, reason string) {
		*fields = append(*fields, event.FieldError{Path: prefix + field, Reason: reason})
	}
	typ := stringField(msg["type"])
	switch {
	case call == "" && typ == "":
		bad("type", "is required: one of track, identify, page, screen, group, alias")
	case call == "" && !isCall(typ):
		bad("type", "must be one of track, identify, page, screen, group, alias")
	case call != "":
		typ = call
	}
	ev := event.Event{EventType: typ, Priority: event.DefaultPriority, ReceivedAt: received}
	if typ == "track" {
		name, ok := text(msg["event"])
		switch {
		case !ok || name == "":
			bad("event", "is required for a track call: the event's name")
		case utf8.RuneCountInString(name) > event.MaxEventTypeLen:
			bad("event", fmt.Sprintf("must be at most %d characters", event.MaxEventTypeLen))
		default:
			ev.EventType = name
		}
	}
	user, userOK := id(msg["userId"])
	anon, anonOK := id(msg["anonymousId"])
	if !userOK {
		bad("userId", "must be a string or a number")
	}
	if !anonOK {
		bad("anonymousId", "must be a string or a number")
	}
	ev.UserID = user
	if ev.UserID == "" {
		ev.UserID = anon
	}
	if userOK && anonOK && ev.UserID == "" {
		bad("userId", "is required, or anonymousId")
	} else if utf8.RuneCountInString(ev.UserID) > event.MaxIDLen {
		bad("userId", fmt.Sprintf("must be at most %d characters", event.MaxIDLen))
	}
	if mid, ok := text(msg["messageId"]); !ok {
		bad("messageId", "must be a string")
	} else if utf8.RuneCountInString(mid) > event.MaxIDLen {
		bad("messageId", fmt.Sprintf("must be at most %d characters", event.MaxIDLen))
	} else if mid != "" {
		ev.EventID = mid
	}
	ts, reason := eventTime(msg, batchSentAt, received)
	if reason != "" {
		bad(reason[:cutField(reason)], reason[cutField(reason)+1:])
	}
	ev.Timestamp = ts
	dataKey := "properties"
	if typ == "identify" || typ == "group" {
		dataKey = "traits"
	}
	if raw := msg[dataKey]; !isNull(raw) {
		if raw[0] != '{' {
			bad(dataKey, "must be a JSON object")
		} else {
			ev.Payload = compact(raw)
		}
	}
	if len(*fields) > n {
		return event.Event{}, false
	}
	ev.SessionID = sessionID(msg, anon, ev.UserID, ev.Timestamp)
	if ev.EventID == "" {
		ev.EventID = event.NewID()
	}
	ev.Metadata = metadata(msg, typ, dataKey)
	return ev, true
}

// eventTime is the message's time corrected for the client's clock, or received. A
// problem comes back as "field reason".
func eventTime(msg map[string]json.RawMessage, batchSentAt json.RawMessage, received time.Time) (time.Time, string) {
	field := "timestamp"
	raw := msg["timestamp"]
	if isNull(raw) {
		field, raw = "originalTimestamp", msg["originalTimestamp"]
	}
	if isNull(raw) {
		return received, ""
	}
	ts, ok := parseTime(raw)
	if !ok {
		return time.Time{}, field + " must be an ISO 8601 date-time such as 2024-01-15T10:30:00.000Z"
	}
	sentField, sentRaw := "sentAt", msg["sentAt"]
	if isNull(sentRaw) {
		sentRaw = batchSentAt
	}
	if !isNull(sentRaw) {
		sent, ok := parseTime(sentRaw)
		if !ok {
			return time.Time{}, sentField + " must be an ISO 8601 date-time such as 2024-01-15T10:30:00.000Z"
		}
		ts = received.Add(-sent.Sub(ts))
	}
	if !event.TimeInRange(ts) {
		return time.Time{}, field + " " + event.TimeRangeReason
	}
	return ts.UTC(), ""
}

func cutField(s string) int { return bytes.IndexByte([]byte(s), ' ') }

// parseTime reads an ISO 8601 date-time as the SDKs write it (JavaScript's toISOString, or
// RFC 3339 with an offset).
func parseTime(raw json.RawMessage) (time.Time, bool) {
	s, ok := text(raw)
	if !ok || s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// sessionID is context.sessionId, else the device (anonymousId, else userId) and the UTC
// day of t, cut to event.MaxIDLen characters.
func sessionID(msg map[string]json.RawMessage, anon, user string, t time.Time) string {
	var ctx struct {
		SessionID json.RawMessage `json:"sessionId"`
	}
	if json.Unmarshal(msg["context"], &ctx) == nil {
		if s, ok := id(ctx.SessionID); ok && s != "" && utf8.RuneCountInString(s) <= event.MaxIDLen {
			return s
		}
	}
	device := anon
	if device == "" {
		device = user
	}
	day := "/" + t.UTC().Format(time.DateOnly)
	if r := []rune(device); len(r)+len(day) > event.MaxIDLen {
		device = string(r[:event.MaxIDLen-len(day)])
	}
	return device + day
}

// metadata is the message without its payload field and its write key, compacted.
func metadata(msg map[string]json.RawMessage, typ, dataKey string) json.RawMessage {
	rest := make(map[string]json.RawMessage, len(msg)+1)
	for k, v := range msg {
		if k != dataKey && k != "writeKey" {
			rest[k] = v
		}
	}
	if _, ok := rest["type"]; !ok {
		rest["type"] = json.RawMessage(strconv.Quote(typ))
	}
	b, _ := json.Marshal(rest) // values are valid JSON: they were decoded
	return b
}

func isCall(s string) bool {
	for _, c := range Calls {
		if s == c {
			return true
		}
	}
	return false
}

// text reads an optional string: ok is false for another JSON type.
func text(raw json.RawMessage) (string, bool) {
	if isNull(raw) {
		return "", true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// id reads an optional id, a string or a number (kept as written).
func id(raw json.RawMessage) (string, bool) {
	if isNull(raw) {
		return "", true
	}
	if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		return string(raw), true
	}
	return text(raw)
}

func stringField(raw json.RawMessage) string {
	s, _ := text(raw)
	return s
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

func object(body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		if se, ok := err.(*json.SyntaxError); ok {
			return nil, &event.SyntaxError{Offset: se.Offset, Msg: se.Error()}
		}
		return nil, invalid("body", "must be a JSON object")
	}
	if m == nil {
		return nil, invalid("body", "must be a JSON object")
	}
	return m, nil
}

func invalid(path, reason string) error {
	return &event.ValidationError{Fields: []event.FieldError{{Path: path, Reason: reason}}}
}

// checkText refuses deep nesting and invalid UTF-8 before encoding/json reads body: the
// properties of a message in a batch may nest event.MaxDepth levels, as an event's may.
func checkText(body []byte) error { return event.CheckJSON(body, event.MaxDepth+3) }
