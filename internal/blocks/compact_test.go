package blocks

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store/storetest"
)

// After retention drops hours, Compact keeps only the names the rest refers to, and the
// engine answers as brute force does, before and after more events and seals; a snapshot
// taken before it answers as before.
func TestCompactAfterRetention(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	sorted := storetest.Corpus(4000, 3)
	first := Hour(sorted[0].Timestamp)
	for i := range sorted { // users and the first hour's types belong to one hour
		ev := &sorted[i]
		h := Hour(ev.Timestamp) - first
		ev.UserID = fmt.Sprintf("%s@%d", ev.UserID, h)
		if h == 0 {
			ev.EventType += "_early"
		}
	}
	e := NewEngine(NewDicts())
	if err := e.Add(toEvents(sorted)); err != nil {
		t.Fatal(err)
	}
	for _, h := range e.HeadHours()[1:] { // the first hour stays in the head
		if _, err := e.Seal(h.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if e.Compact(false) {
		t.Fatal("Compact renumbered dictionaries whose names are all in use")
	}

	cut := first + 2
	var kept, late []event.Event
	for _, ev := range sorted {
		if Hour(ev.Timestamp) >= cut {
			kept = append(kept, ev)
		}
	}
	before := e.Snapshot()
	e.Drop(cut)
	oldUsers := len(e.Snapshot().Dicts().Users.Names())
	if !e.Compact(false) {
		t.Fatal("Compact kept dictionaries whose names are mostly unused")
	}
	users, types := map[string]bool{}, map[string]bool{}
	for _, ev := range kept {
		users[ev.UserID], types[ev.EventType] = true, true
	}
	d := e.Snapshot().Dicts()
	if len(d.Users.Names()) != len(users) || len(d.Types.Names()) != len(types) {
		t.Fatalf("after Compact %d users and %d types (of %d users), want %d and %d", len(d.Users.Names()), len(d.Types.Names()), oldUsers, len(users), len(types))
	}
	if err := e.Snapshot().Check(); err != nil {
		t.Fatal(err)
	}
	compare := func(stage string, s *Snapshot, evs []event.Event) {
		t.Helper()
		storetest.MatchExpect(t, stage, s.Query, queries(sorted, r), evs)
	}
	compare("compacted", e.Snapshot(), kept)
	compare("a snapshot from before", before, sorted)

	// Late events for a sealed hour, by old and new users, then every hour sealed.
	for i, ev := range kept[:300] {
		ev.EventID += "-late"
		if i%2 == 0 {
			ev.UserID += "-new"
		}
		late = append(late, ev)
	}
	if err := e.Add(toEvents(late)); err != nil {
		t.Fatal(err)
	}
	compare("late events", e.Snapshot(), append(kept, late...))
	for _, h := range e.HeadHours() {
		if _, err := e.Seal(h.Hour); err != nil {
			t.Fatal(err)
		}
	}
	compare("sealed", e.Snapshot(), append(kept, late...))
}

// Once one user's events are replaced away, Compact(all) drops that user's name (a
// deletion on request must not leave it in the dictionary) where Compact(false) keeps it,
// and the answers stay those of the events left.
func TestCompactAllDropsAForgottenName(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	evs := storetest.Corpus(2000, 4)
	e := NewEngine(NewDicts())
	if err := e.Add(toEvents(evs)); err != nil {
		t.Fatal(err)
	}
	for _, h := range e.HeadHours()[1:] { // one hour stays in the head
		if _, err := e.Seal(h.Hour); err != nil {
			t.Fatal(err)
		}
	}
	gone := evs[0].UserID
	touched := map[int64]bool{} // the hours with the user's events, rebuilt without them
	for _, ev := range evs {
		if ev.UserID == gone {
			touched[Hour(ev.Timestamp)] = true
		}
	}
	var kept []event.Event
	byHour := map[int64][]Event{}
	for _, ev := range evs {
		if ev.UserID == gone {
			continue
		}
		kept = append(kept, ev)
		if h := Hour(ev.Timestamp); touched[h] {
			byHour[h] = append(byHour[h], toEvents([]event.Event{ev})...)
		}
	}
	for h := range touched {
		if err := e.Replace(h, byHour[h]); err != nil {
			t.Fatal(err)
		}
	}
	if _, known := e.Snapshot().Dicts().Users.Lookup(gone); !known {
		t.Fatal("the name went before any Compact")
	}
	if e.Compact(false) {
		t.Fatal("Compact(false) renumbered dictionaries with one name unused")
	}
	if !e.Compact(true) {
		t.Fatal("Compact(true) kept a name nothing refers to")
	}
	if _, known := e.Snapshot().Dicts().Users.Lookup(gone); known {
		t.Fatalf("user %q still named after Compact(true)", gone)
	}
	if e.Compact(true) {
		t.Fatal("Compact(true) renumbered dictionaries whose names are all in use")
	}
	storetest.MatchExpect(t, "forgotten", e.Snapshot().Query, queries(evs, r), kept)
}
