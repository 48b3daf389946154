package app

import (
	"log/slog"
	"runtime"
	"testing"
)

func TestSetProcs(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })

	t.Setenv("GOMAXPROCS", "")
	setProcs(false, log) // Redis Streams and MongoDB: nothing waits in fsync or SQLite here
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d without embedded backends, want it left at %d", got, before)
	}
	setProcs(true, log)
	if got := runtime.GOMAXPROCS(0); got != before+embeddedExtraProcs {
		t.Errorf("GOMAXPROCS %d with embedded backends, want %d", got, before+embeddedExtraProcs)
	}

	runtime.GOMAXPROCS(before)
	t.Setenv("GOMAXPROCS", "1") // the runtime's own setting wins
	setProcs(true, log)
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d with GOMAXPROCS set, want it left at %d", got, before)
	}
}
