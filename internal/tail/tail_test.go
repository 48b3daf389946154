package tail_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/tail"
)

func entries(types ...string) []queue.Entry {
	out := make([]queue.Entry, len(types))
	for i, t := range types {
		ev := &event.Event{EventID: fmt.Sprintf("e%d", i), EventType: t}
		out[i] = queue.Entry{EventID: ev.EventID, Data: []byte(`{"eventType":"` + t + `"}`), Event: ev}
	}
	return out
}

func clicks(e *event.Event) bool { return e.EventType == "click" }

func TestTailGetsWhatMatchesInOrder(t *testing.T) {
	h := tail.New(2)
	s, err := h.Subscribe(clicks, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := h.Subscribe(func(*event.Event) bool { return true }, 10, 1<<20)
	h.Publish(entries("click", "view", "click"))
	h.Publish([]queue.Entry{{EventID: "undecoded", Data: []byte("{}")}}) // no Event: skipped
	if got := len(s.Ready()); got != 2 {
		t.Fatalf("the click tail holds %d events, want 2", got)
	}
	if got := len(all.Ready()); got != 3 {
		t.Fatalf("the tail of everything holds %d events, want 3", got)
	}
	for _, want := range []string{`{"eventType":"click"}`, `{"eventType":"view"}`} {
		if got, _ := all.Next(); string(got) != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if _, err := h.Subscribe(clicks, 10, 1<<20); !errors.Is(err, tail.ErrTooMany) {
		t.Fatalf("a third tail on a hub of two: %v", err)
	}
	h.Unsubscribe(all)
	if h.Open() != 1 {
		t.Fatalf("%d open after closing one of two", h.Open())
	}
	if _, err := h.Subscribe(clicks, 10, 1<<20); err != nil {
		t.Fatalf("a tail in the freed place: %v", err)
	}
}

// A tail that falls behind is dropped, never waited for; the others go on.
func TestSlowTailIsDropped(t *testing.T) {
	h := tail.New(5)
	slow, _ := h.Subscribe(clicks, 2, 1<<20)
	fast, _ := h.Subscribe(clicks, 100, 1<<20)
	h.Publish(entries("click", "click", "click", "click"))
	select {
	case <-slow.Dropped():
	default:
		t.Fatal("a tail 2 events behind with 4 published was not dropped")
	}
	if len(slow.Ready()) != 2 || len(fast.Ready()) != 4 || h.Open() != 1 {
		t.Fatalf("slow holds %d, fast %d, %d open", len(slow.Ready()), len(fast.Ready()), h.Open())
	}
	select {
	case <-fast.Dropped():
		t.Fatal("the fast tail was dropped")
	default:
	}
	h.Unsubscribe(slow) // closing a dropped tail is harmless
	h.Publish(entries("click"))
	if len(fast.Ready()) != 5 {
		t.Fatalf("fast holds %d after one more", len(fast.Ready()))
	}
}

// A tail is dropped as soon as the bytes it holds pass its bound, whatever their number:
// an event may be megabytes.
func TestTailBoundedInBytes(t *testing.T) {
	h := tail.New(2)
	s, _ := h.Subscribe(clicks, 100, 100)
	big := entries("click")
	big[0].Data = make([]byte, 60)
	h.Publish(big)
	if d, ok := s.Next(); !ok || len(d) != 60 {
		t.Fatal("the first 60 bytes were not queued")
	}
	h.Publish(big) // 60 queued
	h.Publish(big) // 120 > 100
	select {
	case <-s.Dropped():
	default:
		t.Fatal("a tail holding 120 bytes of a 100-byte bound was not dropped")
	}
	if h.Open() != 0 {
		t.Fatalf("%d open", h.Open())
	}
}

func TestNoHub(t *testing.T) {
	var h *tail.Hub
	h.Publish(entries("click")) // ingestion without tails configured
	if h.Open() != 0 {
		t.Fatal("a nil hub has tails open")
	}
}

// Publishing with no tail open is the ingestion path's only cost of the feature.
func BenchmarkPublishNobodyWatching(b *testing.B) {
	h := tail.New(10)
	es := entries(make([]string, 100)...)
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(es)
	}
}

func BenchmarkPublishTenTails(b *testing.B) {
	h := tail.New(10)
	for range 10 {
		s, _ := h.Subscribe(clicks, 1<<20, 1<<40)
		go func() {
			for d := range s.Ready() {
				s.Taken(d)
			}
		}()
	}
	es := entries(make([]string, 100)...)
	for i := range es {
		if i%10 == 0 {
			es[i].Event.EventType = "click"
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(es)
	}
}
