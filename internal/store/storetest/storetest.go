// Package storetest is the contract suite every event store passes: idempotent inserts and
// their counts, the dead-letter queue, RecentEventIDs, and analytics checked against a
// brute-force computation over the same events.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// Store is what the suite needs from a backend. A store that also implements
// store.DeadLetters gets the dead-letter management tests; the others skip them.
type Store interface {
	store.EventStore
	store.Analyzer
}

// Run runs the suite. open returns a new, empty store, closed by the caller's cleanup.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, open(t)) })
	t.Run("RecentEventIDs", func(t *testing.T) { testRecent(t, open(t)) })
	t.Run("DeadLetters", func(t *testing.T) { testDeadLetters(t, open(t)) })
	t.Run("Analytics", func(t *testing.T) { testAnalytics(t, open(t)) })
	t.Run("AnalyticsEmpty", func(t *testing.T) { testAnalyticsEmpty(t, open(t)) })
	t.Run("TimestampRangeEnds", func(t *testing.T) { testTimestampRangeEnds(t, open(t)) })
	t.Run("AnalyticsAnyArrival", func(t *testing.T) { testAnyArrival(t, open(t)) })
	t.Run("Events", func(t *testing.T) { testEvents(t, open(t)) })
	t.Run("Forget", func(t *testing.T) { testForget(t, open(t)) })
}

// Settler is a store that folds recent writes into its analytics' long-lived form on demand
// (the embedded store seals its head hours into blocks); the suite settles at random points
// so that late events meet both forms.
type Settler interface {
	Settle(ctx context.Context) error
}

// Pruner is a store that deletes the events before a cut-off on demand (the embedded store;
// MongoDB's retention is a TTL index the suite cannot time).
type Pruner interface {
	Prune(ctx context.Context, cutoff time.Time) (int64, error)
}

var base = time.Date(2026, 2, 3, 4, 5, 6, 789_123_456, time.UTC)

// Event is the suite's i-th event: seven users, three sessions, a second apart.
func Event(i int) event.Event {
	return event.Event{
		EventID:    fmt.Sprintf("evt_%05d", i),
		EventType:  "page_view",
		UserID:     fmt.Sprintf("user_%d", i%7),
		SessionID:  fmt.Sprintf("sess_%d", i%3),
		Timestamp:  base.Add(time.Duration(i) * time.Second),
		Metadata:   json.RawMessage(fmt.Sprintf(`{"i":%d,"tags":["a","b"],"nested":{"x":1.5}}`, i)),
		Payload:    json.RawMessage(`{"path":"/x"}`),
		Priority:   i % 3,
		ReceivedAt: base.Add(time.Duration(i)*time.Second + time.Millisecond),
	}
}

func events(from, to int) []event.Event {
	var out []event.Event
	for i := from; i < to; i++ {
		out = append(out, Event(i))
	}
	return out
}

func insert(t *testing.T, s store.EventStore, es []event.Event, wantInserted, wantDups int) {
	t.Helper()
	ins, dups, err := s.InsertBatch(context.Background(), es, time.Now())
	if err != nil {
		t.Fatalf("InsertBatch(%d events): %v", len(es), err)
	}
	if ins != wantInserted || dups != wantDups {
		t.Fatalf("InsertBatch(%d events) = %d inserted, %d duplicates; want %d, %d", len(es), ins, dups, wantInserted, wantDups)
	}
}

func count(t *testing.T, s store.EventStore) int64 {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

func testIdempotency(t *testing.T, s Store) {
	if n := count(t, s); n != 0 {
		t.Fatalf("new store Count = %d, want 0", n)
	}
	insert(t, s, nil, 0, 0)
	insert(t, s, events(0, 250), 250, 0)
	insert(t, s, events(0, 250), 0, 250) // a redelivered batch
	insert(t, s, events(200, 300), 50, 50)
	twice := append(events(300, 301), events(300, 302)...) // one id twice in a batch
	insert(t, s, twice, 2, 1)
	if n := count(t, s); n != 302 {
		t.Fatalf("Count = %d, want 302", n)
	}
	// Redelivery never changes the counts analytics report.
	res := analytics(t, s, store.AnalyticsQuery{Start: minute(base), End: minute(base).Add(10 * time.Minute), Bucket: time.Minute})
	if res.TotalEvents != 302 {
		t.Fatalf("analytics total = %d after redeliveries, want 302", res.TotalEvents)
	}
}

func minute(t time.Time) time.Time { return t.Truncate(time.Minute) }

func testRecent(t *testing.T, s Store) {
	ctx := context.Background()
	insert(t, s, events(0, 50), 50, 0)
	insert(t, s, events(50, 100), 50, 0)
	type got struct {
		id string
		at time.Time
	}
	read := func(since time.Time, limit int) []got {
		var out []got
		if err := s.RecentEventIDs(ctx, since, limit, func(id string, at time.Time) { out = append(out, got{id, at}) }); err != nil {
			t.Fatalf("RecentEventIDs: %v", err)
		}
		return out
	}
	since := base.Add(80 * time.Second)
	all := read(since, 0)
	if len(all) != 20 {
		t.Fatalf("RecentEventIDs(since event 80) gave %d ids, want 20: %v", len(all), all)
	}
	for k, g := range all {
		i := 99 - k
		want := Event(i)
		if g.id != want.EventID {
			t.Fatalf("RecentEventIDs[%d] = %s, want %s (newest first)", k, g.id, want.EventID)
		}
		// Stores may keep the time to the millisecond only.
		if d := g.at.Sub(want.ReceivedAt); d > 0 || d <= -time.Millisecond {
			t.Fatalf("RecentEventIDs[%d] received at %v, want %v", k, g.at, want.ReceivedAt)
		}
	}
	if five := read(since, 5); len(five) != 5 || five[0].id != "evt_00099" || five[4].id != "evt_00095" {
		t.Fatalf("RecentEventIDs(limit 5) = %v", five)
	}
	if none := read(base.Add(time.Hour), 0); len(none) != 0 {
		t.Fatalf("RecentEventIDs(after every event) = %v, want none", none)
	}
}

func testDeadLetters(t *testing.T, s Store) {
	ctx := context.Background()
	failed := time.Date(2026, 3, 1, 2, 3, 4, 5_006_007, time.UTC)
	var letters []store.DeadLetter
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("evt_dl_%d", i)
		if i == 2 {
			id = "" // an undecodable entry has no id
		}
		letters = append(letters, store.DeadLetter{EventID: id, Data: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Error: fmt.Sprintf("error %d", i), Attempts: i + 1, FailedAt: failed.Add(time.Duration(i) * time.Second)})
	}
	if err := s.DeadLetter(ctx, nil); err != nil {
		t.Fatalf("DeadLetter(nil): %v", err)
	}
	if err := s.DeadLetter(ctx, letters[:3]); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if err := s.DeadLetter(ctx, letters[3:]); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if n, err := s.DeadLetterCount(ctx); err != nil || n != 5 {
		t.Fatalf("DeadLetterCount = %d, %v; want 5", n, err)
	}
	dl, ok := s.(store.DeadLetters)
	if !ok {
		t.Skip("the store does not implement store.DeadLetters")
	}
	// Pages of two, newest first, until the cursor runs out.
	var got []store.StoredDeadLetter
	cursor, pages := "", 0
	for {
		page, next, err := dl.ListDeadLetters(ctx, cursor, 2)
		if err != nil {
			t.Fatalf("ListDeadLetters(%q): %v", cursor, err)
		}
		pages++
		got = append(got, page...)
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("ListDeadLetters never ends")
		}
		cursor = next
	}
	if pages != 3 || len(got) != 5 {
		t.Fatalf("listed %d letters in %d pages, want 5 in 3", len(got), pages)
	}
	for k, l := range got {
		want := letters[4-k]
		if l.EventID != want.EventID || string(l.Data) != string(want.Data) || l.Error != want.Error ||
			l.Attempts != want.Attempts || !l.FailedAt.Equal(want.FailedAt) || l.ID == "" {
			t.Fatalf("letter %d = %+v, want %+v", k, l, want)
		}
	}
	one, err := dl.GetDeadLetter(ctx, got[1].ID)
	if err != nil || one.ID != got[1].ID || one.Error != got[1].Error {
		t.Fatalf("GetDeadLetter(%s) = %+v, %v", got[1].ID, one, err)
	}
	for _, bad := range []string{"", "nope", "999999999"} {
		if _, err := dl.GetDeadLetter(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetDeadLetter(%q) error = %v, want ErrNotFound", bad, err)
		}
	}
	if _, _, err := dl.ListDeadLetters(ctx, "not a cursor", 2); !errors.Is(err, store.ErrInvalidCursor) {
		t.Fatalf("ListDeadLetters(bad cursor) error = %v, want ErrInvalidCursor", err)
	}
	n, err := dl.DeleteDeadLetters(ctx, []string{got[0].ID, got[3].ID, "nope", got[0].ID})
	if err != nil || n != 2 {
		t.Fatalf("DeleteDeadLetters = %d, %v; want 2", n, err)
	}
	if _, err := dl.GetDeadLetter(ctx, got[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted letter still there: %v", err)
	}
	if c, err := s.DeadLetterCount(ctx); err != nil || c != 3 {
		t.Fatalf("DeadLetterCount after delete = %d, %v; want 3", c, err)
	}
	rest, next, err := dl.ListDeadLetters(ctx, "", 10)
	if err != nil || next != "" || len(rest) != 3 || rest[0].ID != got[1].ID || rest[2].ID != got[4].ID {
		t.Fatalf("ListDeadLetters after delete = %v, %q, %v", rest, next, err)
	}
}

func analytics(t *testing.T, s store.Analyzer, q store.AnalyticsQuery) store.AnalyticsResult {
	t.Helper()
	res, err := s.Analytics(context.Background(), q)
	if err != nil {
		t.Fatalf("Analytics(%+v): %v", q, err)
	}
	return res
}

// Corpus returns n events over three hours from base in time order (as ingestion sees them),
// with skewed users, five types and some mixed-case user ids; seed fixes them.
func Corpus(n int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	types := []string{"page_view", "click", "signup", "purchase", "logout"}
	out := make([]event.Event, n)
	for i := range out {
		u := int(math.Floor(math.Pow(r.Float64(), 2) * 400)) // skewed: low ids are busy
		user := fmt.Sprintf("user_%03d", u)
		if u%5 == 0 {
			user = fmt.Sprintf("User_%03d", u)
		}
		out[i] = event.Event{
			EventID:   fmt.Sprintf("c_%d_%06d", seed, i),
			EventType: types[r.IntN(len(types))*r.IntN(2)], // page_view about half the time
			UserID:    user,
			SessionID: fmt.Sprintf("s_%03d_%d", u, r.IntN(3)),
			Timestamp: base.Add(time.Duration(r.Int64N(int64(3 * time.Hour)))),
			Priority:  1,
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timestamp.Before(out[j].Timestamp) })
	for i := range out {
		out[i].ReceivedAt = out[i].Timestamp.Add(time.Duration(i%50) * time.Millisecond)
	}
	return out
}

// Expect computes the analytics of q over evs by brute force. Unique counts are exact.
func Expect(evs []event.Event, q store.AnalyticsQuery) store.AnalyticsResult {
	nb := int(q.End.Sub(q.Start) / q.Bucket)
	res := store.AnalyticsResult{EventsOverTime: make([]store.BucketCount, nb), EventsByType: []store.TypeCount{}, TopUsers: []store.TopUser{}}
	for i := range res.EventsOverTime {
		res.EventsOverTime[i].Timestamp = q.Start.Add(time.Duration(i) * q.Bucket).UTC()
	}
	byType := map[string]int64{}
	users, sessions := map[string]*store.TopUser{}, map[string]bool{}
	types := map[string]map[string]bool{}
	for _, e := range evs {
		if e.Timestamp.Before(q.Start) || !e.Timestamp.Before(q.End) || q.EventType != "" && e.EventType != q.EventType ||
			q.UserID != "" && !strings.Contains(strings.ToLower(e.UserID), strings.ToLower(q.UserID)) {
			continue
		}
		res.TotalEvents++
		byType[e.EventType]++
		res.EventsOverTime[int(e.Timestamp.Sub(q.Start)/q.Bucket)].Count++
		sessions[e.SessionID] = true
		u := users[e.UserID]
		if u == nil {
			u = &store.TopUser{UserID: e.UserID}
			users[e.UserID] = u
			types[e.UserID] = map[string]bool{}
		}
		u.EventCount++
		if e.Timestamp.After(u.LastEventAt) {
			u.LastEventAt = e.Timestamp.UTC()
		}
		types[e.UserID][e.EventType] = true
	}
	for t, c := range byType {
		res.EventsByType = append(res.EventsByType, store.TypeCount{EventType: t, Count: c, Percentage: float64(c) * 100 / float64(res.TotalEvents)})
	}
	sort.Slice(res.EventsByType, func(i, j int) bool {
		a, b := res.EventsByType[i], res.EventsByType[j]
		return a.Count > b.Count || a.Count == b.Count && a.EventType < b.EventType
	})
	for id, u := range users {
		for t := range types[id] {
			u.EventTypes = append(u.EventTypes, t)
		}
		sort.Strings(u.EventTypes)
		res.TopUsers = append(res.TopUsers, *u)
	}
	sort.Slice(res.TopUsers, func(i, j int) bool {
		a, b := res.TopUsers[i], res.TopUsers[j]
		return a.EventCount > b.EventCount || a.EventCount == b.EventCount && a.UserID < b.UserID
	})
	if len(res.TopUsers) > 10 {
		res.TopUsers = res.TopUsers[:10]
	}
	res.UniqueUsers, res.UniqueSessions = int64(len(users)), int64(len(sessions))
	if res.UniqueUsers > 0 {
		res.AvgEventsPerUser = float64(res.TotalEvents) / float64(res.UniqueUsers)
	}
	return res
}

// MatchExpect asks each query of qs through answer and fails t unless the answer is
// Expect's over evs, unique users exactly (an engine that counts them so), unique sessions
// within Compare's tolerance. stage names the check in the failure.
func MatchExpect(t testing.TB, stage string, answer func(store.AnalyticsQuery) (store.AnalyticsResult, error), qs []store.AnalyticsQuery, evs []event.Event) {
	t.Helper()
	for i, q := range qs {
		got, err := answer(q)
		if err != nil {
			t.Fatalf("%s, query %d %+v: %v", stage, i, q, err)
		}
		want := Expect(evs, q)
		if err := Compare(got, want, false); err != nil {
			t.Fatalf("%s, query %d %+v: %v", stage, i, q, err)
		}
		if got.UniqueUsers != want.UniqueUsers {
			t.Fatalf("%s, query %d %+v: unique users %d, want exactly %d", stage, i, q, got.UniqueUsers, want.UniqueUsers)
		}
	}
}

// Compare reports how got differs from the brute-force want: counts, types, buckets and
// top users exactly; percentages within rounding (they sum to 100); unique counts exactly
// when exact is set, else within 3 % (HyperLogLog).
func Compare(got, want store.AnalyticsResult, exact bool) error {
	if got.TotalEvents != want.TotalEvents {
		return fmt.Errorf("totalEvents = %d, want %d", got.TotalEvents, want.TotalEvents)
	}
	if len(got.EventsByType) != len(want.EventsByType) {
		return fmt.Errorf("eventsByType = %+v, want %+v", got.EventsByType, want.EventsByType)
	}
	sum := 0.0
	for i, g := range got.EventsByType {
		w := want.EventsByType[i]
		if g.EventType != w.EventType || g.Count != w.Count || math.Abs(g.Percentage-w.Percentage) > 0.01+1e-9 {
			return fmt.Errorf("eventsByType[%d] = %+v, want %+v", i, g, w)
		}
		sum += g.Percentage
	}
	if len(got.EventsByType) > 0 && math.Abs(sum-100) > 1e-6 {
		return fmt.Errorf("percentages sum to %v, want 100", sum)
	}
	if !slices.EqualFunc(got.EventsOverTime, want.EventsOverTime, func(a, b store.BucketCount) bool {
		return a.Count == b.Count && a.Timestamp.Equal(b.Timestamp)
	}) {
		return fmt.Errorf("eventsOverTime = %v, want %v", got.EventsOverTime, want.EventsOverTime)
	}
	if len(got.TopUsers) != len(want.TopUsers) {
		return fmt.Errorf("topUsers = %+v, want %+v", got.TopUsers, want.TopUsers)
	}
	for i, g := range got.TopUsers {
		w := want.TopUsers[i]
		if g.UserID != w.UserID || g.EventCount != w.EventCount || !g.LastEventAt.Equal(w.LastEventAt) || !slices.Equal(g.EventTypes, w.EventTypes) {
			return fmt.Errorf("topUsers[%d] = %+v, want %+v", i, g, w)
		}
	}
	near := func(g, w int64) bool {
		if exact {
			return g == w
		}
		return math.Abs(float64(g-w)) <= 0.03*float64(w)+1
	}
	if !near(got.UniqueUsers, want.UniqueUsers) || !near(got.UniqueSessions, want.UniqueSessions) {
		return fmt.Errorf("unique users, sessions = %d, %d; want %d, %d (exact: %v)", got.UniqueUsers, got.UniqueSessions, want.UniqueUsers, want.UniqueSessions, exact)
	}
	if got.UniqueUsers > 0 {
		avg := math.Round(float64(got.TotalEvents)/float64(got.UniqueUsers)*100) / 100
		if got.AvgEventsPerUser != avg {
			return fmt.Errorf("avgEventsPerUser = %v, want %v", got.AvgEventsPerUser, avg)
		}
	}
	return nil
}

func testAnalytics(t *testing.T, s Store) {
	evs := Corpus(1200, 1)
	// Batches of 200, every other one delivered twice, one overlapping the one before.
	for i := 0; i < len(evs); i += 200 {
		end := min(i+200, len(evs))
		insert(t, s, evs[i:end], end-i, 0)
		if (i/200)%2 == 0 {
			insert(t, s, evs[i:end], 0, end-i)
		}
		if i/200 == 3 {
			insert(t, s, evs[i-10:end], 0, end-i+10)
		}
	}
	start := minute(base)
	queries := []struct {
		name  string
		q     store.AnalyticsQuery
		exact bool
	}{
		{"whole range by 5 min", store.AnalyticsQuery{Start: start.Add(-time.Hour), End: start.Add(4 * time.Hour), Bucket: 5 * time.Minute}, false},
		{"unaligned edges", store.AnalyticsQuery{Start: start.Add(7 * time.Minute), End: start.Add(157 * time.Minute), Bucket: 10 * time.Minute}, false},
		{"within an hour", store.AnalyticsQuery{Start: start.Add(61 * time.Minute), End: start.Add(91 * time.Minute), Bucket: time.Minute}, false},
		{"event type", store.AnalyticsQuery{Start: start, End: start.Add(4 * time.Hour), Bucket: time.Hour, EventType: "click"}, true},
		{"user substring, case-insensitive", store.AnalyticsQuery{Start: start, End: start.Add(4 * time.Hour), Bucket: 30 * time.Minute, UserID: "USER_00"}, true},
		{"user and type", store.AnalyticsQuery{Start: start.Add(30 * time.Minute), End: start.Add(150 * time.Minute), Bucket: 15 * time.Minute, UserID: "er_01", EventType: "page_view"}, true},
		{"unknown type", store.AnalyticsQuery{Start: start, End: start.Add(time.Hour), Bucket: time.Hour, EventType: "nope"}, true},
		{"before the data", store.AnalyticsQuery{Start: start.Add(-2 * time.Hour), End: start.Add(-time.Hour), Bucket: 30 * time.Minute}, true},
	}
	for _, c := range queries {
		got := analytics(t, s, c.q)
		want := Expect(evs, c.q)
		if err := Compare(got, want, c.exact); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// The corpus must exercise what it claims to.
	if w := Expect(evs, queries[0].q); w.TotalEvents != 1200 || len(w.EventsByType) != 5 || len(w.TopUsers) != 10 {
		t.Fatalf("corpus is not what the test expects: %+v", w)
	}
}

// testAnyArrival checks analytics against brute force while events arrive in random
// order (late events for hours already settled), with duplicates inside batches,
// redelivered batches, settling at random points and a retention cut-off (when the store
// has one) followed by more late events.
func testAnyArrival(t *testing.T, s Store) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(17, 3))
	sorted := Corpus(1200, 17) // MongoDB through FerretDB takes about a second a batch here
	evs := slices.Clone(sorted)
	r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	start := minute(base)
	qs := []store.AnalyticsQuery{
		{Start: start.Add(-time.Hour), End: start.Add(4 * time.Hour), Bucket: 5 * time.Minute},
		{Start: start.Add(37 * time.Minute), End: start.Add(143 * time.Minute), Bucket: 2 * time.Minute},
		{Start: start, End: start.Add(4 * time.Hour), Bucket: time.Hour, EventType: "purchase"},
		{Start: start.Add(20 * time.Minute), End: start.Add(3 * time.Hour), Bucket: 20 * time.Minute, UserID: "user_01"},
	}
	check := func(stage string, stored []event.Event) {
		t.Helper()
		for i, q := range qs {
			if err := Compare(analytics(t, s, q), Expect(stored, q), false); err != nil {
				t.Fatalf("%s, query %d: %v", stage, i, err)
			}
		}
	}
	settle := func() {
		t.Helper()
		if st, ok := s.(Settler); ok {
			if err := st.Settle(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	var stored []event.Event
	var last []event.Event // the batch before, for redelivery
	for i := 0; i < len(evs); {
		n := min(1+r.IntN(150), len(evs)-i)
		batch := slices.Clone(evs[i : i+n])
		dups := 0
		if len(stored) > 0 && r.IntN(3) == 0 { // some events stored already ride along
			for range 1 + r.IntN(5) {
				batch = append(batch, stored[r.IntN(len(stored))])
				dups++
			}
		}
		insert(t, s, batch, n, dups)
		stored = append(stored, evs[i:i+n]...)
		if last != nil && r.IntN(4) == 0 { // a redelivered batch
			insert(t, s, last, 0, len(last))
		}
		last = batch
		i += n
		if r.IntN(4) == 0 {
			settle()
		}
		if r.IntN(5) == 0 {
			check(fmt.Sprintf("after %d events", len(stored)), stored)
		}
	}
	check("all stored", stored)

	p, ok := s.(Pruner)
	if !ok {
		return
	}
	// The newest event is recent, as in service: retention deletes every event before the
	// cut-off, in whatever order they came.
	fresh := Corpus(1, 19)
	fresh[0].EventID, fresh[0].Timestamp = "fresh", base.Add(3*time.Hour)
	insert(t, s, fresh, 1, 0)
	stored = append(stored, fresh...)
	cut := base.Add(97*time.Minute + 13*time.Second)
	var kept []event.Event
	for _, e := range stored {
		if !e.Timestamp.Before(cut) {
			kept = append(kept, e)
		}
	}
	if n, err := p.Prune(ctx, cut); err != nil || n != int64(len(stored)-len(kept)) {
		t.Fatalf("Prune = %d, %v; want %d", n, err, len(stored)-len(kept))
	}
	check("after retention", kept)
	// Late events after the cut-off's hour was trimmed.
	late := Corpus(200, 18)
	var lateKept []event.Event
	for _, e := range late {
		if !e.Timestamp.Before(cut) {
			e.EventID += "-late"
			lateKept = append(lateKept, e)
		}
	}
	insert(t, s, lateKept, len(lateKept), 0)
	settle()
	check("late events after retention", append(kept, lateKept...))
}

func testAnalyticsEmpty(t *testing.T, s Store) {
	q := store.AnalyticsQuery{Start: minute(base), End: minute(base).Add(time.Hour), Bucket: 15 * time.Minute}
	got := analytics(t, s, q)
	if err := Compare(got, Expect(nil, q), true); err != nil {
		t.Fatal(err)
	}
	if got.EventsByType == nil || got.TopUsers == nil || len(got.EventsOverTime) != 4 {
		t.Fatalf("empty analytics = %+v; want empty lists, not nil, and 4 buckets", got)
	}
	bad := store.AnalyticsQuery{Start: minute(base), End: minute(base).Add(10 * time.Minute), Bucket: 3 * time.Minute}
	if _, err := s.Analytics(context.Background(), bad); err == nil {
		t.Fatal("Analytics accepted a range that is not a whole number of buckets")
	}
}

// testTimestampRangeEnds stores events at both ends of the timestamps the API accepts
// (event.MinTime, event.MaxTime) and checks that analytics counts each in its own bucket and
// gives each user's last event at exactly its instant, to the nanosecond.
func testTimestampRangeEnds(t *testing.T, s Store) {
	at := []time.Time{
		event.MinTime, event.MinTime.Add(time.Nanosecond), event.MinTime.Add(59*time.Second + 999_999_999),
		event.MaxTime.Truncate(time.Minute), event.MaxTime.Add(-time.Millisecond), event.MaxTime,
	}
	evs := make([]event.Event, len(at))
	for i, ts := range at {
		evs[i] = event.Event{EventID: fmt.Sprintf("evt_end_%d", i), EventType: []string{"first", "last"}[i/3],
			UserID: fmt.Sprintf("user_%d", i), SessionID: "sess_end", Timestamp: ts, Priority: 1,
			ReceivedAt: base.Add(time.Duration(i) * time.Millisecond)}
	}
	insert(t, s, evs, len(evs), 0)
	for _, c := range []struct {
		name string
		q    store.AnalyticsQuery
		want int64
	}{
		{"first instants", store.AnalyticsQuery{Start: event.MinTime.Add(-time.Hour), End: event.MinTime.Add(time.Hour), Bucket: time.Minute}, 3},
		{"last instants", store.AnalyticsQuery{Start: minute(event.MaxTime).Add(-time.Hour), End: minute(event.MaxTime).Add(time.Hour), Bucket: time.Minute}, 3},
		{"first instants, filtered", store.AnalyticsQuery{Start: event.MinTime, End: event.MinTime.Add(time.Hour), Bucket: time.Hour, EventType: "first", UserID: "USER"}, 3},
		{"last instants, filtered", store.AnalyticsQuery{Start: minute(event.MaxTime), End: minute(event.MaxTime).Add(time.Hour), Bucket: 5 * time.Minute, EventType: "last"}, 3},
		{"now", store.AnalyticsQuery{Start: minute(base), End: minute(base).Add(time.Hour), Bucket: time.Hour}, 0},
	} {
		got := analytics(t, s, c.q)
		want := Expect(evs, c.q)
		if want.TotalEvents != c.want {
			t.Fatalf("%s: the brute force counts %d events, want %d", c.name, want.TotalEvents, c.want)
		}
		if err := Compare(got, want, true); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
