package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/evp-dev/evp/internal/accounts/pgaccounts"
	"github.com/evp-dev/evp/internal/testutil"
)

func TestMigrateCommandPostgres(t *testing.T) {
	url := testutil.PostgresDB(t)
	env := map[string]string{"EVP_DATA_DIR": t.TempDir(), "DATABASE_URL": url}
	code, out, stderr := runCmd(t, env, "migrate")
	want := fmt.Sprintf("applied %d migration(s)", pgaccounts.SchemaVersion())
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("first migrate: exit %d, stdout %q, stderr %q; want exit 0 saying %q", code, out, stderr, want)
	}
	code, out, stderr = runCmd(t, env, "migrate")
	if code != 0 || !strings.Contains(out, "nothing applied") {
		t.Fatalf("second migrate: exit %d, stdout %q, stderr %q; want exit 0, nothing applied", code, out, stderr)
	}
	// The schema the command wrote is the one Open without migrate accepts.
	s, err := pgaccounts.Open(context.Background(), url, false)
	if err != nil {
		t.Fatalf("Open(migrate=false) after evp migrate: %v", err)
	}
	s.Close()

	env["DATABASE_URL"] = "postgres://evp:hunter2@127.0.0.1:1/none?sslmode=disable&connect_timeout=5"
	code, _, stderr = runCmd(t, env, "migrate")
	if code != 1 || !strings.Contains(stderr, "DATABASE_URL") || strings.Contains(stderr, "hunter2") {
		t.Fatalf("migrate with an unreachable DATABASE_URL: exit %d, stderr %q; want exit 1 naming DATABASE_URL without the password", code, stderr)
	}
}
