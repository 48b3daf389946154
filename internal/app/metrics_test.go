package app

import "testing"

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
