package app

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

func TestAnalyticsEndToEnd(t *testing.T) {
	in := start(t, "", nil)
	base := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	var events []any
	add := func(n int, typ, user string, at time.Time) {
		for i := 0; i < n; i++ {
			e := ev(fmt.Sprintf("an-%s-%s-%d-%d", typ, user, at.Unix(), i), typ)
			e["userId"], e["sessionId"] = user, "s-"+user
			e["timestamp"] = at.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
			events = append(events, e)
		}
	}
	add(6, "page_view", "alice", base)
	add(3, "click", "bob", base)
	add(1, "click", "alice", base.Add(2*time.Minute))
	r := in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": events}), nil)
	if r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	in.waitStored(10)

	q := "/api/v1/analytics/metrics?" + url.Values{
		"from": {base.Add(-5 * time.Minute).Format(time.RFC3339)},
		"to":   {base.Add(5 * time.Minute).Format(time.RFC3339)},
	}.Encode()
	r = in.do("GET", q, nil, nil)
	if r.status != 200 || r.header.Get("X-Cache") != "MISS" {
		t.Fatalf("analytics: %d X-Cache=%q %s", r.status, r.header.Get("X-Cache"), r.raw)
	}
	d := r.data()
	if d["totalEvents"] != 10.0 || d["uniqueUsers"] != 2.0 || d["uniqueSessions"] != 2.0 || d["avgEventsPerUser"] != 5.0 {
		t.Errorf("totals: %s", r.raw)
	}
	byType, _ := d["eventsByType"].([]any)
	if len(byType) != 2 || fmt.Sprint(byType[0]) != "map[count:6 eventType:page_view percentage:60]" ||
		fmt.Sprint(byType[1]) != "map[count:4 eventType:click percentage:40]" {
		t.Errorf("eventsByType: %v", byType)
	}
	buckets, _ := d["eventsOverTime"].([]any)
	if len(buckets) != 10 {
		t.Fatalf("%d buckets, want 10 one-minute buckets: %s", len(buckets), r.raw)
	}
	if b := buckets[5].(map[string]any); b["timestamp"] != base.Format(time.RFC3339) || b["count"] != 9.0 {
		t.Errorf("bucket 5 = %v, want 9 events at %s", b, base.Format(time.RFC3339))
	}
	if b := buckets[6].(map[string]any); b["count"] != 0.0 {
		t.Errorf("bucket 6 = %v, want 0", b)
	}
	top, _ := d["topUsers"].([]any)
	if len(top) != 2 || top[0].(map[string]any)["userId"] != "alice" || top[0].(map[string]any)["eventCount"] != 7.0 {
		t.Errorf("topUsers: %v", top)
	}

	r = in.do("GET", q, nil, nil)
	if r.status != 200 || r.header.Get("X-Cache") != "HIT" || r.data()["totalEvents"] != 10.0 {
		t.Fatalf("second call: %d X-Cache=%q %s", r.status, r.header.Get("X-Cache"), r.raw)
	}

	// Filters are part of the cache key.
	r = in.do("GET", q+"&eventType=click&userId=ALI", nil, nil)
	if r.status != 200 || r.header.Get("X-Cache") != "MISS" || r.data()["totalEvents"] != 1.0 {
		t.Fatalf("filtered: %d X-Cache=%q %s", r.status, r.header.Get("X-Cache"), r.raw)
	}
	r = in.do("GET", "/api/v1/analytics/metrics?timeRange=1h", nil, nil)
	if r.status != 200 || r.data()["totalEvents"] != 10.0 || len(r.data()["eventsOverTime"].([]any)) != 60 {
		t.Errorf("1h: %d %s", r.status, r.raw)
	}
	r = in.do("GET", "/api/v1/analytics/metrics?from=nope&to=nope", nil, nil)
	if r.status != 400 || r.errorCode() != "VALIDATION_ERROR" {
		t.Errorf("bad from: %d %s", r.status, r.raw)
	}
}
