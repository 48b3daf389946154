package event

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// DecodeImport decodes and validates one line of an import: an event as evp export writes
// it. The rules are the contract's, but for two: the eventId is required (so that importing
// the same file again stores nothing twice), and the event type may be any text an SDK
// route stores (Segment's "Order Completed", PostHog's "$pageview"). The export's
// receivedAt, source and processedAt are ignored: the event is received now, by import.
// Errors are DecodeOne's.
func DecodeImport(line []byte, now time.Time) (Event, error) {
	if err := checkBody(line, false); err != nil {
		return Event{}, err
	}
	var w wireEvent
	if err := json.Unmarshal(line, &w); err != nil {
		if se := syntaxError(err); se != nil {
			return Event{}, se
		}
		return Event{}, &ValidationError{Fields: []FieldError{{Path: "body", Reason: "must be an event object as evp export writes it: " + err.Error()}}}
	}
	var fields []FieldError
	if w.EventID == nil {
		fields = append(fields, FieldError{Path: "eventId", Reason: "is required in an import"})
	}
	w.anyType = true
	var ev Event
	if !w.validate("", now, &ev, &fields) || len(fields) > 0 {
		return Event{}, &ValidationError{Fields: fields}
	}
	ev.Source = SourceImport
	return ev, nil
}

// checkAnyType is the rule of an event type an SDK route stores: text of 1 to
// MaxEventTypeLen characters.
func checkAnyType(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if utf8.RuneCountInString(s) > MaxEventTypeLen {
		return fmt.Sprintf("must be at most %d characters", MaxEventTypeLen)
	}
	return ""
}
