package openapitest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/openapi"
	"github.com/evp-dev/evp/internal/openapi/openapitest"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/sqlitestore"
)

// deadLetterSlot is the fixture's dead-letter store: empty for the other tests (which only
// list the routes), a real SQLite store in the steps below.
type deadLetterSlot struct{ *sqlitestore.Store }

// dlEvent is the event of the replayable letter (id 1); letter 2 does not decode.
var dlEvent = event.Event{EventID: "evt_dl_1", EventType: "page_view", UserID: "u1", SessionID: "s1",
	Timestamp: time.Date(2026, 11, 25, 11, 58, 0, 0, time.UTC), Metadata: json.RawMessage(`{"page":"/home"}`),
	Priority: 1, ReceivedAt: time.Date(2026, 11, 25, 11, 58, 0, 250e6, time.UTC)}

const dlRaw = "x{\"eventType\":"

func addDeadLetters(t *testing.T, st *sqlitestore.Store, n int) {
	t.Helper()
	var letters []store.DeadLetter
	for i := range n {
		if i%2 == 1 {
			letters = append(letters, store.DeadLetter{Data: []byte(dlRaw), Error: "undecodable buffer entry", Attempts: 1, FailedAt: time.Now()})
			continue
		}
		e := dlEvent
		if i > 0 {
			e.EventID = fmt.Sprintf("evt_dl_%d", i+1)
		}
		data, err := event.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		letters = append(letters, store.DeadLetter{EventID: e.EventID, Data: data, Error: "database or disk is full", Attempts: 3, FailedAt: time.Now()})
	}
	if err := st.DeadLetter(context.Background(), letters); err != nil {
		t.Fatal(err)
	}
}

func dlCount(t *testing.T, st *sqlitestore.Store) int64 {
	t.Helper()
	n, err := st.DeadLetterCount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every dead-letter status the document promises is answered by the real handler over a
// real SQLite store, and matches the document; the steps also check what each route did.
func TestDeadLetterResponsesMatchDocument(t *testing.T) {
	type step struct {
		name         string
		letters      int // dead letters before the request (ids 1..n; even ids do not decode)
		setup        func(f *fixture)
		method, path string // path is the document's route; target the URL requested
		target       string
		header       []string
		as           accounts.Role // sends the session of an ACTIVE user with this role
		wantStatus   int
		wantCode     string
		check        func(t *testing.T, f *fixture, data map[string]any)
	}
	key := []string{"x-api-key", "evp_good"} // an API key may not manage dead letters
	const operator = accounts.RoleOperator
	closeStore := func(f *fixture) { f.dl.Close() }
	keyDown := func(f *fixture) { f.keys.storeDown = true }
	bufferDown := func(f *fixture) { f.q.failAppend = true }
	const (
		list      = "/api/v1/dead-letters"
		one       = "/api/v1/dead-letters/{id}"
		replay    = "/api/v1/dead-letters/{id}/replay"
		replayAll = "/api/v1/dead-letters/replay"
	)
	wantLeft := func(n int64) func(*testing.T, *fixture, map[string]any) {
		return func(t *testing.T, f *fixture, _ map[string]any) {
			if got := dlCount(t, f.dl.Store); got != n {
				t.Errorf("%d dead letters left, want %d", got, n)
			}
		}
	}
	steps := []step{
		{name: "list", letters: 2, method: "GET", path: list, target: list, as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				items := d["items"].([]any)
				if len(items) != 2 || d["total"] != 2.0 || d["nextCursor"] != nil {
					t.Fatalf("page %v", d)
				}
				newest, oldest := items[0].(map[string]any), items[1].(map[string]any)
				if newest["id"] != "2" || newest["raw"] != dlRaw || newest["eventId"] != nil || newest["replayable"] != false || newest["event"] != nil {
					t.Errorf("undecodable letter shown as %v", newest)
				}
				ev, _ := oldest["event"].(map[string]any)
				if oldest["id"] != "1" || oldest["eventId"] != "evt_dl_1" || oldest["attempts"] != 3.0 || oldest["replayable"] != true ||
					ev["eventType"] != "page_view" || ev["timestamp"] != "2026-11-25T11:58:00Z" || oldest["raw"] != nil {
					t.Errorf("letter shown as %v", oldest)
				}
			}},
		{name: "list first page", letters: 3, method: "GET", path: list, target: list + "?limit=2", as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				if len(d["items"].([]any)) != 2 || d["nextCursor"] != "2" || d["total"] != 3.0 {
					t.Errorf("page %v", d)
				}
			}},
		{name: "list last page", letters: 3, method: "GET", path: list, target: list + "?limit=2&cursor=2", as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				items := d["items"].([]any)
				if len(items) != 1 || items[0].(map[string]any)["id"] != "1" || d["nextCursor"] != nil {
					t.Errorf("page %v", d)
				}
			}},
		{name: "list empty", method: "GET", path: list, target: list + "?cursor=", as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				if len(d["items"].([]any)) != 0 || d["total"] != 0.0 {
					t.Errorf("page %v", d)
				}
			}},
		{name: "list limit 0", method: "GET", path: list, target: list + "?limit=0", as: operator, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "list limit 101", method: "GET", path: list, target: list + "?limit=101", as: operator, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "list limit not a number", method: "GET", path: list, target: list + "?limit=ten", as: operator, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "list bad cursor", letters: 1, method: "GET", path: list, target: list + "?cursor=abc", as: operator, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "list no credentials", method: "GET", path: list, target: list, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "list with an api key", letters: 1, method: "GET", path: list, target: list, header: key, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "list as viewer", letters: 1, method: "GET", path: list, target: list, as: accounts.RoleViewer, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "list store error", setup: closeStore, method: "GET", path: list, target: list, as: operator, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "list key store down", setup: keyDown, method: "GET", path: list, target: list, header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "show", letters: 2, method: "GET", path: one, target: list + "/1", as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				if d["id"] != "1" || d["eventId"] != "evt_dl_1" || d["error"] != "database or disk is full" {
					t.Errorf("letter %v", d)
				}
			}},
		{name: "show undecodable", letters: 2, method: "GET", path: one, target: list + "/2", as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				if d["raw"] != dlRaw {
					t.Errorf("letter %v", d)
				}
			}},
		{name: "show absent", letters: 2, method: "GET", path: one, target: list + "/3", as: operator, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "show not an id", method: "GET", path: one, target: list + "/abc", as: operator, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "show no credentials", method: "GET", path: one, target: list + "/1", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "show with an api key", letters: 1, method: "GET", path: one, target: list + "/1", header: key, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "show store error", setup: closeStore, method: "GET", path: one, target: list + "/1", as: operator, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "show key store down", setup: keyDown, method: "GET", path: one, target: list + "/1", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "replay", letters: 2, method: "POST", path: replay, target: list + "/1/replay", as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				if d["id"] != "1" || d["eventId"] != "evt_dl_1" || d["replayed"] != true {
					t.Errorf("answer %v", d)
				}
				want, _ := event.Marshal(&dlEvent)
				if len(f.q.entries) != 2 || f.q.entries[1].EventID != "evt_dl_1" || string(f.q.entries[1].Data) != string(want) {
					t.Errorf("buffer %+v", f.q.entries[1:])
				}
				if _, err := f.dl.GetDeadLetter(context.Background(), "1"); err != store.ErrNotFound {
					t.Errorf("replayed letter still there: %v", err)
				}
				wantLeft(1)(t, f, d)
			}},
		{name: "replay undecodable", letters: 2, method: "POST", path: replay, target: list + "/2/replay", as: operator, wantStatus: 409, wantCode: "NOT_REPLAYABLE",
			check: wantLeft(2)},
		{name: "replay absent", method: "POST", path: replay, target: list + "/1/replay", as: operator, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "replay buffer down", letters: 1, setup: bufferDown, method: "POST", path: replay, target: list + "/1/replay", as: operator, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE",
			check: wantLeft(1)},
		{name: "replay not ready", letters: 1, setup: func(f *fixture) { f.srv.SetReady(false) }, method: "POST", path: replay, target: list + "/1/replay", as: operator, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "replay no credentials", method: "POST", path: replay, target: list + "/1/replay", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "replay as api client", letters: 1, method: "POST", path: replay, target: list + "/1/replay", as: accounts.RoleAPIClient, wantStatus: 403, wantCode: "FORBIDDEN",
			check: wantLeft(1)},
		{name: "replay store error", setup: closeStore, method: "POST", path: replay, target: list + "/1/replay", as: operator, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "replay key store down", setup: keyDown, method: "POST", path: replay, target: list + "/1/replay", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		// 250 letters: three pages of the replay; the 125 even ids do not decode and stay.
		{name: "replay all", letters: 250, method: "POST", path: replayAll, target: replayAll, as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				if d["replayed"] != 125.0 || d["skipped"] != 125.0 {
					t.Errorf("answer %v", d)
				}
				ids := map[string]bool{}
				for _, e := range f.q.entries[1:] {
					ids[e.EventID] = true
				}
				if len(f.q.entries) != 126 || len(ids) != 125 || !ids["evt_dl_1"] || !ids["evt_dl_249"] {
					t.Errorf("buffer holds %d entries, %d distinct", len(f.q.entries)-1, len(ids))
				}
				wantLeft(125)(t, f, d)
			}},
		{name: "replay all empty", method: "POST", path: replayAll, target: replayAll, as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				if d["replayed"] != 0.0 || d["skipped"] != 0.0 {
					t.Errorf("answer %v", d)
				}
			}},
		{name: "replay all buffer down", letters: 2, setup: bufferDown, method: "POST", path: replayAll, target: replayAll, as: operator, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE",
			check: wantLeft(2)},
		{name: "replay all no credentials", method: "POST", path: replayAll, target: replayAll, wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "replay all with an api key", letters: 2, method: "POST", path: replayAll, target: replayAll, header: key, wantStatus: 403, wantCode: "FORBIDDEN",
			check: wantLeft(2)},
		{name: "replay all store error", setup: closeStore, method: "POST", path: replayAll, target: replayAll, as: operator, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "replay all key store down", setup: keyDown, method: "POST", path: replayAll, target: replayAll, header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},

		{name: "delete", letters: 2, method: "DELETE", path: one, target: list + "/2", as: operator, wantStatus: 200,
			check: func(t *testing.T, f *fixture, d map[string]any) {
				if d["id"] != "2" || d["deleted"] != true {
					t.Errorf("answer %v", d)
				}
				if _, err := f.dl.GetDeadLetter(context.Background(), "2"); err != store.ErrNotFound {
					t.Errorf("deleted letter still there: %v", err)
				}
				wantLeft(1)(t, f, d)
			}},
		{name: "delete absent", letters: 1, method: "DELETE", path: one, target: list + "/2", as: operator, wantStatus: 404, wantCode: "NOT_FOUND",
			check: wantLeft(1)},
		{name: "delete no credentials", method: "DELETE", path: one, target: list + "/1", wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "delete as viewer", letters: 1, method: "DELETE", path: one, target: list + "/1", as: accounts.RoleViewer, wantStatus: 403, wantCode: "FORBIDDEN",
			check: wantLeft(1)},
		{name: "delete store error", setup: closeStore, method: "DELETE", path: one, target: list + "/1", as: operator, wantStatus: 500, wantCode: "INTERNAL_ERROR"},
		{name: "delete key store down", setup: keyDown, method: "DELETE", path: one, target: list + "/1", header: key, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
	}
	covered := map[string]bool{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			f := newFixture(t)
			st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitedb.SyncNormal)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			f.dl.Store = st
			if s.letters > 0 {
				addDeadLetters(t, st, s.letters)
			}
			// The buffer already holds one entry, as in the other steps.
			if err := f.q.Enqueue(context.Background(), []queue.Entry{{EventID: "e-1", Data: []byte(`{}`)}}); err != nil {
				t.Fatal(err)
			}
			if s.setup != nil {
				s.setup(f)
			}
			req := httptest.NewRequest(s.method, s.target, nil)
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
				t.Fatalf("status %d, want %d: %s", res.StatusCode, s.wantStatus, b)
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
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			if env.Error.Code != s.wantCode {
				t.Fatalf("code %q, want %q: %s", env.Error.Code, s.wantCode, b)
			}
			// A validation error names the parameter at fault.
			if s.wantCode == "VALIDATION_ERROR" {
				field := "limit"
				if strings.Contains(s.target, "cursor") {
					field = "cursor"
				}
				if len(env.Error.Details) != 1 || env.Error.Details[0].Path != field {
					t.Errorf("details %+v, want the field %s", env.Error.Details, field)
				}
			}
			if err := openapitest.ValidateResponse(s.method, s.path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
				t.Errorf("%v\nbody: %.2000s", err, b)
			}
			if err := openapitest.ValidateHeaders(s.method, s.path, res.StatusCode, res.Header); err != nil {
				t.Error(err)
			}
			if s.check != nil {
				s.check(t, f, env.Data)
			}
			covered[s.method+" "+s.path+" "+itoa(res.StatusCode)] = true
		})
	}
	// Every status documented for the dead-letter routes, 500 included, was answered above.
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range doc.Paths {
		if !strings.HasPrefix(path, list) {
			continue
		}
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				Responses map[string]any `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			for status := range op.Responses {
				n++
				if name := strings.ToUpper(method) + " " + path + " " + status; !covered[name] {
					t.Errorf("%s is documented but no step provoked it", name)
				}
			}
		}
	}
	if n != 30 {
		t.Errorf("%d documented dead-letter responses, want 30", n)
	}
}
