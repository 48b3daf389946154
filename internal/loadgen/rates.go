package loadgen

import (
	"sync"
	"time"
)

// storeSamples are the store counts read during a run, in time order: from them come the
// rates at which the store took events in the first and the last minute of the run, which
// say whether storing slows down as the store grows.
type storeSamples struct {
	mu sync.Mutex
	s  []storeSample
}

type storeSample struct {
	at time.Time
	n  int64
}

func (ss *storeSamples) add(at time.Time, n int64) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.s = append(ss.s, storeSample{at, n})
}

// edgeRates returns the store's events/s over the first window after the first sample, and
// over the last window before the first sample that reached the last count (the store was
// done then); ok is false when the samples span less than two windows.
func (ss *storeSamples) edgeRates(window time.Duration) (first, last float64, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.s
	if len(s) < 2 {
		return 0, 0, false
	}
	end := len(s) - 1
	for end > 0 && s[end-1].n == s[end].n {
		end--
	}
	if s[end].at.Sub(s[0].at) < 2*window {
		return 0, 0, false
	}
	rate := func(a, b storeSample) float64 { return float64(b.n-a.n) / b.at.Sub(a.at).Seconds() }
	i := 0
	for s[i].at.Sub(s[0].at) < window {
		i++
	}
	j := end
	for s[end].at.Sub(s[j].at) < window {
		j--
	}
	return rate(s[0], s[i]), rate(s[j], s[end]), true
}
