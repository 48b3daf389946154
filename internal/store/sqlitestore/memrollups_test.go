package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
)

// crash closes the store like a killed process: no final sketch flush.
func (s *Store) crash() {
	close(s.mem.stop)
	<-s.mem.done
	s.mem.stop = nil
	_ = errors.Join(s.rdb.Close(), s.wdb.Close())
}

func sketchSeq(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.rdb.QueryRow(`SELECT value FROM counters WHERE name = 'rollup_seq'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Ids added after the last flush are recovered from the events table on the next open.
func TestSketchesSurviveACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, "NORMAL")
	if err != nil {
		t.Fatal(err)
	}
	es := events(0, 600)
	for i := range es {
		es[i].UserID = fmt.Sprintf("user_%d", i%300) // 300 users, 3 sessions (testEvent)
	}
	insert(t, s, es[:200], 200, 0)
	if err := s.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	flushed := sketchSeq(t, s)
	insert(t, s, es[200:], 400, 0) // only in memory now (the flusher ticks once a second)
	s.crash()

	s2 := openStore(t, dir)
	if got := sketchSeq(t, s2); got <= flushed {
		t.Fatalf("rollup_seq = %d after recovery, want past %d", got, flushed)
	}
	from := es[0].Timestamp.Truncate(time.Minute)
	q := store.AnalyticsQuery{Start: from, End: from.Add(20 * time.Minute), Bucket: time.Minute}
	res, err := s2.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalEvents != 600 || math.Abs(float64(res.UniqueUsers-300)) > 6 || res.UniqueSessions != 3 {
		t.Fatalf("after a crash: %d events, %d users, %d sessions; want 600, about 300, 3", res.TotalEvents, res.UniqueUsers, res.UniqueSessions)
	}
}

// Analytics sees every id stored before it, without waiting for the flusher.
func TestAnalyticsSeesUnflushedIDs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	es := events(0, 50)
	for i := range es {
		es[i].UserID = fmt.Sprintf("u%d", i)
	}
	insert(t, s, es, 50, 0)
	from := es[0].Timestamp.Truncate(time.Minute)
	res, err := s.Analytics(ctx, store.AnalyticsQuery{Start: from, End: from.Add(2 * time.Minute), Bucket: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.UniqueUsers != 50 {
		t.Fatalf("UniqueUsers = %d right after insert, want 50", res.UniqueUsers)
	}
}

func TestUserSpans(t *testing.T) {
	h := func(a, b int64) span { return span{hour: true, a: a, b: b} }
	m := func(a, b int64) span { return span{a: a, b: b} }
	for _, c := range []struct {
		name             string
		start, end, keep int64
		want             []span
	}{
		{"inside one hour", 610, 625, 0, []span{m(610, 625)}},
		{"across an hour boundary", 650, 670, 0, []span{m(650, 670)}},
		{"whole hours and edges", 610, 790, 0, []span{m(610, 660), h(11, 13), m(780, 790)}},
		{"aligned", 600, 780, 0, []span{h(10, 13)}},
		{"old start edge widened", 610, 790, 700, []span{h(10, 13), m(780, 790)}},
		{"all old", 610, 625, 1000, []span{h(10, 11)}},
	} {
		got := userSpans(c.start, c.end, c.keep)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: userSpans(%d, %d, %d) = %v, want %v", c.name, c.start, c.end, c.keep, got, c.want)
		}
	}
}

// topUsers from the rollups equals counting the raw events, for ranges with edges, and
// after a redelivered batch; after the minute rows are pruned, old edges count whole hours.
func TestTopUsersFromRollups(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	es := events(0, 3000) // one a second from base (04:05:06): about 50 minutes
	for i := range es {
		es[i].UserID = fmt.Sprintf("u%d", (i*i)%37)
		es[i].EventType = []string{"a", "b", "c"}[i%3]
	}
	insert(t, s, es[:2000], 2000, 0)
	insert(t, s, es[1500:], 1000, 500) // overlapping redelivery: only new rows count
	brute := func(from, to time.Time) map[string]int64 {
		m := map[string]int64{}
		for _, e := range es {
			if !e.Timestamp.Before(from) && e.Timestamp.Before(to) {
				m[e.UserID]++
			}
		}
		return m
	}
	check := func(name string, from, to time.Time, want map[string]int64) {
		t.Helper()
		if err := s.BuildRollups(ctx); err != nil {
			t.Fatal(err)
		}
		top, err := s.topUsersNow(ctx, unixMinute(from.UnixNano()), unixMinute(to.UnixNano()))
		if err != nil {
			t.Fatal(err)
		}
		if len(top) == 0 {
			t.Fatalf("%s: no top users", name)
		}
		for i, tu := range top {
			if tu.EventCount != want[tu.UserID] {
				t.Errorf("%s: %s has %d events, want %d", name, tu.UserID, tu.EventCount, want[tu.UserID])
			}
			if i > 0 && top[i-1].EventCount < tu.EventCount {
				t.Errorf("%s: not sorted: %v", name, top)
			}
		}
		for u, c := range want {
			if c > top[len(top)-1].EventCount {
				found := false
				for _, tu := range top {
					found = found || tu.UserID == u
				}
				if !found {
					t.Errorf("%s: %s (%d events) missing from %v", name, u, c, top)
				}
			}
		}
	}
	from := base.Truncate(time.Minute).Add(3 * time.Minute)
	to := from.Add(40 * time.Minute) // crosses 05:00 with minute edges on both sides
	check("edges", from, to, brute(from, to))
	// Prune every minute row: the edges then count their whole hours (04:00-06:00 here).
	if err := s.pruneUserMinutes(ctx, base.Add(100*userMinuteKeep)); err != nil {
		t.Fatal(err)
	}
	check("pruned", from, to, brute(base.Truncate(time.Hour), base.Truncate(time.Hour).Add(2*time.Hour)))
}

// Two stores on one directory (evp api and evp worker processes on one machine) both insert
// and both build the rollups: every event is counted once.
func TestTwoProcessesBuildOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openStore(t, dir), openStore(t, dir)
	es := events(0, 4000)
	for i := range es {
		es[i].UserID = fmt.Sprintf("u%d", i%50)
	}
	var wg sync.WaitGroup
	for w, st := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 2000; i < (w+1)*2000; i += 100 {
				if _, _, err := st.InsertBatch(ctx, es[i:i+100], time.Now()); err != nil {
					t.Error(err)
					return
				}
				if err := st.BuildRollups(ctx); err != nil { // race the other builder
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := a.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	var total int64
	if err := a.rdb.QueryRow(`SELECT COALESCE(SUM(count), 0) FROM user_hour`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	var minutes int64
	if err := a.rdb.QueryRow(`SELECT COALESCE(SUM(count), 0) FROM user_minute`).Scan(&minutes); err != nil {
		t.Fatal(err)
	}
	if total != 4000 || minutes != 4000 {
		t.Fatalf("per-user rollups count %d (hours) and %d (minutes) events, want 4000 each", total, minutes)
	}
	from := es[0].Timestamp.Truncate(time.Hour)
	res, err := b.Analytics(ctx, store.AnalyticsQuery{Start: from, End: from.Add(3 * time.Hour), Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalEvents != 4000 || res.UniqueUsers < 49 || res.UniqueUsers > 51 || len(res.TopUsers) != 10 || res.TopUsers[0].EventCount != 80 {
		t.Fatalf("analytics from the other store: %d events, %d users, top %v", res.TotalEvents, res.UniqueUsers, res.TopUsers)
	}
}

// A store whose rollups lag far behind its events (the first start with per-user rollups)
// builds them at open and says so in the log, with the outcome.
func TestCatchUpIsLogged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	insert(t, s, events(0, 3000), 3000, 0)
	s.Close()
	db, err := sql.Open("sqlite3", filepath.Join(dir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE counters SET value = 0 WHERE name = 'rollup_seq'`, `DELETE FROM user_minute`, `DELETE FROM user_hour`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	defer func(v int64) { logCatchUpAbove = v }(logCatchUpAbove)
	logCatchUpAbove = 1000
	var buf bytes.Buffer
	s2, err := OpenLogged(ctx, dir, sqlitedb.SyncNormal, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	out := buf.String()
	if !strings.Contains(out, "building analytics rollups for stored events") || !strings.Contains(out, "events=3000") ||
		!strings.Contains(out, "analytics rollups built") {
		t.Fatalf("catch-up log:\n%s", out)
	}
	var total int64
	if err := s2.rdb.QueryRow(`SELECT SUM(count) FROM user_hour`).Scan(&total); err != nil || total != 3000 {
		t.Fatalf("user_hour counts %d events after the catch-up (%v), want 3000", total, err)
	}
}
