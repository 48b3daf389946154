package metrics

import (
	"testing"
	"time"
)

// httpCounts gathers evp_http_request_duration_seconds: observations per label set.
func httpCounts(t *testing.T, m *Metrics) map[[3]string]uint64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[3]string]uint64{}
	for _, f := range families {
		if f.GetName() != "evp_http_request_duration_seconds" {
			continue
		}
		for _, mt := range f.GetMetric() {
			var k [3]string
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "route":
					k[0] = l.GetValue()
				case "method":
					k[1] = l.GetValue()
				case "status":
					k[2] = l.GetValue()
				}
			}
			got[k] = mt.GetHistogram().GetSampleCount()
		}
	}
	return got
}

func TestObserveHTTP(t *testing.T) {
	m := New()
	for i := 0; i < 3; i++ {
		m.ObserveHTTP("POST /api/v1/events", "POST", 202, time.Millisecond)
	}
	m.ObserveHTTP("POST /api/v1/events", "POST", 400, time.Millisecond)
	m.ObserveHTTP("", "BREW", 404, time.Millisecond)
	m.ObserveHTTP("", "BREW", 404, time.Millisecond)
	got := httpCounts(t, m)
	want := map[[3]string]uint64{
		{"POST /api/v1/events", "POST", "202"}: 3,
		{"POST /api/v1/events", "POST", "400"}: 1,
		{"unmatched", "BREW", "404"}:           2,
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%v: %d observations, want %d", k, got[k], n)
		}
	}
}

// Past the cache's bound, label sets are still observed, only not cached.
func TestObserveHTTPPastCacheBound(t *testing.T) {
	m := New()
	for i := 0; i < maxHTTPObservers+10; i++ {
		m.ObserveHTTP("", "M"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), 404, time.Millisecond)
	}
	m.ObserveHTTP("", "Maaa", 404, time.Millisecond)
	got := httpCounts(t, m)
	if len(got) != maxHTTPObservers+10 || got[[3]string{"unmatched", "Maaa", "404"}] != 2 {
		t.Fatalf("%d series, Maaa observed %d times", len(got), got[[3]string{"unmatched", "Maaa", "404"}])
	}
	if len(m.httpObs) != maxHTTPObservers {
		t.Fatalf("%d cached observers, want the bound %d", len(m.httpObs), maxHTTPObservers)
	}
}
