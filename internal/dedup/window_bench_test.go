package dedup

import (
	"sync/atomic"
	"testing"
	"time"
)

// benchID returns a new id of a UUID's length for sequence number n.
func benchID(n uint64) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	copy(b[:], "0192f6c4-7b1e-7d3a-9c4e-")
	for i := 35; i >= 24; i-- { // the last 12 hex digits of n
		b[i] = hex[n&15]
		n >>= 4
	}
	return string(b[:])
}

// fullWindow returns a window of 10 minutes bounded to maxIDs ids (as evp's defaults), with
// maxIDs ids added already, and the next sequence number.
func fullWindow(b *testing.B, maxIDs int) (*Window, *atomic.Uint64) {
	b.Helper()
	w := New(10 * time.Minute)
	w.MaxIDs = maxIDs
	var seq atomic.Uint64
	for range maxIDs {
		w.Add(benchID(seq.Add(1)))
	}
	return w, &seq
}

// BenchmarkWindowCheckAdd is what the API does per single event: Seen of a new id, then
// Add once buffered, in a window at its bound of a million ids (every Add forgets an id).
// The id's own allocation is counted.
func BenchmarkWindowCheckAdd(b *testing.B) {
	w, seq := fullWindow(b, 1_000_000)
	seen := make([]bool, 1)
	ids := make([]string, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ids[0] = benchID(seq.Add(1))
		w.Seen(ids, seen)
		if seen[0] {
			b.Fatal("a new id was seen")
		}
		w.Add(ids...)
	}
}

// BenchmarkWindowCheckAddParallel is BenchmarkWindowCheckAdd from GOMAXPROCS goroutines.
func BenchmarkWindowCheckAddParallel(b *testing.B) {
	w, seq := fullWindow(b, 1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		seen := make([]bool, 1)
		ids := make([]string, 1)
		for pb.Next() {
			ids[0] = benchID(seq.Add(1))
			w.Seen(ids, seen)
			w.Add(ids...)
		}
	})
}

// BenchmarkWindowSeenRepeat checks an id the window holds (a client's retry).
func BenchmarkWindowSeenRepeat(b *testing.B) {
	w, _ := fullWindow(b, 1_000_000)
	ids := []string{benchID(999_999)}
	seen := make([]bool, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.Seen(ids, seen)
		if !seen[0] {
			b.Fatal("a held id was not seen")
		}
	}
}
