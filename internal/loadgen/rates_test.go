package loadgen

import (
	"testing"
	"time"
)

func TestEdgeRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ss storeSamples
	// 1,000 events/s for the first 90 s, then 500/s for 90 s, then no more (the store is
	// done), sampled every second.
	n := int64(0)
	for sec := 0; sec <= 200; sec++ {
		ss.add(t0.Add(time.Duration(sec)*time.Second), n)
		switch {
		case sec < 90:
			n += 1000
		case sec < 180:
			n += 500
		}
	}
	first, last, ok := ss.edgeRates(time.Minute)
	if !ok || first != 1000 || last != 500 {
		t.Errorf("edgeRates = %v, %v, %v; want 1000, 500, true", first, last, ok)
	}
	var short storeSamples
	short.add(t0, 0)
	short.add(t0.Add(90*time.Second), 9000)
	if _, _, ok := short.edgeRates(time.Minute); ok {
		t.Error("90 s of samples gave rates over two minutes")
	}
}
