package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// stopBuilder stops the background builder, so that stored events stay past the rollup
// watermark until the test builds (Close then only closes the databases).
func (s *Store) stopBuilder() {
	close(s.mem.stop)
	<-s.mem.done
	s.mem.stop = nil
}

// topUsersNow answers topUsers of minutes [startMin, endMin) in a read transaction of its own.
func (s *Store) topUsersNow(ctx context.Context, startMin, endMin int64) ([]store.TopUser, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return s.topUsersFromRollups(ctx, tx, startMin, endMin)
}

// stateT0 is where the stateBatch events begin: they fall in 10:00-12:40.
var stateT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// stateQueries cover whole hours (10:00-12:00, through the hour cache) and minutes at both
// edges; the filtered ones are answered from the digest.
var stateQueries = []store.AnalyticsQuery{
	{Start: stateT0.Add(-15 * time.Minute), End: stateT0.Add(170 * time.Minute), Bucket: 5 * time.Minute},
	{Start: stateT0.Add(-15 * time.Minute), End: stateT0.Add(170 * time.Minute), Bucket: 5 * time.Minute, UserID: "top"},
	{Start: stateT0.Add(-15 * time.Minute), End: stateT0.Add(170 * time.Minute), Bucket: 5 * time.Minute, EventType: "view"},
}

// stateBatch returns batch k (from 1): 20 new users with one "view" event each and a new
// user top<k> with 20+k "click" events, in 10 new sessions. After batches 1..j, every
// figure is known: top<j> leads topUsers, and each batch adds 21 users and 10 sessions, so
// a distinct count that misses a batch the totals hold is far from what they imply.
func stateBatch(k int) []event.Event {
	var out []event.Event
	add := func(i int, typ, user string) {
		off := time.Duration((k*37+i*53)%160)*time.Minute + time.Duration(i)*time.Second
		out = append(out, event.Event{EventID: fmt.Sprintf("b%d-%d", k, i), EventType: typ, UserID: user,
			SessionID: fmt.Sprintf("s%d_%d", k, i%10), Timestamp: stateT0.Add(off), ReceivedAt: stateT0})
	}
	for i := 0; i < 20; i++ {
		add(i, "view", fmt.Sprintf("u%d_%d", k, i))
	}
	for i := 20; i < 40+k; i++ {
		add(i, "click", fmt.Sprintf("top%d", k))
	}
	return out
}

// stateOf returns the j for which ans is the answer of q after batches 1..j, or an error
// naming the figure that belongs to no such state.
func stateOf(q store.AnalyticsQuery, ans store.AnalyticsResult) (int, error) {
	perBatch := func(k int) (events, users, sessions int64) {
		switch {
		case q.UserID != "":
			return int64(20 + k), 1, 10
		case q.EventType != "":
			return 20, 20, 10
		}
		return int64(40 + k), 21, 10
	}
	var total, users, sessions int64
	for j := 0; total <= ans.TotalEvents; j++ {
		if total == ans.TotalEvents {
			// Distinct users are exact with a filter; the sketches are exact or within one
			// at these numbers.
			tol := int64(1)
			if q.UserID != "" || q.EventType != "" {
				tol = 0
			}
			if d := ans.UniqueUsers - users; d < -tol || d > tol {
				return j, fmt.Errorf("totalEvents %d (batches 1..%d) with uniqueUsers %d, want %d", ans.TotalEvents, j, ans.UniqueUsers, users)
			}
			// Distinct sessions are estimates with a filter too (within 2 % here).
			if d, tol := ans.UniqueSessions-sessions, sessions/50+1; d < -tol || d > tol {
				return j, fmt.Errorf("totalEvents %d (batches 1..%d) with uniqueSessions %d, want %d", ans.TotalEvents, j, ans.UniqueSessions, sessions)
			}
			if q.EventType == "" && j > 0 {
				want := fmt.Sprintf("top%d", j)
				if len(ans.TopUsers) == 0 || ans.TopUsers[0].UserID != want || ans.TopUsers[0].EventCount != int64(20+j) {
					return j, fmt.Errorf("totalEvents %d (batches 1..%d) with topUsers %v, want %s first with %d events", ans.TotalEvents, j, ans.TopUsers, want, 20+j)
				}
			}
			return j, nil
		}
		e, u, s := perBatch(j + 1)
		total, users, sessions = total+e, users+u, sessions+s
	}
	return -1, fmt.Errorf("totalEvents %d is no number of whole batches", ans.TotalEvents)
}

// Every figure of an answer covers the same events, also when events were committed after
// the query's build (so rollup_minute holds them, the sketches and per-user rows not yet),
// and the hour cache keeps no figures of such a mix for later answers.
func TestAnalyticsFiguresShareOneState(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	s.stopBuilder()
	check := func(step string, want int) {
		t.Helper()
		for _, q := range stateQueries {
			// s.analytics without the build of Analytics: as if the last batch had been
			// committed between that build and the reads.
			ans, err := s.analytics(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			j, err := stateOf(q, ans)
			if err != nil {
				t.Fatalf("%s, query %+v: %v", step, q, err)
			}
			if want >= 0 && j != want {
				t.Fatalf("%s, query %+v: the answer of batches 1..%d, want 1..%d", step, q, j, want)
			}
		}
	}
	for k := 1; k <= 4; k++ {
		insert(t, s, stateBatch(k), 40+k, 0)
		check(fmt.Sprintf("batch %d stored, not built", k), -1)
		if err := s.BuildRollups(ctx); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("batch %d built", k), k)
	}
}

// Queries answered while batches are stored and built see whole batches only: every
// figure of each answer belongs to one number of batches, which never goes back.
func TestAnalyticsWhileInserting(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	const batches = 50
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for k := 1; k <= batches; k++ {
			if _, _, err := s.InsertBatch(ctx, stateBatch(k), time.Now()); err != nil {
				t.Error(err)
				return
			}
			// Builds between a query's reads too, as the builder or another process may.
			if err := s.BuildRollups(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	seen := make([]int, len(stateQueries))
	query := func() error {
		for i, q := range stateQueries {
			ans, err := s.Analytics(ctx, q)
			if err != nil {
				return err
			}
			j, err := stateOf(q, ans)
			if err != nil {
				return fmt.Errorf("query %+v: %w", q, err)
			}
			if j < seen[i] {
				return fmt.Errorf("query %+v: the answer of batches 1..%d after one of 1..%d", q, j, seen[i])
			}
			seen[i] = j
		}
		return nil
	}
	var err error
	for running := true; running && err == nil; {
		select {
		case <-done:
			running = false
		default:
		}
		err = query()
	}
	wg.Wait()
	if err == nil {
		err = query()
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range seen {
		if j != batches {
			t.Errorf("query %+v: the answer of batches 1..%d after every batch was stored, want 1..%d", stateQueries[i], j, batches)
		}
	}
}

// A filtered query's top user whose newest matching event the digest knows only to the
// minute gets the time of a counted event, not that of one stored after the digest's part.
func TestFilteredLastEventIsCounted(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	s.stopBuilder()
	ev := func(id, typ string, at time.Duration) event.Event {
		return event.Event{EventID: id, EventType: typ, UserID: "x", SessionID: "s", Timestamp: stateT0.Add(at), ReceivedAt: stateT0}
	}
	// The digest's newest event of x in 10:00-11:00 is the view: the click's time is read
	// from the events, in its minute.
	insert(t, s, []event.Event{ev("a", "click", 5*time.Minute+10*time.Second), ev("b", "view", 30*time.Minute)}, 2, 0)
	if err := s.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	insert(t, s, []event.Event{ev("c", "click", 5*time.Minute+50*time.Second)}, 1, 0) // not built
	q := store.AnalyticsQuery{Start: stateT0, End: stateT0.Add(time.Hour), Bucket: 5 * time.Minute, EventType: "click"}
	ans, err := s.analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	want := stateT0.Add(5*time.Minute + 10*time.Second)
	if ans.TotalEvents != 1 || len(ans.TopUsers) != 1 || ans.TopUsers[0].EventCount != 1 || !ans.TopUsers[0].LastEventAt.Equal(want) {
		t.Fatalf("totalEvents %d, topUsers %+v; want 1 event, x with 1 event at %v", ans.TotalEvents, ans.TopUsers, want)
	}
}

// The events past the watermark are read by seq, not by a scan or through the time index.
func TestUnbuiltReadBySeq(t *testing.T) {
	s := openStore(t, t.TempDir())
	rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN ` + unbuiltSQL)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "; "); !strings.Contains(p, "SEARCH events USING INTEGER PRIMARY KEY") {
		t.Fatalf("plan %q does not read events by seq", p)
	}
}
