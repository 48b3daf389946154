package store

import (
	"math"
	"sort"

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
