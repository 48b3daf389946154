// Package posthog reads PostHog's capture API (what posthog-node and the other server
// libraries send to /batch/ and /capture/, and posthog-js to /e/) into evp events, losing
// nothing an event carries but the project key.
//
// A request body is one event ({"event": ..., "distinct_id": ..., "properties": {...}}), a
// batch ({"batch": [events], "sent_at": ...}), or a JSON array of events. Each event becomes
// one evp event:
//
//   - eventId: uuid (a library's retry carries the same one, so it is stored once); a new id
//     when the event has none.
//   - eventType: event, as sent ("$pageview", "signed up").
//   - userId: distinct_id, else properties.distinct_id.
//   - sessionId: properties.$session_id when set; otherwise one session per user and UTC
//     day: distinct_id, "/", the event's date.
//   - timestamp: timestamp corrected for the client's clock with sent_at (the event's or the
//     request's), as PostHog does, received - (sent_at - timestamp); received - offset when
//     the event gives offset (milliseconds ago) instead; the time evp received it otherwise.
//   - payload: properties, whole but token (the key).
//   - metadata: every other member of the event as sent ($set, type, library, ...) but
//     api_key and token.
package posthog

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/jsonobj"
	"github.com/evp-dev/evp/internal/sdkevent"
)

// Limits: PostHog refuses an event over 1 MB; evp bounds a batch's events too.
const (
	MaxEventBytes = 1 << 20
	MaxBatch      = 2500
)

// Request is a decoded request: its events and the project key (api_key or token) its body
// carries, if any.
type Request struct {
	Events []event.Event
	Key    string
}

// Decode reads body: one event, {"batch": [...]}, or an array of events. It returns an
// *event.SyntaxError for a body that is not JSON and an *event.ValidationError naming every
// bad field ("batch[2].event") otherwise.
func Decode(body []byte, received time.Time) (Request, error) {
	if err := sdkevent.CheckBody(body); err != nil {
		return Request{}, err
	}
	var req Request
	var raws [][]byte
	var sentAt []byte
	name := func(i int) string { return "batch[" + strconv.Itoa(i) + "]" } // an event in errors
	switch first := bytes.TrimLeft(body, " \t\r\n"); {
	case len(first) > 0 && first[0] == '[':
		raws = jsonobj.Elements(body)
		name = func(i int) string { return "[" + strconv.Itoa(i) + "]" }
	case len(first) > 0 && first[0] == '{':
		top := jsonobj.Members(body)
		req.Key = key(top)
		sentAt = jsonobj.Get(top, "sent_at")
		if b := jsonobj.Get(top, "batch"); b != nil {
			if raws = jsonobj.Elements(b); raws == nil {
				return req, sdkevent.Invalid("batch", "must be an array of events")
			}
		} else {
			raws = [][]byte{body}
			name = func(int) string { return "" }
		}
	default:
		return req, sdkevent.Invalid("body", `must be an event, {"batch": [events]} or an array of events`)
	}
	if len(raws) == 0 {
		return req, sdkevent.Invalid("batch", "must hold at least one event")
	}
	if len(raws) > MaxBatch {
		return req, sdkevent.Invalid("batch", fmt.Sprintf("must hold at most %d events, got %d", MaxBatch, len(raws)))
	}
	var fields []event.FieldError
	var members []jsonobj.Member             // reused: an event's members serve only while it is read
	out := jsonobj.NewBuffer(len(body) + 64) // the events' payloads and metadata
	req.Events = make([]event.Event, 0, len(raws))
	for i, raw := range raws {
		whole, prefix := name(i), name(i)+"."
		if whole == "" {
			whole, prefix = "body", ""
		}
		if len(raw) > MaxEventBytes {
			fields = append(fields, event.FieldError{Path: whole, Reason: fmt.Sprintf("must be at most %d bytes, got %d", MaxEventBytes, len(raw))})
			continue
		}
		if raw[0] != '{' {
			fields = append(fields, event.FieldError{Path: whole, Reason: "must be a JSON object"})
			continue
		}
		members = jsonobj.AppendMembers(members[:0], raw)
		if ev, ok := toEvent(raw, members, prefix, sentAt, received, out, &fields); ok {
			req.Events = append(req.Events, ev)
		}
		if req.Key == "" {
			req.Key = key(members)
			if req.Key == "" {
				req.Key, _ = jsonobj.String(jsonobj.Find(jsonobj.Get(members, "properties"), "token"))
			}
		}
	}
	if len(fields) > 0 {
		return Request{}, &event.ValidationError{Fields: fields}
	}
	return req, nil
}

// toEvent maps one event; prefix names it in errors ("batch[2]." or ""). Its payload and
// metadata are copied into out.
func toEvent(raw []byte, ms []jsonobj.Member, prefix string, requestSentAt []byte, received time.Time, out *jsonobj.Buffer, fields *[]event.FieldError) (event.Event, bool) {
	n := len(*fields)
	bad := func(field, reason string) {
		*fields = append(*fields, event.FieldError{Path: prefix + field, Reason: reason})
	}
	ev := event.Event{Priority: event.DefaultPriority, ReceivedAt: received, Source: event.SourcePostHog}
	props := jsonobj.Get(ms, "properties")
	if !jsonobj.IsNull(props) && props[0] != '{' {
		bad("properties", "must be a JSON object")
		props = nil
	}
	name, ok := jsonobj.Text(jsonobj.Get(ms, "event"))
	switch {
	case !ok || name == "":
		bad("event", "is required: the event's name")
	case utf8.RuneCountInString(name) > event.MaxEventTypeLen:
		bad("event", fmt.Sprintf("must be at most %d characters", event.MaxEventTypeLen))
	default:
		ev.EventType = name
	}
	user, ok := jsonobj.ID(jsonobj.Get(ms, "distinct_id"))
	if ok && user == "" && props != nil {
		user, ok = jsonobj.ID(jsonobj.Find(props, "distinct_id"))
	}
	switch {
	case !ok:
		bad("distinct_id", "must be a string or a number")
	case user == "":
		bad("distinct_id", "is required")
	case sdkevent.TooLong(user):
		bad("distinct_id", fmt.Sprintf("must be at most %d characters", event.MaxIDLen))
	default:
		ev.UserID = user
	}
	if uuid, ok := jsonobj.Text(jsonobj.Get(ms, "uuid")); !ok {
		bad("uuid", "must be a string")
	} else if sdkevent.TooLong(uuid) {
		bad("uuid", fmt.Sprintf("must be at most %d characters", event.MaxIDLen))
	} else if uuid != "" {
		ev.EventID = uuid
	}
	if ts, field, reason := eventTime(ms, requestSentAt, received); reason != "" {
		bad(field, reason)
	} else {
		ev.Timestamp = ts
	}
	if len(*fields) > n {
		return event.Event{}, false
	}
	ev.SessionID = sdkevent.DaySession(ev.UserID, ev.Timestamp)
	if props != nil {
		if s, ok := jsonobj.ID(jsonobj.Find(props, "$session_id")); ok && s != "" && !sdkevent.TooLong(s) {
			ev.SessionID = s
		}
		ev.Payload = out.Without(props, jsonobj.Members(props), "", func(k []byte) bool { return string(k) == "token" })
	}
	if ev.EventID == "" {
		ev.EventID = event.NewID()
	}
	ev.Metadata = out.Without(raw, ms, "", func(k []byte) bool {
		return string(k) == "properties" || string(k) == "api_key" || string(k) == "token"
	})
	return ev, true
}

// eventTime is the event's time: its timestamp corrected with sent_at (the event's, else
// the request's), or received less its offset in milliseconds, or received; or the field at
// fault and why.
func eventTime(ms []jsonobj.Member, requestSentAt []byte, received time.Time) (t time.Time, field, reason string) {
	ts, off := jsonobj.Get(ms, "timestamp"), jsonobj.Get(ms, "offset")
	if jsonobj.IsNull(ts) && !jsonobj.IsNull(off) {
		ms, err := strconv.ParseInt(string(off), 10, 64)
		if err != nil || ms < 0 {
			return time.Time{}, "offset", "must be a whole number of milliseconds, 0 or more"
		}
		if t = received.Add(-time.Duration(ms) * time.Millisecond); !event.TimeInRange(t) {
			return time.Time{}, "offset", event.TimeRangeReason
		}
		return t, "", ""
	}
	sent := jsonobj.Get(ms, "sent_at")
	if jsonobj.IsNull(sent) {
		sent = requestSentAt
	}
	t, badSent, reason := sdkevent.EventTime(ts, sent, received)
	if badSent {
		return t, "sent_at", reason
	}
	return t, "timestamp", reason
}

// key is the project key a member list carries: api_key, else token.
func key(ms []jsonobj.Member) string {
	if k, _ := jsonobj.String(jsonobj.Get(ms, "api_key")); k != "" {
		return k
	}
	k, _ := jsonobj.String(jsonobj.Get(ms, "token"))
	return k
}
