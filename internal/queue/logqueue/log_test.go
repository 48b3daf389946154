package logqueue

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/queue"
)

func entriesN(prefix string, n, size int) []queue.Entry {
	es := make([]queue.Entry, n)
	for i := range es {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		es[i] = queue.Entry{EventID: id, Data: bytes.Repeat([]byte(id[len(id)-1:]), size)}
	}
	return es
}

func mustEnqueue(t *testing.T, q *Queue, es []queue.Entry) {
	t.Helper()
	if err := q.Enqueue(context.Background(), es); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
}

// drain fetches until nothing arrives within 100 ms.
func drain(t *testing.T, q *Queue, max int) []queue.Message {
	t.Helper()
	var all []queue.Message
	for {
		msgs, err := q.Fetch(context.Background(), max, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(msgs) == 0 {
			return all
		}
		all = append(all, msgs...)
	}
}

func msgIDs(msgs []queue.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// checkEntries checks that msgs are exactly es, in order, with their data.
func checkEntries(t *testing.T, msgs []queue.Message, es []queue.Entry) {
	t.Helper()
	if len(msgs) != len(es) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(es))
	}
	for i, m := range msgs {
		if m.EventID != es[i].EventID || !bytes.Equal(m.Data, es[i].Data) {
			t.Fatalf("message %d = %s (%d bytes), want %s (%d bytes)", i, m.EventID, len(m.Data), es[i].EventID, len(es[i].Data))
		}
		if i > 0 && m.ID != msgs[i-1].ID+1 {
			t.Fatalf("message %d has id %d after %d", i, m.ID, msgs[i-1].ID)
		}
	}
}

func headPath(t *testing.T, dir string) string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("listSegments: %d, %v", len(segs), err)
	}
	return segs[len(segs)-1].path
}

// A crash in the middle of a write leaves part of a record at the end of the head. Open
// cuts it off; what was committed before it is intact and new entries follow it.
func TestTornTailIsCut(t *testing.T) {
	for name, tail := range map[string][]byte{
		"partial":     appendEntry(nil, 4, 0, "torn", []byte("never acknowledged"))[:20],
		"bad-crc":     func() []byte { b := appendEntry(nil, 4, 0, "torn", []byte("x")); b[len(b)-1] ^= 0xff; return b }(),
		"zero-filled": make([]byte, 512),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			q := open(t, dir, Options{})
			es := entriesN("tail", 3, 40)
			mustEnqueue(t, q, es)
			q.Close()

			f, err := os.OpenFile(headPath(t, dir), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tail); err != nil {
				t.Fatal(err)
			}
			f.Close()

			q = open(t, dir, Options{})
			more := entriesN("more", 2, 40)
			mustEnqueue(t, q, more)
			q.Close()

			q = open(t, dir, Options{})
			checkEntries(t, drain(t, q, 10), append(slices.Clone(es), more...))
			if s, _ := q.Stats(context.Background()); s.Length != 5 || s.TotalEnqueued != 5 {
				t.Errorf("Stats = %+v, want Length 5 TotalEnqueued 5", s)
			}
		})
	}
}

// Damage anywhere but the end of the newest segment is not a torn write: Open refuses to
// guess and names the file.
func TestDamageInOlderSegmentIsRefused(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{SegmentSize: 2048})
	for range 6 {
		mustEnqueue(t, q, entriesN("old", 10, 100))
	}
	q.Close()
	segs, err := listSegments(dir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("want at least 3 segments, have %d (%v)", len(segs), err)
	}
	b, err := os.ReadFile(segs[0].path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(segs[0].path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir, Options{SegmentSize: 2048})
	if err == nil || !strings.Contains(err.Error(), segs[0].path) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Open over a damaged older segment: %v, want an error naming %s as damaged", err, segs[0].path)
	}
}

// Segments are deleted once everything in them and before them is acknowledged; ids keep
// counting across restarts even when every segment but the head is gone.
func TestAcknowledgedSegmentsAreDeleted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	q := open(t, dir, opts)
	var es []queue.Entry
	for i := range 20 {
		batch := entriesN(fmt.Sprintf("seg%02d", i), 10, 100)
		mustEnqueue(t, q, batch)
		es = append(es, batch...)
	}
	files, _ := q.Segments()
	if files < 5 {
		t.Fatalf("%d segment files for 200 entries of 100 bytes in 4 KiB segments, want at least 5", files)
	}
	msgs := drain(t, q, 50)
	checkEntries(t, msgs, es)

	// Acknowledge the second half first: nothing can go, the oldest segment still waits.
	if err := q.Ack(ctx, msgIDs(msgs[100:])); err != nil {
		t.Fatal(err)
	}
	if now, _ := q.Segments(); now < files { // the ack record itself may start a segment
		t.Errorf("%d segment files after acknowledging only newer entries, want all %d kept", now, files)
	}
	if err := q.Ack(ctx, msgIDs(msgs[:100])); err != nil {
		t.Fatal(err)
	}
	if now, _ := q.Segments(); now != 1 {
		t.Errorf("%d segment files after acknowledging everything, want 1 (the head)", now)
	}
	if ondisk, _ := listSegments(dir); len(ondisk) != 1 {
		t.Errorf("%d segment files on disk, want 1", len(ondisk))
	}
	q.Close()

	q = open(t, dir, opts)
	if s, _ := q.Stats(ctx); s.Length != 0 || s.Pending != 0 || s.TotalEnqueued != 200 {
		t.Errorf("Stats after restart = %+v, want Length 0 Pending 0 TotalEnqueued 200", s)
	}
	mustEnqueue(t, q, entriesN("after", 1, 10))
	got := drain(t, q, 10)
	if len(got) != 1 || got[0].ID != 201 {
		t.Fatalf("after restart got %v, want the new entry with id 201", msgIDs(got))
	}
}

// Random acknowledgements and redeliveries spread over many segments survive restarts:
// exactly the unacknowledged entries come back, with their delivery counts.
func TestRestartKeepsAcksAndAttempts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{SegmentSize: 8192}
	rng := rand.New(rand.NewPCG(1, 2))
	q := open(t, dir, opts)
	want := map[string]int{} // unacknowledged event id -> attempts
	for round := range 5 {
		for i := range 4 {
			mustEnqueue(t, q, entriesN(fmt.Sprintf("r%d-%d", round, i), 25, 60))
		}
		msgs := drain(t, q, 30)
		var ack, nack []int64
		for _, m := range msgs {
			if m.Attempts != want[m.EventID] {
				t.Fatalf("round %d: %s delivered with attempts %d, want %d", round, m.EventID, m.Attempts, want[m.EventID])
			}
			switch rng.IntN(3) {
			case 0:
				ack = append(ack, m.ID)
				delete(want, m.EventID)
			case 1:
				nack = append(nack, m.ID)
				want[m.EventID]++
			default:
				want[m.EventID] += 0 // left in flight: redelivered after the restart, not counted
			}
		}
		if err := q.Ack(ctx, ack); err != nil {
			t.Fatal(err)
		}
		if err := q.Nack(ctx, nack); err != nil {
			t.Fatal(err)
		}
		q.Close()
		q = open(t, dir, opts)
		if s, _ := q.Stats(ctx); s.Length != int64(len(want)) {
			t.Fatalf("round %d: Length %d after restart, want %d", round, s.Length, len(want))
		}
		pending := map[string]bool{}
		if err := q.PendingEventIDs(ctx, func(id string) { pending[id] = true }); err != nil {
			t.Fatal(err)
		}
		if len(pending) != len(want) {
			t.Fatalf("round %d: PendingEventIDs gave %d ids, want %d", round, len(pending), len(want))
		}
		for id := range want {
			if !pending[id] {
				t.Fatalf("round %d: %s missing from PendingEventIDs", round, id)
			}
		}
	}
	// Finish: everything left comes back once, then the log shrinks to its head.
	msgs := drain(t, q, 1000)
	if len(msgs) != len(want) {
		t.Fatalf("final drain %d messages, want %d", len(msgs), len(want))
	}
	if err := q.Ack(ctx, msgIDs(msgs)); err != nil {
		t.Fatal(err)
	}
	if files, _ := q.Segments(); files != 1 {
		t.Errorf("%d segment files after acknowledging everything, want 1", files)
	}
}

// Workers that fall more than maxFresh entries behind read them back from the files, in
// order and each once, across segment boundaries.
func TestFallingBehindReadsTheFiles(t *testing.T) {
	q := open(t, t.TempDir(), Options{SegmentSize: 1 << 20, NoFsync: true})
	mustEnqueue(t, q, entriesN("warm", 1, 10))
	warm := drain(t, q, 10) // caught up: new entries are now handed over in memory
	var es []queue.Entry
	for i := range (maxFresh + 20000) / 1000 {
		batch := entriesN(fmt.Sprintf("b%03d", i), 1000, 50)
		mustEnqueue(t, q, batch)
		es = append(es, batch...)
	}
	if files, _ := q.Segments(); files < 3 {
		t.Fatalf("%d segments, want the backlog to span several", files)
	}
	got := drain(t, q, 700)
	checkEntries(t, got, es)
	if got[0].ID != warm[0].ID+1 {
		t.Errorf("first backlog id %d, want %d", got[0].ID, warm[0].ID+1)
	}
	// Caught up again: the next entry arrives without a read.
	mustEnqueue(t, q, entriesN("next", 1, 10))
	if next := drain(t, q, 10); len(next) != 1 || next[0].ID != got[len(got)-1].ID+1 {
		t.Fatalf("after catching up got %v", msgIDs(next))
	}
}

// An entry larger than the read chunk is read back whole.
func TestLargeEntry(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{})
	big := queue.Entry{EventID: "big", Data: bytes.Repeat([]byte("0123456789"), 300_000)}
	es := []queue.Entry{{EventID: "small-1", Data: []byte("a")}, big, {EventID: "small-2", Data: []byte("b")}}
	mustEnqueue(t, q, es)
	q.Close()
	q = open(t, dir, Options{})
	checkEntries(t, drain(t, q, 10), es)
}

// The lock file and the segments live in the directory Open was given, which it creates.
func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buffer")
	q := open(t, dir, Options{})
	mustEnqueue(t, q, entriesN("d", 1, 1))
	if _, err := os.Stat(filepath.Join(dir, "buffer.lock")); err != nil {
		t.Error(err)
	}
	if segs, _ := listSegments(dir); len(segs) != 1 || segs[0].firstID != 1 {
		t.Errorf("segments %v, want one starting at id 1", segs)
	}
}

// The decoded event an entry carries goes to the worker with the message while it is handed
// over in memory; read back from the files after a restart, the message has only Data.
func TestEventHandedOverInMemory(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{})
	ev := &event.Event{EventID: "mem-1", EventType: "click"}
	drain(t, q, 1) // caught up: the next entry is handed over in memory
	mustEnqueue(t, q, []queue.Entry{{EventID: "mem-1", Data: []byte("{}"), Event: ev}})
	got := drain(t, q, 10)
	if len(got) != 1 || got[0].Event != ev {
		t.Fatalf("fetched %+v, want the entry with its event", got)
	}
	q.Close()
	q = open(t, dir, Options{})
	again := drain(t, q, 10)
	if len(again) != 1 || again[0].Event != nil || string(again[0].Data) != "{}" {
		t.Fatalf("after restart fetched %+v, want the entry with Data only", again)
	}
}
