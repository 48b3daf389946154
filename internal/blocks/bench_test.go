package blocks

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store"
)

// benchSet is EVP_BENCH_EVENTS events (10 million by default) over the 7 days before
// benchEnd, from 10,000 users (skewed: low ids are busy) in 10 types, sealed into blocks
// once per process.
var (
	benchOnce  sync.Once
	benchBlks  []*Block
	benchDicts Dicts
	benchEnd   = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
)

func benchBlocks(b *testing.B) ([]*Block, Dicts) {
	benchOnce.Do(func() {
		n := 10_000_000
		if s := os.Getenv("EVP_BENCH_EVENTS"); s != "" {
			n, _ = strconv.Atoi(s)
		}
		benchDicts = NewDicts()
		r := rand.New(rand.NewPCG(1, 2))
		const hours = 7 * 24
		builders := make([]*Builder, hours)
		first := Hour(benchEnd) - hours
		for h := range builders {
			builders[h] = NewBuilder(benchDicts, first+int64(h))
		}
		users := make([]string, 10_000)
		for i := range users {
			users[i] = fmt.Sprintf("user_%05d", i)
		}
		types := []string{"page_view", "click", "signup", "purchase", "logout", "search", "add_to_cart", "share", "login", "error"}
		span := int64(hours) * hourNanos
		for range n {
			at := benchEnd.Add(-time.Duration(r.Int64N(span)) - 1)
			u := int(float64(len(users)) * r.Float64() * r.Float64())
			e := Event{Time: at, Type: types[r.IntN(len(types))], User: users[u], Session: users[u] + "/" + strconv.Itoa(int(at.Unix()/1800))}
			if err := builders[Hour(at)-first].Add(e); err != nil {
				b.Fatal(err)
			}
		}
		for _, bl := range builders {
			blk, err := bl.Seal(1)
			if err != nil {
				b.Fatal(err)
			}
			benchBlks = append(benchBlks, blk)
		}
	})
	return benchBlks, benchDicts
}

// BenchmarkQuery answers the analytics questions of the dashboard over benchSet: each range
// (15m, 1h, 24h, 7d, ending at a minute that cuts an hour) with no filter, an event type,
// one user, and a userId substring matching about 100 users.
func BenchmarkQuery(b *testing.B) {
	blks, d := benchBlocks(b)
	end := benchEnd.Add(-17 * time.Minute)
	for _, r := range []struct {
		name   string
		span   time.Duration
		bucket time.Duration
	}{{"15m", 15 * time.Minute, time.Minute}, {"1h", time.Hour, time.Minute}, {"24h", 24 * time.Hour, time.Hour}, {"7d", 7 * 24 * time.Hour, 6 * time.Hour}} {
		for _, f := range []struct{ name, typ, user string }{{"all", "", ""}, {"type", "purchase", ""}, {"user", "", "user_00042"}, {"users100", "", "user_042"}} {
			b.Run(r.name+"/"+f.name, func(b *testing.B) {
				q := store.AnalyticsQuery{Start: end.Add(-r.span), End: end, Bucket: r.bucket, EventType: f.typ, UserID: f.user}
				for b.Loop() {
					if _, err := Query(blks, d, q); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecode decodes benchSet's blocks: the cost of reading them on a fresh process.
func BenchmarkDecode(b *testing.B) {
	blks, _ := benchBlocks(b)
	var encoded [][]byte
	size := 0
	for _, blk := range blks {
		e, err := blk.Encode(nil)
		if err != nil {
			b.Fatal(err)
		}
		encoded = append(encoded, e)
		size += len(e)
	}
	b.ReportMetric(float64(size)/float64(len(encoded)), "bytes/block")
	b.SetBytes(int64(size))
	for b.Loop() {
		for _, e := range encoded {
			if _, err := Decode(e); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkEngineAdd adds 1,000-event batches spread over 24 hours (a backfill) to an
// engine, sealing every hour each 100 batches: what a store's write path pays.
func BenchmarkEngineAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	users := make([]string, 10_000)
	for i := range users {
		users[i] = fmt.Sprintf("user_%05d", i)
	}
	types := []string{"page_view", "click", "signup", "purchase", "logout", "search", "add_to_cart", "share", "login", "error"}
	batch := make([]Event, 1000)
	e := NewEngine(NewDicts())
	n := 0
	for b.Loop() {
		for i := range batch {
			at := benchEnd.Add(-time.Duration(r.Int64N(int64(24 * time.Hour))))
			u := r.IntN(len(users))
			batch[i] = Event{Time: at, Type: types[r.IntN(len(types))], User: users[u], Session: users[u]}
		}
		if err := e.Add(batch); err != nil {
			b.Fatal(err)
		}
		if n++; n%100 == 0 {
			for _, h := range e.HeadHours() {
				if _, err := e.Seal(h.Hour); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkQueryHead asks about the last hour while its 60,000 events are in the head, and
// after they are sealed.
func BenchmarkQueryHead(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	e := NewEngine(NewDicts())
	var evs []Event
	for range 60_000 {
		u := fmt.Sprintf("user_%05d", r.IntN(10_000))
		evs = append(evs, Event{Time: benchEnd.Add(-time.Duration(r.Int64N(int64(time.Hour)))), Type: "click", User: u, Session: u})
	}
	if err := e.Add(evs); err != nil {
		b.Fatal(err)
	}
	q := store.AnalyticsQuery{Start: benchEnd.Add(-time.Hour), End: benchEnd, Bucket: time.Minute}
	run := func(b *testing.B) {
		for b.Loop() {
			if _, err := e.Query(q); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("head", run)
	if _, err := e.Seal(Hour(benchEnd) - 1); err != nil {
		b.Fatal(err)
	}
	b.Run("sealed", run)
}
