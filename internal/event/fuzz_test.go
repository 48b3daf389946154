package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/evp-dev/evp/internal/event"
)

// The fuzz target checks the decoder against an oracle written here from the contract alone:
// it walks the body with json.Decoder tokens, applies each rule itself (regexps, rune counts,
// a hand-written RFC 3339 parser) and predicts both the accepted event and the exact set of
// failing paths. The decoder must agree with it on every input.

var (
	// rfc3339RE is the date-time production of RFC 3339 section 5.6 (upper-case T and Z).
	rfc3339RE = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))$`)
	// jsonNumberRE is the number production of RFC 8259.
	jsonNumberRE = regexp.MustCompile(`^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$`)
	// batchPathRE matches every path DecodeBatch may report.
	batchPathRE = regexp.MustCompile(`^(?:body|events|events\[(?:0|[1-9][0-9]*)\](?:\.(?:eventType|userId|sessionId|timestamp|metadata|payload|priority|eventId))?)$`)
)

var contractFields = []string{"eventType", "userId", "sessionId", "timestamp", "metadata", "payload", "priority", "eventId"}

// expectation is what the oracle predicts for one event body.
type expectation struct {
	failing []string // sorted failing paths; empty when the event is valid
	ev      event.Event
	genID   bool // eventId absent: the decoder must generate one
}

// oracle judges a well-formed JSON body. Like encoding/json, it matches keys
// case-insensitively and lets the last occurrence of a key win; null counts as absent.
// A body whose fields nest deeper than 64 levels or hold text that is not valid UTF-8 fails
// on those fields alone (unknown fields on "body").
func oracle(t testing.TB, body []byte) expectation {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a top-level 1e999 is well-formed JSON
	tok, err := dec.Token()
	if err != nil {
		t.Fatalf("oracle: body %q: %v", body, err)
	}
	last := map[string]json.RawMessage{}
	refused := map[string]bool{}
	switch tok {
	case nil: // null: decodes as an empty object
	case json.Delim('{'):
		for dec.More() {
			from := dec.InputOffset()
			kt, err := dec.Token()
			if err != nil {
				t.Fatalf("oracle: key: %v", err)
			}
			rawKey := body[from:dec.InputOffset()] // the key with the separators before it
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("oracle: value: %v", err)
			}
			field := "body"
			for _, name := range contractFields {
				if strings.EqualFold(kt.(string), name) {
					last[name] = raw
					field = name
				}
			}
			if nesting(raw) > 64 || badText(rawKey) || badText(raw) {
				refused[field] = true
			}
		}
	default:
		return expectation{failing: []string{"body"}}
	}
	if len(refused) > 0 {
		var x expectation
		for f := range refused {
			x.failing = append(x.failing, f)
		}
		sort.Strings(x.failing)
		return x
	}
	for k, v := range last {
		if string(v) == "null" {
			delete(last, k)
		}
	}

	var x expectation
	fail := func(f string) { x.failing = append(x.failing, f) }
	str := func(name string) (string, bool) {
		raw, ok := last[name]
		if !ok || raw[0] != '"' {
			return "", false
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("oracle: string %s: %v", raw, err)
		}
		return s, true
	}
	idOK := func(s string) bool {
		n := utf8.RuneCountInString(s)
		return n >= 1 && n <= 128
	}

	if s, ok := str("eventType"); ok && len(s) >= 1 && len(s) <= 100 && eventTypeRE.MatchString(s) {
		x.ev.EventType = s
	} else {
		fail("eventType")
	}
	if s, ok := str("userId"); ok && idOK(s) {
		x.ev.UserID = s
	} else {
		fail("userId")
	}
	if s, ok := str("sessionId"); ok && idOK(s) {
		x.ev.SessionID = s
	} else {
		fail("sessionId")
	}
	if s, ok := str("timestamp"); !ok {
		fail("timestamp")
	} else if ts, ok := parseRFC3339(s); ok {
		x.ev.Timestamp = ts
	} else {
		fail("timestamp")
	}
	for _, name := range []string{"metadata", "payload"} {
		raw, ok := last[name]
		switch {
		case !ok:
		case raw[0] != '{':
			fail(name)
		case name == "metadata":
			x.ev.Metadata = raw
		default:
			x.ev.Payload = raw
		}
	}
	x.ev.Priority = 1
	if raw, ok := last["priority"]; ok {
		// JSON numbers are compared by value, as JavaScript clients see them: 5.0 is 5.
		f, err := strconv.ParseFloat(string(raw), 64)
		if !jsonNumberRE.Match(raw) || err != nil || f != float64(int(f)) || f < 0 || f > 10 {
			fail("priority")
		} else {
			x.ev.Priority = int(f)
		}
	}
	if _, present := last["eventId"]; !present {
		x.genID = true
	} else if s, ok := str("eventId"); ok && idOK(s) {
		x.ev.EventID = s
	} else {
		fail("eventId")
	}
	x.ev.ReceivedAt, x.ev.Source = testNow, event.SourceAPI
	sort.Strings(x.failing)
	return x
}

// nesting returns how many objects and arrays the JSON text raw nests (0 for a scalar).
func nesting(raw []byte) int {
	depth, most, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			most = max(most, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return most
}

// badText reports whether the JSON text raw holds a string that encoding/json would change
// to U+FFFD: invalid UTF-8, or a \u escape of a surrogate that is not half of a pair. Every
// backslash of well-formed JSON starts an escape in a string.
func badText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return true
	}
	unit := func(i int) rune { // the code unit of the \u escape at raw[i], or -1
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return -1
		}
		n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		if err != nil {
			return -1
		}
		return rune(n)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r := unit(i)
		switch {
		case r < 0:
			i++ // a one-character escape
		case !utf16.IsSurrogate(r):
			i += 5
		case utf16.DecodeRune(r, unit(i+6)) != utf8.RuneError:
			i += 11
		default:
			return true
		}
	}
	return false
}

// parseRFC3339 parses s by the RFC 3339 grammar without package time's parser and returns the
// instant in UTC. It refuses instants outside 1678-01-01T00:00:00Z to
// 2261-12-31T23:59:59.999999999Z, the whole years int64 nanoseconds since 1970 can hold.
func parseRFC3339(s string) (time.Time, bool) {
	m := rfc3339RE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	year, month, day, hour, minute, sec := n(1), n(2), n(3), n(4), n(5), n(6)
	days := []int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days[1] = 29
	}
	// Leap seconds (second 60) are refused: Go cannot represent them.
	if month < 1 || month > 12 || day < 1 || day > days[month-1] || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	frac := m[7]
	if len(frac) > 9 {
		frac = frac[:9] // nanosecond precision, truncated
	}
	frac += strings.Repeat("0", 9-len(frac))
	nsec, _ := strconv.Atoi(frac)
	ts := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if m[8] != "Z" {
		oh, om := n(10), n(11)
		if oh > 23 || om > 59 {
			return time.Time{}, false
		}
		off := time.Duration(oh)*time.Hour + time.Duration(om)*time.Minute
		if m[9] == "+" {
			off = -off
		}
		ts = ts.Add(off)
	}
	if ts.Year() < 1678 || ts.Year() > 2261 {
		return time.Time{}, false
	}
	return ts, true
}

// checkMatches checks an accepted event against the oracle's prediction.
func checkMatches(t *testing.T, where string, got event.Event, x expectation) {
	t.Helper()
	want := x.ev
	if x.genID {
		if !generatedIDRE.MatchString(got.EventID) {
			t.Fatalf("%s: generated eventId %q is not evt_ + ULID", where, got.EventID)
		}
		want.EventID = got.EventID
	}
	if got.Timestamp.Location() != time.UTC || !got.Timestamp.Equal(want.Timestamp) {
		t.Fatalf("%s: Timestamp = %v, want %v in UTC", where, got.Timestamp, want.Timestamp)
	}
	want.Timestamp = got.Timestamp
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: event =\n%+v\nwant\n%+v", where, got, want)
	}
	checkAccepted(t, got)

	// The accepted event must survive the buffer's encoding, written as encoding/json
	// writes it.
	sameEncoding(t, got)
	data, err := event.Marshal(&got)
	if err != nil {
		t.Fatalf("%s: Marshal(%+v): %v", where, got, err)
	}
	var back event.Event
	if err := event.Unmarshal(data, &back); err != nil {
		t.Fatalf("%s: Unmarshal(%s): %v", where, data, err)
	}
	if back.EventID != got.EventID || back.EventType != got.EventType || back.UserID != got.UserID ||
		back.SessionID != got.SessionID || back.Priority != got.Priority ||
		!back.Timestamp.Equal(got.Timestamp) || !back.ReceivedAt.Equal(got.ReceivedAt) ||
		!sameJSON(back.Metadata, got.Metadata) || !sameJSON(back.Payload, got.Payload) {
		t.Fatalf("%s: round trip through Marshal changed the event:\n%+v\n%+v", where, got, back)
	}
}

// sameJSON reports whether a and b hold the same JSON value (both absent counts as same).
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&va) == nil && db.Decode(&vb) == nil && reflect.DeepEqual(va, vb)
}

// sortedPaths returns the sorted paths of err, which must be a *ValidationError with at least
// one field, each with a reason.
func sortedPaths(t *testing.T, where string, err error) []string {
	t.Helper()
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%s: error %T %v, want *event.ValidationError", where, err, err)
	}
	if len(ve.Fields) == 0 {
		t.Fatalf("%s: ValidationError without fields", where)
	}
	paths := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		if f.Reason == "" {
			t.Fatalf("%s: field %q without a reason", where, f.Path)
		}
		paths[i] = f.Path
	}
	sort.Strings(paths)
	return paths
}

func isSyntaxError(err error) bool {
	var se *event.SyntaxError
	return errors.As(err, &se) && se.Msg != "" && se.Offset >= 0
}

// beyondStdDepth reports whether encoding/json refuses data for nesting deeper than it parses.
func beyondStdDepth(data []byte) bool {
	var v any
	err := json.Unmarshal(data, &v)
	return err != nil && strings.Contains(err.Error(), "exceeded max depth")
}

func FuzzDecode(f *testing.F) {
	seeds := []string{
		string(validObj().json()),
		`{"eventType":"checkout.completed","userId":"user_42","sessionId":"sess_9","timestamp":"2024-01-15T10:30:00.123+02:00","metadata":{"a":1},"payload":{"b":[true,null]},"priority":10,"eventId":"id-1"}`,
		`{"eventType":"a","userId":"é","sessionId":"😀","timestamp":"2024-02-29T23:59:59.999999999-23:59","priority":0,"eventId":null,"metadata":null,"payload":{}}`,
		`{"EVENTTYPE":"a","userid":"u","SessionId":"s","timeStamp":"2024-01-15T10:30:00Z","PRIORITY":1.0}`,
		`{"eventType":5,"userId":true,"sessionId":"","timestamp":1705314600,"metadata":[],"priority":"5","eventId":7}`,
		`{"eventType":"1bad","userId":"","timestamp":"yesterday","metadata":[1],"payload":"x","priority":11,"eventId":""}`,
		`{"eventType":"a","eventType":5,"userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`,
		`{"eventType":5,"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T1:30:00,5+24:00"}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"9999-12-31T23:59:59-01:00","priority":1e-400}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-13-01","priority":1.5}`,
		`{"events":[` + string(validObj().json()) + `,` + string(validObj().with("eventId", `"x"`).json()) + `]}`,
		`{"events":[` + string(validObj().json()) + `,42,null,{"eventType":5}]}`,
		`{"events":[{"eventType":"a","userId":"u","sessionId":"s","timestamp":"yesterday"}]}`,
		`{"events":[]}`,
		`{"events":{}}`,
		`{"events":null}`,
		`{}`,
		`[]`,
		`"page_view"`,
		`null`,
		`5`,
		``,
		`{`,
		`{"eventType":}`,
		"{\"eventType\":\"a\xff\",\"userId\":\"\xed\xa0\x80\",\"sessionId\":\"s\",\"timestamp\":\"2024-01-15T10:30:00Z\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		valid := json.Valid(data)
		if !valid && beyondStdDepth(data) {
			// encoding/json cannot judge it, nor the oracle: the decoder must still refuse it.
			if ev, err := event.DecodeOne(data, testNow); err == nil || !reflect.DeepEqual(ev, event.Event{}) {
				t.Fatalf("DecodeOne accepted a body nested beyond 10,000 levels: %+v, %v", ev, err)
			}
			if evs, err := event.DecodeBatch(data, testNow); err == nil || evs != nil {
				t.Fatalf("DecodeBatch accepted a body nested beyond 10,000 levels: %d events, %v", len(evs), err)
			}
			return
		}

		// DecodeOne: exactly one of event and error.
		ev, err := event.DecodeOne(data, testNow)
		if !bytes.Equal(data, orig) {
			t.Fatalf("DecodeOne modified its input")
		}
		var x expectation
		if valid {
			x = oracle(t, data)
		}
		switch {
		case !valid:
			if !isSyntaxError(err) {
				t.Fatalf("DecodeOne(%q) = %+v, %v; want a *SyntaxError for malformed JSON", data, ev, err)
			}
			if !reflect.DeepEqual(ev, event.Event{}) {
				t.Fatalf("DecodeOne returned an event with its error: %+v", ev)
			}
		case err != nil:
			if !reflect.DeepEqual(ev, event.Event{}) {
				t.Fatalf("DecodeOne returned an event with its error %v: %+v", err, ev)
			}
			got := sortedPaths(t, "DecodeOne", err)
			if !slices.Equal(got, x.failing) {
				t.Fatalf("DecodeOne(%q) failing paths = %q, oracle says %q", data, got, x.failing)
			}
		default:
			if len(x.failing) > 0 {
				t.Fatalf("DecodeOne(%q) accepted %+v; oracle says %q fail", data, ev, x.failing)
			}
			checkMatches(t, "DecodeOne", ev, x)
		}

		// DecodeBatch on the raw input.
		evs, err := event.DecodeBatch(data, testNow)
		if !bytes.Equal(data, orig) {
			t.Fatalf("DecodeBatch modified its input")
		}
		switch {
		case err != nil:
			if evs != nil {
				t.Fatalf("DecodeBatch returned %d events with its error %v", len(evs), err)
			}
			if !valid {
				if !isSyntaxError(err) {
					t.Fatalf("DecodeBatch(%q): %T %v, want *SyntaxError", data, err, err)
				}
				break
			}
			for _, p := range sortedPaths(t, "DecodeBatch", err) {
				if !batchPathRE.MatchString(p) {
					t.Fatalf("DecodeBatch(%q): unexpected path %q", data, p)
				}
			}
		default:
			if !valid {
				t.Fatalf("DecodeBatch accepted malformed JSON %q", data)
			}
			if len(evs) < 1 || len(evs) > event.MaxBatch {
				t.Fatalf("DecodeBatch accepted %d events", len(evs))
			}
			for _, e := range evs {
				checkAccepted(t, e)
				if d, err := event.Marshal(&e); err != nil {
					t.Fatalf("Marshal(%+v) of a batch event: %v (%s)", e, err, d)
				}
				sameEncoding(t, e)
			}
		}

		// The input as the only element of a batch must be judged exactly as DecodeOne
		// judged it, with paths under events[0].
		if !valid {
			return
		}
		wrapped := batch(data)
		evs, err = event.DecodeBatch(wrapped, testNow)
		if err != nil {
			if evs != nil {
				t.Fatalf("DecodeBatch returned events with its error")
			}
			got := sortedPaths(t, "DecodeBatch(wrapped)", err)
			want := make([]string, len(x.failing))
			for i, p := range x.failing {
				if p == "body" {
					want[i] = "events[0]"
				} else {
					want[i] = "events[0]." + p
				}
			}
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Fatalf("DecodeBatch(%s) paths = %q, want %q", wrapped, got, want)
			}
			return
		}
		if len(x.failing) > 0 || len(evs) != 1 {
			t.Fatalf("DecodeBatch(%s) accepted %d events; oracle says %q fail", wrapped, len(evs), x.failing)
		}
		checkMatches(t, "DecodeBatch(wrapped)", evs[0], x)
	})
}
