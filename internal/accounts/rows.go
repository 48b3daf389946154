package accounts

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Reading rows into the package's types, for the Repository of every SQL dialect: Store
// (database/sql and SQLite) and pgaccounts (pgx and PostgreSQL). Each dialect keeps its
// own statements and selects these columns in this order; the scanning, the mapping of no
// row to this package's errors and the UTC normalisation of times are shared.

// Column lists of the Scan functions, in the order they read them.
const (
	UserColumns      = `id, email, role, status, COALESCE(invited_by, ''), created_at, last_login_at`
	LoginCodeColumns = `id, email, code_hash, created_at, expires_at, attempts, used_at`
	// APIKeyColumns are read from APIKeyFrom, which joins each key's owner for its status.
	APIKeyColumns = `k.id, k.name, k.prefix, k.last4, COALESCE(k.user_id, ''), k.created_at, k.last_used_at, k.expires_at, k.revoked_at, COALESCE(u.status, ''), k.ingest_only, k.allowed_origins`
	APIKeyFrom    = ` FROM api_keys k LEFT JOIN users u ON u.id = k.user_id`
)

// Row is one result row of either driver: *sql.Row, *sql.Rows, pgx.Row or pgx.Rows. The
// error of a query that found no row must match sql.ErrNoRows (pgx.ErrNoRows does).
type Row interface {
	Scan(dest ...any) error
}

// Rows is a result set of either driver: *sql.Rows or pgx.Rows. ScanAll does not close it.
type Rows interface {
	Row
	Next() bool
	Err() error
}

// ScanUser reads a row of UserColumns; no row gives ErrUserNotFound.
func ScanUser(row Row) (User, error) {
	var u User
	var created, login sqlTime
	if err := row.Scan(&u.ID, &u.Email, &u.Role, &u.Status, &u.InvitedBy, &created, &login); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, ErrUserNotFound
		}
		return User{}, fmt.Errorf("accounts: read user: %w", err)
	}
	u.CreatedAt, u.LastLoginAt = created.Time, login.ptr()
	return u, nil
}

// ScanLoginCode reads a row of LoginCodeColumns; no row gives ErrCodeNotFound.
func ScanLoginCode(row Row) (LoginCode, error) {
	var c LoginCode
	var created, expires, used sqlTime
	if err := row.Scan(&c.ID, &c.Email, &c.Hash, &created, &expires, &c.Attempts, &used); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return LoginCode{}, ErrCodeNotFound
		}
		return LoginCode{}, fmt.Errorf("accounts: read code: %w", err)
	}
	c.CreatedAt, c.ExpiresAt, c.UsedAt = created.Time, expires.Time, used.ptr()
	return c, nil
}

// ScanAPIKey reads a row of APIKeyColumns; no row gives ErrKeyNotFound.
func ScanAPIKey(row Row) (APIKey, error) {
	var k APIKey
	var created, used, expires, revoked sqlTime
	var origins string
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Last4, &k.OwnerID, &created, &used, &expires, &revoked, &k.OwnerStatus, &k.IngestOnly, &origins); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return APIKey{}, ErrKeyNotFound
		}
		return APIKey{}, fmt.Errorf("accounts: read api key: %w", err)
	}
	k.CreatedAt, k.LastUsedAt, k.ExpiresAt, k.RevokedAt = created.Time, used.ptr(), expires.ptr(), revoked.ptr()
	k.AllowedOrigins = strings.Fields(origins) // stored space-separated: an origin holds no space
	if len(k.AllowedOrigins) == 0 {
		k.AllowedOrigins = nil
	}
	return k, nil
}

// ScanAll reads every row of rows with scan: an empty, non-nil slice for none.
func ScanAll[T any](rows Rows, scan func(Row) (T, error)) ([]T, error) {
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("accounts: read rows: %w", err)
	}
	return out, nil
}

// sqlTime reads a time column of either dialect, in UTC: SQLite's integer Unix
// milliseconds or PostgreSQL's timestamptz. Valid is false for NULL.
type sqlTime struct {
	Time  time.Time
	Valid bool
}

// Scan implements sql.Scanner, which both drivers call.
func (t *sqlTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*t = sqlTime{}
	case int64:
		*t = sqlTime{Time: time.UnixMilli(v).UTC(), Valid: true}
	case time.Time:
		*t = sqlTime{Time: v.UTC(), Valid: true}
	default:
		return fmt.Errorf("accounts: a time column holds %T", v)
	}
	return nil
}

// ptr returns the time, or nil for NULL.
func (t sqlTime) ptr() *time.Time {
	if !t.Valid {
		return nil
	}
	at := t.Time
	return &at
}
