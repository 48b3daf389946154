package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
)

var _ store.EventStore = (*Store)(nil)

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, sqlitedb.SyncNormal)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var base = time.Date(2026, 2, 3, 4, 5, 6, 789_123_456, time.UTC)

func testEvent(i int) event.Event {
	return event.Event{
		EventID:    fmt.Sprintf("evt_%05d", i),
		EventType:  "page_view",
		UserID:     fmt.Sprintf("user_%d", i%7),
		SessionID:  fmt.Sprintf("sess_%d", i%3),
		Timestamp:  base.Add(time.Duration(i) * time.Second),
		Metadata:   json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)),
		Payload:    json.RawMessage(`{"path":"/x"}`),
		Priority:   i % 3,
		ReceivedAt: base.Add(time.Duration(i)*time.Second + time.Millisecond),
	}
}

func events(from, to int) []event.Event {
	var out []event.Event
	for i := from; i < to; i++ {
		out = append(out, testEvent(i))
	}
	return out
}

// randomEvents returns n events with ids e<first> on, each of type click, view or buy, from
// one of users users, in one of sessions sessions (all in session "s" when 0), at a random
// time in [from, from+span).
func randomEvents(rng *rand.Rand, first, n, users, sessions int, from time.Time, span time.Duration) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		e := event.Event{EventID: fmt.Sprintf("e%d", first+i), EventType: []string{"click", "view", "buy"}[rng.IntN(3)],
			UserID: fmt.Sprintf("user_%d", rng.IntN(users)), SessionID: "s", ReceivedAt: from}
		if sessions > 0 {
			e.SessionID = fmt.Sprintf("s%d", rng.IntN(sessions))
		}
		e.Timestamp = from.Add(time.Duration(rng.Int64N(int64(span))))
		out[i] = e
	}
	return out
}

func insert(t *testing.T, s *Store, es []event.Event, wantInserted, wantDups int) {
	t.Helper()
	ins, dups, err := s.InsertBatch(context.Background(), es, time.Now())
	if err != nil {
		t.Fatalf("InsertBatch(%d events): %v", len(es), err)
	}
	if ins != wantInserted || dups != wantDups {
		t.Fatalf("InsertBatch(%d events) = %d inserted, %d duplicates; want %d, %d", len(es), ins, dups, wantInserted, wantDups)
	}
}

func count(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

// rows counts the events table directly, to check the counter against it.
func rows(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.DB().QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInsertBatchIdempotent(t *testing.T) {
	s := openStore(t, t.TempDir())
	const n = 120 // two full chunks of 50 and a remainder
	batch := events(0, n)
	insert(t, s, batch, n, 0)
	insert(t, s, batch, 0, n)
	if got := count(t, s); got != n {
		t.Errorf("Count = %d, want %d", got, n)
	}
	if got := rows(t, s); got != n {
		t.Errorf("rows in events = %d, want %d", got, n)
	}
	if ins, dups, err := s.InsertBatch(context.Background(), nil, time.Now()); ins != 0 || dups != 0 || err != nil {
		t.Errorf("InsertBatch(nil) = %d, %d, %v", ins, dups, err)
	}
}

func TestInsertBatchDuplicatesAcrossBatches(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	insert(t, s, events(0, 60), 60, 0)
	insert(t, s, events(40, 100), 40, 20) // 40..59 stored already
	insert(t, s, events(99, 101), 1, 1)

	// Within one batch too: a client that sent the same event twice.
	e := testEvent(500)
	insert(t, s, []event.Event{e, testEvent(501), e}, 2, 1)
	if got := count(t, s); got != 103 {
		t.Errorf("Count = %d, want 103", got)
	}
	if got := rows(t, s); got != 103 {
		t.Errorf("rows in events = %d, want 103", got)
	}

	// A duplicate keeps the first copy.
	dup := testEvent(0)
	dup.EventType = "changed"
	insert(t, s, []event.Event{dup}, 0, 1)
	var typ string
	if err := s.DB().QueryRow(`SELECT event_type FROM events WHERE event_id = ?`, dup.EventID).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "page_view" {
		t.Errorf("duplicate overwrote the stored event: event_type = %q", typ)
	}

	// The counter survives a reopen.
	s.Close()
	s = openStore(t, dir)
	if got := count(t, s); got != 103 {
		t.Errorf("Count after reopen = %d, want 103", got)
	}
	insert(t, s, events(0, 10), 0, 10)
}

func TestInsertBatchConcurrent(t *testing.T) {
	s := openStore(t, t.TempDir())
	const writers = 6
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inserted int
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Overlapping ranges: writer w covers [w*50, w*50+100).
			for start := w * 50; start < w*50+100; start += 25 {
				ins, _, err := s.InsertBatch(context.Background(), events(start, start+25), time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inserted += ins
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	const unique = (writers-1)*50 + 100
	if inserted != unique {
		t.Errorf("inserted %d in total, want %d unique events", inserted, unique)
	}
	if got := count(t, s); got != unique {
		t.Errorf("Count = %d, want %d", got, unique)
	}
}

func TestInsertBatchAllOrNothing(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	insert(t, s, events(0, 5), 5, 0)
	if _, err := s.DB().Exec(`CREATE TRIGGER fail BEFORE INSERT ON events WHEN NEW.event_id = 'evt_00060'
		BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	// The failing event is in the second chunk: the first chunk must not stay written.
	ins, dups, err := s.InsertBatch(ctx, events(5, 70), time.Now())
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("InsertBatch with a failing event = %d, %d, %v; want the injected error", ins, dups, err)
	}
	if got := count(t, s); got != 5 {
		t.Errorf("Count after a failed batch = %d, want 5", got)
	}
	if got := rows(t, s); got != 5 {
		t.Errorf("rows after a failed batch = %d, want 5", got)
	}
	if _, err := s.DB().Exec(`DROP TRIGGER fail`); err != nil {
		t.Fatal(err)
	}
	insert(t, s, events(5, 70), 65, 0) // the retry is safe
	if got := count(t, s); got != 70 {
		t.Errorf("Count = %d, want 70", got)
	}
}

func TestRoundTrip(t *testing.T) {
	s := openStore(t, t.TempDir())
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	full := event.Event{
		EventID:    "evt_full",
		EventType:  "checkout",
		UserID:     "user_ü",
		SessionID:  "sess_1",
		Timestamp:  time.Date(2026, 7, 8, 9, 10, 11, 123_456_789, loc),
		Metadata:   json.RawMessage(`{"ua":"curl/8","nested":{"a":[1,2,3]}}`),
		Payload:    json.RawMessage(`{"amount":12.5,"currency":"EUR"}`),
		Priority:   2,
		ReceivedAt: time.Date(2026, 7, 8, 4, 0, 0, 987_654_321, time.UTC),
	}
	bare := event.Event{
		EventID: "evt_bare", EventType: "ping", UserID: "u", SessionID: "s",
		Timestamp: base, ReceivedAt: base.Add(time.Second),
	}
	processed := time.Date(2026, 7, 8, 4, 0, 1, 5, time.UTC)
	if _, _, err := s.InsertBatch(context.Background(), []event.Event{full, bare}, processed); err != nil {
		t.Fatal(err)
	}
	for _, e := range []event.Event{full, bare} {
		var (
			typ, user, session        string
			ts, received, processedAt int64
			metadata, payload         sql.NullString
			priority                  int
		)
		err := s.DB().QueryRow(`SELECT event_type, user_id, session_id, ts, metadata, payload, priority, received_at, processed_at
			FROM events WHERE event_id = ?`, e.EventID).
			Scan(&typ, &user, &session, &ts, &metadata, &payload, &priority, &received, &processedAt)
		if err != nil {
			t.Fatalf("read back %s: %v", e.EventID, err)
		}
		if typ != e.EventType || user != e.UserID || session != e.SessionID || priority != e.Priority {
			t.Errorf("%s: type, user, session, priority = %q %q %q %d; want %q %q %q %d",
				e.EventID, typ, user, session, priority, e.EventType, e.UserID, e.SessionID, e.Priority)
		}
		if ts != e.Timestamp.UnixNano() || !time.Unix(0, ts).Equal(e.Timestamp) {
			t.Errorf("%s: ts = %d, want %d", e.EventID, ts, e.Timestamp.UnixNano())
		}
		if received != e.ReceivedAt.UnixNano() || processedAt != processed.UnixNano() {
			t.Errorf("%s: received_at, processed_at = %d, %d; want %d, %d",
				e.EventID, received, processedAt, e.ReceivedAt.UnixNano(), processed.UnixNano())
		}
		checkJSON(t, e.EventID+" metadata", metadata, e.Metadata)
		checkJSON(t, e.EventID+" payload", payload, e.Payload)
	}
}

func checkJSON(t *testing.T, what string, got sql.NullString, want json.RawMessage) {
	t.Helper()
	if len(want) == 0 {
		if got.Valid {
			t.Errorf("%s = %q, want NULL", what, got.String)
		}
		return
	}
	if !got.Valid || got.String != string(want) {
		t.Errorf("%s = %v %q, want %q unchanged", what, got.Valid, got.String, want)
	}
}

func TestDeadLetter(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	if n, err := s.DeadLetterCount(ctx); err != nil || n != 0 {
		t.Fatalf("DeadLetterCount of a new store = %d, %v", n, err)
	}
	if err := s.DeadLetter(ctx, nil); err != nil {
		t.Fatalf("DeadLetter(nil): %v", err)
	}
	failed := time.Date(2026, 1, 1, 0, 0, 0, 42, time.UTC)
	letters := []store.DeadLetter{
		{EventID: "evt_x", Data: []byte(`{"eventId":"evt_x"}`), Error: "too large", Attempts: 3, FailedAt: failed},
		{EventID: "", Data: []byte{0xff, 0x00, 0x01}, Error: "undecodable buffer entry", Attempts: 1, FailedAt: failed.Add(time.Second)},
	}
	if err := s.DeadLetter(ctx, letters); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if err := s.DeadLetter(ctx, letters[:1]); err != nil { // dead letters are not deduplicated
		t.Fatalf("DeadLetter: %v", err)
	}
	if n, err := s.DeadLetterCount(ctx); err != nil || n != 3 {
		t.Errorf("DeadLetterCount = %d, %v; want 3", n, err)
	}
	if got := count(t, s); got != 0 {
		t.Errorf("Count = %d: dead letters counted as events", got)
	}

	r, err := s.DB().Query(`SELECT event_id, data, error, attempts, failed_at FROM events_dlq ORDER BY id LIMIT 2`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; r.Next(); i++ {
		var (
			id       sql.NullString
			data     []byte
			msg      string
			attempts int
			at       int64
		)
		if err := r.Scan(&id, &data, &msg, &attempts, &at); err != nil {
			t.Fatal(err)
		}
		l := letters[i]
		if id.Valid != (l.EventID != "") || id.String != l.EventID {
			t.Errorf("letter %d: event_id = %v %q, want %q (NULL when empty)", i, id.Valid, id.String, l.EventID)
		}
		if !bytes.Equal(data, l.Data) || msg != l.Error || attempts != l.Attempts || at != l.FailedAt.UnixNano() {
			t.Errorf("letter %d = %q %q %d %d, want %q %q %d %d", i, data, msg, attempts, at, l.Data, l.Error, l.Attempts, l.FailedAt.UnixNano())
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRecentEventIDs(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := time.Now()
	at := func(id string, received time.Time) event.Event {
		e := testEvent(0)
		e.EventID, e.ReceivedAt = id, received
		return e
	}
	batches := [][]event.Event{
		{at("old-1", now.Add(-3*time.Hour)), at("old-2", now.Add(-2*time.Hour))},
		{at("new-1", now.Add(-5*time.Minute))},
		{at("late-old", now.Add(-90*time.Minute))}, // a redelivered batch landing late
		{at("new-2", now.Add(-time.Minute)), at("edge", now.Add(-10*time.Minute))},
	}
	for _, b := range batches {
		insert(t, s, b, len(b), 0)
	}
	want := map[string]time.Time{}
	for _, b := range batches {
		for _, e := range b {
			if strings.HasPrefix(e.EventID, "new") || e.EventID == "edge" {
				want[e.EventID] = e.ReceivedAt
			}
		}
	}

	since := now.Add(-10 * time.Minute) // "edge" was received exactly at since: included
	var got []string
	err := s.RecentEventIDs(context.Background(), since, 0, func(id string, received time.Time) {
		got = append(got, id)
		if w, ok := want[id]; ok && !received.Equal(w) {
			t.Errorf("%s: receivedAt = %v, want %v", id, received, w)
		}
	})
	if err != nil {
		t.Fatalf("RecentEventIDs: %v", err)
	}
	sort.Strings(got)
	if wantIDs := []string{"edge", "new-1", "new-2"}; !slices.Equal(got, wantIDs) {
		t.Errorf("RecentEventIDs = %v, want %v", got, wantIDs)
	}

	got = got[:0]
	if err := s.RecentEventIDs(context.Background(), now, 0, func(id string, _ time.Time) { got = append(got, id) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("RecentEventIDs(since now) = %v, want none", got)
	}

	// A limit stops the walk after that many ids, newest first.
	got = got[:0]
	if err := s.RecentEventIDs(context.Background(), since, 2, func(id string, _ time.Time) { got = append(got, id) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("RecentEventIDs(limit 2) = %v, want 2 ids", got)
	}
}

func TestPingClose(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), sqlitedb.SyncFull)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}
