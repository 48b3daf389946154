package event_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// nested returns a JSON value with exactly levels levels of objects and arrays, the value
// itself at level 1: {"a":[[...]]}.
func nested(levels int) string {
	return `{"a":` + strings.Repeat("[", levels-1) + strings.Repeat("]", levels-1) + `}`
}

// shapes are the same event as bodies for the fast path and for the general path: an
// unknown key, or an escape in a string, makes the fast path give up.
var shapes = map[string]func(obj) obj{
	"fast":            func(o obj) obj { return o },
	"unknown key":     func(o obj) obj { return o.with("source", `"sdk"`) },
	"escaped userId":  func(o obj) obj { return o.with("userId", `"user\u002d1"`) },
	"key in new case": func(o obj) obj { return o.without("sessionId").with("SessionID", `"sess-1"`) },
}

// judge decodes body alone and as events[3] of a batch of five, and checks that both refuse
// it on exactly paths (with "events[3]." before them in the batch), with a reason containing
// want, or accept it when paths is empty.
func judge(t *testing.T, body []byte, want string, paths ...string) {
	t.Helper()
	ev, err := event.DecodeOne(body, testNow)
	if len(paths) == 0 {
		if err != nil {
			t.Fatalf("DecodeOne(%.200s): %v", body, err)
		}
		checkAccepted(t, ev)
	} else {
		if err == nil {
			t.Fatalf("DecodeOne(%.200s) accepted it, want %q refused", body, paths)
		}
		wantPaths(t, err, paths...)
		for _, p := range paths {
			if r := reasonOf(t, err, p); !strings.Contains(r, want) {
				t.Errorf("reason for %s = %q, want it to say %q", p, r, want)
			}
		}
	}
	others := [][]byte{userObj(0).json(), userObj(1).json(), userObj(2).json(), body, userObj(4).json()}
	evs, err := event.DecodeBatch(batch(others...), testNow)
	if len(paths) == 0 {
		if err != nil || len(evs) != 5 {
			t.Fatalf("DecodeBatch: %d events, %v", len(evs), err)
		}
		return
	}
	var inBatch []string
	for _, p := range paths {
		if p == "body" {
			inBatch = append(inBatch, "events[3]")
		} else {
			inBatch = append(inBatch, "events[3]."+p)
		}
	}
	if evs != nil || err == nil {
		t.Fatalf("DecodeBatch accepted %d events, want %q refused", len(evs), inBatch)
	}
	wantPaths(t, err, inBatch...)
}

func TestDepthLimit(t *testing.T) {
	if event.MaxDepth != 64 {
		t.Fatalf("MaxDepth = %d, the API document says 64", event.MaxDepth)
	}
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			for _, field := range []string{"metadata", "payload"} {
				judge(t, shape(validObj().with(field, nested(64))).json(), "")
				judge(t, shape(validObj().with(field, nested(65))).json(), "64 levels", field)
				judge(t, shape(validObj().with(field, `{"a":{"b":`+nested(63)+`}}`)).json(), "64 levels", field)
			}
			judge(t, shape(validObj().with("metadata", nested(65), "payload", nested(100))).json(), "64 levels", "metadata", "payload")
			// Another field nested too deep is named, even when its value is refused anyway.
			judge(t, shape(validObj().with("eventId", "["+nested(64)+"]")).json(), "64 levels", "eventId")
			judge(t, shape(validObj().with("eventId", nested(64))).json(), "string", "eventId")
			// Nesting is judged before the other rules: only the deep field is named.
			judge(t, shape(validObj().with("metadata", nested(65), "timestamp", `"yesterday"`)).json(), "64 levels", "metadata")
		})
	}
	t.Run("unknown fields", func(t *testing.T) {
		judge(t, validObj().with("extra", nested(64)).json(), "")
		judge(t, validObj().with("extra", nested(65)).json(), `field "extra"`, "body")
		judge(t, validObj().with("extra", nested(65), "more", nested(70)).json(), `field "extra"`, "body")
		judge(t, validObj().with("METADATA", nested(65)).json(), "64 levels", "metadata")
	})
	t.Run("batch body", func(t *testing.T) {
		ok := validObj().json()
		for _, c := range []struct {
			body string
			path string
		}{
			{`{"events":[` + string(ok) + `],"extra":` + nested(65) + `}`, "body"},
			{`{"extra":` + nested(65) + `,"events":[` + string(ok) + `]}`, "body"},
			{`{"events":` + nested(65) + `}`, "events"},
			{`{"events":[` + string(ok) + `,` + strings.Repeat("[", 66) + strings.Repeat("]", 66) + `]}`, "events[1]"},
			{`[` + nested(65) + `]`, "body"},
		} {
			evs, err := event.DecodeBatch([]byte(c.body), testNow)
			if evs != nil {
				t.Fatalf("DecodeBatch(%.100s) accepted it", c.body)
			}
			wantPaths(t, err, c.path)
		}
		// An element that is not an object is level 0, as an event is.
		evs, err := event.DecodeBatch([]byte(`{"events":[`+string(ok)+`,`+strings.Repeat("[", 66)+strings.Repeat("]", 66)+`]}`), testNow)
		if evs != nil || !strings.Contains(reasonOf(t, err, "events[1]"), "64 levels") {
			t.Fatalf("DecodeBatch with a deep element: %v", err)
		}
		_, err = event.DecodeBatch([]byte(`{"events":[`+string(ok)+`,`+strings.Repeat("[", 65)+strings.Repeat("]", 65)+`]}`), testNow)
		if r := reasonOf(t, err, "events[1]"); !strings.Contains(r, "object") {
			t.Fatalf("DecodeBatch with an element 64 levels deep: %v, want it refused as not an object", err)
		}
	})
	t.Run("not an object", func(t *testing.T) {
		_, err := event.DecodeOne([]byte(strings.Repeat("[", 66)+strings.Repeat("]", 66)), testNow)
		if r := reasonOf(t, err, "body"); !strings.Contains(r, "64 levels") {
			t.Fatalf("reason = %q", r)
		}
		_, err = event.DecodeOne([]byte(strings.Repeat("[", 65)+strings.Repeat("]", 65)), testNow)
		if r := reasonOf(t, err, "body"); !strings.Contains(r, "object") {
			t.Fatalf("reason = %q", r)
		}
	})
}

// TestDepthLimitHostile decodes a body deep enough to overflow a recursive decoder's stack:
// 2,000,000 levels in 4 MB.
func TestDepthLimitHostile(t *testing.T) {
	const levels = 2_000_000
	deep := strings.Repeat("[", levels) + strings.Repeat("]", levels)
	one := validObj().with("metadata", `{"a":`+deep+`}`).json()
	_, err := event.DecodeOne(one, testNow)
	wantPaths(t, err, "metadata")
	evs, err := event.DecodeBatch(batch(validObj().json(), one), testNow)
	if evs != nil {
		t.Fatal("DecodeBatch accepted it")
	}
	wantPaths(t, err, "events[1].metadata")
	evs, err = event.DecodeBatch([]byte(`{"events":[`+string(validObj().json())+`],"x":`+deep+`}`), testNow)
	if evs != nil {
		t.Fatal("DecodeBatch accepted it")
	}
	wantPaths(t, err, "body")

	// Malformed after the nesting: still a syntax error, never a crash.
	for _, body := range []string{`{"metadata":` + strings.Repeat("[", levels), `{"metadata":{"a":` + deep + `}`} {
		var se *event.SyntaxError
		if _, err := event.DecodeOne([]byte(body), testNow); !errors.As(err, &se) {
			t.Errorf("DecodeOne(malformed, %d bytes) = %v, want a *SyntaxError", len(body), err)
		}
		if _, err := event.DecodeBatch([]byte(`{"events":[`+body), testNow); !errors.As(err, &se) {
			t.Errorf("DecodeBatch(malformed, %d bytes) = %v, want a *SyntaxError", len(body), err)
		}
	}
}

func TestTimestampRange(t *testing.T) {
	// now + 2^64 ns: its UnixNano wraps around to now's.
	wrap := time.Now().UTC().Add(math.MaxInt64).Add(math.MaxInt64).Add(2)
	cases := []struct {
		ts   string
		want time.Time // zero: refused
	}{
		{"1677-12-31T23:59:59.999999999Z", time.Time{}},
		{"1678-01-01T00:00:00Z", time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"1678-01-01T00:59:59+01:00", time.Time{}},
		{"1677-12-31T23:00:00-01:00", time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2261-12-31T23:59:59.999999999Z", time.Date(2261, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},
		{"2262-01-01T00:00:00Z", time.Time{}},
		{"2261-12-31T23:59:00-00:01", time.Time{}},
		{"2262-01-01T00:30:00+01:00", time.Date(2261, 12, 31, 23, 30, 0, 0, time.UTC)},
		{"2300-01-01T00:00:00Z", time.Time{}},
		{"1600-01-01T00:00:00Z", time.Time{}},
		{"0001-01-01T00:00:00Z", time.Time{}},
		{"9999-12-31T23:59:59Z", time.Time{}},
		{wrap.Format(time.RFC3339Nano), time.Time{}},
	}
	for name, shape := range shapes {
		for _, c := range cases {
			o := shape(validObj().with("timestamp", q(c.ts)))
			if c.want.IsZero() {
				judge(t, o.json(), "from 1678-01-01T00:00:00Z to 2261-12-31T23:59:59.999999999Z", "timestamp")
				continue
			}
			judge(t, o.json(), "")
			ev := decodeOK(t, o.json())
			if !ev.Timestamp.Equal(c.want) || !time.Unix(0, ev.Timestamp.UnixNano()).Equal(ev.Timestamp) {
				t.Errorf("%s: %s decoded as %v, want %v held exactly in nanoseconds", name, c.ts, ev.Timestamp, c.want)
			}
		}
	}
	if r := event.TimeRangeReason; !strings.Contains(r, event.MinTime.Format(time.RFC3339Nano)) || !strings.Contains(r, event.MaxTime.Format(time.RFC3339Nano)) {
		t.Errorf("TimeRangeReason %q does not state MinTime and MaxTime", r)
	}
	if !event.TimeInRange(event.MinTime) || !event.TimeInRange(event.MaxTime) ||
		event.TimeInRange(event.MinTime.Add(-1)) || event.TimeInRange(event.MaxTime.Add(1)) {
		t.Error("TimeInRange does not hold its bounds")
	}
	if !time.Unix(0, event.MinTime.UnixNano()).Equal(event.MinTime) || !time.Unix(0, event.MaxTime.UnixNano()).Equal(event.MaxTime) {
		t.Error("MinTime or MaxTime is not held exactly as int64 nanoseconds")
	}
}

func TestInvalidUTF8(t *testing.T) {
	const utf8Reason = "valid UTF-8"
	bad := map[string]string{
		"invalid byte":          "a\xffb",
		"truncated sequence":    "ab\xe2\x82",
		"encoded surrogate":     "a\xed\xa0\x80",
		"overlong":              "a\xc0\xaf",
		"lone high escape":      `a\ud800`,
		"high escape then text": `a\ud800b`,
		"high escape twice":     `a\ud800\ud800\udc00`,
		"lone low escape":       `\udfffa`,
		"reversed pair":         `\ude00\ud83d`,
	}
	for name, s := range bad {
		t.Run(name, func(t *testing.T) {
			lit := `"` + s + `"`
			for shapeName, shape := range shapes {
				for _, field := range []string{"eventType", "userId", "sessionId", "timestamp", "eventId", "priority"} {
					if shapeName == "escaped userId" && field == "userId" || shapeName == "key in new case" && field == "sessionId" {
						continue
					}
					judge(t, shape(validObj().with(field, lit)).json(), utf8Reason, field)
				}
				for _, field := range []string{"metadata", "payload"} {
					judge(t, shape(validObj().with(field, `{"k":`+lit+`}`)).json(), utf8Reason, field)
					judge(t, shape(validObj().with(field, `{`+lit+`:1}`)).json(), utf8Reason, field)
					judge(t, shape(validObj().with(field, `{"a":[1,{"b":{"c":["ok",`+lit+`]}}]}`)).json(), utf8Reason, field)
					judge(t, shape(validObj().with(field, `{"a":[1,{`+lit+`:null}]}`)).json(), utf8Reason, field)
				}
				judge(t, shape(validObj().with("extra", lit)).json(), utf8Reason, "body")
				body := shape(validObj()).json()
				judge(t, append([]byte(`{`+lit+`:1,`), body[1:]...), utf8Reason, "body")
			}
		})
	}
	t.Run("valid text", func(t *testing.T) {
		for lit, want := range map[string]string{
			`"😀"`:                    "😀",
			`"\ud83d\ude00"`:         "😀",
			`"\uD83D\uDE00x"`:        "😀x",
			`"\ufffd"`:               "\ufffd",
			"\"\xef\xbf\xbd\"":       "\ufffd",
			`"\u00e9\uffff\u0000"`:   "é\uffff\x00",
			"\"\xf4\x8f\xbf\xbf\"":   "\U0010ffff",
			`"a\\ud800"`:             `a\ud800`,
			`"\u005cud800"`:          `\ud800`,
			"\"\u2028\u00e9\u65e5\"": "\u2028é日",
		} {
			for _, shape := range shapes {
				ev := decodeOK(t, shape(validObj().with("eventId", lit, "metadata", `{`+lit+`:[`+lit+`]}`)).json())
				if ev.EventID != want {
					t.Errorf("eventId %s decoded as %q, want %q", lit, ev.EventID, want)
				}
			}
		}
	})
	t.Run("reason", func(t *testing.T) {
		_, err := event.DecodeOne(validObj().with("userId", "\"\xff\"").json(), testNow)
		if r := reasonOf(t, err, "userId"); !strings.HasPrefix(r, "must be valid UTF-8") {
			t.Errorf("reason = %q", r)
		}
		_, err = event.DecodeOne(validObj().with("extra", "\"\xff\"").json(), testNow)
		if r := reasonOf(t, err, "body"); !strings.HasPrefix(r, `field "extra" must be valid UTF-8`) {
			t.Errorf("reason = %q", r)
		}
	})
}

// TestLimitsNeverReturnAnEvent: a refused body gives no event, as every error does.
func TestLimitsNeverReturnAnEvent(t *testing.T) {
	for _, body := range [][]byte{
		validObj().with("metadata", nested(65)).json(),
		validObj().with("userId", `"\ud800"`).json(),
		validObj().with("timestamp", `"2262-01-01T00:00:00Z"`).json(),
	} {
		ev, err := event.DecodeOne(body, testNow)
		var ve *event.ValidationError
		if !errors.As(err, &ve) || !reflect.DeepEqual(ev, event.Event{}) {
			t.Errorf("DecodeOne(%.100s) = %+v, %v; want no event and a *ValidationError", body, ev, err)
		}
	}
}

// FuzzValid checks that Valid accepts exactly what CheckJSON and encoding/json together
// accept, at a depth small enough for the fuzzer to reach.
func FuzzValid(f *testing.F) {
	for _, seed := range []string{
		`{"a":[1,2.5e3,-0,true,false,null,"x\u00e9\ud83d\ude00"]}`, ` [ ] `, `"\ud800"`, "\"\xff\"",
		`[[[[]]]]`, `[[[[[]]]]]`, `{"a":1,}`, `01`, `1.`, `-`, `{"a" 1}`, "\"a\tb\"", `tru`, `{} {}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const depth = 4
		want := event.CheckJSON(body, depth) == nil && json.Valid(body)
		if got := event.Valid(body, depth); got != want {
			t.Errorf("Valid(%q) = %v, CheckJSON and json.Valid say %v", body, got, want)
		}
	})
}
