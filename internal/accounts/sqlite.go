package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/evp-dev/evp/internal/sqlitedb"
)

// Store keeps accounts in SQLite (file accounts.db): the embedded Repository. Several
// processes may open it at once (the server and `evp apikey`).
type Store struct {
	db *sql.DB
}

var _ Repository = (*Store)(nil)

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
	{Version: 2, Name: "users_codes_settings", SQL: `
CREATE TABLE users (
	id TEXT PRIMARY KEY,
	email TEXT NOT NULL UNIQUE,
	role TEXT NOT NULL,
	status TEXT NOT NULL,
	invited_by TEXT,
	created_at INTEGER NOT NULL,
	last_login_at INTEGER
);
CREATE TABLE login_codes (
	id TEXT PRIMARY KEY,
	email TEXT NOT NULL,
	code_hash BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	used_at INTEGER
);
CREATE INDEX login_codes_email ON login_codes(email, created_at);
CREATE TABLE user_settings (
	user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
	settings TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);`},
	{Version: 3, Name: "api_key_ingest_only", SQL: `
ALTER TABLE api_keys ADD COLUMN ingest_only INTEGER NOT NULL DEFAULT 0;`},
	{Version: 4, Name: "api_key_allowed_origins", SQL: `
ALTER TABLE api_keys ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';`},
}

// Open opens (creating and migrating if needed) dir/accounts.db.
func Open(ctx context.Context, dir string) (*Store, error) {
	db, err := sqlitedb.Open(filepath.Join(dir, "accounts.db"), sqlitedb.SyncFull, 4)
	if err != nil {
		return nil, err
	}
	if _, err := sqlitedb.Migrate(ctx, db, migrations); err != nil {
		_ = db.Close()
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

// CreateAPIKey makes a key without owner (the `evp apikey create` path); see CreateAPIKey.
func (s *Store) CreateAPIKey(ctx context.Context, name, prefix string, expiresAt *time.Time) (string, APIKey, error) {
	return CreateAPIKey(ctx, s, NewKey{Name: name, Prefix: prefix, ExpiresAt: expiresAt})
}

// --- users ---

func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

func (s *Store) CreateUser(ctx context.Context, u User) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO users(id, email, role, status, invited_by, created_at) VALUES (?,?,?,?,NULLIF(?, ''),?)`,
		u.ID, strings.ToLower(u.Email), u.Role, u.Status, u.InvitedBy, u.CreatedAt.UnixMilli())
	if isUniqueViolation(err) {
		return ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("accounts: create user: %w", err)
	}
	return nil
}

func (s *Store) CreateFirstUser(ctx context.Context, u User) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO users(id, email, role, status, created_at)
		SELECT ?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM users)`,
		u.ID, strings.ToLower(u.Email), u.Role, u.Status, u.CreatedAt.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("accounts: create first user: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("accounts: count users: %w", err)
	}
	return n, nil
}

func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	return ScanUser(s.db.QueryRowContext(ctx, `SELECT `+UserColumns+` FROM users WHERE email = ?`, strings.ToLower(email)))
}

func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	return ScanUser(s.db.QueryRowContext(ctx, `SELECT `+UserColumns+` FROM users WHERE id = ?`, id))
}

func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+UserColumns+` FROM users ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("accounts: list users: %w", err)
	}
	defer rows.Close()
	return ScanAll(rows, ScanUser)
}

func (s *Store) UpdateUser(ctx context.Context, id string, ch UserChange) (User, error) {
	var role, status any
	if ch.Role != nil {
		role = string(*ch.Role)
	}
	if ch.Status != nil {
		status = string(*ch.Status)
	}
	return ScanUser(s.db.QueryRowContext(ctx, `UPDATE users SET role = COALESCE(?, role), status = COALESCE(?, status)
		WHERE id = ? RETURNING `+UserColumns, role, status, id))
}

func (s *Store) RecordLogin(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE users SET last_login_at = ?,
		status = CASE WHEN status = ? THEN ? ELSE status END WHERE id = ?`,
		at.UnixMilli(), StatusPending, StatusActive, id)
	if err != nil {
		return fmt.Errorf("accounts: record login: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrUserNotFound
	}
	return nil
}

// --- sign-in codes ---

func (s *Store) SaveCode(ctx context.Context, c LoginCode) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO login_codes(id, email, code_hash, created_at, expires_at) VALUES (?,?,?,?,?)`,
		c.ID, strings.ToLower(c.Email), c.Hash, c.CreatedAt.UnixMilli(), c.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("accounts: save code: %w", err)
	}
	return nil
}

func (s *Store) CountCodesSince(ctx context.Context, email string, since time.Time) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM login_codes WHERE email = ? AND created_at >= ?`,
		strings.ToLower(email), since.UnixMilli()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("accounts: count codes: %w", err)
	}
	return n, nil
}

func (s *Store) LatestCode(ctx context.Context, email string) (LoginCode, error) {
	return ScanLoginCode(s.db.QueryRowContext(ctx, `SELECT `+LoginCodeColumns+`
		FROM login_codes WHERE email = ? ORDER BY created_at DESC, id DESC LIMIT 1`, strings.ToLower(email)))
}

// TakeCodeAttempt checks and counts a try in one UPDATE: SQLite runs one writer at a time,
// so no two callers see the same count.
func (s *Store) TakeCodeAttempt(ctx context.Context, id string, limit int, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE login_codes SET attempts = attempts + 1
		WHERE id = ? AND used_at IS NULL AND expires_at > ? AND attempts < ?`, id, now.UnixMilli(), limit)
	if err != nil {
		return false, fmt.Errorf("accounts: count code attempt: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (s *Store) UseCode(ctx context.Context, id string, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE login_codes SET used_at = ? WHERE id = ? AND used_at IS NULL`, at.UnixMilli(), id)
	if err != nil {
		return false, fmt.Errorf("accounts: use code: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (s *Store) DeleteCodesBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM login_codes WHERE expires_at < ?`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("accounts: delete old codes: %w", err)
	}
	return res.RowsAffected()
}

// --- API keys ---

func (s *Store) InsertAPIKey(ctx context.Context, k APIKey, hash [32]byte) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO api_keys(id, name, key_hash, prefix, last4, user_id, created_at, expires_at, ingest_only, allowed_origins) VALUES (?,?,?,?,?,NULLIF(?, ''),?,?,?,?)`,
		k.ID, k.Name, hash[:], k.Prefix, k.Last4, k.OwnerID, k.CreatedAt.UnixMilli(), unixMilliOrNil(k.ExpiresAt), k.IngestOnly, strings.Join(k.AllowedOrigins, " "))
	if err != nil {
		return fmt.Errorf("accounts: create api key: %w", err)
	}
	return nil
}

func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+APIKeyColumns+APIKeyFrom+` ORDER BY k.created_at DESC, k.id DESC`)
	if err != nil {
		return nil, fmt.Errorf("accounts: list api keys: %w", err)
	}
	defer rows.Close()
	return ScanAll(rows, ScanAPIKey)
}

func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, at.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("accounts: revoke api key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrKeyNotFound
	}
	return nil
}

// LookupAPIKey finds a key by its hash. The equality test is the database's index lookup on
// a SHA-256 of a 32-byte random secret, which leaks nothing useful through timing.
func (s *Store) LookupAPIKey(ctx context.Context, h [32]byte) (APIKey, error) {
	return ScanAPIKey(s.db.QueryRowContext(ctx, `SELECT `+APIKeyColumns+APIKeyFrom+` WHERE k.key_hash = ?`, h[:]))
}

func (s *Store) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	for id, at := range used {
		if _, err := s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?`, at.UnixMilli(), id); err != nil {
			return fmt.Errorf("accounts: record key use: %w", err)
		}
	}
	return nil
}

// --- settings ---

func (s *Store) Settings(ctx context.Context, userID string) ([]byte, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT settings FROM user_settings WHERE user_id = ?`, userID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return []byte("{}"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: read settings: %w", err)
	}
	return []byte(v), nil
}

func (s *Store) SaveSettings(ctx context.Context, userID string, settings []byte) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO user_settings(user_id, settings, updated_at) VALUES (?,?,?)
		ON CONFLICT(user_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at`,
		userID, string(settings), time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("accounts: save settings: %w", err)
	}
	return nil
}

func unixMilliOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}
