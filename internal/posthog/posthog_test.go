package posthog

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

var received = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func decodeOK(t *testing.T, body string) Request {
	t.Helper()
	req, err := Decode([]byte(body), received)
	if err != nil {
		t.Fatalf("Decode(%.200s): %v", body, err)
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

// A posthog-node batch: uuid, name, distinct_id, the session from $session_id, the time
// corrected with the request's sent_at, properties without the token, the rest in
// metadata without the key.
func TestBatchMapping(t *testing.T) {
	req := decodeOK(t, `{"api_key":"evp_key","sent_at":"2030-01-01T00:00:10.000Z","batch":[
		{"event":"$pageview","distinct_id":"u1","uuid":"0190-a","timestamp":"2030-01-01T00:00:00.000Z","type":"capture",
		 "library":"posthog-node","properties":{"$session_id":"s-1","$current_url":"https://x.test/","token":"evp_key"},"$set":{"plan":"pro"}},
		{"event":"signed up","distinct_id":42,"properties":{"distinct_id":"ignored"}}]}`)
	if req.Key != "evp_key" || len(req.Events) != 2 {
		t.Fatalf("key %q, %d events", req.Key, len(req.Events))
	}
	ev := req.Events[0]
	if ev.EventID != "0190-a" || ev.EventType != "$pageview" || ev.UserID != "u1" || ev.SessionID != "s-1" ||
		!ev.Timestamp.Equal(received.Add(-10*time.Second)) || !ev.ReceivedAt.Equal(received) || ev.Source != event.SourcePostHog {
		t.Errorf("event = %+v", ev)
	}
	if string(ev.Payload) != `{"$session_id":"s-1","$current_url":"https://x.test/"}` {
		t.Errorf("payload = %s", ev.Payload)
	}
	var meta map[string]any
	if err := json.Unmarshal(ev.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"type", "library", "$set", "uuid", "timestamp"} {
		if _, ok := meta[k]; !ok {
			t.Errorf("metadata lacks %s: %s", k, ev.Metadata)
		}
	}
	for _, k := range []string{"properties", "api_key", "token"} {
		if _, ok := meta[k]; ok {
			t.Errorf("metadata keeps %s: %s", k, ev.Metadata)
		}
	}
	second := req.Events[1]
	if second.UserID != "42" || second.SessionID != "42/2026-12-07" || !second.Timestamp.Equal(received) ||
		!strings.HasPrefix(second.EventID, event.IDPrefix) {
		t.Errorf("second event = %+v", second)
	}
}

// One event, and the array posthog-js sends, with the key in properties.token and the time
// as an offset.
func TestSingleAndArray(t *testing.T) {
	req := decodeOK(t, `{"event":"clicked","distinct_id":"u","token":"k1","timestamp":"2026-12-07T11:00:00Z"}`)
	if req.Key != "k1" || len(req.Events) != 1 || !req.Events[0].Timestamp.Equal(received.Add(-time.Hour)) {
		t.Errorf("single: %+v", req)
	}
	req = decodeOK(t, `[{"event":"$autocapture","offset":1500,"properties":{"distinct_id":"anon-1","token":"k2","$session_id":"s"}}]`)
	if req.Key != "k2" || len(req.Events) != 1 || req.Events[0].UserID != "anon-1" ||
		!req.Events[0].Timestamp.Equal(received.Add(-1500*time.Millisecond)) || string(req.Events[0].Payload) != `{"distinct_id":"anon-1","$session_id":"s"}` {
		t.Errorf("array: %+v %s", req, req.Events[0].Payload)
	}
}

// Every bad field of every event is named; the request's shape is checked.
func TestValidation(t *testing.T) {
	_, err := Decode([]byte(`{"batch":[{"distinct_id":"u"},{"event":"e"},{"event":"e","distinct_id":{}},
		{"event":"e","distinct_id":"u","timestamp":"soon"},{"event":"e","distinct_id":"u","offset":-1},
		{"event":"e","distinct_id":"u","properties":[1]},7,{"event":"`+strings.Repeat("n", 101)+`","distinct_id":"u"}]}`), received)
	got := fieldsOf(t, err)
	for _, path := range []string{"batch[0].event", "batch[1].distinct_id", "batch[2].distinct_id", "batch[3].timestamp",
		"batch[4].offset", "batch[5].properties", "batch[6]", "batch[7].event"} {
		if got[path] == "" {
			t.Errorf("no error for %s; got %v", path, got)
		}
	}
	for body, path := range map[string]string{`{"batch":[]}`: "batch", `{"batch":{}}`: "batch", `[]`: "batch", `7`: "body", `[1]`: "[0]"} {
		if _, err := Decode([]byte(body), received); fieldsOf(t, err)[path] == "" {
			t.Errorf("%s: %v, want an error naming %s", body, err, path)
		}
	}
	var se *event.SyntaxError
	if _, err := Decode([]byte(`{"event":`), received); !errors.As(err, &se) {
		t.Errorf("malformed: %v, want a SyntaxError", err)
	}
	deep := `{"event":"e","distinct_id":"u","properties":` + strings.Repeat(`[`, event.MaxDepth+3) + strings.Repeat(`]`, event.MaxDepth+3) + `}`
	if _, err := Decode([]byte(deep), received); !strings.Contains(fieldsOf(t, err)["body"], "levels deep") {
		t.Errorf("deep nesting: %v", err)
	}
}

// The bounds: events in a batch and bytes in an event.
func TestBounds(t *testing.T) {
	one := `{"event":"e","distinct_id":"u"}`
	_, err := Decode([]byte(`{"batch":[`+strings.Repeat(one+",", MaxBatch)+one+`]}`), received)
	if got := fieldsOf(t, err)["batch"]; !strings.Contains(got, "at most") {
		t.Errorf("%d events: %v", MaxBatch+1, err)
	}
	big := `{"event":"e","distinct_id":"u","properties":{"x":"` + strings.Repeat("x", MaxEventBytes) + `"}}`
	_, err = Decode([]byte(`[`+one+`,`+big+`]`), received)
	if got := fieldsOf(t, err)["[1]"]; !strings.Contains(got, "bytes") {
		t.Errorf("an event over %d bytes: %v", MaxEventBytes, err)
	}
}

// FuzzDecode: no body crashes Decode or yields an event evp could not store.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"api_key":"k","batch":[{"event":"$pageview","distinct_id":"u","properties":{"$session_id":"s","token":"k"},"timestamp":"2026-01-01T00:00:00Z"}],"sent_at":"2026-01-01T00:00:01Z"}`))
	f.Add([]byte(`[{"event":"e","offset":5,"properties":{"distinct_id":1}}]`))
	f.Add([]byte(`{"event":"e","distinct_id":"u","uuid":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := Decode(body, received)
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
					t.Fatalf("not an object: %s from %q", raw, body)
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
	body := []byte(`[{"event":"e","distinct_id":"u","properties":{"a":1}},{"event":"f","distinct_id":"u"}]`)
	req, err := Decode(body, received)
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

func TestFormData(t *testing.T) {
	events := `[{"event":"$pageleave","distinct_id":"u1","properties":{"$session_id":"s1"}}]`
	b64 := base64.StdEncoding.EncodeToString([]byte(events))
	for _, c := range []struct {
		name, body, compression string
		want, badField          string
	}{
		{"base64 in the URL", "data=" + url.QueryEscape(b64), "base64", events, ""},
		{"base64 in the form", "compression=base64&data=" + url.QueryEscape(b64), "", events, ""},
		{"unpadded", "data=" + strings.TrimRight(b64, "="), "", events, ""},
		{"plain JSON", "data=" + url.QueryEscape(events), "", events, ""},
		{"lz64", "data=abc", "lz64", "", "compression"},
		{"no data", "compression=base64", "", "", "data"},
		{"not base64", "data=%25%25%25", "base64", "", "data"},
		{"not a form", "data=%zz", "", "", "body"},
	} {
		got, err := FormData([]byte(c.body), c.compression)
		var ve *event.ValidationError
		switch {
		case c.badField == "" && (err != nil || string(got) != c.want):
			t.Errorf("%s: %q, %v", c.name, got, err)
		case c.badField != "" && (!errors.As(err, &ve) || ve.Fields[0].Path != c.badField):
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.badField)
		}
	}
	// What it returns decodes as the events.
	data, _ := FormData([]byte("data="+url.QueryEscape(b64)), "base64")
	req, err := Decode(data, time.Now())
	if err != nil || len(req.Events) != 1 || req.Events[0].EventType != "$pageleave" {
		t.Errorf("Decode(FormData) = %+v, %v", req, err)
	}
}
