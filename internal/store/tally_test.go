package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store"
)

func TestNewTallyRefusesRangesThatAreNotWholeBuckets(t *testing.T) {
	at := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	for _, q := range []store.AnalyticsQuery{
		{Start: at, End: at.Add(time.Hour), Bucket: 0},
		{Start: at, End: at.Add(time.Hour), Bucket: 30 * time.Second},
		{Start: at, End: at.Add(time.Hour), Bucket: -time.Minute},
		{Start: at, End: at, Bucket: time.Minute},
		{Start: at.Add(time.Hour), End: at, Bucket: time.Minute},
		{Start: at, End: at.Add(50 * time.Minute), Bucket: 20 * time.Minute},
	} {
		if tl, err := store.NewTally(q); err == nil {
			t.Errorf("NewTally(%v..%v by %v) = %+v, want an error", q.Start, q.End, q.Bucket, tl)
		}
	}
}

// A range before 1970 has negative Unix minutes: buckets and series must still start at
// the range's first minute.
func TestTallyAddAndFinish(t *testing.T) {
	start := time.Date(1969, 12, 31, 23, 30, 0, 0, time.UTC)
	tl, err := store.NewTally(store.AnalyticsQuery{Start: start, End: start.Add(time.Hour), Bucket: 20 * time.Minute, UserID: "MiXed"})
	if err != nil {
		t.Fatal(err)
	}
	if tl.StartMin != -30 || tl.EndMin != 30 || tl.BucketMin != 20 || len(tl.Buckets) != 3 || tl.UserNeedle != "mixed" {
		t.Fatalf("NewTally = %+v", tl)
	}
	tl.Add(-30, "click", 2) // first minute of the first bucket
	tl.Add(-11, "view", 1)  // last minute of the first bucket
	tl.Add(-10, "click", 1) // first minute of the second bucket
	tl.Add(29, "view", 3)   // last minute of the range
	tl.Add(29, "buy", 0)
	res := store.AnalyticsResult{UniqueUsers: 3}
	tl.Finish(&res)
	want := store.AnalyticsResult{
		TotalEvents: 7,
		EventsByType: []store.TypeCount{
			{EventType: "view", Count: 4, Percentage: 57.14},
			{EventType: "click", Count: 3, Percentage: 42.86},
			{EventType: "buy", Count: 0, Percentage: 0},
		},
		TopUsers: []store.TopUser{},
		EventsOverTime: []store.BucketCount{
			{Timestamp: start, Count: 3},
			{Timestamp: start.Add(20 * time.Minute), Count: 1},
			{Timestamp: start.Add(40 * time.Minute), Count: 3},
		},
		AvgEventsPerUser: 2.33,
		UniqueUsers:      3,
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Finish =\n%+v\nwant\n%+v", res, want)
	}
}

func TestTallyFinishWithoutEvents(t *testing.T) {
	start := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	tl, err := store.NewTally(store.AnalyticsQuery{Start: start, End: start.Add(2 * time.Minute), Bucket: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var res store.AnalyticsResult
	tl.Finish(&res)
	want := store.AnalyticsResult{
		EventsByType:   []store.TypeCount{},
		TopUsers:       []store.TopUser{},
		EventsOverTime: []store.BucketCount{{Timestamp: start}, {Timestamp: start.Add(time.Minute)}},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Finish =\n%+v\nwant\n%+v", res, want)
	}
}

// The userId filter is a substring match with ASCII letters folded, as SQLite's lower()
// folds them: other letters must match exactly.
func TestTallyMatchUser(t *testing.T) {
	at := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		filter, user string
		match        bool
	}{
		{"", "anyone", true},
		{"", "", true},
		{"abc", "xxABCxx", true},
		{"ABC", "xxabcxx", true},
		{"AbC", "aBc", true},
		{"abd", "xxABCxx", false},
		{"é", "café", true},
		{"é", "CAFÉ", false},
		{"user_1", "USER_10", true},
		{"user_1", "user_2", false},
	} {
		tl, err := store.NewTally(store.AnalyticsQuery{Start: at, End: at.Add(time.Minute), Bucket: time.Minute, UserID: c.filter})
		if err != nil {
			t.Fatal(err)
		}
		if got := tl.MatchUser(c.user); got != c.match {
			t.Errorf("filter %q: MatchUser(%q) = %v, want %v", c.filter, c.user, got, c.match)
		}
	}
}
