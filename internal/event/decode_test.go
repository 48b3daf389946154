package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/evp-dev/evp/internal/event"
)

// testNow is the receive time passed to the decoder. It is deliberately not in UTC so that a
// decoder that converts or replaces it is caught.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))

var (
	eventTypeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]*$`)
	// generatedIDRE is "evt_" followed by a ULID: 26 characters of Crockford base32, the first
	// at most '7'.
	generatedIDRE = regexp.MustCompile(`^evt_[0-7][0-9A-HJKMNP-TV-Z]{25}$`)
)

// obj is a JSON object under construction: field name -> raw JSON value.
type obj map[string]string

// validObj returns the smallest valid event.
func validObj() obj {
	return obj{
		"eventType": `"page_view"`,
		"userId":    `"user-1"`,
		"sessionId": `"sess-1"`,
		"timestamp": `"2024-01-15T10:30:00Z"`,
	}
}

// with returns a copy of o with the given key/raw-value pairs set.
func (o obj) with(kv ...string) obj {
	if len(kv)%2 != 0 {
		panic("obj.with: odd number of arguments")
	}
	c := make(obj, len(o)+len(kv)/2)
	for k, v := range o {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		c[kv[i]] = kv[i+1]
	}
	return c
}

// without returns a copy of o without the given keys.
func (o obj) without(keys ...string) obj {
	c := o.with()
	for _, k := range keys {
		delete(c, k)
	}
	return c
}

// json encodes o with its keys in sorted order.
func (o obj) json() []byte {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(q(k))
		b.WriteByte(':')
		b.WriteString(o[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// q returns s as a JSON string literal.
func q(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// batch builds {"events":[e0,e1,...]}.
func batch(events ...[]byte) []byte {
	return []byte(`{"events":[` + string(bytes.Join(events, []byte(","))) + `]}`)
}

// userObj returns a valid event whose userId is "u<i>".
func userObj(i int) obj {
	return validObj().with("userId", q(fmt.Sprintf("u%d", i)))
}

// errPaths returns the sorted Paths of a *ValidationError, failing the test for any other error.
func errPaths(t testing.TB, err error) []string {
	t.Helper()
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %T %v, want *event.ValidationError", err, err)
	}
	if len(ve.Fields) == 0 {
		t.Fatalf("ValidationError has no fields")
	}
	paths := make([]string, 0, len(ve.Fields))
	for _, f := range ve.Fields {
		if f.Reason == "" {
			t.Errorf("field %q has an empty reason", f.Path)
		}
		paths = append(paths, f.Path)
	}
	if ve.Error() == "" {
		t.Errorf("ValidationError.Error() is empty")
	}
	sort.Strings(paths)
	return paths
}

func wantPaths(t testing.TB, err error, want ...string) {
	t.Helper()
	got := errPaths(t, err)
	w := slices.Clone(want)
	sort.Strings(w)
	if !slices.Equal(got, w) {
		t.Fatalf("error paths = %q, want %q (error: %v)", got, w, err)
	}
}

func reasonOf(t testing.TB, err error, path string) string {
	t.Helper()
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %T %v, want *event.ValidationError", err, err)
	}
	for _, f := range ve.Fields {
		if f.Path == path {
			return f.Reason
		}
	}
	t.Fatalf("no field error for %q in %v", path, ve.Fields)
	return ""
}

// checkAccepted checks what must hold for every accepted event.
func checkAccepted(t testing.TB, ev event.Event) {
	t.Helper()
	if !ev.ReceivedAt.Equal(testNow) || ev.ReceivedAt.Location() != testNow.Location() {
		t.Errorf("ReceivedAt = %v, want %v", ev.ReceivedAt, testNow)
	}
	if ev.Timestamp.Location() != time.UTC {
		t.Errorf("Timestamp location = %v, want UTC", ev.Timestamp.Location())
	}
	if !eventTypeRE.MatchString(ev.EventType) || len(ev.EventType) > 100 {
		t.Errorf("EventType %q breaks the contract", ev.EventType)
	}
	for name, v := range map[string]string{"UserID": ev.UserID, "SessionID": ev.SessionID, "EventID": ev.EventID} {
		if n := utf8.RuneCountInString(v); n < 1 || n > 128 {
			t.Errorf("%s has %d characters, want 1-128", name, n)
		}
	}
	if ev.Priority < 0 || ev.Priority > 10 {
		t.Errorf("Priority = %d, want 0-10", ev.Priority)
	}
	for name, m := range map[string]json.RawMessage{"Metadata": ev.Metadata, "Payload": ev.Payload} {
		if m == nil {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(m, &v); err != nil || v == nil {
			t.Errorf("%s = %s, want a JSON object (err %v)", name, m, err)
		}
	}
}

func decodeOK(t testing.TB, body []byte) event.Event {
	t.Helper()
	ev, err := event.DecodeOne(body, testNow)
	if err != nil {
		t.Fatalf("DecodeOne(%s) error: %v", body, err)
	}
	checkAccepted(t, ev)
	return ev
}

func TestDecodeOneMinimal(t *testing.T) {
	ev := decodeOK(t, validObj().json())
	if ev.EventType != "page_view" || ev.UserID != "user-1" || ev.SessionID != "sess-1" {
		t.Errorf("strings = %q %q %q", ev.EventType, ev.UserID, ev.SessionID)
	}
	if want := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC); !ev.Timestamp.Equal(want) {
		t.Errorf("Timestamp = %v, want %v", ev.Timestamp, want)
	}
	if ev.Priority != 1 || event.DefaultPriority != 1 {
		t.Errorf("Priority = %d, want default 1", ev.Priority)
	}
	if ev.Metadata != nil || ev.Payload != nil {
		t.Errorf("Metadata = %q, Payload = %q, want nil", ev.Metadata, ev.Payload)
	}
	if !generatedIDRE.MatchString(ev.EventID) || len(ev.EventID) != 30 {
		t.Errorf("generated EventID = %q, want evt_ + 26 ULID characters", ev.EventID)
	}
	if ev2 := decodeOK(t, validObj().json()); ev2.EventID == ev.EventID {
		t.Errorf("two decodes generated the same id %q", ev.EventID)
	}
}

func TestDecodeOneFull(t *testing.T) {
	body := []byte(`{
		"eventType": "checkout.completed-v2_x",
		"userId": "user_42",
		"sessionId": "sess_99",
		"timestamp": "2024-01-15T10:30:00.250+02:00",
		"metadata": {"source": "web", "tags": ["a", "b"]},
		"payload": {"amount": 12.5, "nested": {"ok": true}},
		"priority": 7,
		"eventId": "client-id-1"
	}`)
	ev := decodeOK(t, body)
	want := event.Event{
		EventID:    "client-id-1",
		EventType:  "checkout.completed-v2_x",
		UserID:     "user_42",
		SessionID:  "sess_99",
		Timestamp:  time.Date(2024, 1, 15, 8, 30, 0, 250_000_000, time.UTC),
		Metadata:   json.RawMessage(`{"source": "web", "tags": ["a", "b"]}`),
		Payload:    json.RawMessage(`{"amount": 12.5, "nested": {"ok": true}}`),
		Priority:   7,
		ReceivedAt: testNow,
		Source:     event.SourceAPI,
	}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("DecodeOne =\n%+v\nwant\n%+v", ev, want)
	}
}

// TestDecodeOneDoesNotAliasBody guards the HTTP layer, which returns the body buffer to a
// pool right after decoding.
func TestDecodeOneDoesNotAliasBody(t *testing.T) {
	body := validObj().with("metadata", `{"k":"v"}`, "payload", `{"p":1}`, "eventId", `"id-1"`).json()
	ev := decodeOK(t, body)
	for i := range body {
		body[i] = 'x'
	}
	if string(ev.Metadata) != `{"k":"v"}` || string(ev.Payload) != `{"p":1}` || ev.EventID != "id-1" || ev.UserID != "user-1" {
		t.Errorf("event changed when the body was overwritten: %+v", ev)
	}

	bbody := batch(validObj().with("metadata", `{"k":"v"}`).json())
	evs, err := event.DecodeBatch(bbody, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for i := range bbody {
		bbody[i] = 'x'
	}
	if string(evs[0].Metadata) != `{"k":"v"}` || evs[0].EventType != "page_view" {
		t.Errorf("batch event changed when the body was overwritten: %+v", evs[0])
	}
}

func TestDecodeOneRules(t *testing.T) {
	s := strings.Repeat
	tests := []struct {
		name  string
		body  []byte
		paths []string                          // failing paths; nil means the event is accepted
		check func(t *testing.T, e event.Event) // extra checks for an accepted event
	}{
		// eventType
		{name: "eventType 1 char", body: validObj().with("eventType", `"a"`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.EventType, "a") }},
		{name: "eventType 100 chars", body: validObj().with("eventType", q("E"+s("x", 99))).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.EventType, "E"+s("x", 99)) }},
		{name: "eventType all allowed classes", body: validObj().with("eventType", `"Zz09_.-aZ"`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.EventType, "Zz09_.-aZ") }},
		{name: "eventType 101 chars", body: validObj().with("eventType", q("E"+s("x", 100))).json(), paths: []string{"eventType"}},
		{name: "eventType empty", body: validObj().with("eventType", `""`).json(), paths: []string{"eventType"}},
		{name: "eventType missing", body: validObj().without("eventType").json(), paths: []string{"eventType"}},
		{name: "eventType null", body: validObj().with("eventType", `null`).json(), paths: []string{"eventType"}},
		{name: "eventType starts with digit", body: validObj().with("eventType", `"1click"`).json(), paths: []string{"eventType"}},
		{name: "eventType starts with underscore", body: validObj().with("eventType", `"_click"`).json(), paths: []string{"eventType"}},
		{name: "eventType starts with dot", body: validObj().with("eventType", `".click"`).json(), paths: []string{"eventType"}},
		{name: "eventType starts with dash", body: validObj().with("eventType", `"-click"`).json(), paths: []string{"eventType"}},
		{name: "eventType space", body: validObj().with("eventType", `"page view"`).json(), paths: []string{"eventType"}},
		{name: "eventType slash", body: validObj().with("eventType", `"page/view"`).json(), paths: []string{"eventType"}},
		{name: "eventType colon", body: validObj().with("eventType", `"page:view"`).json(), paths: []string{"eventType"}},
		{name: "eventType non-ASCII letter", body: validObj().with("eventType", `"café"`).json(), paths: []string{"eventType"}},
		{name: "eventType non-ASCII first", body: validObj().with("eventType", `"éclair"`).json(), paths: []string{"eventType"}},
		{name: "eventType trailing newline", body: validObj().with("eventType", `"click\n"`).json(), paths: []string{"eventType"}},
		{name: "eventType NUL", body: validObj().with("eventType", `"a\u0000"`).json(), paths: []string{"eventType"}},
		{name: "eventType number", body: validObj().with("eventType", `5`).json(), paths: []string{"eventType"}},
		{name: "eventType bool", body: validObj().with("eventType", `true`).json(), paths: []string{"eventType"}},
		{name: "eventType object", body: validObj().with("eventType", `{}`).json(), paths: []string{"eventType"}},
		{name: "eventType array", body: validObj().with("eventType", `["click"]`).json(), paths: []string{"eventType"}},

		// userId and sessionId count characters, not bytes
		{name: "userId 1 char", body: validObj().with("userId", `"u"`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.UserID, "u") }},
		{name: "userId single space", body: validObj().with("userId", `" "`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.UserID, " ") }},
		{name: "userId 128 ASCII", body: validObj().with("userId", q(s("u", 128))).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.UserID, s("u", 128)) }},
		{name: "userId 129 ASCII", body: validObj().with("userId", q(s("u", 129))).json(), paths: []string{"userId"}},
		{name: "userId 128 two-byte runes", body: validObj().with("userId", q(s("é", 128))).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.UserID, s("é", 128)) }},
		{name: "userId 129 two-byte runes", body: validObj().with("userId", q(s("é", 129))).json(), paths: []string{"userId"}},
		{name: "userId 128 four-byte runes", body: validObj().with("userId", q(s("😀", 128))).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.UserID, s("😀", 128)) }},
		{name: "userId 129 four-byte runes", body: validObj().with("userId", q(s("😀", 129))).json(), paths: []string{"userId"}},
		{name: "userId 128 escaped runes", body: validObj().with("userId", `"`+s(`\u00e9`, 128)+`"`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.UserID, s("é", 128)) }},
		{name: "userId 127 ASCII + 1 rune", body: validObj().with("userId", q(s("u", 127)+"日")).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.UserID, s("u", 127)+"日") }},
		{name: "userId 128 ASCII + 1 rune", body: validObj().with("userId", q(s("u", 128)+"日")).json(), paths: []string{"userId"}},
		{name: "userId empty", body: validObj().with("userId", `""`).json(), paths: []string{"userId"}},
		{name: "userId missing", body: validObj().without("userId").json(), paths: []string{"userId"}},
		{name: "userId null", body: validObj().with("userId", `null`).json(), paths: []string{"userId"}},
		{name: "userId number", body: validObj().with("userId", `123`).json(), paths: []string{"userId"}},
		{name: "userId object", body: validObj().with("userId", `{"id":1}`).json(), paths: []string{"userId"}},
		{name: "sessionId 128 two-byte runes", body: validObj().with("sessionId", q(s("ß", 128))).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.SessionID, s("ß", 128)) }},
		{name: "sessionId 129 two-byte runes", body: validObj().with("sessionId", q(s("ß", 129))).json(), paths: []string{"sessionId"}},
		{name: "sessionId 129 ASCII", body: validObj().with("sessionId", q(s("s", 129))).json(), paths: []string{"sessionId"}},
		{name: "sessionId empty", body: validObj().with("sessionId", `""`).json(), paths: []string{"sessionId"}},
		{name: "sessionId missing", body: validObj().without("sessionId").json(), paths: []string{"sessionId"}},
		{name: "sessionId bool", body: validObj().with("sessionId", `false`).json(), paths: []string{"sessionId"}},

		// timestamp
		{name: "timestamp with fraction", body: validObj().with("timestamp", `"2024-01-15T10:30:00.123Z"`).json(),
			check: wantTime(time.Date(2024, 1, 15, 10, 30, 0, 123_000_000, time.UTC))},
		{name: "timestamp with nanoseconds", body: validObj().with("timestamp", `"2024-01-15T10:30:00.123456789Z"`).json(),
			check: wantTime(time.Date(2024, 1, 15, 10, 30, 0, 123_456_789, time.UTC))},
		{name: "timestamp positive offset", body: validObj().with("timestamp", `"2024-01-15T10:30:00+02:00"`).json(),
			check: wantTime(time.Date(2024, 1, 15, 8, 30, 0, 0, time.UTC))},
		{name: "timestamp negative offset and fraction", body: validObj().with("timestamp", `"2024-01-15T23:30:00.5-05:30"`).json(),
			check: wantTime(time.Date(2024, 1, 16, 5, 0, 0, 500_000_000, time.UTC))},
		{name: "timestamp -00:00", body: validObj().with("timestamp", `"2024-01-15T10:30:00-00:00"`).json(),
			check: wantTime(time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC))},
		{name: "timestamp +23:59", body: validObj().with("timestamp", `"2024-01-15T10:30:00+23:59"`).json(),
			check: wantTime(time.Date(2024, 1, 14, 10, 31, 0, 0, time.UTC))},
		{name: "timestamp leap day", body: validObj().with("timestamp", `"2024-02-29T00:00:00Z"`).json(),
			check: wantTime(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC))},
		{name: "timestamp year 9999 UTC", body: validObj().with("timestamp", `"9999-12-31T23:59:59Z"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp month 13 date-time", body: validObj().with("timestamp", `"2024-13-01T00:00:00Z"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp month 13 date only", body: validObj().with("timestamp", `"2024-13-01"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp date only", body: validObj().with("timestamp", `"2024-01-15"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp yesterday", body: validObj().with("timestamp", `"yesterday"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp empty", body: validObj().with("timestamp", `""`).json(), paths: []string{"timestamp"}},
		{name: "timestamp no offset", body: validObj().with("timestamp", `"2024-01-15T10:30:00"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp offset without colon", body: validObj().with("timestamp", `"2024-01-15T10:30:00+0200"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp Feb 29 non-leap", body: validObj().with("timestamp", `"2023-02-29T00:00:00Z"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp hour 25", body: validObj().with("timestamp", `"2024-01-15T25:00:00Z"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp minute 60", body: validObj().with("timestamp", `"2024-01-15T10:60:00Z"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp one-digit hour", body: validObj().with("timestamp", `"2024-01-15T1:30:00Z"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp comma fraction", body: validObj().with("timestamp", `"2024-01-15T10:30:00,5Z"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp offset hour 24", body: validObj().with("timestamp", `"2024-01-15T10:30:00+24:00"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp offset minute 60", body: validObj().with("timestamp", `"2024-01-15T10:30:00+01:60"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp UTC year 10000", body: validObj().with("timestamp", `"9999-12-31T23:59:59-01:00"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp UTC year -1", body: validObj().with("timestamp", `"0000-01-01T00:00:00+00:01"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp leading space", body: validObj().with("timestamp", `" 2024-01-15T10:30:00Z"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp unix number", body: validObj().with("timestamp", `1705314600`).json(), paths: []string{"timestamp"}},
		{name: "timestamp unix millis string", body: validObj().with("timestamp", `"1705314600000"`).json(), paths: []string{"timestamp"}},
		{name: "timestamp missing", body: validObj().without("timestamp").json(), paths: []string{"timestamp"}},
		{name: "timestamp null", body: validObj().with("timestamp", `null`).json(), paths: []string{"timestamp"}},
		{name: "timestamp object", body: validObj().with("timestamp", `{"$date":"2024-01-15T10:30:00Z"}`).json(), paths: []string{"timestamp"}},

		// metadata and payload
		{name: "metadata object", body: validObj().with("metadata", `{"a":1,"b":{"c":[1,2]}}`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, string(e.Metadata), `{"a":1,"b":{"c":[1,2]}}`) }},
		{name: "metadata empty object", body: validObj().with("metadata", `{}`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, string(e.Metadata), `{}`) }},
		{name: "metadata null", body: validObj().with("metadata", `null`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.Metadata == nil, true) }},
		{name: "metadata array", body: validObj().with("metadata", `[1,2]`).json(), paths: []string{"metadata"}},
		{name: "metadata empty array", body: validObj().with("metadata", `[]`).json(), paths: []string{"metadata"}},
		{name: "metadata string", body: validObj().with("metadata", `"{}"`).json(), paths: []string{"metadata"}},
		{name: "metadata number", body: validObj().with("metadata", `42`).json(), paths: []string{"metadata"}},
		{name: "metadata bool", body: validObj().with("metadata", `false`).json(), paths: []string{"metadata"}},
		{name: "payload object", body: validObj().with("payload", `{"x":"y"}`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, string(e.Payload), `{"x":"y"}`) }},
		{name: "payload null", body: validObj().with("payload", `null`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.Payload == nil, true) }},
		{name: "payload array", body: validObj().with("payload", `[{"x":1}]`).json(), paths: []string{"payload"}},
		{name: "payload string", body: validObj().with("payload", `"x"`).json(), paths: []string{"payload"}},
		{name: "payload number", body: validObj().with("payload", `-1.5`).json(), paths: []string{"payload"}},

		// priority
		{name: "priority absent", body: validObj().json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.Priority, 1) }},
		{name: "priority null", body: validObj().with("priority", `null`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.Priority, 1) }},
		{name: "priority 0", body: validObj().with("priority", `0`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.Priority, 0) }},
		{name: "priority 5", body: validObj().with("priority", `5`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.Priority, 5) }},
		{name: "priority 10", body: validObj().with("priority", `10`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.Priority, 10) }},
		{name: "priority 11", body: validObj().with("priority", `11`).json(), paths: []string{"priority"}},
		{name: "priority -1", body: validObj().with("priority", `-1`).json(), paths: []string{"priority"}},
		{name: "priority 1.5", body: validObj().with("priority", `1.5`).json(), paths: []string{"priority"}},
		{name: "priority 0.1", body: validObj().with("priority", `0.1`).json(), paths: []string{"priority"}},
		{name: "priority 1e2", body: validObj().with("priority", `1e2`).json(), paths: []string{"priority"}},
		{name: "priority 1e400", body: validObj().with("priority", `1e400`).json(), paths: []string{"priority"}},
		{name: "priority huge integer", body: validObj().with("priority", `99999999999999999999999`).json(), paths: []string{"priority"}},
		{name: "priority string", body: validObj().with("priority", `"5"`).json(), paths: []string{"priority"}},
		{name: "priority true", body: validObj().with("priority", `true`).json(), paths: []string{"priority"}},
		{name: "priority false", body: validObj().with("priority", `false`).json(), paths: []string{"priority"}},
		{name: "priority array", body: validObj().with("priority", `[5]`).json(), paths: []string{"priority"}},
		{name: "priority object", body: validObj().with("priority", `{}`).json(), paths: []string{"priority"}},

		// eventId
		{name: "eventId given", body: validObj().with("eventId", `"my-event-1"`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.EventID, "my-event-1") }},
		{name: "eventId 1 char", body: validObj().with("eventId", `"x"`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.EventID, "x") }},
		{name: "eventId 128 ASCII", body: validObj().with("eventId", q(s("i", 128))).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.EventID, s("i", 128)) }},
		{name: "eventId 128 three-byte runes", body: validObj().with("eventId", q(s("日", 128))).json(),
			check: func(t *testing.T, e event.Event) { eq(t, e.EventID, s("日", 128)) }},
		{name: "eventId null is generated", body: validObj().with("eventId", `null`).json(),
			check: func(t *testing.T, e event.Event) { eq(t, generatedIDRE.MatchString(e.EventID), true) }},
		{name: "eventId 129 ASCII", body: validObj().with("eventId", q(s("i", 129))).json(), paths: []string{"eventId"}},
		{name: "eventId 129 three-byte runes", body: validObj().with("eventId", q(s("日", 129))).json(), paths: []string{"eventId"}},
		{name: "eventId empty", body: validObj().with("eventId", `""`).json(), paths: []string{"eventId"}},
		{name: "eventId number", body: validObj().with("eventId", `12345`).json(), paths: []string{"eventId"}},

		// unknown fields are ignored
		{name: "unknown fields", body: validObj().with("extra", `{"x":[1,2,{"y":null}]}`, "receivedAt", `"not a time"`, "n", `5`).json(),
			check: func(t *testing.T, e event.Event) {
				eq(t, e.EventType, "page_view")
				eq(t, e.ReceivedAt.Equal(testNow), true)
			}},
		{name: "whitespace around the body", body: append(append([]byte(" \n\t"), validObj().json()...), "\r\n "...),
			check: func(t *testing.T, e event.Event) { eq(t, e.UserID, "user-1") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := event.DecodeOne(tc.body, testNow)
			if tc.paths == nil {
				if err != nil {
					t.Fatalf("DecodeOne(%s) error: %v", tc.body, err)
				}
				checkAccepted(t, ev)
				if tc.check != nil {
					tc.check(t, ev)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeOne(%s) accepted %+v, want error on %q", tc.body, ev, tc.paths)
			}
			wantPaths(t, err, tc.paths...)
			if !reflect.DeepEqual(ev, event.Event{}) {
				t.Errorf("DecodeOne returned a non-zero event with its error: %+v", ev)
			}
		})
	}
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func wantTime(want time.Time) func(*testing.T, event.Event) {
	return func(t *testing.T, e event.Event) {
		t.Helper()
		if !e.Timestamp.Equal(want) {
			t.Errorf("Timestamp = %v, want %v", e.Timestamp, want)
		}
		if e.Timestamp.Location() != time.UTC {
			t.Errorf("Timestamp location = %v, want UTC", e.Timestamp.Location())
		}
	}
}

func TestDecodeOneTypeErrorReasons(t *testing.T) {
	_, err := event.DecodeOne(validObj().with("eventType", `5`).json(), testNow)
	wantPaths(t, err, "eventType")
	if r := reasonOf(t, err, "eventType"); !strings.Contains(r, "string") {
		t.Errorf("reason for eventType: 5 = %q, want it to say a string is expected", r)
	}
	_, err = event.DecodeOne(validObj().with("eventType", `""`).json(), testNow)
	if r := reasonOf(t, err, "eventType"); !strings.Contains(r, "empty") {
		t.Errorf("reason for empty eventType = %q", r)
	}
	_, err = event.DecodeOne(validObj().without("userId").json(), testNow)
	if r := reasonOf(t, err, "userId"); !strings.Contains(r, "required") {
		t.Errorf("reason for missing userId = %q", r)
	}
}

func TestDecodeOneAllFailuresReported(t *testing.T) {
	t.Run("fast path", func(t *testing.T) {
		body := []byte(`{"eventType":"1bad","userId":"","timestamp":"yesterday","metadata":[1],"payload":"x","priority":11,"eventId":""}`)
		_, err := event.DecodeOne(body, testNow)
		wantPaths(t, err, "eventType", "userId", "sessionId", "timestamp", "metadata", "payload", "priority", "eventId")
	})
	t.Run("slow path with type errors", func(t *testing.T) {
		body := []byte(`{"eventType":5,"userId":true,"sessionId":"","timestamp":1705314600,"metadata":[],"priority":"5","eventId":7}`)
		_, err := event.DecodeOne(body, testNow)
		wantPaths(t, err, "eventType", "userId", "sessionId", "timestamp", "metadata", "priority", "eventId")
	})
	t.Run("one type error among valid fields", func(t *testing.T) {
		_, err := event.DecodeOne(validObj().with("sessionId", `["s"]`).json(), testNow)
		wantPaths(t, err, "sessionId")
	})
	t.Run("type error plus rule errors", func(t *testing.T) {
		_, err := event.DecodeOne(validObj().with("eventType", `5`, "priority", `1.5`, "timestamp", `"2024-13-01"`).json(), testNow)
		wantPaths(t, err, "eventType", "priority", "timestamp")
	})
	t.Run("nothing at all", func(t *testing.T) {
		_, err := event.DecodeOne([]byte(`{}`), testNow)
		wantPaths(t, err, "eventType", "userId", "sessionId", "timestamp")
	})
}

func TestDecodeOneSyntaxErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		offset int64
	}{
		{"empty body", "", 0},
		{"only whitespace", " \n ", 3},
		{"unterminated object", `{"eventType":"a"`, 16},
		{"missing value", `{"eventType":}`, 14},
		{"single quotes", `{'eventType':'a'}`, 2},
		{"trailing garbage", `{"eventType":"a"} x`, 19},
		{"two objects", `{}{}`, 3},
		{"bare word", `nul`, 3},
		{"trailing comma", `{"eventType":"a",}`, 18},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := event.DecodeOne([]byte(tc.body), testNow)
			var se *event.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("DecodeOne(%q) error = %T %v, want *event.SyntaxError", tc.body, err, err)
			}
			if se.Offset != tc.offset {
				t.Errorf("Offset = %d, want %d", se.Offset, tc.offset)
			}
			if se.Msg == "" || !strings.Contains(se.Error(), "malformed JSON") {
				t.Errorf("Error() = %q", se.Error())
			}
			if !reflect.DeepEqual(ev, event.Event{}) {
				t.Errorf("non-zero event with a syntax error: %+v", ev)
			}
			evs, err := event.DecodeBatch([]byte(tc.body), testNow)
			if !errors.As(err, &se) || evs != nil {
				t.Errorf("DecodeBatch(%q) = %v, %T %v, want nil, *event.SyntaxError", tc.body, evs, err, err)
			}
		})
	}
}

func TestDecodeOneNotAnObject(t *testing.T) {
	for _, body := range []string{`[]`, `[` + string(validObj().json()) + `]`, `"page_view"`, `5`, `true`, ` [ ] `} {
		t.Run(body, func(t *testing.T) {
			ev, err := event.DecodeOne([]byte(body), testNow)
			var se *event.SyntaxError
			if errors.As(err, &se) {
				t.Fatalf("got SyntaxError %v for well-formed JSON", err)
			}
			wantPaths(t, err, "body")
			if !reflect.DeepEqual(ev, event.Event{}) {
				t.Errorf("non-zero event: %+v", ev)
			}
		})
	}
	t.Run("null", func(t *testing.T) {
		_, err := event.DecodeOne([]byte(`null`), testNow)
		errPaths(t, err) // a *ValidationError with at least one field
	})
}

func TestDecodeBatch(t *testing.T) {
	valid := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = userObj(i).json()
		}
		return out
	}
	setAt := func(evs [][]byte, i int, b []byte) [][]byte {
		evs[i] = b
		return evs
	}
	bad := validObj().with("timestamp", `"yesterday"`).json()

	tests := []struct {
		name  string
		body  []byte
		paths []string // nil: accepted
		n     int      // events when accepted
	}{
		{name: "one event", body: batch(validObj().json()), n: 1},
		{name: "three events", body: batch(valid(3)...), n: 3},
		{name: "1000 events", body: batch(valid(1000)...), n: 1000},
		{name: "unknown top-level fields", body: []byte(`{"source":"sdk","events":[` + string(validObj().json()) + `],"n":[1]}`), n: 1},
		{name: "1001 events", body: batch(valid(1001)...), paths: []string{"events"}},
		{name: "1001 events with a type error", body: batch(setAt(valid(1001), 5, []byte(`7`))...), paths: []string{"events"}},
		{name: "missing events", body: []byte(`{}`), paths: []string{"events"}},
		{name: "misspelled events", body: []byte(`{"event":[` + string(validObj().json()) + `]}`), paths: []string{"events"}},
		{name: "events null", body: []byte(`{"events":null}`), paths: []string{"events"}},
		{name: "events object", body: []byte(`{"events":` + string(validObj().json()) + `}`), paths: []string{"events"}},
		{name: "events string", body: []byte(`{"events":"[]"}`), paths: []string{"events"}},
		{name: "events number", body: []byte(`{"events":3}`), paths: []string{"events"}},
		{name: "events bool", body: []byte(`{"events":true}`), paths: []string{"events"}},
		{name: "events empty array", body: []byte(`{"events":[]}`), paths: []string{"events"}},
		{name: "bad timestamp at index 3", body: batch(setAt(valid(5), 3, bad)...), paths: []string{"events[3].timestamp"}},
		{name: "every bad index named",
			body: batch(setAt(setAt(setAt(valid(6), 0, validObj().with("eventType", `"9x"`).json()),
				2, validObj().without("userId", "sessionId").json()),
				4, validObj().with("priority", `11`).json())...),
			paths: []string{"events[0].eventType", "events[2].userId", "events[2].sessionId", "events[4].priority"}},
		{name: "multi-digit index", body: batch(setAt(valid(15), 12, bad)...), paths: []string{"events[12].timestamp"}},
		{name: "last of 1000 bad", body: batch(setAt(valid(1000), 999, bad)...), paths: []string{"events[999].timestamp"}},
		{name: "all bad", body: batch(bad, bad), paths: []string{"events[0].timestamp", "events[1].timestamp"}},
		{name: "element null", body: batch(validObj().json(), []byte(`null`)),
			paths: []string{"events[1].eventType", "events[1].userId", "events[1].sessionId", "events[1].timestamp"}},
		// A wrong JSON type anywhere sends the batch down the slow path, which must still
		// name every bad index, not only the one with the type error.
		{name: "slow: element is a number", body: batch(setAt(setAt(valid(5), 1, []byte(`42`)), 3, bad)...),
			paths: []string{"events[1]", "events[3].timestamp"}},
		{name: "slow: element is a string", body: batch(setAt(valid(3), 2, []byte(`"event"`))...), paths: []string{"events[2]"}},
		{name: "slow: element is an array", body: batch(validObj().json(), []byte(`[1]`)), paths: []string{"events[1]"}},
		{name: "slow: eventType 5", body: batch(setAt(setAt(valid(4), 0, bad), 2, validObj().with("eventType", `5`).json())...),
			paths: []string{"events[0].timestamp", "events[2].eventType"}},
		{name: "slow: several type errors in one element",
			body:  batch(setAt(valid(3), 1, validObj().with("userId", `1`, "sessionId", `{}`, "priority", `"1"`).json())...),
			paths: []string{"events[1].userId", "events[1].sessionId", "events[1].priority"}},
		{name: "slow: element null", body: batch([]byte(`null`), validObj().with("eventId", `5`).json()),
			paths: []string{"events[0].eventType", "events[0].userId", "events[0].sessionId", "events[0].timestamp", "events[1].eventId"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := event.DecodeBatch(tc.body, testNow)
			if tc.paths == nil {
				if err != nil {
					t.Fatalf("DecodeBatch error: %v", err)
				}
				if len(evs) != tc.n {
					t.Fatalf("got %d events, want %d", len(evs), tc.n)
				}
				ids := map[string]bool{}
				for i, ev := range evs {
					checkAccepted(t, ev)
					if tc.n > 1 && ev.UserID != fmt.Sprintf("u%d", i) {
						t.Errorf("event %d has userId %q: order not kept", i, ev.UserID)
					}
					if !generatedIDRE.MatchString(ev.EventID) || ids[ev.EventID] {
						t.Errorf("event %d: generated id %q is malformed or repeated", i, ev.EventID)
					}
					ids[ev.EventID] = true
				}
				return
			}
			if evs != nil {
				t.Errorf("DecodeBatch returned %d events with an error; want none (all-or-nothing)", len(evs))
			}
			if err == nil {
				t.Fatalf("DecodeBatch accepted the batch, want error on %q", tc.paths)
			}
			wantPaths(t, err, tc.paths...)
		})
	}
}

func TestDecodeBatchNotAnObject(t *testing.T) {
	for _, body := range []string{`[` + string(validObj().json()) + `]`, `"events"`, `12`, `false`} {
		evs, err := event.DecodeBatch([]byte(body), testNow)
		var se *event.SyntaxError
		if evs != nil || errors.As(err, &se) {
			t.Fatalf("DecodeBatch(%s) = %v, %v; want no events and a validation error", body, evs, err)
		}
		wantPaths(t, err, "body") // as DecodeOne names it
	}
}

func TestDecodeBatchLimits(t *testing.T) {
	evs := make([][]byte, event.MaxBatch+1)
	for i := range evs {
		evs[i] = validObj().json()
	}
	_, err := event.DecodeBatch(batch(evs...), testNow)
	if r := reasonOf(t, err, "events"); !strings.Contains(r, "1000") || !strings.Contains(r, "1001") {
		t.Errorf("reason for 1001 events = %q, want it to name the limit and the count", r)
	}
	_, err = event.DecodeBatch([]byte(`{"events":[]}`), testNow)
	if r := reasonOf(t, err, "events"); !strings.Contains(r, "1") {
		t.Errorf("reason for an empty batch = %q", r)
	}
}

func TestDecodeBatchFieldValues(t *testing.T) {
	body := batch(
		validObj().with("eventId", `"a"`, "priority", `0`, "timestamp", `"2024-01-15T10:30:00+01:00"`, "payload", `{"x":1}`).json(),
		validObj().with("eventType", `"b.c"`, "metadata", `{"m":true}`).json(),
	)
	evs, err := event.DecodeBatch(body, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := []event.Event{
		{EventID: "a", EventType: "page_view", UserID: "user-1", SessionID: "sess-1",
			Timestamp: time.Date(2024, 1, 15, 9, 30, 0, 0, time.UTC), Payload: json.RawMessage(`{"x":1}`),
			Priority: 0, ReceivedAt: testNow, Source: event.SourceAPI},
		{EventID: evs[1].EventID, EventType: "b.c", UserID: "user-1", SessionID: "sess-1",
			Timestamp: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), Metadata: json.RawMessage(`{"m":true}`),
			Priority: 1, ReceivedAt: testNow, Source: event.SourceAPI},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("DecodeBatch =\n%+v\nwant\n%+v", evs, want)
	}
	if !generatedIDRE.MatchString(evs[1].EventID) {
		t.Errorf("generated id %q", evs[1].EventID)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	ev := decodeOK(t, validObj().with("metadata", `{"a": [1, 2]}`, "payload", `{"b":"<&>"}`, "priority", `9`,
		"timestamp", `"2024-01-15T10:30:00.987654321-03:00"`).json())
	data, err := event.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	var got event.Event
	if err := event.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.EventID != ev.EventID || got.EventType != ev.EventType || got.UserID != ev.UserID ||
		got.SessionID != ev.SessionID || got.Priority != 9 || !got.Timestamp.Equal(ev.Timestamp) ||
		!got.ReceivedAt.Equal(testNow) {
		t.Errorf("round trip =\n%+v\nwant\n%+v", got, ev)
	}
	var m, p any
	if json.Unmarshal(got.Metadata, &m) != nil || json.Unmarshal(got.Payload, &p) != nil ||
		!reflect.DeepEqual(m, map[string]any{"a": []any{1.0, 2.0}}) || !reflect.DeepEqual(p, map[string]any{"b": "<&>"}) {
		t.Errorf("metadata/payload after round trip: %s %s", got.Metadata, got.Payload)
	}
	if !bytes.Contains(data, []byte(`"timestamp":"2024-01-15T13:30:00.987654321Z"`)) {
		t.Errorf("Marshal = %s, want the timestamp in UTC", data)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := event.NewID()
		if !generatedIDRE.MatchString(id) {
			t.Fatalf("NewID() = %q", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
		// ULIDs from one process are time ordered; the random part only breaks ties within
		// a millisecond, so compare the 10-character time prefix.
		if id[4:14] < prev {
			t.Fatalf("NewID() = %q went back in time after %q", id, prev)
		}
		prev = id[4:14]
	}
}
