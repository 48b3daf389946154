package blocks

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

func toEvents(evs []event.Event) []Event {
	out := make([]Event, len(evs))
	for i, e := range evs {
		out[i] = Event{Time: e.Timestamp, Type: e.EventType, User: e.UserID, Session: e.SessionID}
	}
	return out
}

// The engine answers as brute force does over what it was given, whatever the order of
// arrival (late events for hours already sealed included), the sealing, a restart from
// persisted blocks and a retention cut.
func TestEngineMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 4))
	sorted := storetest.Corpus(5000, 21)
	evs := append([]event.Event(nil), sorted...)
	r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] }) // late events everywhere
	d := NewDicts()
	e := NewEngine(d)
	var persisted []*Block
	check := func(stage string, e *Engine, d Dicts, evs []event.Event) {
		t.Helper()
		storetest.MatchExpect(t, stage, e.Query, queries(sorted, r), evs)
	}
	for i := 0; i < len(evs); {
		n := min(1+r.IntN(400), len(evs)-i)
		if err := e.Add(toEvents(evs[i : i+n])); err != nil {
			t.Fatal(err)
		}
		i += n
		if r.IntN(3) == 0 { // seal some hours now and then
			for _, h := range e.HeadHours() {
				if r.IntN(2) == 0 {
					blk, err := e.Seal(h.Hour)
					if err != nil {
						t.Fatal(err)
					}
					persisted = append(persisted, blk)
				}
			}
		}
		if e.Snapshot().Events() != i {
			t.Fatalf("after %d events the snapshot holds %d", i, e.Snapshot().Events())
		}
	}
	check("added in random order", e, d, evs)

	// A restart: the persisted blocks (every version, as a store might still hold old ones)
	// go back in; what was never sealed comes back from the events, as a store reads them.
	sealed := map[int64]bool{}
	for _, h := range e.HeadHours() {
		if _, err := e.Seal(h.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var blks []*Block
	for _, blk := range e.Snapshot().blocks {
		b, err := blk.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		blks = append(blks, dec)
		sealed[blk.Hour] = true
	}
	again := NewEngine(d)
	again.Install(persisted...)
	again.Install(blks...)
	if len(again.HeadHours()) != 0 || again.Snapshot().Events() != len(evs) {
		t.Fatalf("after Install: %d head hours, %d events; want 0, %d", len(again.HeadHours()), again.Snapshot().Events(), len(evs))
	}
	check("installed", again, d, evs)

	// Retention drops the hours before a cut.
	cut := Hour(sorted[0].Timestamp) + 2
	again.Drop(cut)
	var kept []event.Event
	for _, ev := range evs {
		if Hour(ev.Timestamp) >= cut {
			kept = append(kept, ev)
		}
	}
	check("after a retention cut", again, d, kept)
}

// Every answer counts whole batches: Add's events appear together, while sealing goes on.
func TestEngineSnapshotsAreConsistent(t *testing.T) {
	const batch = 50
	evs := storetest.Corpus(batch*80, 5)
	d := NewDicts()
	e := NewEngine(d)
	start := evs[0].Timestamp.Truncate(time.Hour)
	q := store.AnalyticsQuery{Start: start, End: start.Add(4 * time.Hour), Bucket: time.Hour}
	var done atomic.Bool
	var reads atomic.Int64 // queries answered: the writer waits for one after each batch
	var wg sync.WaitGroup
	wg.Go(func() {
		defer done.Store(true)
		for i := 0; i < len(evs); i += batch {
			if err := e.Add(toEvents(evs[i : i+batch])); err != nil {
				t.Error(err)
				return
			}
			for r := reads.Load(); reads.Load() == r && !t.Failed(); {
				runtime.Gosched()
			}
		}
	})
	wg.Go(func() {
		for !done.Load() {
			for _, h := range e.HeadHours() {
				if _, err := e.Seal(h.Hour); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	last := int64(0)
	for !done.Load() {
		res, err := e.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		var buckets, types, top int64
		for _, b := range res.EventsOverTime {
			buckets += b.Count
		}
		for _, c := range res.EventsByType {
			types += c.Count
		}
		for _, u := range res.TopUsers {
			top += u.EventCount
		}
		if res.TotalEvents%batch != 0 || buckets != res.TotalEvents || types != res.TotalEvents || top > res.TotalEvents || res.TotalEvents < last {
			t.Fatalf("answer of %d events (after %d): buckets %d, types %d, top users %d", res.TotalEvents, last, buckets, types, top)
		}
		last = res.TotalEvents
		reads.Add(1)
	}
	wg.Wait()
	res, err := e.Query(q)
	if err != nil || res.TotalEvents != int64(len(evs)) {
		t.Fatalf("at the end: %d events, %v; want %d", res.TotalEvents, err, len(evs))
	}
}

// A store that persists every block Seal returns restarts from them: it installs them and
// adds the events after the watermark that no block holds (Seq above the block's of their
// hour). The engine it gets answers as the one before the restart.
func TestEngineRestartFromWatermark(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	sorted := storetest.Corpus(4000, 8)
	evs := toEvents(sorted)
	r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for i := range evs {
		evs[i].Seq = int64(i + 1)
	}
	d := NewDicts()
	e := NewEngine(d)
	var persisted []*Block
	for i := 0; i < len(evs); {
		n := min(1+r.IntN(300), len(evs)-i)
		if err := e.Add(evs[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
		for _, h := range e.HeadHours() {
			if r.IntN(3) == 0 {
				blk, err := e.Seal(h.Hour)
				if err != nil {
					t.Fatal(err)
				}
				persisted = append(persisted, blk)
			}
		}
	}
	w := e.Watermark()
	if w >= int64(len(evs)) && len(e.HeadHours()) > 0 {
		t.Fatalf("watermark %d with events in the head", w)
	}

	again := NewEngine(d)
	again.Install(persisted...)
	latest := again.Snapshot().blocks
	for _, ev := range evs[w:] {
		if blk := latest[Hour(ev.Time)]; blk != nil && ev.Seq <= blk.Seq {
			continue
		}
		if err := again.Add([]Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	if got := again.Snapshot().Events(); got != len(evs) {
		t.Fatalf("after the restart %d events, want %d (watermark %d)", got, len(evs), w)
	}
	for i, q := range queries(sorted, r) {
		got, err := again.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		if err := storetest.Compare(got, storetest.Expect(sorted, q), false); err != nil {
			t.Fatalf("query %d %+v: %v", i, q, err)
		}
	}
}

// Bytes follows what the engine holds: at least an entry's 12 bytes an event in blocks,
// more in the head, nothing once retention dropped every hour and the names went.
func TestSnapshotBytes(t *testing.T) {
	evs := storetest.Corpus(2000, 11)
	e := NewEngine(NewDicts())
	if err := e.Add(toEvents(evs)); err != nil {
		t.Fatal(err)
	}
	head := e.Snapshot().Bytes()
	if head < 24*int64(len(evs)) {
		t.Fatalf("a head of %d events takes %d bytes", len(evs), head)
	}
	for _, h := range e.HeadHours() {
		if _, err := e.Seal(h.Hour); err != nil {
			t.Fatal(err)
		}
	}
	sealed := e.Snapshot().Bytes()
	if sealed < 12*int64(len(evs)) || sealed >= head+int64(len(e.HeadHours())+5)<<14 {
		t.Fatalf("%d events in blocks take %d bytes (%d in the head)", len(evs), sealed, head)
	}
	e.Drop(Hour(evs[len(evs)-1].Timestamp) + 1)
	e.Compact(false)
	if n := e.Snapshot().Bytes(); n != 0 {
		t.Fatalf("an empty engine takes %d bytes", n)
	}
}
