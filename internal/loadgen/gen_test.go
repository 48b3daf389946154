package loadgen

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/segment"
)

func TestBodiesAreValidEvents(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, payload := range []int{0, 60, 200, 1000} {
		for _, n := range []int{1, 7, 100, event.MaxBatch} {
			t.Run(fmt.Sprintf("payload=%d/batch=%d", payload, n), func(t *testing.T) {
				g := NewGenerator(GenConfig{RunID: "t1", Users: 10, Sessions: 20, PayloadBytes: payload, DupRatio: 0, Seed: 7})
				s := g.NewStream()
				body, dups := s.AppendBody(nil, n, n == 1, now)
				if dups != 0 {
					t.Fatalf("%d duplicates with dup ratio 0", dups)
				}
				if !json.Valid(body) {
					t.Fatalf("body is not valid JSON: %s", body)
				}
				var events []event.Event
				if n == 1 {
					ev, err := event.DecodeOne(body, now)
					if err != nil {
						t.Fatalf("DecodeOne: %v\n%s", err, body)
					}
					events = []event.Event{ev}
				} else {
					var err error
					if events, err = event.DecodeBatch(body, now); err != nil {
						t.Fatalf("DecodeBatch: %v", err)
					}
				}
				if len(events) != n {
					t.Fatalf("%d events, want %d", len(events), n)
				}
				ids := map[string]bool{}
				for i, ev := range events {
					if !strings.HasPrefix(ev.EventID, "lg-t1-") || ids[ev.EventID] {
						t.Fatalf("event %d: id %q not of the form lg-t1-<n> or repeated", i, ev.EventID)
					}
					ids[ev.EventID] = true
					if !slices.Contains(EventTypes[:], ev.EventType) {
						t.Errorf("event %d: unknown type %q", i, ev.EventType)
					}
					if u, err := strconv.Atoi(strings.TrimPrefix(ev.UserID, "user_")); err != nil || u < 0 || u >= 10 {
						t.Errorf("event %d: userId %q outside user_0..user_9", i, ev.UserID)
					}
					if s, err := strconv.Atoi(strings.TrimPrefix(ev.SessionID, "sess_")); err != nil || s < 0 || s >= 20 {
						t.Errorf("event %d: sessionId %q outside sess_0..sess_19", i, ev.SessionID)
					}
					if !ev.Timestamp.Equal(now) {
						t.Errorf("event %d: timestamp %v, want %v", i, ev.Timestamp, now)
					}
					var meta map[string]string
					if err := json.Unmarshal(ev.Metadata, &meta); err != nil || meta["source"] == "" || meta["browser"] == "" || meta["version"] == "" {
						t.Errorf("event %d: metadata %s lacks source, browser or version", i, ev.Metadata)
					}
					switch {
					case payload == 0 && ev.Payload != nil:
						t.Errorf("event %d: payload %s with --payload-bytes 0", i, ev.Payload)
					case payload >= 200 && len(ev.Payload) != payload:
						t.Errorf("event %d: payload is %d bytes, want %d: %s", i, len(ev.Payload), payload, ev.Payload)
					case payload > 0 && !json.Valid(ev.Payload):
						t.Errorf("event %d: payload is not JSON", i)
					}
				}
			})
		}
	}
}

func TestAllEventTypesAppear(t *testing.T) {
	g := NewGenerator(GenConfig{RunID: "t", Users: 100, Sessions: 100, PayloadBytes: 100, Seed: 1})
	body, _ := g.NewStream().AppendBody(nil, 1000, false, time.Now())
	events, err := event.DecodeBatch(body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	users := map[string]bool{}
	for _, ev := range events {
		seen[ev.EventType]++
		users[ev.UserID] = true
	}
	if len(seen) != len(EventTypes) {
		t.Fatalf("types seen in 1000 events: %v, want all %d", seen, len(EventTypes))
	}
	if len(users) < 90 {
		t.Fatalf("%d distinct users in 1000 events drawn from 100", len(users))
	}
}

func TestDupRatioIsHonored(t *testing.T) {
	for _, ratio := range []float64{0, 0.01, 0.1, 0.5} {
		t.Run(fmt.Sprint(ratio), func(t *testing.T) {
			g := NewGenerator(GenConfig{RunID: "d", Users: 5, Sessions: 5, DupRatio: ratio, Seed: 42})
			streams := []*Stream{g.NewStream(), g.NewStream(), g.NewStream()}
			seen := map[string]bool{}
			total, repeated, reported := 0, 0, 0
			now := time.Now()
			for i := 0; i < 600; i++ {
				body, dups := streams[i%len(streams)].AppendBody(nil, 100, false, now)
				reported += dups
				// Bodies are checked for validity above; here only the ids matter.
				ids := bytes.Split(body, []byte(`"eventId":"`))[1:]
				if len(ids) != 100 {
					t.Fatalf("%d eventIds in a batch of 100", len(ids))
				}
				for _, rest := range ids {
					id := string(rest[:bytes.IndexByte(rest, '"')])
					total++
					if seen[id] {
						repeated++
					}
					seen[id] = true
				}
			}
			share := float64(repeated) / float64(total)
			tol := 0.1*ratio + 0.002
			if share < ratio-tol || share > ratio+tol {
				t.Fatalf("%d of %d events (%.4f) repeat an earlier id, want %.4f ± %.4f", repeated, total, share, ratio, tol)
			}
			if reported != repeated || g.Duplicates() != int64(repeated) {
				t.Fatalf("AppendBody reported %d duplicates, the generator %d; the bodies hold %d", reported, g.Duplicates(), repeated)
			}
			if g.Issued() != int64(len(seen)) {
				t.Fatalf("generator issued %d ids, bodies hold %d distinct", g.Issued(), len(seen))
			}
		})
	}
}

func TestGzipBodyRoundTrips(t *testing.T) {
	g := NewGenerator(GenConfig{RunID: "z", Users: 5, Sessions: 5, PayloadBytes: 300, Seed: 3})
	raw, _ := g.NewStream().AppendBody(nil, 50, false, time.Now())
	z := appendGzip([]byte("keep"), raw)
	if string(z[:4]) != "keep" {
		t.Fatal("appendGzip overwrote dst")
	}
	zr, err := gzip.NewReader(bytes.NewReader(z[4:]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("gzip round trip differs (err %v)", err)
	}
}

func TestCountAnswer(t *testing.T) {
	cases := []struct {
		body         string
		n            int
		wantAcc, dup int
	}{
		{`{"success":true,"data":{"eventId":"e","accepted":true,"duplicate":false,"message":"Event accepted for processing"}}`, 1, 1, 0},
		{`{"success":true,"data":{"eventId":"e","accepted":false,"duplicate":true,"message":"Event already processed (duplicate)"}}`, 1, 0, 1},
		{`{"success":true,"data":{"accepted":97,"duplicates":3,"total":100,"eventIds":["a"],"message":"Batch processed successfully"}}`, 100, 97, 3},
		{`{"success":true,"data":{"accepted": 0, "duplicates": 5}}`, 5, 0, 5},
		{`{"success":true,"data":{"accepted":true,"duplicate":false}}`, 100, 100, 0}, // no-op server
		{`{}`, 10, 10, 0},
	}
	for _, c := range cases {
		acc, dup := countAnswer([]byte(c.body), c.n)
		if acc != c.wantAcc || dup != c.dup {
			t.Errorf("countAnswer(%s, %d) = %d, %d; want %d, %d", c.body, c.n, acc, dup, c.wantAcc, c.dup)
		}
	}
	if got := errorCode([]byte(`{"success":false,"error":{"code":"VALIDATION_ERROR","message":"x"}}`)); got != "VALIDATION_ERROR" {
		t.Errorf("errorCode = %q", got)
	}
	if got := errorCode([]byte(`not json`)); got != "" {
		t.Errorf("errorCode of garbage = %q", got)
	}
}

// In Segment's format the bodies are batches of track messages that evp's Segment decoder
// reads into as many events, ids, types, users and sessions as the generator made.
func TestSegmentBodies(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	g := NewGenerator(GenConfig{RunID: "s1", Users: 10, Sessions: 20, PayloadBytes: 200, Seed: 7, Segment: true})
	body, _ := g.NewStream().AppendBody(nil, 100, false, now)
	req, err := segment.Decode(body, "batch", now)
	if err != nil {
		t.Fatalf("segment.Decode: %v\n%.300s", err, body)
	}
	ids := map[string]bool{}
	for _, ev := range req.Events {
		ids[ev.EventID] = true
		if !strings.HasPrefix(ev.EventID, "lg-s1-") || !slices.Contains(EventTypes[:], ev.EventType) || !strings.HasPrefix(ev.UserID, "user_") ||
			!strings.HasPrefix(ev.SessionID, "sess_") || !ev.Timestamp.Equal(now) {
			t.Fatalf("event %+v", ev)
		}
	}
	if len(req.Events) != 100 || len(ids) != 100 {
		t.Errorf("%d events, %d ids; want 100 of each", len(req.Events), len(ids))
	}
}

// With Spread, events are stamped at times over the spread before the request, in both
// formats, as evp's decoders read them.
func TestSpreadTimes(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, seg := range []bool{false, true} {
		g := NewGenerator(GenConfig{RunID: "s", Users: 10, Sessions: 20, Seed: 3, Segment: seg, Spread: 24 * time.Hour})
		body, _ := g.NewStream().AppendBody(nil, 200, false, now)
		var evs []event.Event
		var err error
		if seg {
			var req segment.Request
			req, err = segment.Decode(body, "batch", now)
			evs = req.Events
		} else {
			evs, err = event.DecodeBatch(body, now)
		}
		if err != nil {
			t.Fatal(err)
		}
		hours := map[int64]bool{}
		for _, ev := range evs {
			if ev.Timestamp.After(now) || ev.Timestamp.Before(now.Add(-24*time.Hour)) {
				t.Fatalf("segment %v: time %v outside the day before %v", seg, ev.Timestamp, now)
			}
			hours[ev.Timestamp.Unix()/3600] = true
		}
		if len(hours) < 20 {
			t.Errorf("segment %v: 200 events in %d hours of the day, want them spread", seg, len(hours))
		}
	}
}
