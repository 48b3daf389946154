package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingRepo counts key lookups and can run a function in the middle of one (after the
// repository answered, before KeyAuth caches the answer).
type countingRepo struct {
	*Store
	lookups atomic.Int64
	during  func()
}

func (r *countingRepo) LookupAPIKey(ctx context.Context, h [32]byte) (APIKey, error) {
	r.lookups.Add(1)
	k, err := r.Store.LookupAPIKey(ctx, h)
	if r.during != nil {
		r.during()
	}
	return k, err
}

func newCountingAuth(t *testing.T, ttl time.Duration) (*KeyAuth, *countingRepo, *fakeClock) {
	t.Helper()
	r := &countingRepo{Store: openStore(t, t.TempDir())}
	c := &fakeClock{t: time.Now()}
	a := NewKeyAuth(r, ttl)
	a.now = c.now
	return a, r, c
}

func TestKeyAuthCachesOnePerTTL(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Minute
	a, r, clock := newCountingAuth(t, ttl)
	plain, _ := createKey(t, r.Store, "k", nil)
	for range 3 {
		if _, err := a.Authenticate(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.lookups.Load(); n != 1 {
		t.Errorf("3 authentications within the TTL: %d lookups, want 1", n)
	}
	clock.t = clock.t.Add(ttl + time.Second)
	if _, err := a.Authenticate(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if n := r.lookups.Load(); n != 2 {
		t.Errorf("after the TTL: %d lookups, want 2", n)
	}

	// An unknown key is remembered as unknown for a twelfth of the TTL.
	unknown := testPrefix + "unknown"
	for range 2 {
		if _, err := a.Authenticate(ctx, unknown); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Authenticate(unknown) = %v, want ErrInvalidKey", err)
		}
	}
	if n := r.lookups.Load(); n != 3 {
		t.Errorf("2 authentications of an unknown key: %d lookups in all, want 3", n)
	}
	clock.t = clock.t.Add(ttl/12 + time.Second)
	_, _ = a.Authenticate(ctx, unknown)
	if n := r.lookups.Load(); n != 4 {
		t.Errorf("unknown key after a twelfth of the TTL: %d lookups in all, want 4", n)
	}
	// Forget drops both kinds.
	a.Forget()
	_, _ = a.Authenticate(ctx, plain)
	_, _ = a.Authenticate(ctx, unknown)
	if n := r.lookups.Load(); n != 6 {
		t.Errorf("after Forget: %d lookups in all, want 6", n)
	}
}

func TestKeyAuthHitAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	a, r, _ := newCountingAuth(t, time.Minute)
	plain, _ := createKey(t, r.Store, "k", nil)
	if _, err := a.Authenticate(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = a.Authenticate(ctx, plain) }); n != 0 {
		t.Errorf("a cached key's authentication allocates %v times, want 0", n)
	}
}

// A Forget while a lookup is under way (a revoke in this process) must not be undone by
// the lookup caching what it read before the revoke.
func TestKeyAuthForgetDuringLookup(t *testing.T) {
	ctx := context.Background()
	a, r, _ := newCountingAuth(t, time.Hour)
	plain, k := createKey(t, r.Store, "k", nil)
	r.during = func() {
		r.during = nil
		if err := r.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
			t.Error(err)
		}
		a.Forget()
	}
	if _, err := a.Authenticate(ctx, plain); err != nil {
		t.Fatalf("Authenticate begun before the revoke: %v", err)
	}
	if _, err := a.Authenticate(ctx, plain); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Authenticate after the revoke and Forget = %v, want ErrInvalidKey", err)
	}
}

func TestKeyAuthSuspendedOwner(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Minute
	a, r, clock := newCountingAuth(t, ttl)
	u := User{ID: "usr_1", Email: "a@example.com", Role: RoleAPIClient, Status: StatusActive, CreatedAt: time.Now()}
	if err := r.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	plain, _, err := CreateAPIKey(ctx, r, NewKey{Name: "owned", Prefix: testPrefix, OwnerID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, plain); err != nil {
		t.Fatalf("Authenticate(key of an active user): %v", err)
	}
	sus := StatusSuspended
	if _, err := r.UpdateUser(ctx, u.ID, UserChange{Status: &sus}); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(ttl + time.Second)
	if _, err := a.Authenticate(ctx, plain); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Authenticate(key of a suspended user) after the TTL = %v, want ErrInvalidKey", err)
	}
}

// Uses recorded before the cache entry is refreshed or forgotten are still flushed.
// use authenticates plain and marks the key used, as a request let through does.
func use(t *testing.T, a *KeyAuth, plain string) {
	t.Helper()
	k, err := a.Authenticate(context.Background(), plain)
	if err != nil {
		t.Fatal(err)
	}
	a.MarkUsed(k)
}

func TestKeyAuthUsageOutlivesCacheEntries(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Minute
	a, r, clock := newCountingAuth(t, ttl)
	plain, k := createKey(t, r.Store, "k", nil)
	other, ko := createKey(t, r.Store, "other", nil)

	clock.t = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	used := clock.t
	use(t, a, plain)
	use(t, a, other)
	a.Forget()
	if err := r.RevokeAPIKey(ctx, k.ID, clock.t); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(ttl + time.Second)
	if _, err := a.Authenticate(ctx, plain); !errors.Is(err, ErrInvalidKey) { // refreshed: revoked now
		t.Fatalf("Authenticate(revoked) = %v", err)
	}
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{k.ID, ko.ID} {
		if got := findKey(t, r.Store, id).LastUsedAt; got == nil || !got.Equal(used) {
			t.Errorf("key %s: LastUsedAt = %v, want %v", id, got, used)
		}
	}
	// Nothing new since: the next flush writes nothing and drops the idle cells no cached
	// key points at (other's, forgotten); a later use of it is recorded afresh.
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	_, kept := a.used[ko.ID]
	a.mu.Unlock()
	if kept {
		t.Error("the usage cell of a key no longer cached was kept after an idle flush")
	}
	clock.t = clock.t.Add(time.Hour)
	use(t, a, other)
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := findKey(t, r.Store, ko.ID).LastUsedAt; got == nil || !got.Equal(clock.t) {
		t.Errorf("LastUsedAt after a use an hour later = %v, want %v", got, clock.t)
	}
}

func TestKeyAuthConcurrent(t *testing.T) {
	ctx := context.Background()
	r := &countingRepo{Store: openStore(t, t.TempDir())}
	a := NewKeyAuth(r, time.Minute)
	plain, k := createKey(t, r.Store, "k", nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				got, err := a.Authenticate(ctx, plain)
				if err != nil {
					t.Error(err)
					return
				}
				a.MarkUsed(got)
				if _, err := a.Authenticate(ctx, testPrefix+"nope"); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("unknown key: %v", err)
					return
				}
				switch {
				case g == 0 && i%20 == 0:
					a.Forget()
				case g == 1 && i%50 == 0:
					if err := a.FlushUsage(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if findKey(t, r.Store, k.ID).LastUsedAt == nil {
		t.Error("no last use recorded")
	}
}

func TestCheckOrigins(t *testing.T) {
	got, err := CheckOrigins([]string{"https://Shop.Example", " http://localhost:8080/ ", "https://shop.example"})
	if err != nil || !slices.Equal(got, []string{"https://shop.example", "http://localhost:8080"}) {
		t.Errorf("CheckOrigins = %q, %v", got, err)
	}
	for _, bad := range []string{"shop.example", "ftp://shop.example", "https://shop.example/path", "https://", "https://u:p@shop.example", "https://a.example?x=1"} {
		if _, err := CheckOrigins([]string{bad}); err == nil {
			t.Errorf("CheckOrigins accepted %q", bad)
		}
	}
	many := make([]string, MaxOrigins+1)
	for i := range many {
		many[i] = fmt.Sprintf("https://s%d.example", i)
	}
	if _, err := CheckOrigins(many); err == nil {
		t.Errorf("CheckOrigins accepted %d origins", len(many))
	}
	k := APIKey{AllowedOrigins: []string{"https://shop.example"}}
	if !k.AllowsOrigin("https://shop.example") || !k.AllowsOrigin("") || k.AllowsOrigin("https://evil.example") {
		t.Error("AllowsOrigin: want the listed origin and requests without one, not others")
	}
	if any := (APIKey{}); !any.AllowsOrigin("https://evil.example") {
		t.Error("a key without origins refused an origin")
	}
}
