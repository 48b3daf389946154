package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits from the HTTP contract.
const (
	MaxEventTypeLen = 100
	MaxIDLen        = 128
	MaxPriority     = 10
	DefaultPriority = 1
	MaxBatch        = 1000
)

// FieldError names one failing field and why it failed. Path uses the request's own names,
// "events[3].timestamp" inside a batch.
type FieldError struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// ValidationError lists every failing field of a request.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return "validation failed"
	}
	f := e.Fields[0]
	msg := fmt.Sprintf("%s: %s", f.Path, f.Reason)
	if len(e.Fields) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(e.Fields)-1)
	}
	return msg
}

// SyntaxError reports a body that is not well-formed JSON.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, e.Msg)
}

// wireEvent is the typed view of one event in a request body, filled by the hand scanner
// (fastdecode.go) or by encoding/json.
type wireEvent struct {
	EventType *string         `json:"eventType"`
	UserID    *string         `json:"userId"`
	SessionID *string         `json:"sessionId"`
	Timestamp *string         `json:"timestamp"`
	Metadata  json.RawMessage `json:"metadata"`
	Payload   json.RawMessage `json:"payload"`
	Priority  json.RawMessage `json:"priority"`
	EventID   *string         `json:"eventId"`
	// anyType takes any event type an SDK route stores (an import), not only the
	// contract's pattern.
	anyType bool
}

// rawEvent is the slow-path view used when a field has the wrong JSON type: every field is
// kept raw so that each one can be judged on its own and all failures reported.
type rawEvent struct {
	EventType json.RawMessage `json:"eventType"`
	UserID    json.RawMessage `json:"userId"`
	SessionID json.RawMessage `json:"sessionId"`
	Timestamp json.RawMessage `json:"timestamp"`
	Metadata  json.RawMessage `json:"metadata"`
	Payload   json.RawMessage `json:"payload"`
	Priority  json.RawMessage `json:"priority"`
	EventID   json.RawMessage `json:"eventId"`
}

// DecodeOne decodes and validates the body of POST /api/v1/events. It returns a
// *SyntaxError for malformed JSON and a *ValidationError listing every failing field.
// A body that nests deeper than MaxDepth or holds text that is not valid UTF-8 gets a
// *ValidationError naming only the fields that do. A missing eventId is generated;
// receivedAt is set to now.
func DecodeOne(body []byte, now time.Time) (Event, error) {
	var ev Event
	if handled, err := decodeOneFast(body, now, &ev); handled {
		return ev, err
	}
	return decodeOneGeneral(body, now)
}

// decodeOneGeneral is DecodeOne for every body: the reference for decodeOneFast.
func decodeOneGeneral(body []byte, now time.Time) (Event, error) {
	if err := checkBody(body, false); err != nil {
		return Event{}, err
	}
	var w wireEvent
	var ev Event
	if err := json.Unmarshal(body, &w); err != nil {
		if se := syntaxError(err); se != nil {
			return ev, se
		}
		var fields []FieldError
		if !validateRaw(body, "", now, &ev, &fields) {
			return Event{}, &ValidationError{Fields: fields}
		}
		return ev, nil
	}
	var fields []FieldError
	if !w.validate("", now, &ev, &fields) {
		return Event{}, &ValidationError{Fields: fields}
	}
	return ev, nil
}

// DecodeBatch decodes and validates the body of POST /api/v1/events/batch. Validation is
// all-or-nothing: on any failure no event is returned and the error names every bad index.
// Errors are those of DecodeOne, with paths such as "events[3].metadata".
func DecodeBatch(body []byte, now time.Time) ([]Event, error) {
	if events, handled, err := decodeBatchFast(body, now); handled {
		return events, err
	}
	return decodeBatchGeneral(body, now)
}

// decodeBatchGeneral is DecodeBatch for every body: the reference for decodeBatchFast.
func decodeBatchGeneral(body []byte, now time.Time) ([]Event, error) {
	if err := checkBody(body, true); err != nil {
		return nil, err
	}
	var w struct {
		Events []wireEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		if se := syntaxError(err); se != nil {
			return nil, se
		}
		return decodeBatchSlow(body, now)
	}
	if verr := checkBatchLen(w.Events == nil, len(w.Events)); verr != nil {
		return nil, verr
	}
	events := make([]Event, len(w.Events))
	var fields []FieldError
	var pathBuf []byte
	for i := range w.Events {
		pathBuf = appendIndexPath(pathBuf[:0], i)
		w.Events[i].validate(string(pathBuf), now, &events[i], &fields)
	}
	if len(fields) > 0 {
		return nil, &ValidationError{Fields: fields}
	}
	return events, nil
}

// checkBody refuses, before encoding/json decodes body, what the contract refuses and
// encoding/json accepts: nesting deeper than MaxDepth and text that is not valid UTF-8
// (encoding/json replaces it with U+FFFD). A malformed body gets the *SyntaxError of
// encoding/json.
func checkBody(body []byte, batch bool) error {
	fields, ok := checkLimits(body, batch)
	if !ok {
		if se := syntaxError(json.Unmarshal(body, &struct{}{})); se != nil {
			return se
		}
	}
	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	return nil
}

func appendIndexPath(b []byte, i int) []byte {
	b = append(b, "events["...)
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, "]."...)
}

func checkBatchLen(missing bool, n int) *ValidationError {
	switch {
	case missing:
		return &ValidationError{Fields: []FieldError{{Path: "events", Reason: "is required and must be an array of events"}}}
	case n == 0:
		return &ValidationError{Fields: []FieldError{{Path: "events", Reason: "must contain at least 1 event"}}}
	case n > MaxBatch:
		return &ValidationError{Fields: []FieldError{{Path: "events", Reason: fmt.Sprintf("must contain at most %d events, got %d", MaxBatch, n)}}}
	}
	return nil
}

// decodeBatchSlow handles a batch with a type error somewhere: it looks at each element on
// its own so that every bad index is named, not only the first.
func decodeBatchSlow(body []byte, now time.Time) ([]Event, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, &ValidationError{Fields: []FieldError{{Path: "body", Reason: "must be a JSON object"}}}
	}
	raw, ok := top["events"]
	if !ok || isNull(raw) {
		return nil, checkBatchLen(true, 0)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, &ValidationError{Fields: []FieldError{{Path: "events", Reason: "must be an array of events"}}}
	}
	if verr := checkBatchLen(false, len(elems)); verr != nil {
		return nil, verr
	}
	events := make([]Event, len(elems))
	var fields []FieldError
	for i, el := range elems {
		validateRaw(el, string(appendIndexPath(nil, i)), now, &events[i], &fields)
	}
	if len(fields) > 0 {
		return nil, &ValidationError{Fields: fields}
	}
	return events, nil
}

// validateRaw judges one event field by field. prefix is "" or "events[i].".
func validateRaw(data []byte, prefix string, now time.Time, ev *Event, fields *[]FieldError) bool {
	var r rawEvent
	if err := json.Unmarshal(data, &r); err != nil {
		path := "body"
		if prefix != "" {
			path = prefix[:len(prefix)-1]
		}
		*fields = append(*fields, FieldError{Path: path, Reason: "must be a JSON object"})
		return false
	}
	var w wireEvent
	n := len(*fields)
	w.EventType = rawString(r.EventType, prefix+"eventType", fields)
	w.UserID = rawString(r.UserID, prefix+"userId", fields)
	w.SessionID = rawString(r.SessionID, prefix+"sessionId", fields)
	w.Timestamp = rawString(r.Timestamp, prefix+"timestamp", fields)
	w.EventID = rawString(r.EventID, prefix+"eventId", fields)
	w.Metadata, w.Payload, w.Priority = r.Metadata, r.Payload, r.Priority
	typeErrs := map[string]bool{}
	for _, f := range (*fields)[n:] {
		typeErrs[f.Path] = true
	}
	var more []FieldError
	w.validate(prefix, now, ev, &more)
	for _, f := range more {
		if !typeErrs[f.Path] {
			*fields = append(*fields, f)
		}
	}
	return len(*fields) == n
}

// rawString decodes a raw JSON value expected to be a string; nil when absent or null.
func rawString(raw json.RawMessage, path string, fields *[]FieldError) *string {
	if len(raw) == 0 || isNull(raw) {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		*fields = append(*fields, FieldError{Path: path, Reason: "must be a string"})
		return nil
	}
	return &s
}

func isNull(raw []byte) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func syntaxError(err error) *SyntaxError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &SyntaxError{Offset: se.Offset, Msg: se.Error()}
	}
	return nil
}

// validate checks w against the contract and fills ev. It appends one FieldError per failing
// field and reports whether w was valid.
func (w *wireEvent) validate(prefix string, now time.Time, ev *Event, fields *[]FieldError) bool {
	n := len(*fields)
	bad := func(field, reason string) {
		*fields = append(*fields, FieldError{Path: prefix + field, Reason: reason})
	}
	checkType := checkEventType
	if w.anyType {
		checkType = checkAnyType
	}
	if w.EventType == nil {
		bad("eventType", "is required")
	} else if reason := checkType(*w.EventType); reason != "" {
		bad("eventType", reason)
	} else {
		ev.EventType = *w.EventType
	}
	checkID := func(field string, v *string, required bool, dst *string) {
		switch {
		case v == nil:
			if required {
				bad(field, "is required")
			}
		case *v == "":
			bad(field, "must not be empty")
		case len(*v) > MaxIDLen && utf8.RuneCountInString(*v) > MaxIDLen:
			bad(field, fmt.Sprintf("must be at most %d characters", MaxIDLen))
		default:
			*dst = *v
		}
	}
	checkID("userId", w.UserID, true, &ev.UserID)
	checkID("sessionId", w.SessionID, true, &ev.SessionID)
	if w.Timestamp == nil {
		bad("timestamp", "is required")
	} else if ts, err := time.Parse(time.RFC3339Nano, *w.Timestamp); err != nil || !strictRFC3339(*w.Timestamp) {
		bad("timestamp", "must be an RFC 3339 date-time such as 2024-01-15T10:30:00Z")
	} else if !TimeInRange(ts) {
		bad("timestamp", TimeRangeReason)
	} else {
		ev.Timestamp = ts.UTC()
	}
	if !isObjectOrAbsent(w.Metadata) {
		bad("metadata", "must be a JSON object")
	} else if !isNullOrEmpty(w.Metadata) {
		ev.Metadata = w.Metadata
	}
	if !isObjectOrAbsent(w.Payload) {
		bad("payload", "must be a JSON object")
	} else if !isNullOrEmpty(w.Payload) {
		ev.Payload = w.Payload
	}
	ev.Priority = DefaultPriority
	if !isNullOrEmpty(w.Priority) {
		p, reason := parsePriority(w.Priority)
		if reason != "" {
			bad("priority", reason)
		} else {
			ev.Priority = p
		}
	}
	checkID("eventId", w.EventID, false, &ev.EventID)
	if len(*fields) > n {
		return false
	}
	if ev.EventID == "" {
		ev.EventID = NewID()
	}
	ev.ReceivedAt, ev.Source = now, SourceAPI
	return true
}

// strictRFC3339 refuses what time.Parse accepts but RFC 3339 does not: a one-digit hour, a
// ',' before the fraction, an offset hour over 23 or minute over 59. s was accepted by
// time.Parse with layout RFC3339Nano, so it is at least 19 bytes and ends in "Z" or "±hh:mm".
func strictRFC3339(s string) bool {
	if s[13] != ':' || strings.IndexByte(s, ',') >= 0 {
		return false
	}
	off := s[len(s)-6:]
	return s[len(s)-1] == 'Z' || off[1:3] <= "23" && off[4:6] <= "59"
}

func checkEventType(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > MaxEventTypeLen {
		return fmt.Sprintf("must be at most %d characters", MaxEventTypeLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return "must start with a letter (pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$)"
		}
		if !letter && !(c >= '0' && c <= '9') && c != '_' && c != '.' && c != '-' {
			return "may contain only letters, digits, '_', '.' and '-' (pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$)"
		}
	}
	return ""
}

func parsePriority(raw json.RawMessage) (int, string) {
	const reason = "must be an integer from 0 to 10"
	s := string(bytes.TrimSpace(raw))
	if s == "" || s[0] == '"' || s == "true" || s == "false" || s[0] == '{' || s[0] == '[' {
		return 0, reason
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != float64(int64(f)) || f < 0 || f > MaxPriority {
		return 0, reason
	}
	return int(f), ""
}

func isNullOrEmpty(raw json.RawMessage) bool {
	return len(raw) == 0 || isNull(raw)
}

func isObjectOrAbsent(raw json.RawMessage) bool {
	if isNullOrEmpty(raw) {
		return true
	}
	i := skipWS(raw, 0) // bytes.TrimLeft(raw, " \t\r\n") without building its set each call
	return i < len(raw) && raw[i] == '{'
}
