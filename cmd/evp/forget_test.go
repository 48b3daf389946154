package main

import (
	"strings"
	"testing"
	"time"
)

// evp user forget, run beside a running evp on its data directory, deletes the user's
// events: the running evp no longer lists or counts them.
func TestUserForgetBesideARunningEvp(t *testing.T) {
	url, dir := startInProcess(t)
	key := createKey(t, dir)
	now := time.Now()
	evs := exportEvents(now)
	evs[4]["userId"] = "u1" // u1 has two events
	sendAndWait(t, url, key, evs)
	if a := analytics(t, url, key, now.Add(-20*time.Minute), now.Add(time.Minute)); !strings.Contains(a, `"totalEvents":6`) || !strings.Contains(a, `"u1"`) {
		t.Fatalf("analytics before: %s", a)
	}

	code, out, stderr := runCmd(t, map[string]string{"EVP_DATA_DIR": dir}, "user", "forget", "u1")
	if code != 0 || !strings.Contains(out, `Deleted 2 events of user "u1"`) {
		t.Fatalf("user forget: exit %d %q %q", code, out, stderr)
	}
	for _, ev := range listEvents(t, url, key) {
		if ev["userId"] == "u1" {
			t.Fatalf("the running evp still lists %v", ev)
		}
	}
	if n := len(listEvents(t, url, key)); n != 4 {
		t.Fatalf("%d events listed, want 4", n)
	}
	// The running evp's engine applies the deletion in the background, within a second or
	// so; each ask is of a range not asked before (answers are cached for 10 s).
	for k := 21; ; k++ {
		a := analytics(t, url, key, now.Add(-time.Duration(k)*time.Minute), now.Add(time.Minute))
		if strings.Contains(a, `"totalEvents":4`) && !strings.Contains(a, `"u1"`) {
			break
		}
		if k == 60 {
			t.Fatalf("analytics 8 s after: %s", a)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, out, _ := runCmd(t, map[string]string{"EVP_DATA_DIR": dir}, "user", "forget", "u1"); code != 0 || !strings.Contains(out, "Deleted 0 events") {
		t.Fatalf("second forget: exit %d %q", code, out)
	}
}

func TestUserForgetBadUsageExitsWith2(t *testing.T) {
	env := map[string]string{"EVP_DATA_DIR": t.TempDir()}
	for _, args := range [][]string{{"user", "forget"}, {"user", "forget", "a", "b"}, {"user", "forget", ""}} {
		if code, _, stderr := runCmd(t, env, args...); code != 2 || !strings.Contains(stderr, "one user id") {
			t.Errorf("%q: exit %d %q, want 2", args, code, stderr)
		}
	}
}
