package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

func TestDecodeImport(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// A line as evp export writes it, of an event a Segment route stored.
	line := `{"eventId":"evt_1","eventType":"Order Completed","userId":"u1","sessionId":"s1","timestamp":"2026-11-25T11:58:00.123456789Z",` +
		`"metadata":{"page":"/home"},"payload":{"total":12.5},"priority":3,"receivedAt":"2026-11-25T11:58:01Z","source":"segment","processedAt":"2026-11-25T11:58:02Z"}`
	ev, err := event.DecodeImport([]byte(line), now)
	if err != nil {
		t.Fatal(err)
	}
	want := event.Event{EventID: "evt_1", EventType: "Order Completed", UserID: "u1", SessionID: "s1",
		Timestamp: time.Date(2026, 11, 25, 11, 58, 0, 123456789, time.UTC), Metadata: json.RawMessage(`{"page":"/home"}`),
		Payload: json.RawMessage(`{"total":12.5}`), Priority: 3, ReceivedAt: now, Source: event.SourceImport}
	if got, _ := json.Marshal(ev); string(got) != string(must(json.Marshal(want))) {
		t.Fatalf("DecodeImport =\n%s\nwant\n%s", got, must(json.Marshal(want)))
	}
	for _, c := range []struct{ name, line, path string }{
		{"no eventId", strings.Replace(line, `"eventId":"evt_1",`, "", 1), "eventId"},
		{"empty type", strings.Replace(line, `"Order Completed"`, `""`, 1), "eventType"},
		{"long type", strings.Replace(line, `"Order Completed"`, `"`+strings.Repeat("é", event.MaxEventTypeLen+1)+`"`, 1), "eventType"},
		{"bad time", strings.Replace(line, `"2026-11-25T11:58:00.123456789Z"`, `"yesterday"`, 1), "timestamp"},
		{"no session", strings.Replace(line, `"sessionId":"s1",`, "", 1), "sessionId"},
		{"array payload", strings.Replace(line, `{"total":12.5}`, `[1]`, 1), "payload"},
		{"not an object", `[1,2]`, "body"},
	} {
		_, err := event.DecodeImport([]byte(c.line), now)
		var ve *event.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) == 0 || ve.Fields[0].Path != c.path {
			t.Errorf("%s: %v, want a validation error naming %s", c.name, err, c.path)
		}
	}
	var se *event.SyntaxError
	if _, err := event.DecodeImport([]byte(`{"eventId":`), now); !errors.As(err, &se) {
		t.Errorf("truncated line: %v, want a syntax error", err)
	}
	deep := `{"eventId":"e","eventType":"t","userId":"u","sessionId":"s","timestamp":"2026-11-25T11:58:00Z","metadata":` +
		strings.Repeat(`{"a":`, event.MaxDepth+1) + "1" + strings.Repeat("}", event.MaxDepth+1) + "}"
	if _, err := event.DecodeImport([]byte(deep), now); err == nil {
		t.Error("metadata nested past MaxDepth was accepted")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// Whatever the line, DecodeImport answers an event that survives the buffer's encoding,
// or an error; never a panic.
func FuzzDecodeImport(f *testing.F) {
	f.Add(`{"eventId":"evt_1","eventType":"$pageview","userId":"u1","sessionId":"s1","timestamp":"2026-11-25T11:58:00Z","metadata":{"a":[1,{"b":null}]}}`)
	f.Add(`{"eventId":"","eventType":"a b","userId":"u","sessionId":"s","timestamp":"1678-01-01T00:00:00Z","priority":10.0}`)
	f.Add(`{"eventId":"x","eventType":"t","userId":"u","sessionId":"s","timestamp":"2026-11-25T11:58:00+23:59","payload":{"\ud800":1}}`)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := event.DecodeImport([]byte(line), now)
		if err != nil {
			return
		}
		if ev.EventID == "" || ev.EventType == "" || ev.Source != event.SourceImport || !event.TimeInRange(ev.Timestamp) {
			t.Fatalf("accepted %+v", ev)
		}
		data, err := event.Marshal(&ev)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", ev, err)
		}
		var back event.Event
		if err := event.Unmarshal(data, &back); err != nil || back.EventID != ev.EventID || back.EventType != ev.EventType || !back.Timestamp.Equal(ev.Timestamp) {
			t.Fatalf("round trip of %s: %+v, %v", data, back, err)
		}
	})
}
