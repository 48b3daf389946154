package sqlitestore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// A redelivered batch, whole or in part, adds nothing to the analytics.
func TestRedeliveredBatchCountedOnce(t *testing.T) {
	s := openStore(t, t.TempDir())
	batch := events(0, 120)
	insert(t, s, batch, 120, 0)
	insert(t, s, batch, 0, 120)
	insert(t, s, events(100, 130), 10, 20)
	res, err := s.Analytics(context.Background(), store.AnalyticsQuery{
		Start: base.Truncate(time.Minute), End: base.Truncate(time.Minute).Add(time.Hour), Bucket: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalEvents != 130 || res.UniqueUsers != 7 || res.UniqueSessions != 3 {
		t.Fatalf("analytics: %+v", res)
	}
}

type bruteEvent struct {
	typ, user, sess string
	ts              time.Time
}

// TestAnalyticsMatchesBruteForce compares every figure with a computation over the
// inserted events.
func TestAnalyticsMatchesBruteForce(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := openStore(t, t.TempDir())
			rng := rand.New(rand.NewPCG(seed, 99))
			t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
			types := []string{"page_view", "click", "purchase", "signup", "login"}
			var all []bruteEvent
			var batch []event.Event
			for i := 0; i < 30000; i++ {
				e := event.Event{
					EventID: fmt.Sprintf("e%d-%d", seed, i), EventType: types[rng.IntN(len(types))],
					UserID: fmt.Sprintf("user_%d", rng.IntN(5000)), SessionID: fmt.Sprintf("sess_%d", rng.IntN(8000)),
					Timestamp: t0.Add(time.Duration(rng.Int64N(int64(5 * time.Hour)))), ReceivedAt: t0,
				}
				batch = append(batch, e)
				all = append(all, bruteEvent{e.EventType, e.UserID, e.SessionID, e.Timestamp})
				if len(batch) == 1000 {
					if _, _, err := s.InsertBatch(ctx, batch, t0); err != nil {
						t.Fatal(err)
					}
					// Redeliver half of it: nothing may change.
					if _, _, err := s.InsertBatch(ctx, batch[:500], t0); err != nil {
						t.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			queries := []store.AnalyticsQuery{
				{Start: t0.Add(17 * time.Minute), End: t0.Add(4*time.Hour + 47*time.Minute), Bucket: 30 * time.Minute},
				{Start: t0.Add(20 * time.Minute), End: t0.Add(35 * time.Minute), Bucket: time.Minute},
				{Start: t0.Add(-time.Hour), End: t0.Add(6 * time.Hour), Bucket: time.Hour},
				{Start: t0.Add(17 * time.Minute), End: t0.Add(4*time.Hour + 47*time.Minute), Bucket: 30 * time.Minute, EventType: "click"},
				{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour), Bucket: 5 * time.Minute, UserID: "USER_12"},
				{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour), Bucket: 5 * time.Minute, UserID: "user_1", EventType: "login"},
			}
			for qi, q := range queries {
				got, err := s.Analytics(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				// Distinct users are exact; sessions approximate.
				want := brute(all, q)
				check := func(name string, g, w int64) {
					exact := name == "uniqueUsers"
					if exact && g != w || math.Abs(float64(g-w)) > 0.02*float64(w) {
						t.Errorf("query %d: %s = %d, want %d", qi, name, g, w)
					}
				}
				if got.TotalEvents != want.TotalEvents {
					t.Errorf("query %d: totalEvents %d, want %d", qi, got.TotalEvents, want.TotalEvents)
				}
				check("uniqueUsers", got.UniqueUsers, want.UniqueUsers)
				check("uniqueSessions", got.UniqueSessions, want.UniqueSessions)
				if fmt.Sprint(got.EventsOverTime) != fmt.Sprint(want.EventsOverTime) {
					t.Errorf("query %d: eventsOverTime\n%v\nwant\n%v", qi, got.EventsOverTime, want.EventsOverTime)
				}
				var pct float64
				for i, tc := range got.EventsByType {
					if i >= len(want.EventsByType) || tc.EventType != want.EventsByType[i].EventType || tc.Count != want.EventsByType[i].Count {
						t.Errorf("query %d: eventsByType %v, want %v", qi, got.EventsByType, want.EventsByType)
						break
					}
					pct += tc.Percentage
				}
				if len(got.EventsByType) > 0 && math.Abs(pct-100) > 1e-9 {
					t.Errorf("query %d: percentages sum to %v", qi, pct)
				}
				if fmt.Sprint(got.TopUsers) != fmt.Sprint(want.TopUsers) {
					t.Errorf("query %d: topUsers\n%v\nwant\n%v", qi, got.TopUsers, want.TopUsers)
				}
			}
		})
	}
}

func brute(all []bruteEvent, q store.AnalyticsQuery) store.AnalyticsResult {
	var r store.AnalyticsResult
	n := int(q.End.Sub(q.Start) / q.Bucket)
	r.EventsOverTime = make([]store.BucketCount, n)
	for i := range r.EventsOverTime {
		r.EventsOverTime[i].Timestamp = q.Start.Add(time.Duration(i) * q.Bucket)
	}
	types := map[string]int64{}
	users, sessions := map[string]bool{}, map[string]bool{}
	tops := map[string]*store.TopUser{}
	for _, e := range all {
		if e.ts.Before(q.Start) || !e.ts.Before(q.End) || q.EventType != "" && e.typ != q.EventType ||
			q.UserID != "" && !strings.Contains(strings.ToLower(e.user), strings.ToLower(q.UserID)) {
			continue
		}
		r.TotalEvents++
		types[e.typ]++
		users[e.user], sessions[e.sess] = true, true
		r.EventsOverTime[int(e.ts.Sub(q.Start)/q.Bucket)].Count++
		tu := tops[e.user]
		if tu == nil {
			tu = &store.TopUser{UserID: e.user}
			tops[e.user] = tu
		}
		tu.EventCount++
		if e.ts.After(tu.LastEventAt) {
			tu.LastEventAt = e.ts
		}
		if !contains(tu.EventTypes, e.typ) {
			tu.EventTypes = append(tu.EventTypes, e.typ)
		}
	}
	r.UniqueUsers, r.UniqueSessions = int64(len(users)), int64(len(sessions))
	for t, c := range types {
		r.EventsByType = append(r.EventsByType, store.TypeCount{EventType: t, Count: c})
	}
	sort.Slice(r.EventsByType, func(i, j int) bool {
		a, b := r.EventsByType[i], r.EventsByType[j]
		return a.Count > b.Count || a.Count == b.Count && a.EventType < b.EventType
	})
	for _, tu := range tops {
		sort.Strings(tu.EventTypes)
		r.TopUsers = append(r.TopUsers, *tu)
	}
	sort.Slice(r.TopUsers, func(i, j int) bool {
		a, b := r.TopUsers[i], r.TopUsers[j]
		return a.EventCount > b.EventCount || a.EventCount == b.EventCount && a.UserID < b.UserID
	})
	if len(r.TopUsers) > 10 {
		r.TopUsers = r.TopUsers[:10]
	}
	return r
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
