package app

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/sqlitestore"
)

func TestSetMemoryLimit(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "")
	newMemoryLimit(123, nil, log).apply()
	if got := debug.SetMemoryLimit(-1); got != 123<<20 {
		t.Errorf("limit %d after EVP_MEMORY_LIMIT_MB=123, want %d", got, 123<<20)
	}
	if m := newMemoryLimit(0, nil, log); m != nil { // off
		t.Error("a limit with the setting 0")
	}
	t.Setenv("GOMEMLIMIT", "1GiB") // the runtime's own setting wins
	if m := newMemoryLimit(50, nil, log); m != nil {
		t.Error("a limit with GOMEMLIMIT set")
	}
}

// resident is a store.Resident whose size a test sets.
type resident struct {
	store.EventStore
	n atomic.Int64
}

func (r *resident) ResidentBytes() int64 { return r.n.Load() }

// The limit leaves room for what the store keeps resident, following it as it grows.
func TestMemoryLimitFollowsTheStore(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	st := &resident{}
	st.n.Store(7 << 20)
	m := newMemoryLimit(100, st, slog.New(slog.DiscardHandler))
	var set atomic.Int64
	m.set, m.every = func(n int64) { set.Store(n) }, time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wait := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); set.Load() != want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("limit %d, want %d", set.Load(), want)
			}
		}
	}
	wait(107 << 20)
	st.n.Store(50 << 20)
	wait(150 << 20)

	// The embedded store is one.
	s, err := sqlitestore.Open(context.Background(), t.TempDir(), "NORMAL")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m := newMemoryLimit(100, s, slog.New(slog.DiscardHandler)); m.store == nil {
		t.Error("the embedded store's memory is not followed")
	}
}
