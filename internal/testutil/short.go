package testutil

import "testing"

// SkipShort skips t under -short (make test-short), which runs only the tests that start
// no process and reach no service. what says what t needs, for the skip's reason.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s", what)
	}
}
