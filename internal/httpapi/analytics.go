package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// analyticsTTL is how long an analytics answer is served from the cache.
const analyticsTTL = 10 * time.Second

// maxCustomRange bounds a from/to range.
const maxCustomRange = 31 * 24 * time.Hour

// presetRanges are the timeRange values: their length and bucket size.
var presetRanges = map[string]struct{ span, bucket time.Duration }{
	"15m": {15 * time.Minute, time.Minute},
	"1h":  {time.Hour, time.Minute},
	"24h": {24 * time.Hour, 30 * time.Minute},
	"7d":  {7 * 24 * time.Hour, 3 * time.Hour},
}

// bucketSteps are the bucket sizes a custom range may get: the smallest giving at most
// maxBuckets buckets.
var bucketSteps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

const maxBuckets = 60

type analyticsAnswer struct {
	store.AnalyticsResult
	TimeRange timeRange `json:"timeRange"`
}

type timeRange struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// analyticsQuery turns the request parameters into a store query. Preset ranges end at the
// end of the current minute; custom ranges are widened to whole minutes, then the start is
// moved back to make a whole number of buckets. from and to must lie within the timestamps
// events may have (event.TimeInRange), so that the widened range stays within what the
// stores hold as int64 nanoseconds.
func analyticsQuery(r *http.Request, now time.Time) (store.AnalyticsQuery, *Error) {
	v := r.URL.Query()
	q := store.AnalyticsQuery{EventType: v.Get("eventType"), UserID: v.Get("userId")}
	from, to := v.Get("from"), v.Get("to")
	if from == "" && to == "" {
		name := v.Get("timeRange")
		if name == "" {
			name = "1h"
		}
		p, ok := presetRanges[name]
		if !ok {
			return q, validation("timeRange", "must be one of 15m, 1h, 24h, 7d")
		}
		q.End = now.UTC().Truncate(time.Minute).Add(time.Minute)
		q.Start, q.Bucket = q.End.Add(-p.span), p.bucket
		return q, nil
	}
	if v.Get("timeRange") != "" {
		return q, validation("timeRange", "give either timeRange or from and to")
	}
	var err error
	var start, end time.Time
	if from == "" {
		return q, validation("from", "required with to")
	}
	if start, err = time.Parse(time.RFC3339, from); err != nil {
		return q, validation("from", "must be an RFC 3339 time")
	}
	if !event.TimeInRange(start) {
		return q, validation("from", event.TimeRangeReason)
	}
	if to == "" {
		return q, validation("to", "required with from")
	}
	if end, err = time.Parse(time.RFC3339, to); err != nil {
		return q, validation("to", "must be an RFC 3339 time")
	}
	if !event.TimeInRange(end) {
		return q, validation("to", event.TimeRangeReason)
	}
	start = start.UTC().Truncate(time.Minute)
	if e := end.UTC().Truncate(time.Minute); e.Before(end) {
		end = e.Add(time.Minute)
	} else {
		end = e
	}
	if !end.After(start) {
		return q, validation("to", "must be after from")
	}
	if end.Sub(start) > maxCustomRange {
		return q, validation("to", "the range may span at most 31 days")
	}
	span := end.Sub(start)
	q.Bucket = bucketSteps[len(bucketSteps)-1]
	for _, b := range bucketSteps {
		if (span+b-1)/b <= maxBuckets {
			q.Bucket = b
			break
		}
	}
	n := (span + q.Bucket - 1) / q.Bucket
	q.Start, q.End = end.Add(-n*q.Bucket), end
	return q, nil
}

func validation(field, msg string) *Error {
	e := errorf(http.StatusBadRequest, "VALIDATION_ERROR", "%s: %s", field, msg)
	e.Details = []event.FieldError{{Path: field, Reason: msg}}
	return e
}

// getAnalytics is GET /api/v1/analytics/metrics. Answers are cached for analyticsTTL,
// keyed by the query they answer, unless the store says they are unsettled; a cache that
// fails is passed by (the answer is computed).
func (s *Server) getAnalytics(w http.ResponseWriter, r *http.Request) *Error {
	q, e := analyticsQuery(r, time.Now())
	if e != nil {
		return e
	}
	key := analyticsKey(q)
	if b, ok, err := s.acache.Get(r.Context(), key); err != nil {
		s.log.Warn("analytics cache read failed; computing the answer", "request_id", RequestID(r.Context()), "err", err)
	} else if ok {
		w.Header().Set("X-Cache", "HIT")
		writeData(w, http.StatusOK, json.RawMessage(b))
		return nil
	}
	res, err := s.Reading.Analytics(r.Context(), q)
	if err != nil {
		s.log.Error("analytics failed", "request_id", RequestID(r.Context()), "err", err)
		return errorf(http.StatusInternalServerError, "ANALYTICS_ERROR", "could not compute analytics")
	}
	if res.TopUsers == nil {
		res.TopUsers = []store.TopUser{}
	}
	ans := analyticsAnswer{AnalyticsResult: res, TimeRange: timeRange{Start: q.Start, End: q.End}}
	w.Header().Set("X-Cache", "MISS")
	b, err := json.Marshal(ans)
	if err != nil {
		writeData(w, http.StatusOK, ans) // answers the encoding error itself
		return nil
	}
	if !res.Unsettled { // an unsettled answer's figures may disagree: served, never kept
		if err := s.acache.Set(r.Context(), key, b, analyticsTTL); err != nil {
			s.log.Warn("analytics cache write failed", "request_id", RequestID(r.Context()), "err", err)
		}
	}
	writeData(w, http.StatusOK, json.RawMessage(b))
	return nil
}

// analyticsKey identifies a query by everything its answer depends on: the resolved range
// and bucket (so timeRange=1h and no timeRange share an entry, and a preset range gets a
// new entry when its window moves to the next minute) and both filters.
// The filters are quoted, so that no two filter pairs give the same key.
func analyticsKey(q store.AnalyticsQuery) string {
	return strings.Join([]string{strconv.FormatInt(q.Start.Unix(), 10), strconv.FormatInt(q.End.Unix(), 10),
		strconv.FormatInt(int64(q.Bucket/time.Second), 10), strconv.Quote(q.EventType), strconv.Quote(q.UserID)}, " ")
}

// AnalyticsCache keeps encoded analytics answers for a short time. An error from Get or Set
// never fails a request: the answer is computed (Get) or not kept (Set). Implementations
// are safe for concurrent use. The default keeps answers in process; a shared one (Redis)
// lets API replicas answer from each other's work.
type AnalyticsCache interface {
	// Get returns the value stored under key, ok false when there is none (or it expired).
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Purge drops every answer (events were deleted that they count).
	Purge(ctx context.Context) error
}

// localAnalyticsCache keeps answers in this process.
type localAnalyticsCache struct {
	mu      sync.Mutex
	entries map[string]cached
}

type cached struct {
	value   []byte
	expires time.Time
}

func newLocalAnalyticsCache() *localAnalyticsCache {
	return &localAnalyticsCache{entries: map[string]cached{}}
}

// Get implements AnalyticsCache.
func (c *localAnalyticsCache) Get(_ context.Context, key string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || time.Now().After(e.expires) {
		return nil, false, nil
	}
	return e.value, true, nil
}

// Purge implements AnalyticsCache.
func (c *localAnalyticsCache) Purge(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	return nil
}

// Set implements AnalyticsCache. Expired entries are dropped once 1000 are held.
func (c *localAnalyticsCache) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.entries) >= 1000 {
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[key] = cached{value: value, expires: now.Add(ttl)}
	return nil
}
