package sqlitestore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// snapshotEvents returns n random events of the last three hours.
func snapshotEvents(seed uint64, from, n int) []event.Event {
	rng := rand.New(rand.NewPCG(seed, 11))
	t0 := time.Now().Add(-3 * time.Hour)
	types := []string{"page_view", "click", "purchase", "signup"}
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{EventID: fmt.Sprintf("e%d", from+i), EventType: types[rng.IntN(len(types))],
			UserID: fmt.Sprintf("user_%d", rng.IntN(300)), SessionID: fmt.Sprintf("s%d", rng.IntN(2000)),
			Timestamp: t0.Add(time.Duration(rng.Int64N(int64(3 * time.Hour)))), ReceivedAt: t0}
	}
	return out
}

func snapshotQueries() []store.AnalyticsQuery {
	end := time.Now().Truncate(time.Minute).Add(time.Minute)
	return []store.AnalyticsQuery{
		{Start: end.Add(-4 * time.Hour), End: end, Bucket: 30 * time.Minute, EventType: "click"},
		{Start: end.Add(-4 * time.Hour), End: end, Bucket: time.Hour, UserID: "user_1"},
		{Start: end.Add(-97 * time.Minute), End: end, Bucket: time.Minute, EventType: "signup", UserID: "2"},
	}
}

func checkAgainstBruteForce(t *testing.T, s *Store, all []event.Event) {
	t.Helper()
	for qi, q := range snapshotQueries() {
		got, err := s.Analytics(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		want := storetest.Expect(all, q)
		if err := storetest.Compare(got, want, false); err != nil || got.UniqueUsers != want.UniqueUsers {
			t.Errorf("query %d (%q %q): %v (users %d, want %d)", qi, q.EventType, q.UserID, err, got.UniqueUsers, want.UniqueUsers)
		}
	}
}

// storeAndClose stores events in a store in dir and closes it, and returns the path of the
// digest snapshot Close wrote.
func storeAndClose(t *testing.T, dir string, events []event.Event) string {
	t.Helper()
	s, err := Open(context.Background(), dir, sqlitedb.SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	insert(t, s, events, len(events), 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, digestSnapshotFile)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no snapshot after Close: %v", err)
	}
	return path
}

// Close saves the event digest and the next Open takes it back instead of reading the
// events again; the events stored after the restart join it, and filtered analytics still
// agree with a brute-force computation.
func TestDigestSnapshotAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first, second := snapshotEvents(1, 0, 6000), snapshotEvents(2, 6000, 4000)

	path := storeAndClose(t, dir, first)

	s2 := openStore(t, dir)
	if !s2.digestLoaded {
		t.Fatal("Open did not take the digest from the snapshot")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("snapshot still there after Open (%v): a crash later would reuse it", err)
	}
	checkAgainstBruteForce(t, s2, first)
	insert(t, s2, second, len(second), 0)
	if err := s2.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	checkAgainstBruteForce(t, s2, append(first, second...))
	if s2.filters.loads != 0 {
		t.Errorf("%d partial results were read from the events table, want none: the digest covers every hour", s2.filters.loads)
	}
}

// A damaged snapshot is not used: Open says so, reads the events instead, and deletes it.
func TestDigestSnapshotDamaged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	all := snapshotEvents(3, 0, 3000)
	path := storeAndClose(t, dir, all)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	s2, err := OpenLogged(ctx, dir, sqlitedb.SyncNormal, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.digestLoaded {
		t.Error("a truncated snapshot was used")
	}
	if !strings.Contains(buf.String(), "event digest snapshot not used") {
		t.Errorf("log does not say the snapshot was not used:\n%s", buf.String())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("damaged snapshot still there after Open (%v)", err)
	}
	checkAgainstBruteForce(t, s2, all)
}
