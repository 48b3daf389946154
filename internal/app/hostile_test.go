package app

import (
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// detailPaths returns the paths of a validation error's details.
func (r reply) detailPaths() []string {
	e, _ := r.body["error"].(map[string]any)
	details, _ := e["details"].([]any)
	var paths []string
	for _, d := range details {
		if m, ok := d.(map[string]any); ok {
			p, _ := m["path"].(string)
			paths = append(paths, p)
		}
	}
	return paths
}

// want400 checks that r is a 400 VALIDATION_ERROR naming exactly paths.
func want400(t *testing.T, what string, r reply, paths ...string) {
	t.Helper()
	if r.status != 400 || r.errorCode() != "VALIDATION_ERROR" || strings.Join(r.detailPaths(), ",") != strings.Join(paths, ",") {
		t.Errorf("%s: %d %.300s; want 400 VALIDATION_ERROR naming %v", what, r.status, r.raw, paths)
	}
}

// TestHostileNestingAnswers400 sends the 4 KB gzip bodies that expand to 2,000,000 levels of
// nesting (4 MB, under the 5 MiB body limit), deep enough to overflow a recursive decoder's
// stack and kill the process, to both ingestion routes.
func TestHostileNestingAnswers400(t *testing.T) {
	in := start(t, "", nil)
	const levels = 2_000_000
	deep := `{"a":` + strings.Repeat("[", levels) + strings.Repeat("]", levels) + `}`
	hostile := ev("deep-1", "click")
	body := mustJSON(t, hostile)
	one := []byte(strings.Replace(string(body), `"metadata":{"source":"web"}`, `"metadata":`+deep, 1))
	gzipped := gz(t, one)
	if len(gzipped) > 16<<10 || len(one) > 5<<20 {
		t.Fatalf("the hostile body is %d bytes gzipped, %d plain: not the reported shape", len(gzipped), len(one))
	}
	gzipHdr := map[string]string{"Content-Encoding": "gzip"}

	began := time.Now()
	want400(t, "single event", in.do("POST", "/api/v1/events", gzipped, gzipHdr), "metadata")
	good := mustJSON(t, ev("ok-1", "click"))
	batch := []byte(`{"events":[` + string(good) + `,` + string(one) + `]}`)
	want400(t, "batch", in.do("POST", "/api/v1/events/batch", gz(t, batch), gzipHdr), "events[1].metadata")
	top := []byte(`{"events":[` + string(good) + `],"extra":` + deep + `}`)
	want400(t, "batch, unknown field", in.do("POST", "/api/v1/events/batch", gz(t, top), gzipHdr), "body")
	t.Logf("three hostile bodies answered in %v", time.Since(began))

	// evp is still alive and stores what is valid, and nothing of the hostile bodies.
	if r := in.do("POST", "/api/v1/events", good, nil); r.status != 202 {
		t.Fatalf("good event after the hostile ones: %d %s", r.status, r.raw)
	}
	in.waitStored(1)
}

// TestTimestampsOutsideTheStoredRange: an instant the stores cannot hold as int64
// nanoseconds is refused, never stored as another date; both ends of the range are stored
// exactly and counted by analytics, whose from and to are held to the same range.
func TestTimestampsOutsideTheStoredRange(t *testing.T) {
	in := start(t, "", nil)
	wrap := time.Now().UTC().Add(math.MaxInt64).Add(math.MaxInt64).Add(2) // now + 2^64 ns
	for _, ts := range []string{"1677-12-31T23:59:59.999999999Z", "2262-01-01T00:00:00Z", "2300-01-01T00:00:00Z",
		"1600-01-01T00:00:00Z", "0001-01-01T00:00:00Z", wrap.Format(time.RFC3339Nano)} {
		e := ev("", "click")
		e["timestamp"] = ts
		want400(t, ts, in.do("POST", "/api/v1/events", mustJSON(t, e), nil), "timestamp")
		want400(t, ts+" in a batch", in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": []any{ev("", "click"), e}}), nil),
			"events[1].timestamp")
	}

	ends := map[string]time.Time{"end-min": event.MinTime, "end-max": event.MaxTime}
	for id, ts := range ends {
		e := ev(id, "click")
		e["timestamp"] = ts.Format(time.RFC3339Nano)
		if r := in.do("POST", "/api/v1/events", mustJSON(t, e), nil); r.status != 202 {
			t.Fatalf("%s: %d %s", ts, r.status, r.raw)
		}
	}
	in.waitStored(2)
	db := openEvents(t, in.dir)
	for id, ts := range ends {
		var stored int64
		if err := db.QueryRow(`SELECT ts FROM events WHERE event_id = ?`, id).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != ts.UnixNano() || !time.Unix(0, stored).Equal(ts) {
			t.Errorf("%s stored as %v, want %v", id, time.Unix(0, stored).UTC(), ts)
		}
	}

	analytics := func(from, to string) reply {
		return in.do("GET", "/api/v1/analytics/metrics?"+url.Values{"from": {from}, "to": {to}}.Encode(), nil, nil)
	}
	for from, to := range map[string]string{
		"1678-01-01T00:00:00Z":      "1678-01-01T01:00:00Z",
		"2261-12-31T23:00:00Z":      "2261-12-31T23:59:59.999999999Z",
		"2261-12-31T23:59:00Z":      "2261-12-31T23:59:59Z",
		"1677-12-31T23:30:00-00:30": "1678-01-01T00:01:00+00:00",
	} {
		r := analytics(from, to)
		if r.status != 200 || r.data()["totalEvents"] != 1.0 {
			t.Errorf("analytics from %s to %s: %d %.300s; want the one event at the end of the range", from, to, r.status, r.raw)
		}
	}
	for _, c := range []struct{ from, to, path string }{
		{"1677-12-31T23:59:59Z", "1678-01-01T01:00:00Z", "from"},
		{"1600-01-01T00:00:00Z", "1600-01-02T00:00:00Z", "from"},
		{"0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "from"},
		{"2261-12-31T23:00:00Z", "2262-01-01T00:00:00Z", "to"},
		{"2300-01-01T00:00:00Z", "2300-01-02T00:00:00Z", "from"},
		{"2261-12-31T23:00:00Z", "2300-01-02T00:00:00Z", "to"},
	} {
		want400(t, "analytics from "+c.from+" to "+c.to, analytics(c.from, c.to), c.path)
	}
}

// TestInvalidUTF8Refused: text that is not valid UTF-8 is refused, naming the field, rather
// than stored with U+FFFD in its place.
func TestInvalidUTF8Refused(t *testing.T) {
	in := start(t, "", nil)
	post := func(body string) reply { return in.do("POST", "/api/v1/events", []byte(body), nil) }
	const rest = `"eventType":"click","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"`
	want400(t, "userId", post(`{`+rest+`,"userId":"u`+"\xff"+`"}`), "userId")
	want400(t, "userId escape", post(`{`+rest+`,"userId":"u\ud800"}`), "userId")
	want400(t, "metadata", post(`{`+rest+`,"userId":"u","metadata":{"a":[{"b":"`+"\xe2\x82"+`"}]}}`), "metadata")
	want400(t, "payload key", post(`{`+rest+`,"userId":"u","payload":{"`+"\xc3"+`":1}}`), "payload")
	r := in.do("POST", "/api/v1/events/batch", []byte(`{"events":[{`+rest+`,"userId":"u"},{`+rest+`,"userId":"u","metadata":{"k":"\udc00"}}]}`), nil)
	want400(t, "batch", r, "events[1].metadata")
	if r := post(`{` + rest + `,"userId":"\ud83d\ude00","eventId":"utf8-ok"}`); r.status != 202 {
		t.Fatalf("a surrogate pair: %d %s", r.status, r.raw)
	}
	in.waitStored(1)
	var user string
	if err := openEvents(t, in.dir).QueryRow(`SELECT user_id FROM events WHERE event_id = 'utf8-ok'`).Scan(&user); err != nil || user != "😀" {
		t.Fatalf("stored userId %q, %v; want 😀", user, err)
	}
}
