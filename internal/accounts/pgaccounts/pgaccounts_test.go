package pgaccounts_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/accounts/accountstest"
	"github.com/evp-dev/evp/internal/accounts/pgaccounts"
	"github.com/evp-dev/evp/internal/testutil"
)

func open(t *testing.T, url string, migrate bool) *pgaccounts.Store {
	t.Helper()
	s, err := pgaccounts.Open(context.Background(), url, migrate)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	accountstest.Run(t, func(t *testing.T) accounts.Repository {
		return open(t, testutil.PostgresDB(t), true)
	})
}

// recorded returns the versions in schema_migrations.
func recorded(t *testing.T, url string) []int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func wantAllVersions(t *testing.T, url string) {
	t.Helper()
	got := recorded(t, url)
	if len(got) != pgaccounts.SchemaVersion() {
		t.Fatalf("schema_migrations holds versions %v, want 1..%d", got, pgaccounts.SchemaVersion())
	}
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("schema_migrations holds versions %v, want 1..%d", got, pgaccounts.SchemaVersion())
		}
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	if pgaccounts.SchemaVersion() < 1 {
		t.Fatal("no migrations embedded")
	}
	n, err := pgaccounts.Migrate(ctx, url)
	if err != nil || n != pgaccounts.SchemaVersion() {
		t.Fatalf("first Migrate = %d, %v; want %d applied", n, err, pgaccounts.SchemaVersion())
	}
	n, err = pgaccounts.Migrate(ctx, url)
	if err != nil || n != 0 {
		t.Fatalf("second Migrate = %d, %v; want 0 applied", n, err)
	}
	wantAllVersions(t, url)
	// Open with and without migrate on a current schema.
	open(t, url, true)
	s := open(t, url, false)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentMigrateAppliesOnce(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	const n = 4
	applied := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i%2 == 0 {
				applied[i], errs[i] = pgaccounts.Migrate(ctx, url)
				return
			}
			// Open with migrate takes the same lock (evp processes starting together).
			s, err := pgaccounts.Open(ctx, url, true)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("concurrent migration #%d: %v", i, errs[i])
		}
		total += applied[i]
	}
	// The Open callers do not report a count; the schema_migrations primary key would
	// refuse a second application, and the Migrate callers must not have applied more
	// than the set between them.
	if total > pgaccounts.SchemaVersion() {
		t.Fatalf("concurrent Migrate calls applied %d migrations in total, want at most %d", total, pgaccounts.SchemaVersion())
	}
	wantAllVersions(t, url)
}

func TestTwoMigrateCallsAtOnceApplyOnce(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	var a, b int
	var errA, errB error
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); <-start; a, errA = pgaccounts.Migrate(ctx, url) }()
	go func() { defer wg.Done(); <-start; b, errB = pgaccounts.Migrate(ctx, url) }()
	close(start)
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("concurrent Migrate: %v; %v", errA, errB)
	}
	if a+b != pgaccounts.SchemaVersion() {
		t.Fatalf("two concurrent Migrate calls applied %d + %d, want %d in total", a, b, pgaccounts.SchemaVersion())
	}
	wantAllVersions(t, url)
}

func TestOpenWithoutMigrateNeedsCurrentSchema(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	_, err := pgaccounts.Open(ctx, url, false)
	if err == nil || !errors.Is(err, pgaccounts.ErrSchemaNotCurrent) || !strings.Contains(err.Error(), "evp migrate") {
		t.Fatalf("Open(migrate=false) on an empty database = %v; want ErrSchemaNotCurrent naming `evp migrate`", err)
	}
	// It must not have created anything either.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("Open(migrate=false) created %d tables", tables)
	}

	// A database one migration behind is refused too.
	if _, err := pgaccounts.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, pgaccounts.SchemaVersion()); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("at version %d", pgaccounts.SchemaVersion()-1)
	if _, err := pgaccounts.Open(ctx, url, false); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "evp migrate") {
		t.Fatalf("Open(migrate=false) one version behind = %v; want an error saying %q and naming `evp migrate`", err, want)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pgaccounts.Open(ctx, "", true); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("Open(\"\") = %v, want an error naming DATABASE_URL", err)
	}
	const secret = "s3cr3t-pw"
	_, err := pgaccounts.Open(ctx, "postgres://evp:"+secret+"@127.0.0.1:5432/x?sslmode=nope", true)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Open(bad URL) = %v; want an error without the password", err)
	}
	// Nothing listens on port 1.
	_, err = pgaccounts.Open(ctx, "postgres://evp:"+secret+"@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", true)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Open(unreachable) = %v; want an error without the password", err)
	}
}

// Two stores on one database stand for two evp processes.
func TestFirstUserAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	stores := []*pgaccounts.Store{open(t, url, true), open(t, url, true)}
	const n = 8
	results := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			u := accounts.User{ID: fmt.Sprintf("usr_%d", i), Email: fmt.Sprintf("u%d@example.com", i),
				Role: accounts.RoleAdmin, Status: accounts.StatusActive, CreatedAt: time.Now()}
			results[i], errs[i] = stores[i%2].CreateFirstUser(ctx, u)
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreateFirstUser #%d: %v", i, errs[i])
		}
		if results[i] {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d CreateFirstUser calls on two stores created %d users, want exactly 1", n, created)
	}
	if c, err := stores[1].CountUsers(ctx); err != nil || c != 1 {
		t.Fatalf("CountUsers = %d, %v; want 1", c, err)
	}
}

func TestDuplicateIDIsNotEmailTaken(t *testing.T) {
	ctx := context.Background()
	s := open(t, testutil.PostgresDB(t), true)
	u := accounts.User{ID: "usr_1", Email: "a@example.com", Role: accounts.RoleViewer, Status: accounts.StatusActive, CreatedAt: time.Now()}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	u.Email = "b@example.com"
	if err := s.CreateUser(ctx, u); err == nil || errors.Is(err, accounts.ErrEmailTaken) {
		t.Fatalf("CreateUser with a taken id = %v; want an error that is not ErrEmailTaken", err)
	}
	if err := s.SaveSettings(ctx, u.ID, []byte(`[1,2]`)); err == nil {
		t.Error("SaveSettings accepted a JSON array; settings are an object")
	}
}
