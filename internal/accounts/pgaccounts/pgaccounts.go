// Package pgaccounts keeps accounts, sign-in codes, API keys and settings in PostgreSQL: the
// accounts.Repository for DATABASE_URL, shared by every evp process of an installation.
//
// The schema is the embedded, versioned migrations in migrations/, applied by Migrate (`evp
// migrate`) or by Open with migrate set (EVP_AUTO_MIGRATE), under an advisory lock so that
// processes starting together apply each one once. The driver is pgx with its pool.
package pgaccounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evp-dev/evp/internal/accounts"
)

// Store is the PostgreSQL accounts.Repository.
type Store struct {
	pool *pgxpool.Pool
}

var _ accounts.Repository = (*Store)(nil)

// parseConfig parses DATABASE_URL (a postgres:// URL or key=value string) without echoing it:
// it may hold a password.
func parseConfig(databaseURL string) (*pgxpool.Config, error) {
	if strings.TrimSpace(databaseURL) == "" {
		return nil, errors.New("pgaccounts: DATABASE_URL is empty")
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors redact the password.
		return nil, fmt.Errorf("pgaccounts: invalid DATABASE_URL: %w", err)
	}
	return cfg, nil
}

// Open connects a pool to databaseURL. With migrate it first applies the missing migrations
// (as Migrate does); without, it fails unless the schema is current, with a message that
// names `evp migrate`.
func Open(ctx context.Context, databaseURL string, migrate bool) (*Store, error) {
	cfg, err := parseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgaccounts: %w", err)
	}
	if err := prepare(ctx, pool, migrate); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

func prepare(ctx context.Context, pool *pgxpool.Pool, migrate bool) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgaccounts: connect: %w", err)
	}
	defer c.Release()
	if !migrate {
		return checkSchema(ctx, c)
	}
	if _, err := applyMigrations(ctx, c.Conn()); err != nil {
		// The connection may still hold the advisory lock; closing it ends the session
		// and the lock with it (the pool drops a closed connection on release).
		_ = c.Conn().Close(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgaccounts: ping: %w", err)
	}
	return nil
}

// CreateAPIKey makes a key without owner (the `evp apikey create` path); see
// accounts.CreateAPIKey.
func (s *Store) CreateAPIKey(ctx context.Context, name, prefix string, expiresAt *time.Time) (string, accounts.APIKey, error) {
	return accounts.CreateAPIKey(ctx, s, accounts.NewKey{Name: name, Prefix: prefix, ExpiresAt: expiresAt})
}

// --- users ---

// emailIndex is the unique index on lower(email) (migration 1).
const emailIndex = "users_email_key"

// isEmailTaken reports whether err is a unique violation on the users' email index.
func isEmailTaken(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == emailIndex
}

func (s *Store) CreateUser(ctx context.Context, u accounts.User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users(id, email, role, status, invited_by, created_at)
		VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6)`,
		u.ID, strings.ToLower(u.Email), string(u.Role), string(u.Status), u.InvitedBy, u.CreatedAt)
	if isEmailTaken(err) {
		return accounts.ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("pgaccounts: create user: %w", err)
	}
	return nil
}

// CreateFirstUser inserts u only when the users table is empty. The table lock (SHARE ROW
// EXCLUSIVE conflicts with itself and with every writer) makes the check and the insert one
// step across processes: a concurrent CreateFirstUser or CreateUser either committed before
// the check, which then sees its row, or waits until this one commits. Once a user exists
// the answer comes from a plain read, without the lock.
func (s *Store) CreateFirstUser(ctx context.Context, u accounts.User) (bool, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users)`).Scan(&exists); err != nil {
		return false, fmt.Errorf("pgaccounts: create first user: %w", err)
	}
	if exists {
		return false, nil
	}
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO users(id, email, role, status, created_at)
			SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM users)`,
			u.ID, strings.ToLower(u.Email), string(u.Role), string(u.Status), u.CreatedAt)
		created = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("pgaccounts: create first user: %w", err)
	}
	return created, nil
}

func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgaccounts: count users: %w", err)
	}
	return n, nil
}

func (s *Store) UserByEmail(ctx context.Context, email string) (accounts.User, error) {
	return accounts.ScanUser(s.pool.QueryRow(ctx, `SELECT `+accounts.UserColumns+` FROM users WHERE lower(email) = lower($1)`, strings.ToLower(email)))
}

func (s *Store) UserByID(ctx context.Context, id string) (accounts.User, error) {
	return accounts.ScanUser(s.pool.QueryRow(ctx, `SELECT `+accounts.UserColumns+` FROM users WHERE id = $1`, id))
}

func (s *Store) ListUsers(ctx context.Context) ([]accounts.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+accounts.UserColumns+` FROM users ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("pgaccounts: list users: %w", err)
	}
	defer rows.Close()
	return accounts.ScanAll(rows, accounts.ScanUser)
}

func (s *Store) UpdateUser(ctx context.Context, id string, ch accounts.UserChange) (accounts.User, error) {
	var role, status *string
	if ch.Role != nil {
		r := string(*ch.Role)
		role = &r
	}
	if ch.Status != nil {
		st := string(*ch.Status)
		status = &st
	}
	return accounts.ScanUser(s.pool.QueryRow(ctx, `UPDATE users SET role = COALESCE($1, role), status = COALESCE($2, status)
		WHERE id = $3 RETURNING `+accounts.UserColumns, role, status, id))
}

func (s *Store) RecordLogin(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET last_login_at = $1,
		status = CASE WHEN status = $2 THEN $3 ELSE status END WHERE id = $4`,
		at, string(accounts.StatusPending), string(accounts.StatusActive), id)
	if err != nil {
		return fmt.Errorf("pgaccounts: record login: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return accounts.ErrUserNotFound
	}
	return nil
}

// --- sign-in codes ---

func (s *Store) SaveCode(ctx context.Context, c accounts.LoginCode) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO login_codes(id, email, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		c.ID, strings.ToLower(c.Email), c.Hash, c.CreatedAt, c.ExpiresAt)
	if err != nil {
		return fmt.Errorf("pgaccounts: save code: %w", err)
	}
	return nil
}

func (s *Store) CountCodesSince(ctx context.Context, email string, since time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM login_codes WHERE email = $1 AND created_at >= $2`,
		strings.ToLower(email), since).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pgaccounts: count codes: %w", err)
	}
	return n, nil
}

func (s *Store) LatestCode(ctx context.Context, email string) (accounts.LoginCode, error) {
	return accounts.ScanLoginCode(s.pool.QueryRow(ctx, `SELECT `+accounts.LoginCodeColumns+`
		FROM login_codes WHERE email = $1 ORDER BY created_at DESC, id DESC LIMIT 1`, strings.ToLower(email)))
}

// TakeCodeAttempt checks and counts a try in one UPDATE: concurrent updates of the row queue
// on its lock, and each re-checks the condition on the row the one before committed.
func (s *Store) TakeCodeAttempt(ctx context.Context, id string, limit int, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE login_codes SET attempts = attempts + 1
		WHERE id = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3`, id, now, limit)
	if err != nil {
		return false, fmt.Errorf("pgaccounts: count code attempt: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// UseCode marks the code used once: concurrent updates of the row queue on its lock, and the
// later ones re-check used_at IS NULL on the committed row and change nothing.
func (s *Store) UseCode(ctx context.Context, id string, at time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE login_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL`, at, id)
	if err != nil {
		return false, fmt.Errorf("pgaccounts: use code: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (s *Store) DeleteCodesBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM login_codes WHERE expires_at < $1`, t)
	if err != nil {
		return 0, fmt.Errorf("pgaccounts: delete old codes: %w", err)
	}
	return tag.RowsAffected(), nil
}

// --- API keys ---

func (s *Store) InsertAPIKey(ctx context.Context, k accounts.APIKey, hash [32]byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys(id, name, key_hash, prefix, last4, user_id, created_at, expires_at, ingest_only, allowed_origins)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9, $10)`,
		k.ID, k.Name, hash[:], k.Prefix, k.Last4, k.OwnerID, k.CreatedAt, k.ExpiresAt, k.IngestOnly, strings.Join(k.AllowedOrigins, " "))
	if err != nil {
		return fmt.Errorf("pgaccounts: create api key: %w", err)
	}
	return nil
}

func (s *Store) ListAPIKeys(ctx context.Context) ([]accounts.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+accounts.APIKeyColumns+accounts.APIKeyFrom+` ORDER BY k.created_at DESC, k.id DESC`)
	if err != nil {
		return nil, fmt.Errorf("pgaccounts: list api keys: %w", err)
	}
	defer rows.Close()
	return accounts.ScanAll(rows, accounts.ScanAPIKey)
}

func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, at, id)
	if err != nil {
		return fmt.Errorf("pgaccounts: revoke api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return accounts.ErrKeyNotFound
	}
	return nil
}

// LookupAPIKey finds a key by its hash through the unique index on key_hash. The equality
// test is on a SHA-256 of a 32-byte random secret, which leaks nothing useful through timing.
func (s *Store) LookupAPIKey(ctx context.Context, h [32]byte) (accounts.APIKey, error) {
	return accounts.ScanAPIKey(s.pool.QueryRow(ctx, `SELECT `+accounts.APIKeyColumns+accounts.APIKeyFrom+` WHERE k.key_hash = $1`, h[:]))
}

// TouchAPIKeys records the times in one round trip (a batch, which PostgreSQL runs as one
// transaction). The rows are updated in id order, so that replicas flushing overlapping
// keys at once lock them in the same order and cannot deadlock. GREATEST ignores a NULL,
// and never moves a time backwards.
func (s *Store) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b := &pgx.Batch{}
	for _, id := range ids {
		b.Queue(`UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $1) WHERE id = $2`, used[id], id)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgaccounts: record key use: %w", err)
	}
	return nil
}

// --- settings ---

func (s *Store) Settings(ctx context.Context, userID string) ([]byte, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT settings::text FROM user_settings WHERE user_id = $1`, userID).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return []byte("{}"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("pgaccounts: read settings: %w", err)
	}
	return []byte(v), nil
}

func (s *Store) SaveSettings(ctx context.Context, userID string, settings []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO user_settings(user_id, settings, updated_at) VALUES ($1, $2::text::jsonb, now())
		ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at`,
		userID, string(settings))
	if err != nil {
		return fmt.Errorf("pgaccounts: save settings: %w", err)
	}
	return nil
}
