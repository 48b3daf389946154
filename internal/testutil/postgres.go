package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresURL is the test PostgreSQL's maintenance database: EVP_TEST_DATABASE_URL, or the
// local server's postgres database as user postgres.
func PostgresURL() string {
	if u := os.Getenv("EVP_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

var (
	pgProbeOnce sync.Once
	pgProbeErr  error // why PostgreSQL cannot be used, once probed
)

// pgConnect opens a maintenance connection to the base URL.
func pgConnect(ctx context.Context, t testing.TB) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(PostgresURL())
	if err != nil {
		t.Fatalf("EVP_TEST_DATABASE_URL: %v", err) // pgx redacts the password
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// PostgresDB creates an empty database of its own for t (evp_test_<random>) on the test
// PostgreSQL and returns its URL; the database is dropped when t ends (after the cleanups
// registered later, such as closing a pool on it). When PostgreSQL is unreachable the test
// skips with the reason (printed once even without -v), or fails under
// EVP_REQUIRE_SERVICES=1, as CI runs; with -short it skips.
func PostgresDB(t testing.TB) string {
	t.Helper()
	SkipShort(t, "needs PostgreSQL")
	pgProbeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgConnect(ctx, t)
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		if err != nil {
			pgProbeErr = fmt.Errorf("postgresql (EVP_TEST_DATABASE_URL or 127.0.0.1:5432) is unreachable (%v); start postgresql or set EVP_TEST_DATABASE_URL", err)
			if os.Getenv("EVP_REQUIRE_SERVICES") != "1" {
				fmt.Fprintln(os.Stderr, "tests needing PostgreSQL skipped:", pgProbeErr)
			}
		}
	})
	if pgProbeErr != nil {
		if os.Getenv("EVP_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%v (EVP_REQUIRE_SERVICES=1)", pgProbeErr)
		}
		t.Skip(pgProbeErr)
	}

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "evp_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgConnect(ctx, t)
	if err != nil {
		t.Fatalf("postgresql: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgresql: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgConnect(ctx, t)
		if err != nil {
			t.Errorf("postgresql: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		// FORCE ends sessions a test left open (PostgreSQL 13 and later).
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("postgresql: drop database %s: %v", name, err)
		}
	})
	return withDatabase(t, PostgresURL(), name)
}

// withDatabase returns base (a URL or a key=value string) pointed at database name.
func withDatabase(t testing.TB, base, name string) string {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("EVP_TEST_DATABASE_URL is not a valid URL")
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String()
	}
	return base + " dbname=" + name // the last dbname wins
}
