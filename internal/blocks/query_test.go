package blocks

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// seal builds the blocks of evs, one an hour.
func seal(t testing.TB, d Dicts, evs []event.Event) []*Block {
	t.Helper()
	builders := map[int64]*Builder{}
	for _, e := range evs {
		h := Hour(e.Timestamp)
		if builders[h] == nil {
			builders[h] = NewBuilder(d, h)
		}
		if err := builders[h].Add(Event{Time: e.Timestamp, Type: e.EventType, User: e.UserID, Session: e.SessionID}); err != nil {
			t.Fatal(err)
		}
	}
	var out []*Block
	for _, b := range builders {
		blk, err := b.Seal(1)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, blk)
	}
	return out
}

// queries are ranges and filters over the corpus's hours: whole hours, ranges that cut
// hours at both ends, ranges past the data, and each kind of filter.
func queries(evs []event.Event, r *rand.Rand) []store.AnalyticsQuery {
	first := evs[0].Timestamp.Truncate(time.Hour)
	var qs []store.AnalyticsQuery
	for _, span := range []struct{ from, to, bucket time.Duration }{
		{0, 4 * time.Hour, time.Hour}, {time.Hour, 2 * time.Hour, time.Minute},
		{17 * time.Minute, 3*time.Hour + 43*time.Minute, 2 * time.Minute}, {-time.Hour, 5 * time.Hour, 30 * time.Minute},
		{2*time.Hour + 5*time.Minute, 2*time.Hour + 20*time.Minute, time.Minute}, {10 * time.Hour, 11 * time.Hour, time.Hour},
	} {
		for _, f := range []struct{ typ, user string }{{"", ""}, {"click", ""}, {"", "user_00"}, {"", "USER_01"}, {"purchase", "user_0"}, {"nope", ""}, {"", "nobody"}} {
			qs = append(qs, store.AnalyticsQuery{Start: first.Add(span.from), End: first.Add(span.to), Bucket: span.bucket, EventType: f.typ, UserID: f.user})
		}
	}
	for range 40 { // random minute-aligned ranges
		a, b := r.IntN(5*60)-30, r.IntN(5*60)-30
		if a > b {
			a, b = b, a
		}
		b++
		q := store.AnalyticsQuery{Start: first.Add(time.Duration(a) * time.Minute), End: first.Add(time.Duration(b) * time.Minute), Bucket: time.Minute}
		switch r.IntN(3) {
		case 1:
			q.EventType = []string{"page_view", "click", "signup", "purchase", "logout"}[r.IntN(5)]
		case 2:
			q.UserID = fmt.Sprintf("user_%d", r.IntN(40))
		}
		qs = append(qs, q)
	}
	return qs
}

func TestQueryMatchesBruteForce(t *testing.T) {
	evs := storetest.Corpus(6000, 3)
	d := NewDicts()
	blks := seal(t, d, evs)
	answer := func(q store.AnalyticsQuery) (store.AnalyticsResult, error) { return Query(blks, d, q) }
	storetest.MatchExpect(t, "sealed", answer, queries(evs, rand.New(rand.NewPCG(5, 5))), evs)
}

// A block sealed again with late events (AddBlock, then the late ones) answers as one
// built from all of them.
func TestResealWithLateEvents(t *testing.T) {
	evs := storetest.Corpus(3000, 9)
	d := NewDicts()
	h := Hour(evs[len(evs)/2].Timestamp)
	var early, late []event.Event
	for i, e := range evs {
		if Hour(e.Timestamp) != h {
			continue
		}
		if i%4 == 0 {
			late = append(late, e)
		} else {
			early = append(early, e)
		}
	}
	first := seal(t, d, early)[0]
	b := NewBuilder(d, h)
	if err := b.AddBlock(first); err != nil {
		t.Fatal(err)
	}
	for _, e := range late {
		if err := b.Add(Event{Time: e.Timestamp, Type: e.EventType, User: e.UserID, Session: e.SessionID}); err != nil {
			t.Fatal(err)
		}
	}
	second, err := b.Seal(2)
	if err != nil {
		t.Fatal(err)
	}
	if second.Events != len(early)+len(late) || second.Version != 2 {
		t.Fatalf("resealed block: %d events, version %d; want %d, 2", second.Events, second.Version, len(early)+len(late))
	}
	all := append(append([]event.Event{}, early...), late...)
	start := time.Unix(h*3600, 0).UTC()
	for _, q := range []store.AnalyticsQuery{
		{Start: start, End: start.Add(time.Hour), Bucket: time.Minute},
		{Start: start.Add(10 * time.Minute), End: start.Add(50 * time.Minute), Bucket: 5 * time.Minute, EventType: "click"},
	} {
		got, err := Query([]*Block{second}, d, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := storetest.Compare(got, storetest.Expect(all, q), false); err != nil {
			t.Errorf("%+v: %v", q, err)
		}
	}
	if err := b.Add(Event{Time: start.Add(-time.Nanosecond), Type: "x", User: "u", Session: "s"}); err == nil {
		t.Error("an event of the hour before was added")
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for _, c := range []struct {
		inHour int64
		typ    uint32
	}{{0, 0}, {hourNanos - 1, maxTypes - 1}, {59*minuteNanos + 123456789, 7}, {minuteNanos, 1}} {
		e := makeEntry(c.inHour, c.typ)
		if m, ns, typ := entryMinute(e), entryNano(e), entryType(e); int64(m)*minuteNanos+ns != c.inHour || typ != c.typ {
			t.Errorf("entry of %d, %d: minute %d, nano %d, type %d", c.inHour, c.typ, m, ns, typ)
		}
	}
}

// Past denseUsersUpTo a query counts users in a map: the same answers.
func TestQuerySparseUserCounts(t *testing.T) {
	defer func(v int) { denseUsersUpTo = v }(denseUsersUpTo)
	denseUsersUpTo = 0
	evs := storetest.Corpus(3000, 4)
	d := NewDicts()
	blks := seal(t, d, evs)
	answer := func(q store.AnalyticsQuery) (store.AnalyticsResult, error) { return Query(blks, d, q) }
	storetest.MatchExpect(t, "users in a map", answer, queries(evs, rand.New(rand.NewPCG(6, 6))), evs)
}
