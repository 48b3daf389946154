package store

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/axiomhq/hyperloglog"
)

// SketchPair holds the HyperLogLog sketches (precision 14, standard error about 0.8 %) of
// the user and session ids of one time bucket, as both stores keep them.
type SketchPair struct{ Users, Sessions *hyperloglog.Sketch }

// NewSketchPair returns empty sketches.
func NewSketchPair() *SketchPair {
	return &SketchPair{hyperloglog.New14(), hyperloglog.New14()}
}

// Merge adds o's ids to p.
func (p *SketchPair) Merge(o *SketchPair) error {
	if err := p.Users.Merge(o.Users); err != nil {
		return err
	}
	return p.Sessions.Merge(o.Sessions)
}

// Unmarshal replaces p with stored sketches.
func (p *SketchPair) Unmarshal(users, sessions []byte) error {
	if err := p.Users.UnmarshalBinary(users); err != nil {
		return err
	}
	return p.Sessions.UnmarshalBinary(sessions)
}

// SetPercentages gives each type its share with two decimals, rounding by largest
// remainder so that the shares sum to exactly 100.
func SetPercentages(ts []TypeCount, total int64) {
	if total == 0 {
		return
	}
	type rem struct {
		i int
		r float64
	}
	var rems []rem
	var sum int64
	for i := range ts {
		exact := float64(ts[i].Count) * 10000 / float64(total) // hundredths of a percent
		fl := int64(math.Floor(exact))
		sum += fl
		ts[i].Percentage = float64(fl)
		rems = append(rems, rem{i, exact - float64(fl)})
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for k := 0; k < int(10000-sum) && k < len(rems); k++ {
		ts[rems[k].i].Percentage++
	}
	for i := range ts {
		ts[i].Percentage /= 100
	}
}

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

// FinishAnalytics fills what every store derives the same way from the counts per event
// type and per bucket (starting at startMin, bucketMin minutes each): totals, the types
// ranked with percentages, the zero-filled series and the average per user.
func FinishAnalytics(res *AnalyticsResult, byType map[string]int64, buckets []int64, startMin, bucketMin int64) {
	res.TotalEvents = 0
	res.EventsByType = []TypeCount{}
	for t, c := range byType {
		res.TotalEvents += c
		res.EventsByType = append(res.EventsByType, TypeCount{EventType: t, Count: c})
	}
	sort.Slice(res.EventsByType, func(i, j int) bool {
		a, b := res.EventsByType[i], res.EventsByType[j]
		return a.Count > b.Count || a.Count == b.Count && a.EventType < b.EventType
	})
	SetPercentages(res.EventsByType, res.TotalEvents)
	res.EventsOverTime = make([]BucketCount, len(buckets))
	for i, c := range buckets {
		res.EventsOverTime[i] = BucketCount{Timestamp: time.Unix((startMin+int64(i)*bucketMin)*60, 0).UTC(), Count: c}
	}
	if res.UniqueUsers > 0 {
		res.AvgEventsPerUser = math.Round(float64(res.TotalEvents)/float64(res.UniqueUsers)*100) / 100
	}
	if res.TopUsers == nil {
		res.TopUsers = []TopUser{}
	}
}
