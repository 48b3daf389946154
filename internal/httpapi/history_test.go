package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"
)

// fakeRate is a shared ingestion counter whose rate the test sets.
type fakeRate struct {
	rate float64
	err  error
}

func (f *fakeRate) Add(int64)                             {}
func (f *fakeRate) Rate(context.Context) (float64, error) { return f.rate, f.err }

// storedCounts answers the stored-event counts it is given, one a call; an error stands
// for a count that could not be read.
type storedCounts struct{ seq []any }

func (c *storedCounts) count(context.Context) (int64, error) {
	v := c.seq[0]
	c.seq = c.seq[1:]
	if err, ok := v.(error); ok {
		return 0, err
	}
	return v.(int64), nil
}

func historyServer(d Deps) *Server {
	d.Serving.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	d.Auth.Keys = staticKeys{}
	s := New(d)
	s.SetReady(true)
	return s
}

func ptr(f float64) *float64 { return &f }

func rateText(r *float64) string {
	if r == nil {
		return "null"
	}
	b, _ := json.Marshal(*r)
	return string(b)
}

// The history keeps its newest 60 points, oldest first: 10 minutes, and no more.
func TestRateHistoryKeepsTheNewest(t *testing.T) {
	var h rateHistory
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i := range 75 {
		h.add(ratePoint{Timestamp: t0.Add(time.Duration(i) * historyStep), Ingested: ptr(float64(i))})
	}
	got := h.snapshot()
	if len(got) != historyPoints {
		t.Fatalf("%d points kept, want %d", len(got), historyPoints)
	}
	for i, p := range got {
		if want := float64(i + 15); *p.Ingested != want {
			t.Fatalf("point %d is %v, want %v (oldest first)", i, *p.Ingested, want)
		}
	}
}

// A point holds the ingestion rate over the 10 whole seconds before it and the growth of
// the stored-event count per second since the previous point; a count that cannot be read
// or went down gives no processed rate, and the next one is measured from the last good
// reading.
func TestSampleRates(t *testing.T) {
	counts := &storedCounts{seq: []any{int64(1000), int64(1200), errors.New("store down"), int64(1800), int64(5)}}
	s := historyServer(Deps{Reading: ReadingDeps{StoredCount: counts.count}})
	base := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := base
	s.ingest.now = func() time.Time { return clock }
	// 3 events a second over 12:00:00-12:00:09, and 1000 in the second after.
	for sec := range 10 {
		clock = base.Add(time.Duration(sec) * time.Second)
		s.ingest.Add(3)
	}
	clock = base.Add(10 * time.Second)
	s.ingest.Add(1000)

	at := func(sec int) time.Time { return base.Add(time.Duration(sec)*time.Second + historyLag) }
	ctx := context.Background()
	s.history.processedRate(ctx, s.Reading.StoredCount, at(0)) // RecordRates' baseline: 1000
	sample := func(sec int) {
		clock = at(sec)
		s.SampleRates(ctx, clock)
	}
	sample(10) // 1200: 20/s
	sample(20) // unreadable
	sample(30) // 1800: 600 in the 20 s since the last good count
	sample(40) // 5: went down

	got := s.history.snapshot()
	want := []struct {
		ts                  time.Time
		ingested, processed string
	}{
		{base.Add(10 * time.Second), "3", "20"},
		{base.Add(20 * time.Second), "100", "null"},
		{base.Add(30 * time.Second), "0", "30"},
		{base.Add(40 * time.Second), "0", "null"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d points, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if !got[i].Timestamp.Equal(w.ts) || rateText(got[i].Ingested) != w.ingested || rateText(got[i].Processed) != w.processed {
			t.Errorf("point %d: %s ingested %s processed %s, want %s %s %s", i, got[i].Timestamp.Format(time.TimeOnly),
				rateText(got[i].Ingested), rateText(got[i].Processed), w.ts.Format(time.TimeOnly), w.ingested, w.processed)
		}
	}
}

// With a shared ingestion counter (Redis) the history records every replica's rate, and
// no rate when that counter cannot be read: not this replica's share passed off as the
// whole. Without a store count there is no processed rate.
func TestSampleRatesSharedCounter(t *testing.T) {
	shared := &fakeRate{rate: 250}
	s := historyServer(Deps{Ingestion: IngestionDeps{Rate: shared}})
	s.ingest.Add(1000) // this replica's own count, not what the history reports
	now := time.Now()
	s.SampleRates(context.Background(), now)
	shared.err = errors.New("redis: connection refused")
	s.SampleRates(context.Background(), now.Add(historyStep))
	got := s.history.snapshot()
	if len(got) != 2 || rateText(got[0].Ingested) != "250" || got[1].Ingested != nil || got[0].Processed != nil {
		t.Fatalf("points %s/%s, %s/%s; want 250/null, null/null",
			rateText(got[0].Ingested), rateText(got[0].Processed), rateText(got[1].Ingested), rateText(got[1].Processed))
	}
}

// Points are taken half a second after each multiple of 10 s on the wall clock.
func TestNextHistorySample(t *testing.T) {
	b := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct{ now, want time.Duration }{
		{0, 500 * time.Millisecond},
		{400 * time.Millisecond, 500 * time.Millisecond},
		{500 * time.Millisecond, 10500 * time.Millisecond},
		{3 * time.Second, 10500 * time.Millisecond},
		{10499 * time.Millisecond, 10500 * time.Millisecond},
		{10501 * time.Millisecond, 20500 * time.Millisecond},
	} {
		if got := nextHistorySample(b.Add(c.now)); !got.Equal(b.Add(c.want)) {
			t.Errorf("after +%v: +%v, want +%v", c.now, got.Sub(b), c.want)
		}
	}
}

// GET /api/metrics/history answers the points with the step, a rate that could not be
// read as null, to the callers of the other metrics routes only.
func TestGetHistory(t *testing.T) {
	s := historyServer(Deps{})
	ts := time.Date(2026, 12, 7, 12, 0, 10, 0, time.UTC)
	s.history.add(ratePoint{Timestamp: ts, Ingested: ptr(12.5), Processed: ptr(12)})
	s.history.add(ratePoint{Timestamp: ts.Add(historyStep), Ingested: ptr(0)})

	req := httptest.NewRequest("GET", "/api/metrics/history", nil)
	req.Header.Set("x-api-key", "evp_bench")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	want := `{"success":true,"data":{"stepSeconds":10,"points":[` +
		`{"timestamp":"2026-12-07T12:00:10Z","ingested":12.5,"processed":12},` +
		`{"timestamp":"2026-12-07T12:00:20Z","ingested":0,"processed":null}]}}` + "\n"
	if rec.Code != 200 || rec.Body.String() != want {
		t.Fatalf("%d %s\nwant %s", rec.Code, rec.Body, want)
	}

	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/metrics/history", nil))
	if rec.Code != 401 {
		t.Fatalf("without credentials: %d %s, want 401", rec.Code, rec.Body)
	}
}

// An empty history is an empty list, not null.
func TestGetHistoryEmpty(t *testing.T) {
	s := historyServer(Deps{})
	req := httptest.NewRequest("GET", "/api/metrics/history", nil)
	req.Header.Set("x-api-key", "evp_bench")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if want := `{"success":true,"data":{"stepSeconds":10,"points":[]}}` + "\n"; rec.Body.String() != want {
		t.Fatalf("%s, want %s", rec.Body, want)
	}
}

// RecordRates returns once its context ends, between points.
func TestRecordRatesStops(t *testing.T) {
	counts := &storedCounts{seq: []any{int64(0)}}
	s := historyServer(Deps{Reading: ReadingDeps{StoredCount: counts.count}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.RecordRates(ctx)
		close(done)
	}()
	cancel()
	<-done
}
