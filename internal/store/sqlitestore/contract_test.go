package sqlitestore

import (
	"testing"

	"github.com/evp-dev/evp/internal/store/storetest"
)

// TestContract runs the store contract suite shared with the MongoDB store.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openStore(t, t.TempDir()) })
}
