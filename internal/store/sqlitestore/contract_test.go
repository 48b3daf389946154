package sqlitestore

import (
	"context"
	"testing"

	"github.com/evp-dev/evp/internal/store/storetest"
)

// TestContract runs the store contract suite shared with the MongoDB store.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return settling{openStore(t, t.TempDir())} })
}

// settling is the store with Settle for the contract suite: it seals every head hour.
type settling struct{ *Store }

func (s settling) Settle(ctx context.Context) error {
	if err := s.feed(ctx); err != nil {
		return err
	}
	return s.seal(ctx, true)
}
