package store

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Minutes returns the query's range and bucket size in Unix minutes, and an error unless
// the range is a whole, non-empty number of whole-minute buckets.
func (q AnalyticsQuery) Minutes() (start, end, bucket int64, err error) {
	start, end = floorDiv(q.Start.Unix(), 60), floorDiv(q.End.Unix(), 60)
	bucket = int64(q.Bucket / time.Minute)
	if bucket <= 0 || end <= start || (end-start)%bucket != 0 {
		return 0, 0, 0, fmt.Errorf("range %v..%v is not a whole number of %v buckets", q.Start, q.End, q.Bucket)
	}
	return start, end, bucket, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Tally is an AnalyticsQuery resolved for a store to read, with the counts the store adds
// up as it reads: per event type (ByType) and per bucket (Buckets). Finish derives the
// rest of the answer from them. A Tally is not safe for concurrent use.
type Tally struct {
	StartMin, EndMin int64 // the range [StartMin, EndMin) in Unix minutes
	BucketMin        int64 // the bucket size in minutes
	// UserNeedle is the userId filter as MatchUser compares it; empty: every user.
	UserNeedle string
	ByType     map[string]int64
	// Buckets[i] counts the events of minutes [StartMin+i*BucketMin, StartMin+(i+1)*BucketMin).
	Buckets []int64
}

// NewTally resolves q, with every count zero. It returns the error of q.Minutes.
func NewTally(q AnalyticsQuery) (*Tally, error) {
	start, end, bucket, err := q.Minutes()
	if err != nil {
		return nil, err
	}
	return &Tally{
		StartMin: start, EndMin: end, BucketMin: bucket,
		UserNeedle: strings.ToLower(q.UserID),
		ByType:     map[string]int64{},
		Buckets:    make([]int64, (end-start)/bucket),
	}, nil
}

// Add counts n events of eventType in the Unix minute minute, which must lie in the range.
func (t *Tally) Add(minute int64, eventType string, n int64) {
	t.ByType[eventType] += n
	t.Buckets[(minute-t.StartMin)/t.BucketMin] += n
}

// MatchUser reports whether userID passes the userId filter: whether it holds the filter
// as a substring once ASCII letters are lower-cased, as SQLite's lower() folds them.
func (t *Tally) MatchUser(userID string) bool {
	return t.UserNeedle == "" || strings.Contains(asciiLower(userID), t.UserNeedle)
}

// asciiLower folds ASCII letters only, like SQLite's lower().
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Finish fills what every store derives the same way from the counts: the total, the types
// ranked with percentages, the zero-filled series and the average per user (from
// res.UniqueUsers, which the store sets), and an empty TopUsers for none.
func (t *Tally) Finish(res *AnalyticsResult) {
	res.TotalEvents = 0
	res.EventsByType = []TypeCount{}
	for typ, c := range t.ByType {
		res.TotalEvents += c
		res.EventsByType = append(res.EventsByType, TypeCount{EventType: typ, Count: c})
	}
	sort.Slice(res.EventsByType, func(i, j int) bool {
		a, b := res.EventsByType[i], res.EventsByType[j]
		return a.Count > b.Count || a.Count == b.Count && a.EventType < b.EventType
	})
	SetPercentages(res.EventsByType, res.TotalEvents)
	res.EventsOverTime = make([]BucketCount, len(t.Buckets))
	for i, c := range t.Buckets {
		res.EventsOverTime[i] = BucketCount{Timestamp: time.Unix((t.StartMin+int64(i)*t.BucketMin)*60, 0).UTC(), Count: c}
	}
	if res.UniqueUsers > 0 {
		res.AvgEventsPerUser = math.Round(float64(res.TotalEvents)/float64(res.UniqueUsers)*100) / 100
	}
	if res.TopUsers == nil {
		res.TopUsers = []TopUser{}
	}
}
