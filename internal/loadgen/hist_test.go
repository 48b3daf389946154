package loadgen

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func near(got, want float64) bool {
	return math.Abs(got-want) <= want*0.002+0.001 // 3 significant digits
}

func TestHistogramPercentilesOnKnownData(t *testing.T) {
	h := NewHistogram()
	// 1 ms .. 1000 ms, each once, in shuffled order.
	vals := rand.New(rand.NewPCG(1, 2)).Perm(1000)
	for _, v := range vals {
		h.Record(time.Duration(v+1) * time.Millisecond)
	}
	l := h.Latencies()
	if l.Count != 1000 {
		t.Fatalf("count %d", l.Count)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", l.P50, 500}, {"p90", l.P90, 900}, {"p99", l.P99, 990}, {"p99.9", l.P999, 999}, {"max", l.Max, 1000}, {"mean", l.Mean, 500.5}} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v ms, want %v", c.name, c.got, c.want)
		}
	}
}

func TestHistogramSkewedData(t *testing.T) {
	h := NewHistogram()
	for i := 0; i < 990; i++ {
		h.Record(200 * time.Microsecond)
	}
	for i := 0; i < 9; i++ {
		h.Record(5 * time.Millisecond)
	}
	h.Record(3 * time.Second)
	l := h.Latencies()
	if !near(l.P50, 0.2) || !near(l.P90, 0.2) || !near(l.P99, 0.2) {
		t.Errorf("p50/p90/p99 = %v/%v/%v ms, want 0.2", l.P50, l.P90, l.P99)
	}
	if !near(l.P999, 5) {
		t.Errorf("p99.9 = %v ms, want 5", l.P999)
	}
	if !near(l.Max, 3000) {
		t.Errorf("max = %v ms, want 3000", l.Max)
	}
}

func TestHistogramSnapshotEmptiesAndClamps(t *testing.T) {
	h := NewHistogram()
	h.Record(0)
	h.Record(time.Hour) // beyond the range: counted as the largest trackable value
	l := h.Snapshot()
	if l.Count != 2 || !near(l.Max, float64(maxLatency.Milliseconds())) {
		t.Fatalf("snapshot %+v", l)
	}
	if l := h.Latencies(); l.Count != 0 || l.P99 != 0 {
		t.Fatalf("after Snapshot: %+v, want empty", l)
	}
}
