package accounts_test

import (
	"context"
	"testing"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/accounts/accountstest"
)

func TestSQLiteContract(t *testing.T) {
	accountstest.Run(t, func(t *testing.T) accounts.Repository {
		s, err := accounts.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
