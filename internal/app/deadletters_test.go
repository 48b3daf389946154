package app

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/sqlitedb"
)

// waitDeadLetters polls /api/metrics until the dead-letter queue holds want entries.
func (in *instance) waitDeadLetters(want float64) {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got any
	for time.Now().Before(deadline) {
		r := in.do("GET", "/api/metrics", nil, nil)
		if errs, ok := r.data()["errors"].(map[string]any); ok {
			if got = errs["dlqEvents"]; got == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.t.Fatalf("dlqEvents = %v, want %v", got, want)
}

// An event the store refuses is dead-lettered, listed and shown with its reason, and once
// the cause is removed a replay stores it exactly once, however often it is replayed.
func TestDeadLetterReplayEndToEnd(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlitedb.Open(filepath.Join(dir, "events.db"), sqlitedb.SyncNormal, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in := start(t, dir, nil)
	op := bearer(in.signInAs("ops@example.com")) // the first user: ADMIN, which can manage dead letters
	// A trigger makes the store refuse one event type: a real SQLite error on every attempt.
	if _, err := db.Exec(`CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_type = 'poison'
		BEGIN SELECT RAISE(ABORT, 'poisoned event refused'); END`); err != nil {
		t.Fatal(err)
	}
	batch := []any{ev("dl-ok", "click"), ev("dl-bad", "poison")}
	if r := in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": batch}), nil); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	in.waitStored(1)
	in.waitDeadLetters(1)

	// Listed, newest first, with the reason and the original event.
	r := in.do("GET", "/api/v1/dead-letters", nil, op)
	items, _ := r.data()["items"].([]any)
	if r.status != 200 || len(items) != 1 || r.data()["total"] != 1.0 || r.data()["nextCursor"] != nil {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	letter := items[0].(map[string]any)
	id, _ := letter["id"].(string)
	evt, _ := letter["event"].(map[string]any)
	if id == "" || letter["eventId"] != "dl-bad" || letter["attempts"] != 3.0 || letter["replayable"] != true ||
		!strings.Contains(letter["error"].(string), "poisoned event refused") ||
		evt["eventType"] != "poison" || evt["userId"] != "user_1" || evt["timestamp"] != "2024-01-15T10:30:00.123Z" {
		t.Fatalf("letter: %v", letter)
	}
	if r := in.do("GET", "/api/v1/dead-letters/"+id, nil, op); r.status != 200 || r.data()["eventId"] != "dl-bad" || r.data()["id"] != id {
		t.Fatalf("show: %d %s", r.status, r.raw)
	}

	// The same letter twice (a worker that dead-lettered it and died before acknowledging
	// dead-letters it again on redelivery), and an entry that never decoded.
	if _, err := db.Exec(`INSERT INTO events_dlq(event_id, data, error, attempts, failed_at)
		SELECT event_id, data, error, attempts, failed_at + 1 FROM events_dlq WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO events_dlq(event_id, data, error, attempts, failed_at) VALUES (NULL, X'FF7B', 'undecodable buffer entry', 1, ?)`,
		time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	in.waitDeadLetters(3)
	r = in.do("GET", "/api/v1/dead-letters?limit=1", nil, op)
	items, _ = r.data()["items"].([]any)
	if r.status != 200 || len(items) != 1 || r.data()["total"] != 3.0 || r.data()["nextCursor"] == nil {
		t.Fatalf("first page: %d %s", r.status, r.raw)
	}
	junk := items[0].(map[string]any)
	junkID, _ := junk["id"].(string)
	if junk["replayable"] != false || junk["eventId"] != nil || junk["raw"] == nil || junk["event"] != nil {
		t.Fatalf("undecodable letter: %v", junk)
	}
	if r := in.do("POST", "/api/v1/dead-letters/"+junkID+"/replay", nil, op); r.status != 409 || r.errorCode() != "NOT_REPLAYABLE" {
		t.Fatalf("replay of an undecodable letter: %d %s", r.status, r.raw)
	}

	// The cause is removed; replay the letter, then everything that is left.
	if _, err := db.Exec(`DROP TRIGGER poison`); err != nil {
		t.Fatal(err)
	}
	r = in.do("POST", "/api/v1/dead-letters/"+id+"/replay", nil, op)
	if r.status != 200 || r.data()["eventId"] != "dl-bad" || r.data()["replayed"] != true {
		t.Fatalf("replay: %d %s", r.status, r.raw)
	}
	in.waitStored(2)
	in.waitBufferEmpty()
	if r := in.do("GET", "/api/v1/dead-letters/"+id, nil, op); r.status != 404 || r.errorCode() != "NOT_FOUND" {
		t.Fatalf("replayed letter still shown: %d %s", r.status, r.raw)
	}
	if r := in.do("POST", "/api/v1/dead-letters/"+id+"/replay", nil, op); r.status != 404 {
		t.Fatalf("second replay of the same letter: %d %s", r.status, r.raw)
	}
	// Replaying the copy appends the stored event again; the store keeps one.
	r = in.do("POST", "/api/v1/dead-letters/replay", nil, op)
	if r.status != 200 || r.data()["replayed"] != 1.0 || r.data()["skipped"] != 1.0 {
		t.Fatalf("replay all: %d %s", r.status, r.raw)
	}
	in.waitBufferEmpty()
	in.waitStored(2)
	var n int
	var typ string
	if err := db.QueryRow(`SELECT COUNT(*), MAX(event_type) FROM events WHERE event_id = 'dl-bad'`).Scan(&n, &typ); err != nil {
		t.Fatal(err)
	}
	if n != 1 || typ != "poison" {
		t.Fatalf("dl-bad stored %d times (type %q), want once", n, typ)
	}

	// Only the undecodable letter is left; deleting it empties the queue and the count.
	in.waitDeadLetters(1)
	r = in.do("GET", "/api/v1/dead-letters", nil, op)
	items, _ = r.data()["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != junkID || r.data()["total"] != 1.0 {
		t.Fatalf("after replay: %s", r.raw)
	}
	if r := in.do("DELETE", "/api/v1/dead-letters/"+junkID, nil, op); r.status != 200 || r.data()["deleted"] != true || r.data()["id"] != junkID {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if r := in.do("DELETE", "/api/v1/dead-letters/"+junkID, nil, op); r.status != 404 {
		t.Fatalf("second delete: %d %s", r.status, r.raw)
	}
	in.waitDeadLetters(0)
	r = in.do("GET", "/api/v1/dead-letters", nil, op)
	if items, _ := r.data()["items"].([]any); r.status != 200 || len(items) != 0 || r.data()["total"] != 0.0 {
		t.Fatalf("empty list: %d %s", r.status, r.raw)
	}
}
