package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// HashKey returns the SHA-256 of a plain key, the only form in which keys are stored.
func HashKey(plain string) [32]byte { return sha256.Sum256([]byte(plain)) }

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
	plain, err := GenerateKey(nk.Prefix)
	if err != nil {
		return "", APIKey{}, err
	}
	k := APIKey{
		ID:        "key_" + ulid.Make().String(),
		Name:      name,
		Prefix:    plain[:len(nk.Prefix)+4],
		Last4:     plain[len(plain)-4:],
		OwnerID:   nk.OwnerID,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		ExpiresAt: nk.ExpiresAt,
	}
	if err := repo.InsertAPIKey(ctx, k, HashKey(plain)); err != nil {
		return "", APIKey{}, err
	}
	return plain, k, nil
}

// KeyAuth authenticates ingestion keys with a cache in front of the repository, so that the
// hot path costs one hash and one map lookup. A revoked or expired key, or a key whose owner
// was suspended, stops working within the cache TTL (60 s) on every replica.
type KeyAuth struct {
	repo Repository
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cachedKey
	used  map[string]time.Time
}

type cachedKey struct {
	key     APIKey
	found   bool
	expires time.Time
}

// maxCachedMisses bounds the negative cache so that random keys cannot grow memory.
const maxCachedMisses = 10000

// NewKeyAuth returns an authenticator over repo with the given cache TTL.
func NewKeyAuth(repo Repository, ttl time.Duration) *KeyAuth {
	return &KeyAuth{repo: repo, ttl: ttl, now: time.Now, cache: map[[32]byte]cachedKey{}, used: map[string]time.Time{}}
}

// Authenticate returns the key's description, or ErrInvalidKey for an unknown, revoked or
// expired key. Other errors mean the store could not be asked.
func (a *KeyAuth) Authenticate(ctx context.Context, plain string) (APIKey, error) {
	h := HashKey(plain)
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[h]
	a.mu.Unlock()
	if !ok || now.After(c.expires) {
		k, err := a.repo.LookupAPIKey(ctx, h)
		switch {
		case err == nil:
			c = cachedKey{key: k, found: true, expires: now.Add(a.ttl)}
		case errors.Is(err, ErrKeyNotFound):
			c = cachedKey{expires: now.Add(a.ttl / 12)}
		default:
			return APIKey{}, err
		}
		a.mu.Lock()
		if !c.found && len(a.cache) >= maxCachedMisses {
			clear(a.cache)
		}
		a.cache[h] = c
		a.mu.Unlock()
	}
	if !c.found || !c.key.Usable(now) {
		return APIKey{}, ErrInvalidKey
	}
	a.mu.Lock()
	a.used[c.key.ID] = now
	a.mu.Unlock()
	return c.key, nil
}

// Forget drops every cached key (after a revoke in this process).
func (a *KeyAuth) Forget() {
	a.mu.Lock()
	clear(a.cache)
	a.mu.Unlock()
}

// FlushUsage writes the last-used times gathered since the previous flush. Called
// periodically, so that authentication itself never writes.
func (a *KeyAuth) FlushUsage(ctx context.Context) error {
	a.mu.Lock()
	used := a.used
	a.used = map[string]time.Time{}
	a.mu.Unlock()
	if len(used) == 0 {
		return nil
	}
	return a.repo.TouchAPIKeys(ctx, used)
}
