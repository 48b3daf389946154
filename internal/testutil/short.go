package testutil

import (
	"fmt"
	"os"
	"testing"
)

// SkipShort skips t under -short (make test-short), which runs only the tests that start
// no process and reach no service. what says what t needs, for the skip's reason.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s", what)
	}
}

// Needs skips t with reason unless ok, or fails it under EVP_REQUIRE_SERVICES=1 (CI), for a
// test that needs a tool of the machine (a browser, Node.js, npm packages).
func Needs(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("EVP_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s (EVP_REQUIRE_SERVICES=1)", reason)
	}
	fmt.Fprintln(os.Stderr, "skipped:", reason)
	t.Skip(reason)
}
