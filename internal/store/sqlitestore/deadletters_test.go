package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store"
)

// addLetters dead-letters n entries, one transaction each so that ids follow the order,
// and returns them as written (the oldest first).
func addLetters(t *testing.T, s *Store, n int) []store.DeadLetter {
	t.Helper()
	var out []store.DeadLetter
	for i := range n {
		l := store.DeadLetter{EventID: fmt.Sprintf("evt_%03d", i), Data: []byte(fmt.Sprintf(`{"eventId":"evt_%03d"}`, i)),
			Error: fmt.Sprintf("failure %d", i), Attempts: i%3 + 1, FailedAt: base.Add(time.Duration(i) * time.Second)}
		if i%4 == 3 {
			l.EventID, l.Data = "", []byte{0xff, 'x', byte(i)} // an undecodable entry has no event id
		}
		if err := s.DeadLetter(context.Background(), []store.DeadLetter{l}); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func listAll(t *testing.T, s *Store, limit int) (letters []store.StoredDeadLetter, pages int) {
	t.Helper()
	cursor := ""
	for {
		page, next, err := s.ListDeadLetters(context.Background(), cursor, limit)
		if err != nil {
			t.Fatalf("ListDeadLetters(%q, %d): %v", cursor, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("page of %d letters, limit %d", len(page), limit)
		}
		pages++
		letters = append(letters, page...)
		if next == "" {
			return letters, pages
		}
		if len(page) != limit {
			t.Fatalf("short page (%d of %d) with a next cursor %q", len(page), limit, next)
		}
		cursor = next
	}
}

func sameLetter(got store.StoredDeadLetter, want store.DeadLetter) bool {
	return got.EventID == want.EventID && string(got.Data) == string(want.Data) && got.Error == want.Error &&
		got.Attempts == want.Attempts && got.FailedAt.Equal(want.FailedAt)
}

func TestDeadLettersListNewestFirstInPages(t *testing.T) {
	s := openStore(t, t.TempDir())
	if got, next, err := s.ListDeadLetters(context.Background(), "", 10); err != nil || len(got) != 0 || next != "" {
		t.Fatalf("empty queue: %v %q %v", got, next, err)
	}
	written := addLetters(t, s, 23)
	for _, limit := range []int{1, 5, 10, 23, 100} {
		got, pages := listAll(t, s, limit)
		if len(got) != len(written) {
			t.Fatalf("limit %d: %d letters, want %d", limit, len(got), len(written))
		}
		if want := (len(written) + limit - 1) / limit; pages != want {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, want)
		}
		for i, l := range got {
			if w := written[len(written)-1-i]; !sameLetter(l, w) {
				t.Fatalf("limit %d: letter %d = %+v, want %+v", limit, i, l, w)
			}
		}
		ids := map[string]bool{}
		for _, l := range got {
			if l.ID == "" || ids[l.ID] {
				t.Fatalf("limit %d: id %q empty or repeated", limit, l.ID)
			}
			ids[l.ID] = true
		}
	}
}

func TestDeadLetterGetAndDelete(t *testing.T) {
	s := openStore(t, t.TempDir())
	written := addLetters(t, s, 6)
	all, _ := listAll(t, s, 100)
	ctx := context.Background()
	for i, l := range all {
		got, err := s.GetDeadLetter(ctx, l.ID)
		if err != nil || got.ID != l.ID || !sameLetter(got, written[len(written)-1-i]) {
			t.Fatalf("GetDeadLetter(%s) = %+v, %v", l.ID, got, err)
		}
	}
	for _, bad := range []string{"", "0", "-1", "abc", "01", "999999", "1.0"} {
		if _, err := s.GetDeadLetter(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetDeadLetter(%q): %v, want ErrNotFound", bad, err)
		}
	}
	// Delete two that exist, one twice, and ids that do not exist.
	n, err := s.DeleteDeadLetters(ctx, []string{all[0].ID, all[3].ID, all[3].ID, "999999", "x"})
	if err != nil || n != 2 {
		t.Fatalf("DeleteDeadLetters = %d, %v; want 2", n, err)
	}
	if n, err := s.DeleteDeadLetters(ctx, []string{all[0].ID}); err != nil || n != 0 {
		t.Fatalf("second delete = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteDeadLetters(ctx, nil); err != nil || n != 0 {
		t.Fatalf("empty delete = %d, %v", n, err)
	}
	if _, err := s.GetDeadLetter(ctx, all[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted letter still found: %v", err)
	}
	left, _ := listAll(t, s, 2)
	var ids []string
	for _, l := range left {
		ids = append(ids, l.ID)
	}
	if want := []string{all[1].ID, all[2].ID, all[4].ID, all[5].ID}; !slices.Equal(ids, want) {
		t.Fatalf("left %v, want %v", ids, want)
	}
	if c, err := s.DeadLetterCount(ctx); err != nil || c != 4 {
		t.Fatalf("DeadLetterCount = %d, %v; want 4", c, err)
	}
}

// Deleting while paging (what replay-all does) neither skips nor repeats a letter.
func TestDeadLettersDeleteWhilePaging(t *testing.T) {
	s := openStore(t, t.TempDir())
	addLetters(t, s, 17)
	ctx := context.Background()
	seen := map[string]bool{}
	cursor := ""
	for {
		page, next, err := s.ListDeadLetters(ctx, cursor, 4)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range page {
			if seen[l.ID] {
				t.Fatalf("letter %s listed twice", l.ID)
			}
			seen[l.ID] = true
			ids = append(ids, l.ID)
		}
		if n, err := s.DeleteDeadLetters(ctx, ids); err != nil || n != len(ids) {
			t.Fatalf("delete %v = %d, %v", ids, n, err)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 17 {
		t.Fatalf("visited %d letters, want 17", len(seen))
	}
	if c, _ := s.DeadLetterCount(ctx); c != 0 {
		t.Fatalf("%d letters left", c)
	}
	// A cursor from before the deletions still works: the page after it is empty.
	if page, next, err := s.ListDeadLetters(ctx, "5", 4); err != nil || len(page) != 0 || next != "" {
		t.Fatalf("after deleting all: %v %q %v", page, next, err)
	}
}

func TestDeadLettersBadCursor(t *testing.T) {
	s := openStore(t, t.TempDir())
	addLetters(t, s, 2)
	for _, c := range []string{"abc", "0", "-3", "007", "1e3"} {
		if _, _, err := s.ListDeadLetters(context.Background(), c, 10); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("cursor %q: %v, want ErrInvalidCursor", c, err)
		}
	}
}
