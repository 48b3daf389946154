package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// explorerCorpus is events over three hours, bunched into a few minutes (so that a store
// reading a minute at a time has few to read), with ties of the same nanosecond, two
// events before 1970 on both sides of an hour, and properties of every JSON kind.
func explorerCorpus(seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 11))
	types := []string{"page_view", "click", "purchase"}
	sources := []string{event.SourceAPI, event.SourceSegment, event.SourcePostHog, ""}
	var out []event.Event
	for i := range 180 {
		at := base.Add(time.Duration(r.IntN(12))*15*time.Minute + time.Duration(r.IntN(40))*time.Second)
		if i%9 == 0 && i > 0 {
			at = out[i-1].Timestamp // a tie
		}
		out = append(out, event.Event{
			EventID:   fmt.Sprintf("evt_x%04d", i),
			EventType: types[r.IntN(len(types))],
			UserID:    fmt.Sprintf("user_%d", r.IntN(6)),
			SessionID: fmt.Sprintf("sess_%d", r.IntN(4)),
			Timestamp: at,
			Metadata: json.RawMessage(fmt.Sprintf(`{"page":"/p%d","n":%d,"flag":%t,"deep":{"k":"v%d"}}`,
				r.IntN(3), r.IntN(3), r.IntN(2) == 0, r.IntN(2))),
			Payload:    json.RawMessage(fmt.Sprintf(`{"amount":%d.5,"items":[1,2]}`, r.IntN(3))),
			Priority:   r.IntN(10),
			ReceivedAt: base.Add(time.Duration(i) * time.Millisecond),
			Source:     sources[r.IntN(len(sources))],
		})
	}
	for i, at := range []time.Time{time.Unix(-1800, 5), time.Unix(-3600-1, 0)} {
		out = append(out, event.Event{EventID: fmt.Sprintf("evt_old%d", i), EventType: "page_view", UserID: "user_old",
			SessionID: "sess_old", Timestamp: at.UTC(), ReceivedAt: base, Source: event.SourceAPI})
	}
	out = append(out, event.Event{EventID: "evt_bare", EventType: "click", UserID: "user_1", SessionID: "sess_1",
		Timestamp: base.Add(5 * time.Minute), ReceivedAt: base})
	return out
}

// propValue is the value at p in e: a string, float64 or bool; ok false for anything else
// or nothing there.
func propValue(e event.Event, p store.PropCond) (any, bool) {
	raw := e.Metadata
	if p.Field == "payload" {
		raw = e.Payload
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	for _, k := range p.Path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		v = m[k]
	}
	switch v.(type) {
	case string, float64, bool:
		return v, true
	}
	return nil, false
}

// matches is the brute-force reading of q.
func matches(e event.Event, q store.EventQuery) bool {
	if !q.From.IsZero() && e.Timestamp.Before(q.From) || !q.To.IsZero() && !e.Timestamp.Before(q.To) {
		return false
	}
	if q.EventType != "" && e.EventType != q.EventType || q.UserID != "" && e.UserID != q.UserID ||
		q.SessionID != "" && e.SessionID != q.SessionID {
		return false
	}
	for _, p := range q.Props {
		v, _ := propValue(e, p)
		switch v := v.(type) {
		case string:
			if v != p.Value {
				return false
			}
		case bool:
			if p.Value != fmt.Sprint(v) {
				return false
			}
		case float64: // the text of the same number: "12.50" is 12.5
			f, err := strconv.ParseFloat(p.Value, 64)
			if err != nil || f != v {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// readAll follows cursors from the newest event to the end, returning every event read
// and how many calls it took.
func readAll(t *testing.T, r store.EventReader, q store.EventQuery) ([]store.StoredEvent, int) {
	t.Helper()
	var all []store.StoredEvent
	for calls := 1; ; calls++ {
		got := 0
		next, err := r.ScanEvents(context.Background(), q, func(e *store.StoredEvent) bool {
			all = append(all, *e)
			got++
			return true
		})
		if err != nil {
			t.Fatalf("ScanEvents(%+v): %v", q, err)
		}
		if q.Limit > 0 && got > q.Limit {
			t.Fatalf("ScanEvents gave %d events, limit %d", got, q.Limit)
		}
		if next == nil {
			return all, calls
		}
		if calls > 10000 {
			t.Fatalf("ScanEvents(%+v) does not end", q)
		}
		q.After = next
	}
}

// sameEvent reports how got differs from the event stored, at the precision a store
// keeps (MongoDB's receivedAt is in milliseconds).
func sameEvent(got store.StoredEvent, want event.Event) error {
	g := got.Event
	if g.EventID != want.EventID || g.EventType != want.EventType || g.UserID != want.UserID ||
		g.SessionID != want.SessionID || !g.Timestamp.Equal(want.Timestamp) || g.Priority != want.Priority ||
		g.Source != want.Source || g.ReceivedAt.Sub(want.ReceivedAt).Abs() >= time.Millisecond || got.ProcessedAt.IsZero() {
		return fmt.Errorf("read back as %+v (processed %v), stored %+v", g, got.ProcessedAt, want)
	}
	for _, pair := range [][2]json.RawMessage{{g.Metadata, want.Metadata}, {g.Payload, want.Payload}} {
		var a, b any
		if len(pair[0]) == 0 != (len(pair[1]) == 0) {
			return fmt.Errorf("%s: read back %s, stored %s", want.EventID, pair[0], pair[1])
		}
		if len(pair[0]) > 0 && (json.Unmarshal(pair[0], &a) != nil || json.Unmarshal(pair[1], &b) != nil || !reflect.DeepEqual(a, b)) {
			return fmt.Errorf("%s: read back %s, stored %s", want.EventID, pair[0], pair[1])
		}
	}
	return nil
}

// checkRead checks that got is exactly the events of evs matching q, newest first, each as
// stored.
func checkRead(t *testing.T, what string, got []store.StoredEvent, evs []event.Event, q store.EventQuery) {
	t.Helper()
	byID := map[string]event.Event{}
	var want []string
	for _, e := range evs {
		if matches(e, q) {
			want = append(want, e.EventID)
		}
		byID[e.EventID] = e
	}
	ids := make([]string, len(got))
	for i, e := range got {
		ids[i] = e.EventID
		if i > 0 && e.Timestamp.After(got[i-1].Timestamp) {
			t.Fatalf("%s: %s (%v) comes after %s (%v): not newest first", what, e.EventID, e.Timestamp, got[i-1].EventID, got[i-1].Timestamp)
		}
		if err := sameEvent(e, byID[e.EventID]); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("%s: read %d events %v\nwant %d %v", what, len(ids), ids, len(want), want)
	}
}

func testEvents(t *testing.T, s Store) {
	r, ok := s.(store.EventReader)
	if !ok {
		t.Skip("the store does not read events back")
	}
	ctx := context.Background()
	evs := explorerCorpus(5)
	shuffled := slices.Clone(evs)
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i := 0; i < len(shuffled); i += 50 {
		insert(t, s, shuffled[i:min(i+50, len(shuffled))], min(50, len(shuffled)-i), 0)
		if st, ok := s.(Settler); ok && i == 100 { // later events go to hours already settled
			if err := st.Settle(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A user first seen after their hour was settled.
	late := event.Event{EventID: "evt_late", EventType: "click", UserID: "user_late", SessionID: "sess_late",
		Timestamp: base.Add(20 * time.Minute), ReceivedAt: base, Source: event.SourceAPI}
	insert(t, s, []event.Event{late}, 1, 0)
	evs = append(evs, late)

	qs := []store.EventQuery{
		{},
		{From: base.Add(30 * time.Minute), To: base.Add(2 * time.Hour)},
		{To: base},
		{EventType: "purchase"},
		{UserID: "user_2", From: base.Add(time.Hour)},
		{SessionID: "sess_3", EventType: "click"},
		{Props: []store.PropCond{{Field: "metadata", Path: []string{"page"}, Value: "/p1"}}},
		{Props: []store.PropCond{{Field: "metadata", Path: []string{"deep", "k"}, Value: "v0"}, {Field: "metadata", Path: []string{"flag"}, Value: "true"}}},
		{Props: []store.PropCond{{Field: "payload", Path: []string{"amount"}, Value: "2.50"}}, UserID: "user_1"},
		{Props: []store.PropCond{{Field: "metadata", Path: []string{"n"}, Value: "1"}}},
		{Props: []store.PropCond{{Field: "payload", Path: []string{"missing"}, Value: "x"}}},
		// Arrays hold no property: not their elements (MongoDB would match them), not an index.
		{Props: []store.PropCond{{Field: "payload", Path: []string{"items"}, Value: "1"}}},
		{Props: []store.PropCond{{Field: "payload", Path: []string{"items", "0"}, Value: "1"}}},
		{UserID: "nobody"},
		{UserID: "user_late"},
		{SessionID: "sess_late"},
	}
	for i, q := range qs {
		for _, e := range evs { // the live tail's matching, which no store does, agrees too
			if store.Matches(&e, &q) != matches(e, q) {
				t.Fatalf("query %d: store.Matches(%s) = %v", i, e.EventID, !matches(e, q))
			}
		}
		all, _ := readAll(t, r, q)
		checkRead(t, fmt.Sprintf("query %d", i), all, evs, q)
		// Pages of any size give the same events.
		for _, limit := range map[int][]int{0: {7}, 1: {3}, 3: {1}, 4: {1, 7}, 5: {7}}[i] {
			q.Limit = limit
			paged, _ := readAll(t, r, q)
			checkRead(t, fmt.Sprintf("query %d, pages of %d", i, limit), paged, evs, q)
		}
	}

	// Once every hour is settled (no head hours left), a user's events come from the hours
	// the settled form has the user in.
	if st, ok := s.(Settler); ok {
		if err := st.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		for _, q := range []store.EventQuery{{UserID: "user_2", From: base.Add(time.Hour)}, {UserID: "user_old"}, {UserID: "user_1", Limit: 2},
			{SessionID: "sess_old"}, {SessionID: "sess_2", Limit: 3}, {SessionID: "sess_1", UserID: "user_3"}, {SessionID: "sess_none"}} {
			all, _ := readAll(t, r, q)
			checkRead(t, fmt.Sprintf("settled, %+v", q), all, evs, q)
		}
	}

	// A scan out of time stops between hours with where to go on; following it loses nothing.
	q := store.EventQuery{Budget: time.Nanosecond, Limit: 1000}
	all, calls := readAll(t, r, q)
	checkRead(t, "a scan out of time", all, evs, q)
	if calls < 2 {
		t.Fatalf("a scan with a budget of 1ns took %d call(s), want one an hour or so", calls)
	}

	// A caller that stops early continues after the last event it took.
	var firstTwo []store.StoredEvent
	next, err := r.ScanEvents(ctx, store.EventQuery{}, func(e *store.StoredEvent) bool {
		firstTwo = append(firstTwo, *e)
		return len(firstTwo) < 2
	})
	if err != nil || next == nil || len(firstTwo) != 2 || *next != firstTwo[1].Pos {
		t.Fatalf("stopping after two events: %d events, next %v, err %v", len(firstTwo), next, err)
	}
	rest, _ := readAll(t, r, store.EventQuery{After: next})
	checkRead(t, "stopped early, then the rest", append(firstTwo, rest...), evs, store.EventQuery{})

	for _, e := range []event.Event{evs[3], evs[len(evs)-1], evs[len(evs)-2]} {
		got, err := r.GetEvent(ctx, e.EventID)
		if err != nil {
			t.Fatalf("GetEvent(%s): %v", e.EventID, err)
		}
		if err := sameEvent(got, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.GetEvent(ctx, "evt_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetEvent(missing) = %v, want ErrNotFound", err)
	}
	if p, ok := s.(Pruner); ok {
		cut := base.Add(90 * time.Minute)
		if _, err := p.Prune(ctx, cut); err != nil {
			t.Fatal(err)
		}
		var kept []event.Event
		for _, e := range evs {
			if !e.Timestamp.Before(cut) {
				kept = append(kept, e)
			}
		}
		all, _ := readAll(t, r, store.EventQuery{Limit: 5})
		checkRead(t, "after retention", all, kept, store.EventQuery{})
		if _, err := r.GetEvent(ctx, evs[len(evs)-2].EventID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetEvent(pruned) = %v, want ErrNotFound", err)
		}
	}
}
