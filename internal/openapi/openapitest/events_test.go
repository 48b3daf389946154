package openapitest_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/openapi"
	"github.com/evp-dev/evp/internal/openapi/openapitest"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/sqlitestore"
)

// eventsSlot is the fixture's event reader: empty for the tests that only list routes, a
// real SQLite store (or a failing reader) in the steps below.
type eventsSlot struct{ store.EventReader }

// forgetSlot is the fixture's deletion of a user's events, like eventsSlot.
type forgetSlot struct{ store.Forgetter }

// brokenForgetter fails, or panics, or waits for release (to hold a deletion running).
type brokenForgetter struct {
	panics bool

	entered chan struct{}
	release chan struct{}
}

func (b brokenForgetter) ForgetUser(context.Context, string) (int64, error) {
	if b.panics {
		panic("boom")
	}
	if b.entered != nil {
		b.entered <- struct{}{}
		<-b.release
		return 0, nil
	}
	return 3, errors.New("disk I/O error")
}

// brokenReader fails every read, or panics, or waits for release (to hold exports open).
type brokenReader struct {
	panics  bool
	entered chan struct{}
	release chan struct{}
}

func (b brokenReader) ScanEvents(ctx context.Context, _ store.EventQuery, _ func(*store.StoredEvent) bool) (*store.Position, error) {
	if b.panics {
		panic("boom")
	}
	if b.entered != nil {
		b.entered <- struct{}{}
		<-b.release
		return nil, nil
	}
	return nil, errors.New("disk I/O error")
}

func (b brokenReader) GetEvent(context.Context, string) (store.StoredEvent, error) {
	if b.panics {
		panic("boom")
	}
	return store.StoredEvent{}, errors.New("disk I/O error")
}

// explorerEvents are five events a minute apart, the newest evt_e4; evt_e2 has a formula
// for a user id.
func explorerEvents() []event.Event {
	var evs []event.Event
	for i := range 5 {
		evs = append(evs, event.Event{EventID: fmt.Sprintf("evt_e%d", i), EventType: []string{"page_view", "click"}[i%2],
			UserID: fmt.Sprintf("u%d", i%2), SessionID: "s1", Timestamp: time.Date(2026, 11, 25, 11, 50+i, 0, 0, time.UTC),
			Metadata: json.RawMessage(fmt.Sprintf(`{"page":"/p%d","n":%d}`, i%3, i)), Priority: 1,
			ReceivedAt: time.Date(2026, 11, 25, 12, 0, i, 0, time.UTC), Source: event.SourceSegment})
	}
	evs[2].UserID = "=HYPERLINK(\"x\")"
	return evs
}

// importLine is one event as evp export writes it.
const importLine = `{"eventId":"evt_i1","eventType":"page_view","userId":"u1","sessionId":"s1","timestamp":"2026-11-25T11:58:00Z",` +
	`"metadata":{"page":"/home"},"priority":1,"receivedAt":"2026-11-25T11:58:00.25Z","source":"api","processedAt":"2026-11-25T11:58:00.31Z"}`

// Every status the document promises for the events routes is answered by the real handler
// over a real SQLite store (or a failing reader), and matches the document.
func TestEventsResponsesMatchDocument(t *testing.T) {
	const (
		list   = "/api/v1/events"
		one    = "/api/v1/events/{eventId}"
		export = "/api/v1/events/export"
		imp    = "/api/v1/events/import"
		live   = "/api/v1/events/live"
		forget = "/api/v1/users/{userId}/events"
	)
	key := []string{"x-api-key", "evp_good"}
	ingestKey := []string{"x-api-key", "evp_ingest"}
	viewer := accounts.RoleViewer
	broken := func(f *fixture) { f.ev.EventReader = brokenReader{} }
	panics := func(f *fixture) { f.ev.EventReader = brokenReader{panics: true} }
	keyDown := func(f *fixture) { f.keys.storeDown = true }
	ids := func(d map[string]any) []string {
		var out []string
		for _, e := range d["events"].([]any) {
			out = append(out, e.(map[string]any)["eventId"].(string))
		}
		return out
	}
	wantIDs := func(want string, cursor bool) func(*testing.T, *fixture, map[string]any, []byte) {
		return func(t *testing.T, _ *fixture, d map[string]any, _ []byte) {
			if got := strings.Join(ids(d), ","); got != want {
				t.Errorf("events %s, want %s", got, want)
			}
			if _, ok := d["nextCursor"]; ok != cursor {
				t.Errorf("nextCursor %v, want one: %v", d["nextCursor"], cursor)
			}
		}
	}
	type step struct {
		name         string
		setup        func(f *fixture)
		method       string // GET when empty
		body, ctype  string // ctype application/x-ndjson when empty
		path, target string
		header       []string
		as           accounts.Role
		wantStatus   int
		wantCode     string
		wantField    string // the parameter a validation error names
		check        func(t *testing.T, f *fixture, data map[string]any, body []byte)
	}
	var steps []step
	steps = append(steps, []step{
		{name: "list", path: list, target: list, header: key, wantStatus: 200, check: func(t *testing.T, f *fixture, d map[string]any, _ []byte) {
			wantIDs("evt_e4,evt_e3,evt_e2,evt_e1,evt_e0", false)(t, f, d, nil)
			e := d["events"].([]any)[0].(map[string]any)
			if e["source"] != "segment" || e["processedAt"] == nil || e["metadata"].(map[string]any)["page"] != "/p1" || e["timestamp"] != "2026-11-25T11:54:00Z" {
				t.Errorf("event shown as %v", e)
			}
		}},
		{name: "list filtered", path: list, target: list + "?eventType=click&from=2026-11-25T11:51:00Z&prop=metadata.page:/p0", as: viewer, wantStatus: 200,
			check: wantIDs("evt_e3", false)},
		{name: "list by number and user", path: list, target: list + "?userId=u1&prop=metadata.n:3.0", as: viewer, wantStatus: 200, check: wantIDs("evt_e3", false)},
		{name: "list first page", path: list, target: list + "?limit=2&sessionId=s1", header: key, wantStatus: 200, check: func(t *testing.T, f *fixture, d map[string]any, _ []byte) {
			wantIDs("evt_e4,evt_e3", true)(t, f, d, nil)
			// Following the cursors gives the rest, once each.
			var rest []string
			for c, _ := d["nextCursor"].(string); c != ""; {
				next := get(t, f, list+"?limit=2&sessionId=s1&cursor="+c, key)
				rest = append(rest, ids(next)...)
				c, _ = next["nextCursor"].(string)
			}
			if got := strings.Join(rest, ","); got != "evt_e2,evt_e1,evt_e0" {
				t.Errorf("the next pages hold %s", got)
			}
		}},
		{name: "list nothing", path: list, target: list + "?timeRange=15m", as: viewer, wantStatus: 200, check: wantIDs("", false)},
		{name: "list limit 1001", path: list, target: list + "?limit=1001", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "limit"},
		{name: "list bad cursor", path: list, target: list + "?cursor=abc", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "cursor"},
		{name: "list bad prop", path: list, target: list + "?prop=metadata:x", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "prop"},
		{name: "list prop with $", path: list, target: list + "?prop=metadata.$where:x", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "prop"},
		{name: "list six props", path: list, target: list + "?prop=metadata.a:1" + strings.Repeat("&prop=metadata.a:1", 5), header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "prop"},
		{name: "list range and times", path: list, target: list + "?timeRange=1h&from=2026-11-25T11:51:00Z", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "timeRange"},
		{name: "list to before from", path: list, target: list + "?from=2026-11-25T11:51:00Z&to=2026-11-25T11:50:00Z", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "to"},
		{name: "list long user", path: list, target: list + "?userId=" + strings.Repeat("u", 1025), header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "userId"},
		{name: "list no credentials", path: list, target: list, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "list ingest key", path: list, target: list, header: ingestKey, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "list panics", setup: panics, path: list, target: list, header: key, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "list store error", setup: broken, path: list, target: list, header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "list ninth search at once", path: list, target: list, header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE",
			setup: func(f *fixture) { f.cleanup = holdReads(f, list, 8) }},

		{name: "show", path: one, target: list + "/evt_e2", as: viewer, wantStatus: 200, check: func(t *testing.T, _ *fixture, d map[string]any, _ []byte) {
			if d["eventId"] != "evt_e2" || d["userId"] != `=HYPERLINK("x")` || d["receivedAt"] != "2026-11-25T12:00:02Z" {
				t.Errorf("event %v", d)
			}
		}},
		{name: "show absent", path: one, target: list + "/evt_none", header: key, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "show long id", path: one, target: list + "/" + strings.Repeat("e", 1025), header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "eventId"},
		{name: "show no credentials", path: one, target: list + "/evt_e2", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "show as api client", path: one, target: list + "/evt_e2", as: accounts.RoleAPIClient, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "show panics", setup: panics, path: one, target: list + "/evt_e2", header: key, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "show key store down", setup: keyDown, path: one, target: list + "/evt_e2", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "export ndjson", path: export, target: export + "?userId=u0", header: key, wantStatus: 200, check: func(t *testing.T, _ *fixture, _ map[string]any, body []byte) {
			var got []string
			sc := bufio.NewScanner(strings.NewReader(string(body)))
			for sc.Scan() {
				var e store.StoredEvent
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				if e.ProcessedAt.IsZero() || e.Source != "segment" {
					t.Errorf("line %s", sc.Text())
				}
				got = append(got, e.EventID)
			}
			if strings.Join(got, ",") != "evt_e4,evt_e0" {
				t.Errorf("exported %v", got)
			}
		}},
		{name: "export csv", path: export, target: export + "?format=csv&prop=metadata.page:/p2", as: viewer, wantStatus: 200, check: func(t *testing.T, _ *fixture, _ map[string]any, body []byte) {
			rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0][0] != "eventId" || rows[1][0] != "evt_e2" || rows[1][2] != `'=HYPERLINK("x")` || rows[1][9] != `{"page":"/p2","n":2}` {
				t.Errorf("csv %q", rows)
			}
		}},
		{name: "export bad format", path: export, target: export + "?format=xml", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "format"},
		{name: "export no credentials", path: export, target: export, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "export ingest key", path: export, target: export, header: ingestKey, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "export panics", setup: panics, path: export, target: export, header: key, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "export store error", setup: broken, path: export, target: export, header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "export third at once", path: export, target: export, header: key, wantStatus: 429, wantCode: "TOO_MANY_EXPORTS",
			setup: func(f *fixture) {
				f.cleanup = holdReads(f, export, 2)
			}},
	}...)
	bad := strings.Replace(importLine, `"2026-11-25T11:58:00Z"`, `"noon"`, 1)
	segmentLike := strings.Replace(strings.Replace(importLine, `"page_view"`, `"Order Completed"`, 1), "evt_i1", "evt_i2", 1)
	buffered := func(want ...string) func(*testing.T, *fixture, map[string]any, []byte) {
		return func(t *testing.T, f *fixture, _ map[string]any, _ []byte) {
			var got []string
			for _, e := range f.q.entries {
				var ev event.Event
				if err := event.Unmarshal(e.Data, &ev); err != nil || ev.Source != event.SourceImport {
					t.Errorf("buffered %s (%v)", e.Data, err)
				}
				got = append(got, e.EventID)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("buffered %v, want %v", got, want)
			}
		}
	}
	steps = append(steps, []step{
		{name: "import", method: "POST", path: imp, target: imp, header: key, body: importLine + "\n\n" + bad + "\n" + segmentLike + "\n" + importLine, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any, b []byte) {
				if d["accepted"] != 2.0 || d["duplicates"] != 1.0 || !strings.Contains(string(b), `"rejected":[{"line":3,"errors":[{"path":"timestamp"`) {
					t.Errorf("answer %s", b)
				}
				buffered("evt_i1", "evt_i2")(t, f, d, b)
			}},
		{name: "import strict", method: "POST", path: imp, target: imp + "?strict=true", header: key, body: importLine + "\n" + bad, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "line 2.timestamp",
			check: func(t *testing.T, f *fixture, d map[string]any, b []byte) { buffered()(t, f, d, b) }},
		{name: "import bad strict", method: "POST", path: imp, target: imp + "?strict=maybe", header: key, body: importLine, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "strict"},
		{name: "import 1001 lines", method: "POST", path: imp, target: imp, header: key, body: strings.Repeat("{}\n", 1001), wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "body"},
		{name: "import too large", method: "POST", path: imp, target: imp, header: key, body: strings.Repeat(importLine+"\n", 40), wantStatus: 413, wantCode: "PAYLOAD_TOO_LARGE"},
		{name: "import as json", method: "POST", path: imp, target: imp, header: key, body: importLine, ctype: "application/json", wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "import no credentials", method: "POST", path: imp, target: imp, body: importLine, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "import ingest key", method: "POST", path: imp, target: imp, header: ingestKey, body: importLine, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "live bad range", path: live, target: live + "?timeRange=2h", header: key, wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "timeRange"},
		{name: "live no credentials", path: live, target: live, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "live ingest key", path: live, target: live, header: ingestKey, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "live third tail", path: live, target: live, header: key, wantStatus: 429, wantCode: "TOO_MANY_TAILS",
			setup: func(f *fixture) {
				for range 2 {
					if _, err := f.tails.Subscribe(func(*event.Event) bool { return true }, 1, 1); err != nil {
						panic(err)
					}
				}
			}},
		{name: "import buffer down", setup: func(f *fixture) { f.q.failAppend = true }, method: "POST", path: imp, target: imp, header: key, body: importLine, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "forget", method: "DELETE", path: forget, target: "/api/v1/users/u1/events", as: accounts.RoleAdmin, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any, _ []byte) {
				if d["userId"] != "u1" || d["deleted"] != 2.0 {
					t.Errorf("answer %v, want u1's 2 events deleted", d)
				}
				wantIDs("evt_e4,evt_e2,evt_e0", false)(t, f, get(t, f, list, key), nil)
			}},
		{name: "forget nobody", method: "DELETE", path: forget, target: "/api/v1/users/U1/events", as: accounts.RoleAdmin, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any, _ []byte) {
				if d["deleted"] != 0.0 { // user ids are exact, case included
					t.Errorf("answer %v, want nothing deleted", d)
				}
			}},
		{name: "forget long id", method: "DELETE", path: forget, target: "/api/v1/users/" + strings.Repeat("u", 1025) + "/events", as: accounts.RoleAdmin,
			wantStatus: 400, wantCode: "VALIDATION_ERROR", wantField: "userId"},
		{name: "forget no credentials", method: "DELETE", path: forget, target: "/api/v1/users/u1/events", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "forget operator", method: "DELETE", path: forget, target: "/api/v1/users/u1/events", as: accounts.RoleOperator, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "forget key", method: "DELETE", path: forget, target: "/api/v1/users/u1/events", header: key, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "forget store down", setup: func(f *fixture) { f.fg.Forgetter = brokenForgetter{} }, method: "DELETE", path: forget, target: "/api/v1/users/u1/events",
			as: accounts.RoleAdmin, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "forget panics", setup: func(f *fixture) { f.fg.Forgetter = brokenForgetter{panics: true} }, method: "DELETE", path: forget, target: "/api/v1/users/u1/events",
			as: accounts.RoleAdmin, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "forget while another runs", method: "DELETE", path: forget, target: "/api/v1/users/u1/events", as: accounts.RoleAdmin, wantStatus: 429, wantCode: "DELETION_RUNNING",
			setup: func(f *fixture) {
				b := brokenForgetter{entered: make(chan struct{}), release: make(chan struct{})}
				f.fg.Forgetter = b
				done := make(chan struct{})
				req := httptest.NewRequest("DELETE", "/api/v1/users/u0/events", nil)
				req.Header.Set("Authorization", "Bearer "+f.acc.token(t, accounts.RoleAdmin))
				go func() {
					defer close(done)
					f.srv.Handler().ServeHTTP(httptest.NewRecorder(), req)
				}()
				<-b.entered
				f.cleanup = func() { close(b.release); <-done }
			}},
	}...)
	covered := map[string]bool{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			f := newFixture(t)
			st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitedb.SyncNormal)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, _, err := st.InsertBatch(context.Background(), explorerEvents(), time.Now()); err != nil {
				t.Fatal(err)
			}
			f.ev.EventReader, f.fg.Forgetter = st, st
			if s.setup != nil {
				s.setup(f)
			}
			if f.cleanup != nil {
				defer f.cleanup()
			}
			method := s.method
			if method == "" {
				method = "GET"
			}
			req := httptest.NewRequest(method, s.target, strings.NewReader(s.body))
			if s.body != "" {
				ct := s.ctype
				if ct == "" {
					ct = "application/x-ndjson"
				}
				req.Header.Set("Content-Type", ct)
			}
			for i := 0; i+1 < len(s.header); i += 2 {
				req.Header.Set(s.header[i], s.header[i+1])
			}
			if s.as != "" {
				req.Header.Set("Authorization", "Bearer "+f.acc.token(t, s.as))
			}
			rec := httptest.NewRecorder()
			f.srv.Handler().ServeHTTP(rec, req)
			res := rec.Result()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != s.wantStatus {
				t.Fatalf("status %d, want %d: %.500s", res.StatusCode, s.wantStatus, b)
			}
			var env struct {
				Data  map[string]any `json:"data"`
				Error struct {
					Code    string `json:"code"`
					Details []struct {
						Path string `json:"path"`
					} `json:"details"`
				} `json:"error"`
			}
			if s.path != export || res.StatusCode != 200 {
				if err := json.Unmarshal(b, &env); err != nil {
					t.Fatalf("%v: %s", err, b)
				}
			}
			if env.Error.Code != s.wantCode {
				t.Fatalf("code %q, want %q: %s", env.Error.Code, s.wantCode, b)
			}
			if s.wantField != "" && (len(env.Error.Details) != 1 || env.Error.Details[0].Path != s.wantField) {
				t.Errorf("details %+v, want the field %s", env.Error.Details, s.wantField)
			}
			if err := openapitest.ValidateResponse(method, s.path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
				t.Errorf("%v\nbody: %.2000s", err, b)
			}
			if err := openapitest.ValidateHeaders(method, s.path, res.StatusCode, res.Header); err != nil {
				t.Error(err)
			}
			if s.check != nil {
				s.check(t, f, env.Data, b)
			}
			covered[method+" "+s.path+" "+itoa(res.StatusCode)] = true
		})
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, op := range []string{"GET " + list, "GET " + one, "GET " + export, "POST " + imp, "GET " + live, "DELETE " + forget} {
		method, path, _ := strings.Cut(op, " ")
		var o struct {
			Responses map[string]any `json:"responses"`
		}
		if err := json.Unmarshal(doc.Paths[path][strings.ToLower(method)], &o); err != nil {
			t.Fatal(err)
		}
		for status := range o.Responses {
			n++
			// An import's 500 needs an event the buffer cannot encode, which validation rules
			// out; a live tail's, a panic in code that has no store to fail; its 200 is
			// TestLiveTail's.
			if name := op + " " + status; !covered[name] && name != "POST "+imp+" 500" && name != "GET "+live+" 500" && name != "GET "+live+" 200" {
				t.Errorf("%s is documented but no step provoked it", name)
			}
		}
	}
	if n != 41 {
		t.Errorf("%d documented events responses, want 41", n)
	}
}

// holdReads sends n requests for target whose reads wait (a reader that blocks) until the
// returned function lets them end.
func holdReads(f *fixture, target string, n int) func() {
	b := brokenReader{entered: make(chan struct{}), release: make(chan struct{})}
	f.ev.EventReader = b
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest("GET", target, nil)
			req.Header.Set("x-api-key", "evp_good")
			f.srv.Handler().ServeHTTP(httptest.NewRecorder(), req)
		}()
		<-b.entered
	}
	return func() { close(b.release); wg.Wait() }
}

// get answers a GET that must succeed with its data.
func get(t *testing.T, f *fixture, target string, header []string) map[string]any {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.Header.Set(header[0], header[1])
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	var env struct {
		Data map[string]any `json:"data"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &env) != nil {
		t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body.Bytes())
	}
	return env.Data
}

// A live tail gets the events buffered after it opened that match its filters, within
// moments, as server-sent events; the hub's bound refuses a third; evp stopping ends it.
func TestLiveTail(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.srv.Handler())
	defer srv.Close()
	open := func(query string) (*http.Response, *bufio.Reader) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second) // a read that waits longer fails
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/events/live"+query, nil)
		req.Header.Set("x-api-key", "evp_good")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res, bufio.NewReader(res.Body)
	}
	res, clicks := open("?eventType=click&prop=metadata.page:/home")
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if err := openapitest.ValidateResponse("GET", "/api/v1/events/live", 200, res.Header.Get("Content-Type"), []byte("retry: 2000\n\n")); err != nil {
		t.Error(err)
	}
	_, everything := open("")
	// Wait for both tails to be open before sending: a tail gets only what comes after it.
	for deadline := time.Now().Add(5 * time.Second); f.tails.Open() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the tails did not open")
		}
	}
	if rec := post(f, `{"events":[`+
		`{"eventId":"evt_l1","eventType":"click","userId":"u1","sessionId":"s1","timestamp":"2026-11-25T11:58:00Z","metadata":{"page":"/home"}},`+
		`{"eventId":"evt_l2","eventType":"view","userId":"u1","sessionId":"s1","timestamp":"2026-11-25T11:58:01Z","metadata":{"page":"/home"}},`+
		`{"eventId":"evt_l3","eventType":"click","userId":"u2","sessionId":"s1","timestamp":"2026-11-25T11:58:02Z","metadata":{"page":"/cart"}}]}`); rec.Code != 202 {
		t.Fatalf("batch: %d %s", rec.Code, rec.Body.Bytes())
	}
	sent := time.Now()
	next := func(r *bufio.Reader) string {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			if strings.HasPrefix(line, "data: ") {
				var ev event.Event
				if err := json.Unmarshal([]byte(line[6:]), &ev); err != nil {
					t.Fatalf("data %q: %v", line, err)
				}
				return ev.EventID
			}
		}
	}
	if got := next(clicks); got != "evt_l1" {
		t.Fatalf("the click tail got %s first", got)
	}
	for _, want := range []string{"evt_l1", "evt_l2", "evt_l3"} {
		if got := next(everything); got != want {
			t.Fatalf("the tail of everything got %s, want %s", got, want)
		}
	}
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("events reached the tails %v after the 202", took)
	}
	// A duplicate is not buffered again, so no tail sees it twice; the click tail's next is
	// the next matching event.
	post(f, `{"events":[{"eventId":"evt_l1","eventType":"click","userId":"u1","sessionId":"s1","timestamp":"2026-11-25T11:58:00Z","metadata":{"page":"/home"}}]}`)
	post(f, `{"events":[{"eventId":"evt_l4","eventType":"click","userId":"u3","sessionId":"s1","timestamp":"2026-11-25T11:58:03Z","metadata":{"page":"/home"}}]}`)
	if got := next(clicks); got != "evt_l4" {
		t.Fatalf("the click tail got %s after a duplicate, want evt_l4", got)
	}
	// evp stopping ends the streams rather than keeping its shutdown waiting.
	f.srv.SetReady(false)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, everything)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a live tail stayed open after evp stopped being ready")
	}
}

// post sends a batch with the fixture's key and returns the recorded answer.
func post(f *fixture, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/api/v1/events/batch", strings.NewReader(body))
	req.Header.Set("x-api-key", "evp_good")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	return rec
}
