package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/dedup"
)

// gatedSet is a dedup set that runs afterSeen once its check has answered.
type gatedSet struct {
	dedup.Local
	afterSeen func()
}

func (g *gatedSet) Seen(ctx context.Context, ids []string, seen []bool) error {
	err := g.Local.Seen(ctx, ids, seen)
	if f := g.afterSeen; f != nil {
		g.afterSeen = nil
		f()
	}
	return err
}

// A request whose dedup check answered "new" before a concurrent request buffered the same
// id, recorded it and released it must not claim the id afterwards: that was a repeat
// accepted twice (seen once in CI under -race).
func TestAdmitRechecksAfterAConcurrentRelease(t *testing.T) {
	ctx := context.Background()
	set := &gatedSet{Local: dedup.Local{W: dedup.New(time.Minute)}}
	s := &Server{Deps: Deps{Ingestion: IngestionDeps{Dedup: set}}, flight: newInflight()}
	ids := []string{"evt_same"}
	set.afterSeen = func() { // between B's check and B's claim, A does it all
		mine, err := s.admit(ctx, ids)
		if err != nil || !mine[0] {
			t.Fatalf("first request: mine %v, err %v; want it to buffer the event", mine, err)
		}
		if err := set.Add(ctx, ids); err != nil {
			t.Fatal(err)
		}
		s.done(ids, mine)
	}
	mine, err := s.admit(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if mine[0] {
		t.Fatal("the second request claimed an id recorded as seen meanwhile: accepted twice")
	}
	if len(s.flight.ids) != 0 {
		t.Fatalf("%d ids still in flight, want none", len(s.flight.ids))
	}
}
