package sqlitestore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// sealAll seals every hour of the digest, as evict does for quiet hours.
func (d *eventDigest) sealAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range d.hours {
		d.bytes -= h.bytesEstimate()
		h.seal()
		d.bytes += h.bytesEstimate()
	}
}

// partResult is a digestPart in a form that does not depend on the order of groups.
type partResult struct {
	ByType   map[string]int64
	Minutes  []int64
	Users    map[int32][4]int64 // count, last, unres, types
	Sessions uint64
}

func resultOf(p *digestPart) partResult {
	r := partResult{ByType: p.byType, Minutes: p.minutes, Users: map[int32][4]int64{}, Sessions: p.sessions.Estimate()}
	for i, u := range p.users {
		r.Users[u] = [4]int64{p.count[i], p.last[i], p.unres[i], int64(p.types[i])}
	}
	return r
}

// Sealing changes how the digest holds an hour, not what it answers: a digest whose hours
// were sealed between rounds of events (so that later rounds land in sealed hours, as late
// events do) answers every filter and range as one never sealed, with one group per user
// and hour.
func TestDigestSealKeepsResults(t *testing.T) {
	types := []string{"page_view", "click", "purchase", "signup"}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	for _, seed := range []uint64{1, 2, 3} {
		rng := rand.New(rand.NewPCG(seed, 5))
		var open, sealed eventDigest
		open.reset(math.MinInt64)
		sealed.reset(math.MinInt64)
		for round := 0; round < 4; round++ {
			for i := 0; i < 5000; i++ {
				user, session := fmt.Sprintf("user_%d", rng.IntN(500)), fmt.Sprintf("s%d", rng.IntN(4000))
				typ, ts := types[rng.IntN(len(types))], t0+rng.Int64N(3*hourNs)
				if i%50 == 0 { // events of one user at one instant, of another type each round
					user, typ, ts = "bot_7", types[round], t0+hourNs+30*minuteNs
				}
				open.put(user, session, typ, ts)
				sealed.put(user, session, typ, ts)
			}
			sealed.sealAll()
		}
		for h, oh := range open.hours {
			sh := sealed.hours[h]
			if len(sh.groups) != 0 || len(sh.sealed) != len(oh.groups) {
				t.Fatalf("hour %d: %d sealed and %d open groups, want %d sealed", h, len(sh.sealed), len(sh.groups), len(oh.groups))
			}
		}
		startMin := floorDiv(t0, minuteNs)
		for _, q := range []struct {
			a, b         int64
			typ, userSub string
		}{
			{0, 180, "", ""}, {0, 180, "click", ""}, {0, 180, "", "user_1"}, {17, 163, "", "user_4"},
			{17, 163, "purchase", "2"}, {60, 120, "click", "bot"}, {60, 120, "signup", "bot"}, {61, 62, "", ""}, {90, 91, "signup", ""},
			{0, 180, "no_such_type", ""}, {0, 180, "", "nobody"},
		} {
			a, b := startMin+q.a, startMin+q.b
			want := resultOf(open.partial(a, b, startMin, q.typ, q.userSub))
			got := resultOf(sealed.partial(a, b, startMin, q.typ, q.userSub))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("seed %d, minutes [%d, %d) %q %q: sealed digest answers differently", seed, q.a, q.b, q.typ, q.userSub)
			}
		}
	}
}

// A start reads the newest hours first and stops at the first that does not fit, sealing the
// hours it has read so that more of them fit; filtered queries over the hours left out read
// the events table and stay right.
func TestDigestWarmsNewestHoursFirst(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	const hours, users, perHour = 10, 2000, 6000
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var all []event.Event
	for i := 0; i < hours*perHour; i++ {
		all = append(all, event.Event{EventID: fmt.Sprintf("e%d", i), EventType: []string{"click", "view"}[i%2],
			UserID: fmt.Sprintf("user_%d", i%users), SessionID: fmt.Sprintf("s%d", i%700),
			Timestamp: t0.Add(time.Duration(i) * time.Hour / perHour), ReceivedAt: t0})
	}
	for i := 0; i < len(all); i += 1000 {
		insert(t, s, all[i:i+1000], 1000, 0)
	}
	if err := s.BuildRollups(ctx); err != nil {
		t.Fatal(err)
	}
	// Room for the interned users and five sealed hours, where open ones would fit two.
	usersBytes := 0
	for u := 0; u < users; u++ {
		usersBytes += 2*len(fmt.Sprintf("user_%d", u)) + 64
	}
	sealedHour, openHour := 200+24*users+4*perHour, 200+72*users+4*perHour
	limit := usersBytes + 5*sealedHour + sealedHour/2
	if (limit-usersBytes)/openHour > 2 {
		t.Fatalf("test setup: %d open hours would fit", (limit-usersBytes)/openHour)
	}
	s.digest.mu.Lock()
	s.digest.limit = limit
	s.digest.mu.Unlock()
	if err := s.readDigest(ctx, math.MinInt64, false); err != nil {
		t.Fatal(err)
	}
	first := floorDiv(t0.UnixNano(), hourNs)
	s.digest.mu.Lock()
	from, n, active := s.digest.from, len(s.digest.hours), s.digest.active
	s.digest.mu.Unlock()
	if !active || from != first+hours-5 || n != 5 {
		t.Fatalf("digest covers %d hours from hour %d (active %v), want the newest 5 from %d", n, from-first, active, hours-5)
	}
	loads := s.filters.loads
	for _, q := range []store.AnalyticsQuery{
		{Start: t0, End: t0.Add(hours * time.Hour), Bucket: time.Hour, UserID: "user_12"},
		{Start: t0.Add(3*time.Hour + 13*time.Minute), End: t0.Add(9*time.Hour + 43*time.Minute), Bucket: 30 * time.Minute, EventType: "click"},
	} {
		got, err := s.Analytics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := storetest.Expect(all, q)
		if err := storetest.Compare(got, want, false); err != nil || got.UniqueUsers != want.UniqueUsers {
			t.Errorf("%q %q: %v (users %d, want %d)", q.EventType, q.UserID, err, got.UniqueUsers, want.UniqueUsers)
		}
	}
	if s.filters.loads == loads {
		t.Error("no minute was read from the events table: the hours left out were not queried")
	}
}

// While a start reads past hours into the digest (newest first), queries are answered from
// it for the hours read whole, and events stored meanwhile, late ones in hours not read
// yet included, are all counted once.
func TestDigestAnswersWhileWarming(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	const hours = 6
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 3))
	var all []event.Event
	add := func(n int, span time.Duration) {
		t.Helper()
		es := randomEvents(rng, len(all), n, 300, 900, t0, span)
		insert(t, s, es, n, 0)
		if err := s.BuildRollups(ctx); err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	add(12000, hours*time.Hour)
	check := func(step string, from time.Time, wantDigest bool) {
		t.Helper()
		end := t0.Add((hours + 1) * time.Hour)
		for _, q := range []store.AnalyticsQuery{
			{Start: from, End: end, Bucket: 30 * time.Minute, UserID: "user_1"},
			{Start: from, End: end, Bucket: 30 * time.Minute, EventType: "buy"},
		} {
			loads := s.filters.loads
			got, err := s.Analytics(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want := storetest.Expect(all, q)
			if err := storetest.Compare(got, want, false); err != nil || got.UniqueUsers != want.UniqueUsers {
				t.Errorf("%s, from %s, %q %q: %v (users %d, want %d)", step, from.Format("15:04"), q.EventType, q.UserID, err, got.UniqueUsers, want.UniqueUsers)
			}
			if wantDigest && s.filters.loads != loads {
				t.Errorf("%s, from %s: %d partial results read from the events table, want none (the digest covers it)", step, from.Format("15:04"), s.filters.loads-loads)
			}
		}
	}
	first := floorDiv(t0.UnixNano(), hourNs)
	var read []int64
	s.digestHourRead = func(hour int64) {
		read = append(read, hour)
		s.digest.mu.Lock()
		from := s.digest.from
		s.digest.mu.Unlock()
		if from != hour {
			t.Errorf("after reading hour %d the digest covers from hour %d", hour-first, from-first)
		}
		add(500, (hours+1)*time.Hour) // late events in every hour, read or not, and a new hour
		check(fmt.Sprintf("after hour %d", hour-first), time.Unix(0, hour*hourNs).UTC(), true)
	}
	if err := s.readDigest(ctx, math.MinInt64, false); err != nil {
		t.Fatal(err)
	}
	if len(read) != hours || read[0] != first+hours-1 || read[hours-1] != first {
		t.Fatalf("hours read %v, want %d to %d, newest first", read, first+hours-1, first)
	}
	check("read", t0, true)
}
