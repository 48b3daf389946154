package sqlitestore

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// epoch is 1970-01-01T00:00:00Z, Unix ns 0.
var epoch = time.Unix(0, 0).UTC()

// epochEvents returns events at and before the epoch (negative Unix ns) and one at
// event.MinTime: a user whose newest event is exactly at 0, one a nanosecond before it, one
// whose newest event in an hour is of another type than the query's (read from the events
// table to the nanosecond), and one with events on both sides of a query's minute edge.
func epochEvents() []event.Event {
	at := []struct {
		user, typ string
		ts        time.Time
	}{
		{"u_epoch", "click", epoch},
		{"u_epoch", "click", epoch.Add(-90 * time.Minute)},
		{"u_neg", "click", epoch.Add(-time.Nanosecond)},
		{"u_neg", "view", epoch.Add(-30 * time.Minute)},
		{"u_late", "click", epoch.Add(-40*time.Minute + 15*time.Second + 123)}, // 23:20:15
		{"u_late", "view", epoch.Add(-20 * time.Minute)},                       // 23:40
		{"u_late", "click", epoch.Add(-110 * time.Minute)},                     // 22:10
		{"u_edge", "view", epoch.Add(-110*time.Minute + time.Second)},          // 22:10:01
		{"u_edge", "view", epoch.Add(-70 * time.Minute)},                       // 22:50
		{"u_old", "click", event.MinTime.Add(10 * time.Minute)},
		{"u_old", "view", event.MinTime},
	}
	out := make([]event.Event, len(at))
	for i, a := range at {
		out[i] = event.Event{EventID: fmt.Sprintf("e%d", i), EventType: a.typ, UserID: a.user,
			SessionID: fmt.Sprintf("s%d", i%3), Timestamp: a.ts, ReceivedAt: base}
	}
	return out
}

func epochQueries() []store.AnalyticsQuery {
	old := event.MinTime
	return []store.AnalyticsQuery{
		{Start: epoch.Add(-2 * time.Hour), End: epoch.Add(time.Hour), Bucket: time.Hour},
		{Start: epoch.Add(-115 * time.Minute), End: epoch.Add(-85 * time.Minute), Bucket: 5 * time.Minute}, // inside hour 22
		{Start: epoch.Add(-95 * time.Minute), End: epoch.Add(5 * time.Minute), Bucket: 5 * time.Minute},
		{Start: old, End: old.Add(time.Hour), Bucket: time.Hour},
		{Start: epoch.Add(-2 * time.Hour), End: epoch.Add(time.Hour), Bucket: time.Hour, UserID: "U_"},
		{Start: epoch.Add(-95 * time.Minute), End: epoch.Add(5 * time.Minute), Bucket: 5 * time.Minute, UserID: "e"},
		{Start: epoch.Add(-2 * time.Hour), End: epoch.Add(time.Hour), Bucket: time.Hour, EventType: "click"},
		{Start: epoch.Add(-115 * time.Minute), End: epoch.Add(-5 * time.Minute), Bucket: 5 * time.Minute, EventType: "click"},
		{Start: old, End: old.Add(time.Hour), Bucket: 30 * time.Minute, EventType: "click", UserID: "OLD"},
	}
}

// Every answer gives each top user's newest event to the nanosecond for events at and
// before 1970-01-01T00:00:00Z (Unix ns 0 and negative): unfiltered (per-user rollups),
// filtered from the digest, filtered from the events table, after a restart with the
// digest from the snapshot or read from the events again, and after an upgrade from a
// store whose per-user rows and digest snapshot say 0 for "none"; and so does every answer
// after retention with a cut-off before 1970.
func TestAnalyticsAtAndBeforeEpoch(t *testing.T) {
	ctx := context.Background()
	all := epochEvents()
	for _, mode := range []string{"digest", "events", "snapshot", "warm-up", "upgrade"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			insert(t, s, all, len(all), 0)
			if err := s.BuildRollups(ctx); err != nil {
				t.Fatal(err)
			}
			switch mode {
			case "events":
				s.digestOff()
			case "snapshot", "warm-up", "upgrade":
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				switch mode {
				case "warm-up":
					if err := os.Remove(filepath.Join(dir, digestSnapshotFile)); err != nil {
						t.Fatal(err)
					}
				case "upgrade":
					asPreviousVersion(t, dir)
				}
				s = openStore(t, dir)
				if s.digestLoaded != (mode == "snapshot") {
					t.Fatalf("digest taken from the snapshot: %v", s.digestLoaded)
				}
			}
			<-s.mem.warmed
			kept := all
			check := func(step string) {
				t.Helper()
				for qi, q := range epochQueries() {
					got, err := s.Analytics(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					want := storetest.Expect(kept, q)
					if want.TotalEvents == 0 && step == "stored" {
						t.Fatalf("query %d matches no events; the test needs some", qi)
					}
					if err := storetest.Compare(got, want, false); err != nil {
						t.Errorf("%s: query %d (%s %q %q): %v", step, qi, q.Start.Format(time.DateTime), q.EventType, q.UserID, err)
					}
				}
			}
			check("stored")
			check("again") // with the scratch arrays used once
			if mode != "events" && s.filters.lastReads == 0 {
				t.Error("no newest event time was read from the events table: the test misses that case")
			}
			if mode == "events" && s.filters.loads == 0 {
				t.Error("no partial result was read from the events table")
			}

			cutoff := epoch.Add(-100 * time.Minute) // 22:20, between u_late's and u_edge's events
			if _, err := s.Prune(ctx, cutoff); err != nil {
				t.Fatal(err)
			}
			kept = nil
			for _, e := range all {
				if !e.Timestamp.Before(cutoff) {
					kept = append(kept, e)
				}
			}
			check("after retention")
		})
	}
}

// asPreviousVersion makes the closed store in dir what the version before noTime left: the
// per-user rows before 1970 with a newest event time of 0, the schema without the migration
// that reads them again, and a digest snapshot of the previous version (its retention
// cut-off 0 for none).
func asPreviousVersion(t *testing.T, dir string) {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(dir, "events.db"), sqlitedb.SyncNormal, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`UPDATE user_minute SET last_ts = 0 WHERE minute < 0`,
		`UPDATE user_hour SET last_ts = 0 WHERE hour < 0`,
		`DELETE FROM schema_migrations WHERE version = 6`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, digestSnapshotFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var snap digestSnapshot
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	if snap.Cutoff != noTime {
		t.Fatalf("snapshot cut-off %d, want none", snap.Cutoff)
	}
	snap.Version, snap.Cutoff = 1, 0
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&snap); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// When the events table no longer holds the minute the digest places a top user's newest
// matching event in (retention deleted it after the digest's part was taken), lastEventAt
// is the newest matching event known, not 1970-01-01.
func TestLastEventAtMinuteGone(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	all := epochEvents()
	insert(t, s, all, len(all), 0)
	if err := s.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	// The digest still holds it: as if retention deleted it during the query.
	if _, err := s.DB().Exec(`DELETE FROM events WHERE event_id = 'e4'`); err != nil { // u_late's 23:20:15 click
		t.Fatal(err)
	}
	q := store.AnalyticsQuery{Start: epoch.Add(-2 * time.Hour), End: epoch.Add(time.Hour), Bucket: time.Hour, EventType: "click", UserID: "u_late"}
	got, err := s.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if s.filters.lastReads == 0 {
		t.Fatal("no newest event time was read from the events table: the test misses that case")
	}
	want := epoch.Add(-110 * time.Minute) // u_late's 22:10 click
	if len(got.TopUsers) != 1 || got.TopUsers[0].EventCount != 2 || !got.TopUsers[0].LastEventAt.Equal(want) {
		t.Fatalf("topUsers = %+v, want u_late with 2 events, the last at %s", got.TopUsers, want)
	}
}
