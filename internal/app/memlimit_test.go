package app

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "")
	setMemoryLimit(123, log)
	if got := debug.SetMemoryLimit(-1); got != 123<<20 {
		t.Errorf("limit %d after EVP_MEMORY_LIMIT_MB=123, want %d", got, 123<<20)
	}

	debug.SetMemoryLimit(before)
	setMemoryLimit(0, log) // off
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d with the setting 0, want it left at %d", got, before)
	}

	t.Setenv("GOMEMLIMIT", "1GiB") // the runtime's own setting wins
	setMemoryLimit(50, log)
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d with GOMEMLIMIT set, want it left at %d", got, before)
	}
}
