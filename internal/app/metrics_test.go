package app

import (
	"testing"
	"time"
)

func TestMetricsCountEventsByType(t *testing.T) {
	in := start(t, "", nil)
	batch := []any{ev("t-1", "click"), ev("t-2", "click"), ev("t-3", "page_view")}
	if r := in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": batch}), nil); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	in.waitStored(3)
	r := in.do("GET", "/api/metrics", nil, nil)
	byType, _ := r.data()["eventsByType"].(map[string]any)
	if r.status != 200 || byType["click"] != 2.0 || byType["page_view"] != 1.0 || len(byType) != 2 {
		t.Fatalf("eventsByType = %v (%d %s), want click 2, page_view 1", byType, r.status, r.raw)
	}
}

// EVP_RETENTION_DAYS deletes older events from the embedded store (at start, then every
// 10 minutes) and the counts follow.
func TestRetentionInEmbeddedStore(t *testing.T) {
	dir := t.TempDir()
	in := start(t, dir, nil)
	recent := ev("r-new", "click")
	recent["timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
	batch := []any{ev("r-old-1", "click"), ev("r-old-2", "page_view"), recent} // ev: January 2024
	if r := in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": batch}), nil); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	in.waitStored(3)
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	again := start(t, dir, map[string]string{"EVP_RETENTION_DAYS": "30"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := again.do("GET", "/api/metrics", nil, nil)
		proc, _ := r.data()["processing"].(map[string]any)
		byType, _ := r.data()["eventsByType"].(map[string]any)
		if proc["totalEvents"] == 1.0 && byType["click"] == 1.0 && byType["page_view"] == 0.0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after retention: processing %v, eventsByType %v; want 1 event (a click)", proc, byType)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
