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
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/jsonobj"
	"github.com/evp-dev/evp/internal/sdkevent"
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
// naming every bad field ("batch[2].event") otherwise. encoding/json checks the body once;
// the messages are then read with jsonobj, without decoding them again.
func Decode(body []byte, call string, received time.Time) (Request, error) {
	if err := sdkevent.CheckBody(body); err != nil {
		return Request{}, err
	}
	top := jsonobj.Members(body)
	if top == nil {
		return Request{}, sdkevent.Invalid("body", "must be a JSON object")
	}
	var req Request
	var fields []event.FieldError
	if call != "batch" {
		ev, ok := toEvent(message{raw: body, members: top}, call, "", nil, received, &fields)
		if !ok {
			return req, &event.ValidationError{Fields: fields}
		}
		req.Events = []event.Event{ev}
		req.WriteKey, _ = jsonobj.String(jsonobj.Get(top, "writeKey"))
		return req, nil
	}
	msgs := jsonobj.Elements(jsonobj.Get(top, "batch"))
	if len(msgs) == 0 {
		return req, sdkevent.Invalid("batch", "must be a non-empty array of messages")
	}
	if len(msgs) > MaxBatch {
		return req, sdkevent.Invalid("batch", fmt.Sprintf("must hold at most %d messages, got %d", MaxBatch, len(msgs)))
	}
	sentAt := jsonobj.Get(top, "sentAt")
	req.Events = make([]event.Event, 0, len(msgs))
	var members []jsonobj.Member // reused: a message's members serve only while it is read
	for i, raw := range msgs {
		path := "batch[" + strconv.Itoa(i) + "]"
		if len(raw) > MaxMessageBytes {
			fields = append(fields, event.FieldError{Path: path, Reason: fmt.Sprintf("must be at most %d bytes, got %d", MaxMessageBytes, len(raw))})
			continue
		}
		if raw[0] != '{' {
			fields = append(fields, event.FieldError{Path: path, Reason: "must be a JSON object"})
			continue
		}
		members = jsonobj.AppendMembers(members[:0], raw)
		msg := message{raw: raw, members: members}
		if ev, ok := toEvent(msg, "", path+".", sentAt, received, &fields); ok {
			req.Events = append(req.Events, ev)
		}
		if req.WriteKey == "" {
			req.WriteKey, _ = jsonobj.String(msg.get("writeKey"))
		}
	}
	if len(fields) > 0 {
		return Request{}, &event.ValidationError{Fields: fields}
	}
	if k, _ := jsonobj.String(jsonobj.Get(top, "writeKey")); k != "" {
		req.WriteKey = k
	}
	return req, nil
}

// message is one message as sent and its members.
type message struct {
	raw     []byte
	members []jsonobj.Member
}

// get returns the value of the member named key, or nil (the last one when repeated, as
// encoding/json reads it).
func (m message) get(key string) []byte { return jsonobj.Get(m.members, key) }

// toEvent maps one message. call is the type the route implies ("" in a batch: the
// message's own type). prefix names the message in errors ("batch[2]." or "").
func toEvent(msg message, call, prefix string, batchSentAt []byte, received time.Time, fields *[]event.FieldError) (event.Event, bool) {
	n := len(*fields)
	bad := func(field, reason string) {
		*fields = append(*fields, event.FieldError{Path: prefix + field, Reason: reason})
	}
	typ, _ := jsonobj.String(msg.get("type"))
	switch {
	case call == "" && typ == "":
		bad("type", "is required: one of track, identify, page, screen, group, alias")
	case call == "" && !slices.Contains(Calls, typ):
		bad("type", "must be one of track, identify, page, screen, group, alias")
	case call != "":
		typ = call
	}
	ev := event.Event{EventType: typ, Priority: event.DefaultPriority, ReceivedAt: received}
	if typ == "track" {
		name, ok := jsonobj.Text(msg.get("event"))
		switch {
		case !ok || name == "":
			bad("event", "is required for a track call: the event's name")
		case utf8.RuneCountInString(name) > event.MaxEventTypeLen:
			bad("event", fmt.Sprintf("must be at most %d characters", event.MaxEventTypeLen))
		default:
			ev.EventType = name
		}
	}
	user, userOK := jsonobj.ID(msg.get("userId"))
	anon, anonOK := jsonobj.ID(msg.get("anonymousId"))
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
	} else if sdkevent.TooLong(ev.UserID) {
		bad("userId", fmt.Sprintf("must be at most %d characters", event.MaxIDLen))
	}
	if mid, ok := jsonobj.Text(msg.get("messageId")); !ok {
		bad("messageId", "must be a string")
	} else if sdkevent.TooLong(mid) {
		bad("messageId", fmt.Sprintf("must be at most %d characters", event.MaxIDLen))
	} else if mid != "" {
		ev.EventID = mid
	}
	field, ts := "timestamp", msg.get("timestamp")
	if jsonobj.IsNull(ts) {
		field, ts = "originalTimestamp", msg.get("originalTimestamp")
	}
	sent := msg.get("sentAt")
	if jsonobj.IsNull(sent) {
		sent = batchSentAt
	}
	t, badSent, reason := sdkevent.EventTime(ts, sent, received)
	if badSent {
		field = "sentAt"
	}
	if reason != "" {
		bad(field, reason)
	}
	ev.Timestamp = t
	dataKey := "properties"
	if typ == "identify" || typ == "group" {
		dataKey = "traits"
	}
	if raw := msg.get(dataKey); !jsonobj.IsNull(raw) {
		if raw[0] != '{' {
			bad(dataKey, "must be a JSON object")
		} else {
			ev.Payload = bytes.Clone(raw) // the event outlives the request's body buffer
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

// sessionID is context.sessionId, else the device (anonymousId, else userId) and the UTC
// day of t, cut to event.MaxIDLen characters.
func sessionID(msg message, anon, user string, t time.Time) string {
	if ctx := msg.get("context"); len(ctx) > 0 && ctx[0] == '{' {
		if s, ok := jsonobj.ID(jsonobj.Find(ctx, "sessionId")); ok && s != "" && !sdkevent.TooLong(s) {
			return s
		}
	}
	device := anon
	if device == "" {
		device = user
	}
	return sdkevent.DaySession(device, t)
}

// metadata is the message as sent without its payload field and its write key, with its
// type when the path gave it.
func metadata(msg message, typ, dataKey string) []byte {
	out := jsonobj.Without(msg.raw, msg.members, func(k []byte) bool { return string(k) == dataKey || string(k) == "writeKey" })
	if msg.get("type") != nil {
		return out
	}
	rest := bytes.TrimSpace(out)
	b := make([]byte, 0, len(rest)+len(typ)+12)
	b = append(b, `{"type":`...)
	b = strconv.AppendQuote(b, typ)
	if inner := bytes.TrimSpace(rest[1 : len(rest)-1]); len(inner) > 0 {
		b = append(b, ',')
		b = append(b, inner...)
	}
	return append(b, '}')
}
