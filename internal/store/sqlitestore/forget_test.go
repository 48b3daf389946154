package sqlitestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// without returns evs but those of user.
func without(evs []event.Event, user string) []event.Event {
	var out []event.Event
	for _, e := range evs {
		if e.UserID != user {
			out = append(out, e)
		}
	}
	return out
}

// persistedName reports whether the persisted dictionaries hold user.
func persistedName(t *testing.T, s *Store, user string) bool {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM analytics_name WHERE kind = 0 AND name = ?`, user).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// A deletion through one process reaches the other's engine at its next feed (exact unique
// counts, brute force), the persisted blocks and dictionaries lose the user, and a third
// process starting from them answers the same.
func TestForgetReachesEveryProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openStore(t, dir), openStore(t, dir)
	evs := storetest.Corpus(3000, 31)
	insert(t, a, evs[:2000], 2000, 0)
	if err := a.feed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.seal(ctx, true); err != nil { // a holds the lease and persists
		t.Fatal(err)
	}
	insert(t, b, evs[2000:], 1000, 0)
	checkCorpus(t, b, evs, "before")
	const gone = "User_000"
	if !persistedName(t, a, gone) {
		t.Fatalf("corpus: %s not persisted before the deletion", gone)
	}
	n, err := b.ForgetUser(ctx, gone) // b deletes; a persists
	kept := without(evs, gone)
	if err != nil || n != int64(len(evs)-len(kept)) {
		t.Fatalf("ForgetUser = %d, %v; want %d", n, err, len(evs)-len(kept))
	}
	checkCorpus(t, b, kept, "the deleting process")
	// The other applies it in the background, within a second or so.
	for deadline := time.Now().Add(10 * time.Second); a.an.forgotten.Load() < b.an.forgotten.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other process has not applied the deletion after 10 s")
		}
	}
	checkCorpus(t, a, kept, "the other process")
	if _, known := a.an.eng.Snapshot().Dicts().Users.Lookup(gone); known {
		t.Fatal("the other process's dictionary still names the user")
	}
	if err := a.seal(ctx, false); err != nil {
		t.Fatal(err)
	}
	if persistedName(t, a, gone) {
		t.Fatal("the persisted dictionary still names the user")
	}
	a.crash()
	b.crash()
	checkCorpus(t, openStore(t, dir), kept, "a third process")
}

// A process that dies after the rows are deleted, before any engine rebuilt the hours,
// leaves persisted blocks that still count them: the next start rebuilds those hours from
// the log of deletions.
func TestForgetAfterACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	s.stopAnalytics()
	evs := storetest.Corpus(3000, 32)
	insert(t, s, evs, 3000, 0)
	if err := s.feed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.seal(ctx, true); err != nil {
		t.Fatal(err)
	}
	const gone = "User_000"
	seqs, err := s.userSeqs(ctx, gone)
	if err != nil || len(seqs) == 0 {
		t.Fatalf("userSeqs = %d seqs, %v", len(seqs), err)
	}
	if n, err := s.forgetChunk(ctx, gone, seqs); err != nil || n != int64(len(seqs)) {
		t.Fatalf("forgetChunk = %d, %v; want %d", n, err, len(seqs))
	}
	s.crash()

	again := openStore(t, dir)
	kept := without(evs, gone)
	checkCorpus(t, again, kept, "after the crash")
	if _, known := again.an.eng.Snapshot().Dicts().Users.Lookup(gone); known {
		t.Fatal("the dictionary still names the user after the start")
	}
}

// Deleting the newest row leaves a placeholder in its place that no reader shows and no
// count counts, so that the next event takes a seq after it and is fed; the next deletion
// removes the placeholder.
func TestForgetTheNewestRow(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	evs := storetest.Corpus(200, 33)
	insert(t, s, evs, 200, 0)
	last := evs[len(evs)-1]
	if n, err := s.ForgetUser(ctx, last.UserID); err != nil || n == 0 {
		t.Fatalf("ForgetUser = %d, %v", n, err)
	}
	var top int64
	var id string
	if err := s.rdb.QueryRow(`SELECT seq, event_id FROM events ORDER BY seq DESC LIMIT 1`).Scan(&top, &id); err != nil || id != "" || top != 200 {
		t.Fatalf("newest row %d %q (%v), want the placeholder at 200", top, id, err)
	}
	kept := without(evs, last.UserID)
	next := storetest.Corpus(201, 34)[200:] // one more event, after the placeholder
	insert(t, s, next, 1, 0)
	kept = append(kept, next...)
	checkCorpus(t, s, kept, "after one more event")
	if n, err := s.ForgetUser(ctx, "nobody"); err != nil || n != 0 {
		t.Fatalf("ForgetUser(nobody) = %d, %v", n, err)
	}
	other := kept[0].UserID
	if _, err := s.ForgetUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	var placeholders int
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM events WHERE event_id = ''`).Scan(&placeholders); err != nil || placeholders != 0 {
		t.Fatalf("%d placeholders (%v) once a newer row exists, want 0", placeholders, err)
	}
	checkCorpus(t, s, without(kept, other), "after a second deletion")
}

// The forgotten id is not left readable in the database file once the log is
// checkpointed: the rows are zeroed as they are deleted, and the dictionaries rewritten.
func TestForgetLeavesNoCopyInTheFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	evs := storetest.Corpus(3000, 35)
	for i := range evs {
		if evs[i].UserID == "User_000" || evs[i].UserID == "user_001" && i%2 == 0 { // a busy user; rows next to theirs
			evs[i].UserID = "forget-me-please"
		}
	}
	// And a run of the user's rows with large properties: whole pages, overflow pages.
	big := json.RawMessage(`{"note":"` + strings.Repeat("forget-me-please ", 300) + `"}`)
	for i := range 200 {
		evs = append(evs, event.Event{EventID: fmt.Sprintf("big%d", i), EventType: "view", UserID: "forget-me-please", SessionID: "s",
			Timestamp: evs[0].Timestamp, ReceivedAt: evs[0].Timestamp, Metadata: big})
	}
	insert(t, s, evs, len(evs), 0)
	if err := s.seal(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ForgetUser(ctx, "forget-me-please"); err != nil {
		t.Fatal(err)
	}
	// While the store is open: the file and its write-ahead log.
	db, err := os.ReadFile(filepath.Join(dir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(dir, "events.db-wal"))
	if n := bytes.Count(db, []byte("forget-me-please")) + bytes.Count(wal, []byte("forget-me-please")); n > 0 {
		t.Fatalf("the id is in the file or its log %d times after the deletion", n)
	}
	if bytes.Count(db, []byte("user_001")) == 0 {
		t.Fatal("the file holds no other user id either: the check sees nothing")
	}
}

// The user's rows before the retention cut-off, hidden and not yet pruned, go too.
func TestForgetReachesRowsBeforeTheCutoff(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	evs := storetest.Corpus(2000, 36)
	insert(t, s, evs, 2000, 0)
	const gone = "User_000"
	cut := evs[1000].Timestamp
	if _, err := s.wdb.Exec(`INSERT INTO counters(name, value) VALUES ('retention_cutoff', ?)`, cut.UnixNano()); err != nil {
		t.Fatal(err)
	}
	want, before := 0, 0
	for _, e := range evs {
		if e.UserID == gone {
			want++
			if e.Timestamp.Before(cut) {
				before++
			}
		}
	}
	if before == 0 || before == want {
		t.Fatalf("corpus: %d of %s's %d events before the cut-off, want some on each side", before, gone, want)
	}
	if n, err := s.ForgetUser(ctx, gone); err != nil || n != int64(want) {
		t.Fatalf("ForgetUser = %d, %v; want %d", n, err, want)
	}
	var left int
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM events WHERE user_id = ?`, gone).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d rows of %s left (%v)", left, gone, err)
	}
}
