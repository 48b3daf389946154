package accounts

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testPrefix = "evp_test_"

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func createKey(t *testing.T, s *Store, name string, expiresAt *time.Time) (string, APIKey) {
	t.Helper()
	plain, k, err := s.CreateAPIKey(context.Background(), name, testPrefix, expiresAt)
	if err != nil {
		t.Fatalf("CreateAPIKey(%q): %v", name, err)
	}
	return plain, k
}

func TestGenerateKeyFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		k, err := GenerateKey(testPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k, testPrefix) || len(k) != len(testPrefix)+43 {
			t.Fatalf("GenerateKey = %q (%d chars), want %q + 43 chars", k, len(k), testPrefix)
		}
		raw, err := base64.RawURLEncoding.DecodeString(k[len(testPrefix):])
		if err != nil || len(raw) != 32 {
			t.Fatalf("GenerateKey = %q: secret is not 32 bytes of base64url (%d bytes, %v)", k, len(raw), err)
		}
		if seen[k] {
			t.Fatalf("GenerateKey repeated %q", k)
		}
		seen[k] = true
	}
}

func TestCreateListRevoke(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())

	if _, _, err := s.CreateAPIKey(ctx, "   ", testPrefix, nil); err == nil {
		t.Error("CreateAPIKey with a blank name succeeded")
	}

	before := time.Now().Truncate(time.Millisecond)
	plain, k := createKey(t, s, "  ingest prod  ", nil)
	after := time.Now()
	if !strings.HasPrefix(plain, testPrefix) || len(plain) != len(testPrefix)+43 {
		t.Fatalf("plain key %q (%d chars), want %q + 43 chars", plain, len(plain), testPrefix)
	}
	if k.Name != "ingest prod" {
		t.Errorf("Name = %q, want the trimmed %q", k.Name, "ingest prod")
	}
	if !strings.HasPrefix(k.ID, "key_") || len(k.ID) != len("key_")+26 {
		t.Errorf("ID = %q, want key_ + a ULID", k.ID)
	}
	if k.Prefix != plain[:len(testPrefix)+4] || k.Last4 != plain[len(plain)-4:] {
		t.Errorf("Prefix, Last4 = %q, %q; want %q, %q", k.Prefix, k.Last4, plain[:len(testPrefix)+4], plain[len(plain)-4:])
	}
	if k.CreatedAt.Before(before) || k.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want between %v and %v", k.CreatedAt, before, after)
	}
	if k.LastUsedAt != nil || k.ExpiresAt != nil || k.RevokedAt != nil {
		t.Errorf("new key has LastUsedAt %v ExpiresAt %v RevokedAt %v, want all nil", k.LastUsedAt, k.ExpiresAt, k.RevokedAt)
	}

	exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Millisecond)
	plain2, k2 := createKey(t, s, "expiring", &exp)
	_, k3 := createKey(t, s, "third", nil)
	if plain2 == plain {
		t.Fatal("two keys with the same secret")
	}

	keys, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	if len(keys) != 3 {
		t.Fatalf("ListAPIKeys returned %d keys, want 3", len(keys))
	}
	for i, want := range []APIKey{k3, k2, k} { // newest first
		got := keys[i]
		if got.ID != want.ID || got.Name != want.Name || got.Prefix != want.Prefix || got.Last4 != want.Last4 ||
			!got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("key %d = %+v, want %+v", i, got, want)
		}
	}
	if keys[1].ExpiresAt == nil || !keys[1].ExpiresAt.Equal(exp) {
		t.Errorf("ExpiresAt = %v, want %v", keys[1].ExpiresAt, exp)
	}
	if keys[0].ExpiresAt != nil || keys[2].ExpiresAt != nil {
		t.Errorf("keys without expiry listed with ExpiresAt %v, %v", keys[0].ExpiresAt, keys[2].ExpiresAt)
	}

	if err := s.RevokeAPIKey(ctx, k2.ID, time.Now()); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	first := revokedAt(t, s, k2.ID)
	if first == nil {
		t.Fatal("revoked key listed without RevokedAt")
	}
	time.Sleep(5 * time.Millisecond) // so that a second revoke would record a later time
	if err := s.RevokeAPIKey(ctx, k2.ID, time.Now()); err != nil {
		t.Fatalf("second RevokeAPIKey: %v", err)
	}
	if again := revokedAt(t, s, k2.ID); again == nil || !again.Equal(*first) {
		t.Errorf("RevokedAt after a second revoke = %v, want the first %v", again, first)
	}
	if got := revokedAt(t, s, k.ID); got != nil {
		t.Errorf("other key revoked too: %v", got)
	}
	if err := s.RevokeAPIKey(ctx, "key_nope", time.Now()); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("RevokeAPIKey(unknown) = %v, want ErrKeyNotFound", err)
	}
}

func revokedAt(t *testing.T, s *Store, id string) *time.Time {
	t.Helper()
	k := findKey(t, s, id)
	return k.RevokedAt
}

func findKey(t *testing.T, s *Store, id string) APIKey {
	t.Helper()
	keys, err := s.ListAPIKeys(context.Background())
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	for _, k := range keys {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("key %s not listed", id)
	return APIKey{}
}

func TestPlainKeyNeverStored(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	var plains []string
	for _, name := range []string{"a", "b", "c"} {
		plain, _ := createKey(t, s, name, nil)
		plains = append(plains, plain)
	}
	scan := func(when string) {
		t.Helper()
		files, err := filepath.Glob(filepath.Join(dir, "accounts.db*")) // the database, its WAL and shm
		if err != nil || len(files) == 0 {
			t.Fatalf("no database files in %s (%v)", dir, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range plains {
				secret := p[len(testPrefix):]
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s: %s holds the plain key %s", when, filepath.Base(f), p)
				}
				if h := HashKey(p); !bytes.Contains(b, h[:]) && filepath.Base(f) == "accounts.db" && when == "after close" {
					t.Errorf("%s: accounts.db lacks the hash of %s: is the scan reading the right file?", when, p)
				}
			}
		}
	}
	scan("while open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("after close") // the WAL is checkpointed into accounts.db now
}

func TestSecondProcessSeesKeys(t *testing.T) {
	dir := t.TempDir()
	a := openStore(t, dir)
	b := openStore(t, dir) // the server and `evp apikey` at once
	_, k := createKey(t, a, "shared", nil)
	got := findKey(t, b, k.ID)
	if got.Name != "shared" {
		t.Errorf("second handle sees %+v", got)
	}
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newAuth(s *Store, ttl time.Duration) (*KeyAuth, *fakeClock) {
	c := &fakeClock{t: time.Now()}
	a := NewKeyAuth(s, ttl)
	a.now = c.now
	return a, c
}

func TestKeyAuth(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	const ttl = time.Minute
	a, clock := newAuth(s, ttl)
	plain, k := createKey(t, s, "good", nil)

	got, err := a.Authenticate(ctx, plain)
	if err != nil {
		t.Fatalf("Authenticate(good key): %v", err)
	}
	if got.ID != k.ID || got.Name != "good" {
		t.Errorf("Authenticate returned %+v, want key %s", got, k.ID)
	}

	for _, bad := range []string{"", testPrefix, plain + "x", plain[:len(plain)-1], testPrefix + strings.Repeat("A", 43)} {
		if _, err := a.Authenticate(ctx, bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Authenticate(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}

	if err := s.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Within the cache TTL the revoke may not be seen yet: that is the documented trade.
	clock.t = clock.t.Add(ttl + time.Second)
	if _, err := a.Authenticate(ctx, plain); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Authenticate(revoked key) after the cache TTL = %v, want ErrInvalidKey", err)
	}
}

func TestKeyAuthForget(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	a, _ := newAuth(s, time.Hour)
	plain, k := createKey(t, s, "k", nil)
	if _, err := a.Authenticate(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	a.Forget()
	if _, err := a.Authenticate(ctx, plain); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Authenticate(revoked key) after Forget = %v, want ErrInvalidKey", err)
	}
}

func TestKeyAuthExpiry(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	a, clock := newAuth(s, time.Hour) // expiry applies even to a cached key
	exp := clock.t.Add(10 * time.Minute)
	plain, _ := createKey(t, s, "expiring", &exp)
	if _, err := a.Authenticate(ctx, plain); err != nil {
		t.Fatalf("Authenticate before expiry: %v", err)
	}
	clock.t = exp.Add(time.Millisecond)
	if _, err := a.Authenticate(ctx, plain); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Authenticate after expiry = %v, want ErrInvalidKey", err)
	}

	past := clock.t.Add(-time.Second)
	expired, _ := createKey(t, s, "born expired", &past)
	if _, err := a.Authenticate(ctx, expired); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Authenticate(expired key) = %v, want ErrInvalidKey", err)
	}
}

func TestKeyAuthStoreError(t *testing.T) {
	s := openStore(t, t.TempDir())
	a, _ := newAuth(s, time.Minute)
	s.Close()
	_, err := a.Authenticate(context.Background(), testPrefix+"whatever")
	if err == nil || errors.Is(err, ErrInvalidKey) {
		t.Errorf("Authenticate with the store closed = %v, want a store error, not ErrInvalidKey", err)
	}
}

func TestFlushUsage(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	a, clock := newAuth(s, time.Minute)
	plain, k := createKey(t, s, "used", nil)
	_, idle := createKey(t, s, "idle", nil)

	if err := a.FlushUsage(ctx); err != nil {
		t.Fatalf("FlushUsage with nothing used: %v", err)
	}
	clock.t = time.Date(2026, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	// A key that authenticates but whose request is refused is not used.
	if _, err := a.Authenticate(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := findKey(t, s, k.ID).LastUsedAt; got != nil {
		t.Errorf("LastUsedAt after Authenticate without MarkUsed = %v, want nil", got)
	}
	got, err := a.Authenticate(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	a.MarkUsed(got)
	// Marking a use does not write.
	if got := findKey(t, s, k.ID).LastUsedAt; got != nil {
		t.Errorf("LastUsedAt before FlushUsage = %v, want nil", got)
	}
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatalf("FlushUsage: %v", err)
	}
	if got := findKey(t, s, k.ID).LastUsedAt; got == nil || !got.Equal(clock.t) {
		t.Errorf("LastUsedAt = %v, want %v", got, clock.t)
	}
	if got := findKey(t, s, idle.ID).LastUsedAt; got != nil {
		t.Errorf("unused key has LastUsedAt %v", got)
	}

	// A later use moves it forward; an earlier one (a flush out of order) does not move it back.
	first := clock.t
	clock.t = first.Add(time.Hour)
	if got, err = a.Authenticate(ctx, plain); err != nil {
		t.Fatal(err)
	}
	a.MarkUsed(got)
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := findKey(t, s, k.ID).LastUsedAt; got == nil || !got.Equal(clock.t) {
		t.Errorf("LastUsedAt after a later use = %v, want %v", got, clock.t)
	}
	later := clock.t
	if err := s.TouchAPIKeys(ctx, map[string]time.Time{k.ID: first}); err != nil {
		t.Fatal(err)
	}
	if got := findKey(t, s, k.ID).LastUsedAt; got == nil || !got.Equal(later) {
		t.Errorf("LastUsedAt after an older touch = %v, want %v kept", got, later)
	}
}
