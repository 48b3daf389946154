// Package accounts keeps API keys (and, later, users) and authenticates ingestion clients.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/evp-dev/evp/internal/sqlitedb"
)

// APIKey describes a key without its secret: neither the key nor its hash leave this package.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"` // the key's first characters, to recognise it
	Last4      string     `json:"last4"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
}

// Usable reports whether the key may authenticate at time now.
func (k *APIKey) Usable(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// Errors of key management and authentication.
var (
	ErrKeyNotFound = errors.New("accounts: api key not found")
	ErrInvalidKey  = errors.New("accounts: invalid api key")
)

// Store keeps accounts in SQLite (file accounts.db). Several processes may open it at once
// (the server and `evp apikey`).
type Store struct {
	db *sql.DB
}

var migrations = []sqlitedb.Migration{
	{Version: 1, Name: "api_keys", SQL: `
CREATE TABLE api_keys (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	key_hash BLOB NOT NULL UNIQUE,
	prefix TEXT NOT NULL,
	last4 TEXT NOT NULL,
	user_id TEXT,
	created_at INTEGER NOT NULL,
	last_used_at INTEGER,
	expires_at INTEGER,
	revoked_at INTEGER
);`},
}

// Open opens (creating and migrating if needed) dir/accounts.db.
func Open(ctx context.Context, dir string) (*Store, error) {
	db, err := sqlitedb.Open(filepath.Join(dir, "accounts.db"), sqlitedb.SyncFull, 4)
	if err != nil {
		return nil, err
	}
	if _, err := sqlitedb.Migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

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

// CreateAPIKey stores a new key and returns it in plain text, the only time it is seen.
// expiresAt may be nil for a key that does not expire.
func (s *Store) CreateAPIKey(ctx context.Context, name, prefix string, expiresAt *time.Time) (string, APIKey, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", APIKey{}, errors.New("accounts: a key needs a name")
	}
	plain, err := GenerateKey(prefix)
	if err != nil {
		return "", APIKey{}, err
	}
	h := HashKey(plain)
	k := APIKey{
		ID:        "key_" + ulid.Make().String(),
		Name:      name,
		Prefix:    plain[:len(prefix)+4],
		Last4:     plain[len(plain)-4:],
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		ExpiresAt: expiresAt,
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO api_keys(id, name, key_hash, prefix, last4, created_at, expires_at) VALUES (?,?,?,?,?,?,?)`,
		k.ID, k.Name, h[:], k.Prefix, k.Last4, k.CreatedAt.UnixMilli(), unixMilliOrNil(expiresAt))
	if err != nil {
		return "", APIKey{}, fmt.Errorf("accounts: create api key: %w", err)
	}
	return plain, k, nil
}

// ListAPIKeys returns every key, newest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("accounts: list api keys: %w", err)
	}
	defer rows.Close()
	var keys []APIKey
	for rows.Next() {
		k, _, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// RevokeAPIKey marks the key revoked; a key revoked already stays revoked at its first time.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, time.Now().UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("accounts: revoke api key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrKeyNotFound
	}
	return nil
}

// lookup finds a key by hash and checks the hash in constant time.
func (s *Store) lookup(ctx context.Context, h [32]byte) (APIKey, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE key_hash = ?`, h[:])
	k, stored, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, ErrKeyNotFound
	}
	if err != nil {
		return APIKey{}, err
	}
	if subtle.ConstantTimeCompare(stored, h[:]) != 1 {
		return APIKey{}, ErrKeyNotFound
	}
	return k, nil
}

// touch records when keys were last used.
func (s *Store) touch(ctx context.Context, used map[string]time.Time) error {
	for id, at := range used {
		if _, err := s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?`, at.UnixMilli(), id); err != nil {
			return fmt.Errorf("accounts: record key use: %w", err)
		}
	}
	return nil
}

const keyCols = `id, name, key_hash, prefix, last4, created_at, last_used_at, expires_at, revoked_at`

type scanner interface{ Scan(dest ...any) error }

func scanKey(sc scanner) (APIKey, []byte, error) {
	var k APIKey
	var hash []byte
	var created int64
	var used, expires, revoked sql.NullInt64
	if err := sc.Scan(&k.ID, &k.Name, &hash, &k.Prefix, &k.Last4, &created, &used, &expires, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return k, nil, err
		}
		return k, nil, fmt.Errorf("accounts: read api key: %w", err)
	}
	k.CreatedAt = time.UnixMilli(created).UTC()
	k.LastUsedAt = timeOrNil(used)
	k.ExpiresAt = timeOrNil(expires)
	k.RevokedAt = timeOrNil(revoked)
	return k, hash, nil
}

func timeOrNil(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64).UTC()
	return &t
}

func unixMilliOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

// KeyAuth authenticates ingestion keys with a cache in front of the store, so that the hot
// path costs one hash and one map lookup. A revoked or expired key stops working within
// the cache TTL (60 s).
type KeyAuth struct {
	store *Store
	ttl   time.Duration
	now   func() time.Time

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

// NewKeyAuth returns an authenticator over store with the given cache TTL.
func NewKeyAuth(store *Store, ttl time.Duration) *KeyAuth {
	return &KeyAuth{store: store, ttl: ttl, now: time.Now, cache: map[[32]byte]cachedKey{}, used: map[string]time.Time{}}
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
		k, err := a.store.lookup(ctx, h)
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
	return a.store.touch(ctx, used)
}
