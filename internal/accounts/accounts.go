// Package accounts keeps users, sign-in codes and API keys, and decides who may do what.
//
// The data lives behind Repository, implemented by Store (embedded SQLite) and by
// accounts/pgaccounts (PostgreSQL); accounts/accountstest is the contract both pass. The
// rules (who may sign in, code limits, tokens, roles) live in Service and are the same on
// every backend.
package accounts

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Role is what a user may do. See Allows.
type Role string

// The roles, from most to least powerful. API_CLIENT is a machine account: its keys ingest,
// and its sign-in gives no dashboard rights.
const (
	RoleAdmin     Role = "ADMIN"
	RoleOperator  Role = "OPERATOR"
	RoleViewer    Role = "VIEWER"
	RoleAPIClient Role = "API_CLIENT"
)

// Roles lists every role, for validation and documentation.
var Roles = []Role{RoleAdmin, RoleOperator, RoleViewer, RoleAPIClient}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	for _, k := range Roles {
		if r == k {
			return true
		}
	}
	return false
}

// Status is a user's account state.
type Status string

// User states. A user invited but not yet signed in is PENDING_VERIFICATION; only ACTIVE
// users hold working sessions.
const (
	StatusActive    Status = "ACTIVE"
	StatusInactive  Status = "INACTIVE"
	StatusSuspended Status = "SUSPENDED"
	StatusPending   Status = "PENDING_VERIFICATION"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusActive, StatusInactive, StatusSuspended, StatusPending:
		return true
	}
	return false
}

// User is a person (or machine account) who signs in to evp.
type User struct {
	ID          string     `json:"id"`
	Email       string     `json:"email"` // lower case
	Role        Role       `json:"role"`
	Status      Status     `json:"status"`
	CreatedAt   time.Time  `json:"createdAt"`
	LastLoginAt *time.Time `json:"lastLoginAt,omitempty"`
	InvitedBy   string     `json:"invitedBy,omitempty"` // user id
}

// UserChange is a partial update of a user; nil fields stay as they are.
type UserChange struct {
	Role   *Role
	Status *Status
}

// LoginCode is one emailed sign-in code, kept only as a keyed hash.
type LoginCode struct {
	ID        string
	Email     string
	Hash      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	Attempts  int        // tries so far, the right one included
	UsedAt    *time.Time // set once the code has signed someone in
}

// APIKey describes a key without its secret: neither the key nor its hash leave this package.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"` // the key's first characters, to recognise it
	Last4      string     `json:"last4"`
	OwnerID    string     `json:"ownerId,omitempty"` // empty for keys made with `evp apikey create`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
	// IngestOnly keys may only send events (see Allows).
	IngestOnly bool `json:"ingestOnly"`
	// AllowedOrigins are the web origins ("https://shop.example") from which browsers may
	// send with this key; empty: any (see AllowsOrigin).
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
	// OwnerStatus is the owner's status when the key was looked up (empty without owner); a
	// key of a suspended user does not work.
	OwnerStatus Status `json:"-"`

	used *atomic.Int64 // where KeyAuth.MarkUsed records a use; nil outside KeyAuth
}

// Usable reports whether the key may authenticate at time now.
func (k *APIKey) Usable(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt)) &&
		(k.OwnerStatus == "" || k.OwnerStatus == StatusActive)
}

// Errors of the account store and of authentication.
var (
	ErrKeyNotFound  = errors.New("accounts: api key not found")
	ErrInvalidKey   = errors.New("accounts: invalid api key")
	ErrUserNotFound = errors.New("accounts: user not found")
	ErrEmailTaken   = errors.New("accounts: a user with this email exists")
	ErrCodeNotFound = errors.New("accounts: no sign-in code")
)

// Repository is where accounts are kept. Every method is safe for concurrent use, also by
// several processes sharing the same database. Emails are stored and compared in lower case.
type Repository interface {
	// CreateUser adds u (ID and CreatedAt set by the caller); ErrEmailTaken if the email is
	// in use.
	CreateUser(ctx context.Context, u User) error
	// CreateFirstUser adds u only if there is no user at all, atomically; created is false
	// when someone else was first.
	CreateFirstUser(ctx context.Context, u User) (created bool, err error)
	// CountUsers returns how many users exist.
	CountUsers(ctx context.Context) (int64, error)
	UserByEmail(ctx context.Context, email string) (User, error) // ErrUserNotFound
	UserByID(ctx context.Context, id string) (User, error)       // ErrUserNotFound
	// ListUsers returns every user, oldest first.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser applies ch and returns the user after it; ErrUserNotFound.
	UpdateUser(ctx context.Context, id string, ch UserChange) (User, error)
	// RecordLogin sets the last sign-in time and makes a pending user active.
	RecordLogin(ctx context.Context, id string, at time.Time) error

	// SaveCode stores a new sign-in code.
	SaveCode(ctx context.Context, c LoginCode) error
	// CountCodesSince returns how many codes were issued for email at or after since.
	CountCodesSince(ctx context.Context, email string, since time.Time) (int, error)
	// LatestCode returns the newest code issued for email; ErrCodeNotFound.
	LatestCode(ctx context.Context, email string) (LoginCode, error)
	// TakeCodeAttempt counts one try of the code in one atomic step, and only while the code
	// is unused, not expired at now and has had fewer than limit tries; ok is false, and
	// nothing is counted, otherwise (an unknown code included). Concurrent callers never get
	// more than limit tries of a code between them.
	TakeCodeAttempt(ctx context.Context, id string, limit int, now time.Time) (ok bool, err error)
	// UseCode marks the code used; false when it was used already (single use under races).
	UseCode(ctx context.Context, id string, at time.Time) (bool, error)
	// DeleteCodesBefore removes codes that expired before t.
	DeleteCodesBefore(ctx context.Context, t time.Time) (int64, error)

	// InsertAPIKey stores a key by its SHA-256 hash.
	InsertAPIKey(ctx context.Context, k APIKey, hash [32]byte) error
	// ListAPIKeys returns every key, newest first.
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	// RevokeAPIKey marks the key revoked (the first revocation time stays); ErrKeyNotFound.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// LookupAPIKey finds a key by hash, with its owner's status; ErrKeyNotFound.
	LookupAPIKey(ctx context.Context, hash [32]byte) (APIKey, error)
	// TouchAPIKeys records when keys were last used (never moving a time backwards).
	TouchAPIKeys(ctx context.Context, used map[string]time.Time) error

	// Settings returns the user's dashboard settings (a JSON object; "{}" when none).
	Settings(ctx context.Context, userID string) ([]byte, error)
	// SaveSettings replaces the user's settings.
	SaveSettings(ctx context.Context, userID string, settings []byte) error

	Ping(ctx context.Context) error
	Close() error
}
