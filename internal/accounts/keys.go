package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
)

// HashKey returns the SHA-256 of a plain key, the only form in which keys are stored.
func HashKey(plain string) [32]byte {
	var buf [64]byte // a key of evp's form fits: hashed without allocating
	return sha256.Sum256(append(buf[:0], plain...))
}

// GenerateKey returns a new random key: prefix + 32 random bytes in base64url.
func GenerateKey(prefix string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("accounts: random key: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// NewKey describes a key to create.
type NewKey struct {
	Name      string
	Prefix    string // API_KEY_PREFIX
	OwnerID   string // empty: no owner
	ExpiresAt *time.Time
	// IngestOnly makes a key that may only send events.
	IngestOnly bool
	// AllowedOrigins limits the web origins browsers may send from; see CheckOrigins.
	AllowedOrigins []string
}

// MaxOrigins bounds a key's allowed origins.
const MaxOrigins = 20

// CheckOrigins returns origins as evp keeps them: each an origin as browsers send it in the
// Origin header, "scheme://host[:port]" with scheme http or https, lower-cased, without a
// path; at most MaxOrigins, without repeats. The error says which one is wrong and why.
func CheckOrigins(origins []string) ([]string, error) {
	if len(origins) > MaxOrigins {
		return nil, fmt.Errorf("at most %d origins, got %d", MaxOrigins, len(origins))
	}
	out := make([]string, 0, len(origins))
	for _, o := range origins {
		u, err := url.Parse(strings.TrimSpace(o))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || len(o) > 200 {
			return nil, fmt.Errorf("%.200q is not an origin such as https://shop.example or http://localhost:8080", o)
		}
		norm := strings.ToLower(u.Scheme + "://" + u.Host)
		if !slices.Contains(out, norm) {
			out = append(out, norm)
		}
	}
	return out, nil
}

// MaxKeyNameLen bounds a key's name.
const MaxKeyNameLen = 100

// CreateAPIKey stores a new key in repo and returns it in plain text, the only time it is
// seen.
func CreateAPIKey(ctx context.Context, repo Repository, nk NewKey) (string, APIKey, error) {
	name := strings.TrimSpace(nk.Name)
	if name == "" {
		return "", APIKey{}, errors.New("accounts: a key needs a name")
	}
	if len(name) > MaxKeyNameLen {
		return "", APIKey{}, fmt.Errorf("accounts: a key name has at most %d characters", MaxKeyNameLen)
	}
	origins, err := CheckOrigins(nk.AllowedOrigins)
	if err != nil {
		return "", APIKey{}, fmt.Errorf("accounts: allowed origins: %w", err)
	}
	plain, err := GenerateKey(nk.Prefix)
	if err != nil {
		return "", APIKey{}, err
	}
	k := APIKey{
		ID:         "key_" + ulid.Make().String(),
		Name:       name,
		Prefix:     plain[:len(nk.Prefix)+4],
		Last4:      plain[len(plain)-4:],
		OwnerID:    nk.OwnerID,
		CreatedAt:  time.Now().UTC().Truncate(time.Millisecond),
		ExpiresAt:  nk.ExpiresAt,
		IngestOnly: nk.IngestOnly,
	}
	if len(origins) > 0 { // nil for none, as a key read back has
		k.AllowedOrigins = origins
	}
	if err := repo.InsertAPIKey(ctx, k, HashKey(plain)); err != nil {
		return "", APIKey{}, err
	}
	return plain, k, nil
}

// KeyAuth authenticates ingestion keys with a cache in front of the repository, so that the
// hot path costs one hash, one map lookup without a lock and one atomic store. A revoked or
// expired key, or a key whose owner was suspended, stops working within the cache TTL
// (60 s) on every replica, and at once in the process that revoked it or changed its
// owner's status (Forget).
type KeyAuth struct {
	repo Repository
	ttl  time.Duration
	now  func() time.Time

	// found is the cache of keys the repository knows, read without a lock. It is a
	// snapshot replaced, never changed: a writer copies it under mu. Only keys that exist
	// are in it, so it stays small and a copy is cheap.
	found atomic.Pointer[map[[32]byte]*cachedKey]

	mu sync.Mutex
	// missing holds hashes the repository did not know, until when they are trusted.
	missing map[[32]byte]time.Time
	// used holds, per key id, the last use not yet flushed (Unix nanoseconds, 0 for none).
	// Cached keys point at their id's cell, which outlives the cache entries, so that a
	// refresh or a Forget loses no use.
	used map[string]*atomic.Int64
	// forgets counts Forget calls, so that a lookup begun before one does not cache what
	// it read.
	forgets uint64
}

type cachedKey struct {
	key     APIKey // key.used is its id's cell in KeyAuth.used
	expires time.Time
}

// maxCachedMisses bounds the negative cache so that random keys cannot grow memory.
const maxCachedMisses = 10000

// NewKeyAuth returns an authenticator over repo with the given cache TTL.
func NewKeyAuth(repo Repository, ttl time.Duration) *KeyAuth {
	a := &KeyAuth{repo: repo, ttl: ttl, now: time.Now, missing: map[[32]byte]time.Time{}, used: map[string]*atomic.Int64{}}
	a.found.Store(&map[[32]byte]*cachedKey{})
	return a
}

// Authenticate returns the key's description, or ErrInvalidKey for an unknown, revoked or
// expired key. Other errors mean the store could not be asked. It does not count as a use
// of the key: the caller calls MarkUsed once it has let the request through, so that a
// refused request leaves the key's last use as it was. Safe for concurrent use; a key found
// in the cache costs no lock and no allocation.
func (a *KeyAuth) Authenticate(ctx context.Context, plain string) (APIKey, error) {
	h := HashKey(plain)
	now := a.now()
	c := (*a.found.Load())[h]
	if c == nil || now.After(c.expires) {
		var err error
		if c, err = a.lookup(ctx, h, now); err != nil {
			return APIKey{}, err
		}
	}
	if c == nil || !c.key.Usable(now) {
		return APIKey{}, ErrInvalidKey
	}
	return c.key, nil
}

// MarkUsed records a use of k, a key Authenticate returned, now; FlushUsage writes it.
func (a *KeyAuth) MarkUsed(k APIKey) {
	if k.used != nil {
		k.used.Store(a.now().UnixNano())
	}
}

// lookup asks the repository for the key with hash h (unless it is cached as missing) and
// caches the answer; nil for a key the repository does not know.
func (a *KeyAuth) lookup(ctx context.Context, h [32]byte, now time.Time) (*cachedKey, error) {
	a.mu.Lock()
	until, miss := a.missing[h]
	forgets := a.forgets
	a.mu.Unlock()
	if miss && !now.After(until) {
		return nil, nil
	}
	k, err := a.repo.LookupAPIKey(ctx, h)
	if err != nil && !errors.Is(err, ErrKeyNotFound) {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	stale := a.forgets != forgets // a Forget meanwhile: use the answer, keep nothing
	old := *a.found.Load()
	if errors.Is(err, ErrKeyNotFound) {
		if !stale {
			if len(a.missing) >= maxCachedMisses {
				clear(a.missing)
			}
			a.missing[h] = now.Add(a.ttl / 12)
		}
		if _, ok := old[h]; ok {
			a.replace(old, h, nil)
		}
		return nil, nil
	}
	cell := a.used[k.ID]
	if cell == nil {
		cell = new(atomic.Int64)
		a.used[k.ID] = cell
	}
	k.used = cell
	c := &cachedKey{key: k, expires: now.Add(a.ttl)}
	if !stale {
		delete(a.missing, h)
		a.replace(old, h, c)
	}
	return c, nil
}

// replace stores a copy of old with h set to c (or removed for nil) as the found cache.
// Called with mu held.
func (a *KeyAuth) replace(old map[[32]byte]*cachedKey, h [32]byte, c *cachedKey) {
	m := make(map[[32]byte]*cachedKey, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if c == nil {
		delete(m, h)
	} else {
		m[h] = c
	}
	a.found.Store(&m)
}

// Forget drops every cached key (after a revoke in this process). Uses not yet flushed are
// kept.
func (a *KeyAuth) Forget() {
	a.mu.Lock()
	a.forgets++
	a.found.Store(&map[[32]byte]*cachedKey{})
	clear(a.missing)
	a.mu.Unlock()
}

// FlushUsage writes the last-used times gathered since the previous flush. Called
// periodically, so that authentication itself never writes. Times it fails to write are
// not written later.
func (a *KeyAuth) FlushUsage(ctx context.Context) error {
	used := map[string]time.Time{}
	a.mu.Lock()
	var cached map[string]bool
	for id, cell := range a.used {
		if n := cell.Swap(0); n != 0 {
			used[id] = time.Unix(0, n)
			continue
		}
		// Unused since the last flush: forget the cell unless a cached key points at it.
		if cached == nil {
			cached = map[string]bool{}
			for _, c := range *a.found.Load() {
				cached[c.key.ID] = true
			}
		}
		if !cached[id] {
			delete(a.used, id)
		}
	}
	a.mu.Unlock()
	if len(used) == 0 {
		return nil
	}
	return a.repo.TouchAPIKeys(ctx, used)
}
