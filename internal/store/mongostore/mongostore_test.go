package mongostore

import (
	"context"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store/storetest"
	"github.com/evp-dev/evp/internal/testutil/ferret"
)

// openTest starts a FerretDB for t and opens a store on it.
func openTest(t *testing.T) (*Store, *ferret.Server) {
	t.Helper()
	srv := ferret.Start(t)
	return openOn(t, srv, "evptest"), srv
}

func openOn(t *testing.T, srv *ferret.Server, db string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{URI: srv.URI(), Database: db})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestContract runs the store contract suite against MongoDB's wire protocol (FerretDB).
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, _ := openTest(t)
		return s
	})
}
