package segment

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

var received = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func decodeOK(t *testing.T, body, call string) Request {
	t.Helper()
	req, err := Decode([]byte(body), call, received)
	if err != nil {
		t.Fatalf("Decode(%s): %v", body, err)
	}
	return req
}

func fieldsOf(t *testing.T, err error) map[string]string {
	t.Helper()
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T), want a ValidationError", err, err)
	}
	out := map[string]string{}
	for _, f := range ve.Fields {
		out[f.Path] = f.Reason
	}
	return out
}

// A track message maps field by field; the rest of it is kept in metadata, without the
// write key.
func TestTrackMapping(t *testing.T) {
	req := decodeOK(t, `{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1","messageId":"m-1",
		"timestamp":"2026-12-07T11:59:00.000Z","sentAt":"2026-12-07T11:59:30.000Z","properties":{"revenue":42.5,"items":[1,2]},
		"context":{"library":{"name":"analytics-node"},"page":{"path":"/checkout"}},"integrations":{"All":true},"writeKey":"evp_secret"}`, "track")
	if len(req.Events) != 1 || req.WriteKey != "evp_secret" {
		t.Fatalf("events %d, write key %q", len(req.Events), req.WriteKey)
	}
	ev := req.Events[0]
	// The client's clock ran 30 s behind its send: the event happened 30 s before received.
	if ev.EventID != "m-1" || ev.EventType != "Order Completed" || ev.UserID != "u1" || ev.SessionID != "a1/2026-12-07" ||
		!ev.Timestamp.Equal(received.Add(-30*time.Second)) || ev.Priority != event.DefaultPriority || !ev.ReceivedAt.Equal(received) || ev.Source != event.SourceSegment {
		t.Errorf("event = %+v", ev)
	}
	if string(ev.Payload) != `{"revenue":42.5,"items":[1,2]}` {
		t.Errorf("payload = %s", ev.Payload)
	}
	var meta map[string]any
	if err := json.Unmarshal(ev.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	if _, ok := meta["writeKey"]; ok {
		t.Errorf("metadata keeps the write key: %s", ev.Metadata)
	}
	if _, ok := meta["properties"]; ok {
		t.Errorf("metadata repeats the properties: %s", ev.Metadata)
	}
	for _, k := range []string{"type", "event", "anonymousId", "context", "integrations", "sentAt", "timestamp", "messageId"} {
		if _, ok := meta[k]; !ok {
			t.Errorf("metadata lacks %s: %s", k, ev.Metadata)
		}
	}
}

// A batch maps each call type; the batch's sentAt corrects every message; a message
// without time takes the time evp received it; traits are the payload of identify and group.
func TestBatch(t *testing.T) {
	req := decodeOK(t, `{"sentAt":"2030-01-01T00:00:10Z","writeKey":"k","batch":[
		{"type":"identify","userId":"u1","traits":{"plan":"pro"},"timestamp":"2030-01-01T00:00:00Z"},
		{"type":"page","anonymousId":"a2","name":"Home","properties":{"path":"/"},"context":{"sessionId":"s-9"}},
		{"type":"screen","userId":42,"name":"Main"},
		{"type":"group","userId":"u1","groupId":"g1","traits":{"size":5}},
		{"type":"alias","userId":"u1","previousId":"a2"}]}`, "batch")
	if req.WriteKey != "k" || len(req.Events) != 5 {
		t.Fatalf("write key %q, %d events", req.WriteKey, len(req.Events))
	}
	want := []struct{ typ, user, session, payload string }{
		{"identify", "u1", "u1/2026-12-07", `{"plan":"pro"}`},
		{"page", "a2", "s-9", `{"path":"/"}`},
		{"screen", "42", "42/2026-12-07", ""},
		{"group", "u1", "u1/2026-12-07", `{"size":5}`},
		{"alias", "u1", "u1/2026-12-07", ""},
	}
	for i, w := range want {
		ev := req.Events[i]
		if ev.EventType != w.typ || ev.UserID != w.user || ev.SessionID != w.session || string(ev.Payload) != w.payload {
			t.Errorf("event %d = %s %s %s %s, want %+v", i, ev.EventType, ev.UserID, ev.SessionID, ev.Payload, w)
		}
		if !strings.HasPrefix(ev.EventID, event.IDPrefix) {
			t.Errorf("event %d: id %q, want a new one", i, ev.EventID)
		}
	}
	if got := req.Events[0].Timestamp; !got.Equal(received.Add(-10 * time.Second)) {
		t.Errorf("identify at %v, want 10 s before received (the batch's sentAt)", got)
	}
	if got := req.Events[1].Timestamp; !got.Equal(received) {
		t.Errorf("page without time at %v, want received", got)
	}
}

// Every bad field of every message is named; nothing of the batch is kept.
func TestValidation(t *testing.T) {
	_, err := Decode([]byte(`{"batch":[{"type":"track","userId":"u"},{"type":"nope","userId":"u"},{"type":"page"},
		{"type":"identify","userId":{},"timestamp":"yesterday"},{"type":"track","event":"x","anonymousId":"a","timestamp":"2300-01-01T00:00:00Z"},7]}`), "batch", received)
	got := fieldsOf(t, err)
	for _, path := range []string{"batch[0].event", "batch[1].type", "batch[2].userId", "batch[3].userId", "batch[3].timestamp", "batch[4].timestamp", "batch[5]"} {
		if got[path] == "" {
			t.Errorf("no error for %s; got %v", path, got)
		}
	}
	for body, path := range map[string]string{
		`{"batch":[]}`:   "batch",
		`{"batch":{}}`:   "batch",
		`[1]`:            "body",
		`{"batch":null}`: "batch",
	} {
		if _, err := Decode([]byte(body), "batch", received); fieldsOf(t, err)[path] == "" {
			t.Errorf("%s: %v, want an error naming %s", body, err, path)
		}
	}
	var se *event.SyntaxError
	if _, err := Decode([]byte(`{"event":`), "track", received); !errors.As(err, &se) {
		t.Errorf("malformed: %v, want a SyntaxError", err)
	}
}

// The bounds: message size in a batch, batch length, nesting, text that is not UTF-8, and
// event names and ids past evp's limits.
func TestBounds(t *testing.T) {
	big := `{"type":"track","event":"e","userId":"u","properties":{"x":"` + strings.Repeat("x", MaxMessageBytes) + `"}}`
	if got := fieldsOf(t, decodeErr(t, `{"batch":[`+big+`]}`, "batch")); got["batch[0]"] == "" {
		t.Errorf("a message over 32 KB: %v", got)
	}
	many := `{"batch":[` + strings.Repeat(`{"type":"track","event":"e","userId":"u"},`, MaxBatch) + `{"type":"track","event":"e","userId":"u"}]}`
	if got := fieldsOf(t, decodeErr(t, many, "batch")); !strings.Contains(got["batch"], "at most") {
		t.Errorf("%d messages: %v", MaxBatch+1, got)
	}
	deep := `{"event":"e","userId":"u","properties":` + strings.Repeat(`{"a":`, event.MaxDepth+3) + `1` + strings.Repeat(`}`, event.MaxDepth+3) + `}`
	if got := fieldsOf(t, decodeErr(t, deep, "track")); !strings.Contains(got["body"], "levels deep") {
		t.Errorf("deep nesting: %v", got)
	}
	if got := fieldsOf(t, decodeErr(t, "{\"event\":\"e\",\"userId\":\"\xff\"}", "track")); !strings.Contains(got["body"], "UTF-8") {
		t.Errorf("invalid UTF-8: %v", got)
	}
	long := strings.Repeat("n", event.MaxEventTypeLen+1)
	got := fieldsOf(t, decodeErr(t, `{"event":"`+long+`","userId":"`+strings.Repeat("u", 200)+`","messageId":"`+strings.Repeat("m", 200)+`"}`, "track"))
	for _, path := range []string{"event", "userId", "messageId"} {
		if got[path] == "" {
			t.Errorf("no error for an overlong %s: %v", path, got)
		}
	}
	// A long anonymousId still gives a session id within evp's limit.
	req := decodeOK(t, `{"event":"e","userId":"u","anonymousId":"`+strings.Repeat("a", 128)+`"}`, "track")
	if n := len(req.Events[0].SessionID); n > event.MaxIDLen || !strings.HasSuffix(req.Events[0].SessionID, "/2026-12-07") {
		t.Errorf("session id %q (%d characters)", req.Events[0].SessionID, n)
	}
}

func decodeErr(t *testing.T, body, call string) error {
	t.Helper()
	_, err := Decode([]byte(body), call, received)
	if err == nil {
		t.Fatalf("Decode(%.80s) accepted it", body)
	}
	return err
}

// FuzzDecode: no body crashes Decode or yields an event evp could not store: every event
// has an id, a type, a user and a session within evp's limits, a time in range, and
// metadata and payload that are JSON objects.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"batch":[{"type":"track","event":"a b","userId":"u","timestamp":"2026-01-01T00:00:00Z","properties":{"x":[1]}}],"sentAt":"2026-01-01T00:00:01Z"}`), "batch")
	f.Add([]byte(`{"event":"e","anonymousId":1e3,"context":{"sessionId":7}}`), "track")
	f.Add([]byte(`{"userId":"u","traits":null,"writeKey":"k"}`), "identify")
	f.Fuzz(func(t *testing.T, body []byte, call string) {
		if call != "batch" && !slices.Contains(Calls, call) {
			call = "track"
		}
		req, err := Decode(body, call, received)
		if err != nil {
			return
		}
		for _, ev := range req.Events {
			if ev.EventID == "" || ev.EventType == "" || ev.UserID == "" || ev.SessionID == "" ||
				len([]rune(ev.SessionID)) > event.MaxIDLen || len([]rune(ev.UserID)) > event.MaxIDLen || !event.TimeInRange(ev.Timestamp) {
				t.Fatalf("event %+v from %q", ev, body)
			}
			for _, raw := range [][]byte{ev.Metadata, ev.Payload} {
				var m map[string]any
				if len(raw) > 0 && json.Unmarshal(raw, &m) != nil {
					t.Fatalf("not an object: %s", raw)
				}
			}
			if _, err := event.Marshal(&ev); err != nil {
				t.Fatalf("Marshal: %v", err)
			}
		}
	})
}

// The events share no bytes with the body: evp reuses the body's buffer for the next
// request while the events wait for the workers.
func TestEventsDoNotAliasTheBody(t *testing.T) {
	body := []byte(`{"batch":[{"type":"track","event":"e","userId":"u","properties":{"a":1},"context":{"c":2}},{"type":"page","userId":"u","name":"Home"}]}`)
	req, err := Decode(body, "batch", received)
	if err != nil {
		t.Fatal(err)
	}
	var before []string
	for _, ev := range req.Events {
		before = append(before, string(ev.Metadata)+string(ev.Payload)+ev.EventType+ev.UserID)
	}
	for i := range body {
		body[i] = 'x'
	}
	for i, ev := range req.Events {
		if after := string(ev.Metadata) + string(ev.Payload) + ev.EventType + ev.UserID; after != before[i] {
			t.Errorf("event %d changed with the body: %q, then %q", i, before[i], after)
		}
	}
}
