package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes on dir for the test, so that a test can fill a disk
// for real; it is unmounted when the test ends. Where mounting is not permitted (not root,
// a container) the test skips with the reason; with -short it skips.
func Tmpfs(t testing.TB, dir string, size int) {
	t.Helper()
	SkipShort(t, "mounts a tmpfs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		reason := fmt.Sprintf("cannot mount a small tmpfs to fill a disk (%v: %s)", err, strings.TrimSpace(string(out)))
		fmt.Fprintln(os.Stderr, "disk-full test skipped:", reason)
		t.Skip(reason)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}
