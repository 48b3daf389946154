package logqueue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/testutil"
)

// filesBytes is the size of the segment files in dir, as du would count them.
func filesBytes(t *testing.T, dir string) int64 {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range segs {
		fi, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// With MaxBytes, an Enqueue that would take the files past it appends nothing and fails
// with queue.ErrFull; acks are still taken, and once they let segments go the buffer takes
// entries again. A fully acknowledged head does not keep it full.
func TestMaxBytesRefusesUntilAcked(t *testing.T) {
	const bound = 256 << 10
	ctx := context.Background()
	dir := t.TempDir()
	q := open(t, dir, Options{MaxBytes: bound, NoFsync: true})
	if _, limit, _ := q.Fill(ctx); limit != bound {
		t.Fatalf("Fill limit %d, want %d", limit, bound)
	}
	var accepted int
	var full error
	for i := 0; full == nil; i++ {
		if i > 100 {
			t.Fatalf("%d batches of 10 KiB taken with a bound of %d bytes", i, bound)
		}
		err := q.Enqueue(ctx, entriesN(fmt.Sprintf("b%03d", i), 4, 10<<10))
		if err != nil {
			full = err
			break
		}
		accepted += 4
	}
	if !errors.Is(full, queue.ErrFull) || !strings.Contains(full.Error(), "EVP_BUFFER_MAX_BYTES") {
		t.Fatalf("Enqueue past the bound: %v, want queue.ErrFull naming EVP_BUFFER_MAX_BYTES", full)
	}
	if s, _ := q.Stats(ctx); s.TotalEnqueued != int64(accepted) {
		t.Errorf("TotalEnqueued %d after a refused Enqueue, want %d: nothing appended", s.TotalEnqueued, accepted)
	}
	if n := filesBytes(t, dir); n > bound {
		t.Errorf("segment files hold %d bytes, bound %d", n, bound)
	}
	if used, _, _ := q.Fill(ctx); used <= bound*3/4 || used > bound {
		t.Errorf("Fill used %d, want close to the bound %d", used, bound)
	}
	if err := q.Refusal(); err == nil || !strings.Contains(err.Error(), "buffer full: ") || !strings.Contains(err.Error(), "of "+mib(bound)) {
		t.Errorf("Refusal while full: %v, want one naming the fill and the bound", err)
	}

	msgs := drain(t, q, 100)
	if len(msgs) != accepted {
		t.Fatalf("fetched %d, want %d", len(msgs), accepted)
	}
	// Acknowledging part of it is never refused; the oldest segments go.
	if err := q.Ack(ctx, msgIDs(msgs[:accepted/2])); err != nil {
		t.Fatalf("Ack while full: %v", err)
	}
	if used, _, _ := q.Fill(ctx); used > bound*3/4 {
		t.Errorf("Fill used %d after half was acknowledged, want the oldest segments deleted", used)
	}
	if err := q.Refusal(); err != nil {
		t.Errorf("Refusal with room again: %v", err)
	}
	mustEnqueue(t, q, entriesN("after-half", 4, 10<<10))
	// Everything acknowledged: only the head is left, and it does not count.
	rest := append(msgs[accepted/2:], drain(t, q, 100)...)
	if err := q.Ack(ctx, msgIDs(rest)); err != nil {
		t.Fatal(err)
	}
	if used, _, _ := q.Fill(ctx); used != 0 {
		t.Errorf("Fill used %d with every entry acknowledged, want 0", used)
	}
	for i := range 30 { // more than the bound in all: segments keep being deleted
		es := entriesN(fmt.Sprintf("again%02d", i), 4, 10<<10)
		mustEnqueue(t, q, es)
		got, err := q.Fetch(ctx, 10, time.Second)
		if err != nil || len(got) != 4 {
			t.Fatalf("round %d: fetched %d, %v; want 4", i, len(got), err)
		}
		if err := q.Ack(ctx, msgIDs(got)); err != nil {
			t.Fatal(err)
		}
	}
	if n := filesBytes(t, dir); n > bound {
		t.Errorf("segment files hold %d bytes after acknowledged rounds, bound %d", n, bound)
	}
}

// A request larger than the bound is taken when nothing else is buffered, so that it is
// not refused for ever.
func TestMaxBytesTakesOneLargeRequestAlone(t *testing.T) {
	q := open(t, t.TempDir(), Options{MaxBytes: 64 << 10, NoFsync: true})
	mustEnqueue(t, q, entriesN("big", 1, 100<<10))
	if err := q.Enqueue(context.Background(), entriesN("small", 1, 10)); !errors.Is(err, queue.ErrFull) {
		t.Fatalf("Enqueue behind the large entry: %v, want queue.ErrFull", err)
	}
}

// The committed entries kept in memory for the workers are bounded in bytes: past
// HandOffBytes the workers read them back from the files, in order and each once.
func TestHandOffBoundedByBytes(t *testing.T) {
	const bound = 1 << 20
	q := open(t, t.TempDir(), Options{HandOffBytes: bound, NoFsync: true})
	drain(t, q, 1) // caught up: new entries are handed over in memory
	var es []queue.Entry
	for i := range 20 {
		e := entriesN(fmt.Sprintf("h%02d", i), 1, 200<<10)[0]
		e.Event = &event.Event{EventID: e.EventID} // counted as large as its data again
		mustEnqueue(t, q, []queue.Entry{e})
		es = append(es, e)
		q.mu.Lock()
		kept := q.freshBytes
		q.mu.Unlock()
		if kept > bound {
			t.Fatalf("after %d entries of 200 KiB the hand-over holds %d bytes, bound %d", i+1, kept, bound)
		}
	}
	var got []queue.Message
	for len(got) < len(es) {
		msgs := drain(t, q, 3)
		if len(msgs) == 0 {
			t.Fatalf("fetched %d of %d", len(got), len(es))
		}
		if err := q.Ack(context.Background(), msgIDs(msgs)); err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	checkEntries(t, got, es)
}

// Entries delivered and not yet acknowledged are bounded in bytes: Fetch hands out no new
// ones past DeliveredBytes (but always one when none is out), and an acknowledgement wakes
// a Fetch that waits for room.
func TestDeliveredBoundedByBytes(t *testing.T) {
	const bound = 1 << 20
	ctx := context.Background()
	q := open(t, t.TempDir(), Options{DeliveredBytes: bound, NoFsync: true})
	es := entriesN("d", 10, 300<<10)
	mustEnqueue(t, q, es)
	first, err := q.Fetch(ctx, 100, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 {
		t.Fatalf("first Fetch of 300 KiB entries under a 1 MiB bound: %d, want 3", len(first))
	}
	if more, _ := q.Fetch(ctx, 100, 0); len(more) != 0 {
		t.Fatalf("Fetch with the bound reached handed out %d more", len(more))
	}

	woken := make(chan []queue.Message, 1)
	go func() {
		msgs, _ := q.Fetch(ctx, 100, time.Minute)
		woken <- msgs
	}()
	if err := q.Ack(ctx, msgIDs(first[:1])); err != nil {
		t.Fatal(err)
	}
	second := <-woken
	if len(second) != 1 || second[0].ID != first[2].ID+1 {
		t.Fatalf("Fetch woken by the ack got %v, want the next entry", msgIDs(second))
	}

	// An entry larger than the bound goes out once nothing else is out.
	big := open(t, t.TempDir(), Options{DeliveredBytes: 64 << 10, NoFsync: true})
	mustEnqueue(t, big, entriesN("big", 2, 100<<10))
	one, _ := big.Fetch(ctx, 10, time.Second)
	if len(one) != 1 {
		t.Fatalf("Fetch of entries larger than the bound: %d, want 1", len(one))
	}
	if err := big.Ack(ctx, msgIDs(one)); err != nil {
		t.Fatal(err)
	}
	if two, _ := big.Fetch(ctx, 10, time.Second); len(two) != 1 || two[0].ID != one[0].ID+1 {
		t.Fatalf("after the ack: %v, want the second entry", msgIDs(two))
	}
}

// A write the disk has no room for fails the Enqueue and is reported by Refusal until a
// write succeeds again; what was committed before stays, and entries are taken again once
// there is room.
func TestDiskFullIsReportedUntilAWriteSucceeds(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "buffer")
	testutil.Tmpfs(t, dir, 1<<20)
	q, err := Open(ctx, dir, Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 700<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var kept []queue.Entry
	var full error
	for i := 0; full == nil; i++ {
		if i > 100 {
			t.Fatal("a 1 MiB disk took 100 batches of 20 KiB")
		}
		es := entriesN(fmt.Sprintf("f%03d", i), 2, 10<<10)
		if full = q.Enqueue(ctx, es); full == nil {
			kept = append(kept, es...)
		}
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("Enqueue on a full disk: %v, want ENOSPC", full)
	}
	if err := q.Ping(ctx); err != nil {
		t.Errorf("Ping: %v, want nil: nothing needs a restart", err)
	}
	if err := q.Refusal(); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "buffer write failed") {
		t.Fatalf("Refusal on a full disk: %v, want the write failure", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := q.Refusal(); err == nil {
		t.Error("Refusal cleared before any write succeeded")
	}
	more := entriesN("after", 2, 10<<10)
	mustEnqueue(t, q, more)
	if err := q.Refusal(); err != nil {
		t.Errorf("Refusal after a write succeeded: %v", err)
	}
	q.Close()
	q = open(t, dir, Options{NoFsync: true})
	checkEntries(t, drain(t, q, 1000), append(kept, more...))
}
