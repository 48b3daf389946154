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
	out := jsonobj.NewBuffer(len(body) + 64) // the events' payloads and metadata
	if call != "batch" {
		ev, ok := toEvent(message{raw: body, members: top}, call, -1, nil, received, out, &fields)
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
		if len(raw) > MaxMessageBytes {
			fields = append(fields, event.FieldError{Path: messagePath(i), Reason: fmt.Sprintf("must be at most %d bytes, got %d", MaxMessageBytes, len(raw))})
			continue
		}
		if raw[0] != '{' {
			fields = append(fields, event.FieldError{Path: messagePath(i), Reason: "must be a JSON object"})
			continue
		}
		members = jsonobj.AppendMembers(members[:0], raw)
		msg := message{raw: raw, members: members}
		if ev, ok := toEvent(msg, "", i, sentAt, received, out, &fields); ok {
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

// messagePath names message i of a batch in errors.
func messagePath(i int) string { return "batch[" + strconv.Itoa(i) + "]" }

// message is one message as sent and its members.
type message struct {
	raw     []byte
	members []jsonobj.Member
}

// get returns the value of the member named key, or nil (the last one when repeated, as
// encoding/json reads it).
func (m message) get(key string) []byte { return jsonobj.Get(m.members, key) }

// toEvent maps one message. call is the type the route implies ("" in a batch: the
// message's own type). index is the message's in a batch (-1: the body is the message),
// which errors name. The event's payload and metadata are copied into out.
func toEvent(msg message, call string, index int, batchSentAt []byte, received time.Time, out *jsonobj.Buffer, fields *[]event.FieldError) (event.Event, bool) {
	n := len(*fields)
	bad := func(field, reason string) {
		if index >= 0 {
			field = messagePath(index) + "." + field
		}
		*fields = append(*fields, event.FieldError{Path: field, Reason: reason})
	}
	typ := callType(msg.get("type"))
	switch {
	case call == "" && typ == "":
		bad("type", "is required: one of track, identify, page, screen, group, alias")
	case call == "" && !slices.Contains(Calls, typ):
		bad("type", "must be one of track, identify, page, screen, group, alias")
	case call != "":
		typ = call
	}
	ev := event.Event{EventType: typ, Priority: event.DefaultPriority, ReceivedAt: received, Source: event.SourceSegment}
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
			ev.Payload = out.Copy(raw) // the event outlives the request's body buffer
		}
	}
	if len(*fields) > n {
		return event.Event{}, false
	}
	ev.SessionID = sessionID(msg, anon, ev.UserID, ev.Timestamp)
	if ev.EventID == "" {
		ev.EventID = event.NewID()
	}
	ev.Metadata = metadata(msg, typ, dataKey, out)
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
// type first when the path gave it, copied into out.
func metadata(msg message, typ, dataKey string, out *jsonobj.Buffer) []byte {
	lead := ""
	if msg.get("type") == nil {
		lead = `"type":` + strconv.Quote(typ)
	}
	return out.Without(msg.raw, msg.members, lead, func(k []byte) bool { return string(k) == dataKey || string(k) == "writeKey" })
}

// callType reads a message's type: one of Calls without a copy, else whatever string it is
// ("" when it is none).
func callType(raw []byte) string {
	if len(raw) >= 2 && raw[0] == '"' {
		for _, c := range Calls {
			if string(raw[1:len(raw)-1]) == c {
				return c
			}
		}
	}
	s, _ := jsonobj.String(raw)
	return s
}
