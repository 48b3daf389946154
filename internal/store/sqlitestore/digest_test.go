package sqlitestore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// digestOff makes filtered queries read every minute from the events table.
func (s *Store) digestOff() {
	s.digest.mu.Lock()
	s.digest.active = false
	s.digest.mu.Unlock()
}

// digestFrom reads the digest again, covering the hours from hour on only.
func (s *Store) digestFrom(t testing.TB, hour int64) {
	t.Helper()
	if err := s.readDigest(context.Background(), hour, false); err != nil {
		t.Fatal(err)
	}
}

// A session code has the effect of its hash on a dense sketch.
func TestSessionCode(t *testing.T) {
	a, b := hyperloglog.NewNoSparse(), hyperloglog.NewNoSparse()
	for i := 0; i < 200000; i++ {
		h := sessionHash(fmt.Sprintf("sess_%d", i))
		if i%1000 == 0 {
			h &^= 1<<50 - 1 // no bit under the register index set: the largest value
		}
		a.InsertHash(h)
		b.InsertHash(codeHash(sessionCode(h)))
		if i == 100 || i == 199999 {
			if ea, eb := a.Estimate(), b.Estimate(); ea != eb {
				t.Fatalf("after %d: estimate %d from hashes, %d from codes", i+1, ea, eb)
			}
		}
	}
}

// Filtered analytics agree with a brute-force computation whichever way the minutes are
// answered: all from the digest, all from the events table, or the first hours from the
// events table and the rest from the digest. The events arrive in random time order (each
// batch lands in every hour: late events), one busy user has a new session nearly every
// event, and retention then cuts into an hour.
func TestFilteredAnalyticsMatchBruteForce(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	types := []string{"page_view", "click", "purchase", "signup", "login"}
	for _, seed := range []uint64{1, 2} {
		rng := rand.New(rand.NewPCG(seed, 7))
		var all []event.Event
		for i := 0; i < 20000; i++ {
			e := event.Event{EventID: fmt.Sprintf("e%d", i), EventType: types[rng.IntN(len(types))],
				UserID: fmt.Sprintf("User_%d", rng.IntN(400)), SessionID: fmt.Sprintf("s%d", rng.IntN(3000)),
				Timestamp: t0.Add(time.Duration(rng.Int64N(int64(5 * time.Hour)))), ReceivedAt: t0}
			if i%10 == 0 { // one busy user with a new session nearly every event
				e.UserID, e.EventType, e.SessionID = "bot_7", "click", fmt.Sprintf("b%d", i)
				e.Timestamp = t0.Add(2*time.Hour + time.Duration(rng.Int64N(int64(time.Hour))))
			}
			all = append(all, e)
		}
		queries := []store.AnalyticsQuery{
			{Start: t0.Add(17 * time.Minute), End: t0.Add(4*time.Hour + 47*time.Minute), Bucket: 30 * time.Minute, EventType: "click"},
			{Start: t0.Add(17 * time.Minute), End: t0.Add(4*time.Hour + 47*time.Minute), Bucket: 30 * time.Minute, UserID: "user_1"},
			{Start: t0.Add(-time.Hour), End: t0.Add(6 * time.Hour), Bucket: time.Hour, UserID: "USER"},
			{Start: t0.Add(-47 * time.Minute), End: t0.Add(5*time.Hour + 13*time.Minute), Bucket: 3 * time.Hour, EventType: "login", UserID: "er_2"},
			{Start: t0.Add(2*time.Hour + 20*time.Minute), End: t0.Add(2*time.Hour + 35*time.Minute), Bucket: time.Minute, EventType: "click"},
			{Start: t0.Add(2*time.Hour + 20*time.Minute), End: t0.Add(2*time.Hour + 21*time.Minute), Bucket: time.Minute, UserID: "bot"},
			// Ends inside an hour with events after it: newest events known to the minute.
			{Start: t0.Add(47 * time.Minute), End: t0.Add(2*time.Hour + 31*time.Minute), Bucket: 13 * time.Minute, UserID: "_3"},
			{Start: t0.Add(70 * time.Minute), End: t0.Add(100 * time.Minute), Bucket: 15 * time.Minute, EventType: "signup", UserID: "1"},
			{Start: t0.Add(3 * time.Hour), End: t0.Add(4 * time.Hour), Bucket: time.Minute, EventType: "no_such_type"},
			{Start: t0.Add(3 * time.Hour), End: t0.Add(4 * time.Hour), Bucket: time.Minute, UserID: "nobody"},
		}
		// digest-sealed seals every hour after each build, so that later batches land in
		// sealed hours.
		for _, mode := range []string{"digest", "digest-sealed", "events", "digest-from-12"} {
			t.Run(fmt.Sprintf("%d/%s", seed, mode), func(t *testing.T) {
				s := openStore(t, t.TempDir())
				switch mode {
				case "events":
					s.digestOff()
				case "digest-from-12":
					s.digestFrom(t, floorDiv(t0.Unix(), 3600)+2)
				}
				for i := 0; i < len(all); i += 1000 {
					if _, _, err := s.InsertBatch(ctx, all[i:i+1000], time.Now()); err != nil {
						t.Fatal(err)
					}
					if i%3000 == 0 {
						if err := s.BuildRollups(ctx); err != nil {
							t.Fatal(err)
						}
						if mode == "digest-sealed" {
							s.digest.sealAll()
						}
					}
				}
				kept := all
				check := func(step string) {
					t.Helper()
					for qi, q := range queries {
						got, err := s.Analytics(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						want := storetest.Expect(kept, q)
						if err := storetest.Compare(got, want, false); err != nil || got.UniqueUsers != want.UniqueUsers {
							t.Errorf("%s: query %d (%s %q %q): %v (users %d, want %d)", step, qi, q.Start.Format("15:04"), q.EventType, q.UserID, err, got.UniqueUsers, want.UniqueUsers)
						}
					}
				}
				check("stored")
				switch loads := s.filters.loads; {
				case (mode == "digest" || mode == "digest-sealed") && loads != 0:
					t.Errorf("%d partial results were read from the events table, want none", loads)
				case mode != "digest" && mode != "digest-sealed" && loads == 0:
					t.Error("no partial result was read from the events table")
				}
				if mode != "events" && s.filters.lastReads == 0 {
					t.Error("no newest event time was read from the events table: the test misses that case")
				}
				// Retention in the middle of an edge minute's hour (10:30:20).
				cutoff := t0.Add(30*time.Minute + 20*time.Second)
				if _, err := s.Prune(ctx, cutoff); err != nil {
					t.Fatal(err)
				}
				kept = nil
				for _, e := range all {
					if !e.Timestamp.Before(cutoff) {
						kept = append(kept, e)
					}
				}
				check("after retention")
			})
		}
	}
}

// The digest forgets its oldest hours past its memory bound, and filtered queries over them
// then read the events table.
func TestDigestEvictsOldestHours(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	es := events(0, 9000) // one a second from 04:05:06: 2.5 hours
	for i := range es {
		es[i].UserID = fmt.Sprintf("user_%d", i%50)
	}
	insert(t, s, es, 9000, 0)
	if err := s.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	s.digest.mu.Lock()
	hours := len(s.digest.hours)
	s.digest.dropBefore(floorDiv(base.Unix(), 3600) + 1) // as evict does, oldest first
	s.digest.mu.Unlock()
	if hours != 3 {
		t.Fatalf("digest holds %d hours, want 3", hours)
	}
	q := store.AnalyticsQuery{Start: base.Truncate(time.Minute), End: base.Truncate(time.Minute).Add(150 * time.Minute), Bucket: 10 * time.Minute, UserID: "USER_1"}
	loads := s.filters.loads
	got, err := s.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := storetest.Compare(got, storetest.Expect(es, q), false); err != nil {
		t.Fatal(err)
	}
	if s.filters.loads == loads {
		t.Fatal("no minute was read from the events table")
	}
}

// The handoff gives the builder the rows right after its watermark, in seq order across
// hand-overs that arrived out of order, and nothing when a row after it is missing.
func TestHandoffTake(t *testing.T) {
	seg := func(first, n int) handoffSeg {
		var sg handoffSeg
		for i := 0; i < n; i++ {
			sg = append(sg, feedRow{seq: int64(first + i)})
		}
		return sg
	}
	seqs := func(rows []feedRow) []int64 {
		var out []int64
		for _, r := range rows {
			out = append(out, r.seq)
		}
		return out
	}
	var h handoff
	h.add([]handoffSeg{seg(6, 3), seg(1, 5)})
	h.add([]handoffSeg{seg(12, 2)}) // 9-11 came from another process
	if got := seqs(h.take(0, 4)); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("take(0, 4) = %v", got)
	}
	if got := seqs(h.take(4, 100)); fmt.Sprint(got) != "[5 6 7 8]" {
		t.Fatalf("take(4, 100) = %v", got)
	}
	if got := h.take(8, 100); got != nil {
		t.Fatalf("take(8) = %v, want nil (9 is missing)", seqs(got))
	}
	if got := seqs(h.take(11, 100)); fmt.Sprint(got) != "[12 13]" {
		t.Fatalf("take(11, 100) = %v", got)
	}
	if got := h.take(13, 100); got != nil || h.rows != 0 {
		t.Fatalf("take(13) = %v, %d rows left", seqs(got), h.rows)
	}
}

// The handoff asks for a build once kickHandoffRows rows wait, before it would overflow, and
// only once until the builder takes the request.
func TestHandoffKicksBuilder(t *testing.T) {
	h := handoff{kick: make(chan struct{}, 1)}
	seg := make(handoffSeg, kickHandoffRows/4)
	for i := 0; i < 3; i++ {
		h.add([]handoffSeg{seg})
	}
	select {
	case <-h.kick:
		t.Fatalf("a build was asked for at %d rows", h.rows)
	default:
	}
	h.add([]handoffSeg{seg})
	h.add([]handoffSeg{seg})
	select {
	case <-h.kick:
	default:
		t.Fatalf("no build was asked for at %d rows (kick at %d)", h.rows, kickHandoffRows)
	}
	if h.rows != kickHandoffRows/4*5 {
		t.Fatalf("%d rows wait, want all %d", h.rows, kickHandoffRows/4*5)
	}
}

// Past 63 event types the digest stops covering the hours it has seen; filtered queries over
// them read the events table and stay right.
func TestDigestManyTypes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	es := events(0, 3000)
	for i := range es {
		es[i].EventType = fmt.Sprintf("type_%d", i%70)
	}
	insert(t, s, es, 3000, 0)
	q := store.AnalyticsQuery{Start: base.Truncate(time.Minute), End: base.Truncate(time.Minute).Add(time.Hour), Bucket: 5 * time.Minute, EventType: "type_65"}
	got, err := s.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := storetest.Compare(got, storetest.Expect(es, q), false); err != nil {
		t.Fatal(err)
	}
	if s.filters.loads == 0 {
		t.Fatal("no minute was read from the events table")
	}
}
