// Package sdkevent holds the rules that the SDK protocols evp accepts (Segment, PostHog)
// share when they make an evp event of a message: reading its times, correcting them for
// the client's clock, and the session of a message that names none.
package sdkevent

import (
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/jsonobj"
)

// isoReason is the reason given for a time that does not parse.
const isoReason = "must be an ISO 8601 date-time such as 2024-01-15T10:30:00.000Z"

// parseTime reads an ISO 8601 date-time as the SDKs write it (JavaScript's toISOString, or
// RFC 3339 with an offset).
func parseTime(raw []byte) (time.Time, bool) {
	var t time.Time
	if t.UnmarshalJSON(raw) == nil { // strict RFC 3339, read without a copy
		return t, true
	}
	s, ok := jsonobj.String(raw)
	if !ok || s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// corrected is the time of an event stamped ts by a client whose clock said sent when it
// sent the request that evp received at received: received - (sent - ts). Both protocols
// correct so, which makes a client's wrong clock harmless.
func corrected(ts, sent, received time.Time) time.Time {
	return received.Add(-sent.Sub(ts))
}

// EventTime is the time of an event that a client stamped ts by its clock (raw JSON; absent
// or null: unstamped) and sent when its clock said sent (the same): ts corrected by
// corrected when sent is given, ts as it is otherwise, received for an unstamped event.
// A reason comes back when ts or sent (badSent) does not parse, or when the time falls
// outside what evp stores.
func EventTime(ts, sent []byte, received time.Time) (t time.Time, badSent bool, reason string) {
	if jsonobj.IsNull(ts) {
		return received, false, ""
	}
	t, ok := parseTime(ts)
	if !ok {
		return time.Time{}, false, isoReason
	}
	if !jsonobj.IsNull(sent) {
		s, ok := parseTime(sent)
		if !ok {
			return time.Time{}, true, isoReason
		}
		t = corrected(t, s, received)
	}
	if !event.TimeInRange(t) {
		return time.Time{}, false, event.TimeRangeReason
	}
	return t.UTC(), false, ""
}

// Invalid is a validation error of one field.
func Invalid(path, reason string) error {
	return &event.ValidationError{Fields: []event.FieldError{{Path: path, Reason: reason}}}
}

// DaySession is the session of an event whose message names none: one a device (an
// anonymous id, else a user id) and UTC day, "device/2026-12-07", the device cut so that
// the whole fits event.MaxIDLen characters.
func DaySession(device string, t time.Time) string {
	day := "/" + t.UTC().Format(time.DateOnly)
	if utf8.RuneCountInString(device)+len(day) > event.MaxIDLen {
		device = string([]rune(device)[:event.MaxIDLen-len(day)])
	}
	return device + day
}

// TooLong reports whether s has more than event.MaxIDLen characters.
func TooLong(s string) bool {
	return len(s) > event.MaxIDLen && utf8.RuneCountInString(s) > event.MaxIDLen
}

// CheckBody checks a request body before its messages are read with jsonobj: nesting (the
// properties of a message in a batch may nest event.MaxDepth levels, as an event's may),
// UTF-8, then JSON's grammar, in one pass (event.Valid). It returns an *event.SyntaxError
// for a body that is not JSON and an *event.ValidationError naming "body" otherwise.
func CheckBody(body []byte) error {
	const depth = event.MaxDepth + 3
	if event.Valid(body, depth) {
		return nil
	}
	if err := event.CheckJSON(body, depth); err != nil {
		return err
	}
	if json.Valid(body) {
		return nil
	}
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(body, &v); errors.As(err, &se) {
		return &event.SyntaxError{Offset: se.Offset, Msg: se.Error()}
	}
	return &event.ValidationError{Fields: []event.FieldError{{Path: "body", Reason: "must be JSON"}}}
}
