package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store"
)

// crash closes the store like a killed process: no final sketch flush.
func (s *Store) crash() {
	close(s.sketches.stop)
	<-s.sketches.done
	s.sketches.stop = nil
	_ = errors.Join(s.rdb.Close(), s.wdb.Close())
}

func sketchSeq(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.rdb.QueryRow(`SELECT value FROM counters WHERE name = 'sketch_seq'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Ids added after the last flush are recovered from the events table on the next open.
func TestSketchesSurviveACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, "NORMAL")
	if err != nil {
		t.Fatal(err)
	}
	es := events(0, 600)
	for i := range es {
		es[i].UserID = fmt.Sprintf("user_%d", i%300) // 300 users, 3 sessions (testEvent)
	}
	insert(t, s, es[:200], 200, 0)
	if err := s.FlushSketches(ctx); err != nil {
		t.Fatal(err)
	}
	flushed := sketchSeq(t, s)
	insert(t, s, es[200:], 400, 0) // only in memory now (the flusher ticks once a second)
	s.crash()

	s2 := openStore(t, dir)
	if got := sketchSeq(t, s2); got <= flushed {
		t.Fatalf("sketch_seq = %d after recovery, want past %d", got, flushed)
	}
	from := es[0].Timestamp.Truncate(time.Minute)
	q := store.AnalyticsQuery{Start: from, End: from.Add(20 * time.Minute), Bucket: time.Minute}
	res, err := s2.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalEvents != 600 || math.Abs(float64(res.UniqueUsers-300)) > 6 || res.UniqueSessions != 3 {
		t.Fatalf("after a crash: %d events, %d users, %d sessions; want 600, about 300, 3", res.TotalEvents, res.UniqueUsers, res.UniqueSessions)
	}
}

// Analytics sees every id stored before it, without waiting for the flusher.
func TestAnalyticsSeesUnflushedIDs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	es := events(0, 50)
	for i := range es {
		es[i].UserID = fmt.Sprintf("u%d", i)
	}
	insert(t, s, es, 50, 0)
	from := es[0].Timestamp.Truncate(time.Minute)
	res, err := s.Analytics(ctx, store.AnalyticsQuery{Start: from, End: from.Add(2 * time.Minute), Bucket: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.UniqueUsers != 50 {
		t.Fatalf("UniqueUsers = %d right after insert, want 50", res.UniqueUsers)
	}
}
