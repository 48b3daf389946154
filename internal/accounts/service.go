package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Sign-in code rules: 6 digits, valid 5 minutes, single use, 5 tries per code (the right
// one included), 3 codes per email per 15 minutes.
const (
	CodeTTL          = 5 * time.Minute
	MaxCodeAttempts  = 5
	CodeWindow       = 15 * time.Minute
	MaxCodesInWindow = 3
	// UserCacheTTL bounds how long a suspended user's session keeps working.
	UserCacheTTL = 60 * time.Second
)

// Errors of the sign-in flow and of user management.
var (
	ErrInvalidEmail    = errors.New("accounts: invalid email address")
	ErrInvalidCode     = errors.New("accounts: the code is wrong, expired or used up")
	ErrNoDelivery      = errors.New("accounts: sign-in codes cannot be delivered: set SMTP_HOST (and SMTP_FROM) or EVP_DEV_LOGIN=true")
	ErrAccountDisabled = errors.New("accounts: the account is suspended or inactive")
	ErrLastAdmin       = errors.New("accounts: this would leave no active ADMIN")
	ErrInvalidRole     = errors.New("accounts: unknown role")
	ErrInvalidStatus   = errors.New("accounts: status must be ACTIVE, INACTIVE or SUSPENDED")
)

// TooManyCodesError is returned when an email asked for too many codes; retry after
// RetryAfter.
type TooManyCodesError struct{ RetryAfter time.Duration }

func (e *TooManyCodesError) Error() string {
	return fmt.Sprintf("accounts: too many sign-in codes requested; retry in %s", e.RetryAfter.Round(time.Second))
}

// Mailer delivers sign-in codes.
type Mailer interface {
	SendCode(ctx context.Context, to, code string, validFor time.Duration) error
}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Repo   Repository
	Tokens *Tokens
	Keys   *KeyAuth // forgotten after a revocation or a status change, so that this process acts at once
	// Mailer delivers codes; nil when SMTP is not configured.
	Mailer Mailer
	// DevLogin writes codes to the log when there is no Mailer (laptops, tests).
	DevLogin bool
	// AllowedDomains may sign in without an invitation (lower case, no "@").
	AllowedDomains []string
	// CodeKey keys the hash under which codes are stored, so that a copy of the database
	// does not reveal them by brute force over the million possible codes.
	CodeKey   []byte
	KeyPrefix string
	Log       *slog.Logger
}

// Service is the sign-in flow, sessions, API-key and user management.
type Service struct {
	cfg ServiceConfig
	now func() time.Time

	mu    sync.Mutex
	users map[string]cachedUser
	sends sync.WaitGroup
}

type cachedUser struct {
	user    User
	fetched time.Time
}

// NewService returns a Service.
func NewService(cfg ServiceConfig) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg, now: time.Now, users: map[string]cachedUser{}}
}

// CanDeliverCodes reports whether sign-in codes reach anyone (mail or the dev log).
func (s *Service) CanDeliverCodes() bool { return s.cfg.Mailer != nil || s.cfg.DevLogin }

// NormalizeEmail validates a bare email address and returns it in lower case.
func NormalizeEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" || len(email) > 254 || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return "", ErrInvalidEmail
	}
	return strings.ToLower(email), nil
}

func (s *Service) codeHash(email, code string) []byte {
	m := hmac.New(sha256.New, s.cfg.CodeKey)
	m.Write([]byte(email))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// RequestCode issues a sign-in code for email and delivers it when email may sign in. The
// answer is the same whether or not it may (no account enumeration): a code is stored
// either way, so the per-email limit also applies alike.
func (s *Service) RequestCode(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if !s.CanDeliverCodes() {
		return ErrNoDelivery
	}
	now := s.now()
	n, err := s.cfg.Repo.CountCodesSince(ctx, email, now.Add(-CodeWindow))
	if err != nil {
		return err
	}
	if n >= MaxCodesInWindow {
		wait := CodeWindow
		if c, err := s.cfg.Repo.LatestCode(ctx, email); err == nil {
			wait = c.CreatedAt.Add(CodeWindow).Sub(now)
		}
		return &TooManyCodesError{RetryAfter: max(wait, time.Second)}
	}
	code, err := randomCode()
	if err != nil {
		return err
	}
	lc := LoginCode{ID: "code_" + ulid.Make().String(), Email: email, Hash: s.codeHash(email, code),
		CreatedAt: now, ExpiresAt: now.Add(CodeTTL)}
	if err := s.cfg.Repo.SaveCode(ctx, lc); err != nil {
		return err
	}
	allowed, err := s.maySignIn(ctx, email)
	if err != nil {
		return err
	}
	if !allowed {
		s.cfg.Log.Info("sign-in code not sent: email may not sign in", "email", email)
		return nil
	}
	if s.cfg.Mailer == nil {
		s.cfg.Log.Info("sign-in code", "email", email, "code", code, "valid_for", CodeTTL.String())
		return nil
	}
	// Sent in the background so that the answer takes as long for an unknown email.
	s.sends.Add(1)
	go func() {
		defer s.sends.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.cfg.Mailer.SendCode(ctx, email, code, CodeTTL); err != nil {
			s.cfg.Log.Error("sign-in code not delivered", "email", email, "err", err)
		}
	}()
	return nil
}

// WaitForMail waits for codes being sent (shutdown, tests).
func (s *Service) WaitForMail() { s.sends.Wait() }

func randomCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("accounts: random code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// maySignIn: an existing user who is not suspended or inactive, anyone while there is no
// user at all (the first becomes ADMIN), or an email in an allowed domain.
func (s *Service) maySignIn(ctx context.Context, email string) (bool, error) {
	u, err := s.cfg.Repo.UserByEmail(ctx, email)
	if err == nil {
		return u.Status == StatusActive || u.Status == StatusPending, nil
	}
	if !errors.Is(err, ErrUserNotFound) {
		return false, err
	}
	if s.domainAllowed(email) {
		return true, nil
	}
	n, err := s.cfg.Repo.CountUsers(ctx)
	return n == 0, err
}

func (s *Service) domainAllowed(email string) bool {
	domain := email[strings.LastIndexByte(email, '@')+1:]
	for _, d := range s.cfg.AllowedDomains {
		if domain == d {
			return true
		}
	}
	return false
}

// Session is a signed-in user's token.
type Session struct {
	Token     string
	ExpiresAt time.Time
	User      User
}

// Verify checks a code and signs the user in, creating the account of the first user
// (ADMIN) or of an allowed domain (VIEWER) on the way. A code is compared at most
// MaxCodeAttempts times in all, in constant time, and signs in once, also under
// concurrent guesses.
func (s *Service) Verify(ctx context.Context, email, code string) (Session, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Session{}, err
	}
	now := s.now()
	c, err := s.cfg.Repo.LatestCode(ctx, email)
	if errors.Is(err, ErrCodeNotFound) {
		return Session{}, ErrInvalidCode
	}
	if err != nil {
		return Session{}, err
	}
	if c.UsedAt != nil || !now.Before(c.ExpiresAt) || c.Attempts >= MaxCodeAttempts {
		return Session{}, ErrInvalidCode
	}
	// The read above may be stale under concurrent guesses: a try is taken atomically before
	// the code is compared, so that at most MaxCodeAttempts guesses are ever compared.
	ok, err := s.cfg.Repo.TakeCodeAttempt(ctx, c.ID, MaxCodeAttempts, now)
	if err != nil {
		return Session{}, err
	}
	if !ok || !hmac.Equal(c.Hash, s.codeHash(email, code)) {
		return Session{}, ErrInvalidCode
	}
	// Mark the code used before anything else, so that two concurrent verifications of the
	// same code cannot both sign in.
	ok, err = s.cfg.Repo.UseCode(ctx, c.ID, now)
	if err != nil {
		return Session{}, err
	}
	if !ok {
		return Session{}, ErrInvalidCode
	}
	u, err := s.userForSignIn(ctx, email, now)
	if err != nil {
		return Session{}, err
	}
	if err := s.cfg.Repo.RecordLogin(ctx, u.ID, now); err != nil {
		return Session{}, err
	}
	if u.Status == StatusPending {
		u.Status = StatusActive
	}
	u.LastLoginAt = &now
	s.forgetUser(u.ID)
	tok, exp, err := s.cfg.Tokens.Issue(u)
	if err != nil {
		return Session{}, err
	}
	s.cfg.Log.Info("signed in", "user_id", u.ID, "email", u.Email, "role", u.Role)
	return Session{Token: tok, ExpiresAt: exp, User: u}, nil
}

func (s *Service) userForSignIn(ctx context.Context, email string, now time.Time) (User, error) {
	u, err := s.cfg.Repo.UserByEmail(ctx, email)
	if err == nil {
		if u.Status != StatusActive && u.Status != StatusPending {
			return User{}, ErrAccountDisabled
		}
		return u, nil
	}
	if !errors.Is(err, ErrUserNotFound) {
		return User{}, err
	}
	nu := User{ID: "usr_" + ulid.Make().String(), Email: email, Role: RoleAdmin, Status: StatusActive, CreatedAt: now.UTC().Truncate(time.Millisecond)}
	created, err := s.cfg.Repo.CreateFirstUser(ctx, nu)
	if err != nil {
		return User{}, err
	}
	if created {
		s.cfg.Log.Info("first user created as ADMIN", "email", email)
		return nu, nil
	}
	if !s.domainAllowed(email) {
		return User{}, ErrInvalidCode
	}
	nu.Role = RoleViewer
	switch err := s.cfg.Repo.CreateUser(ctx, nu); {
	case err == nil:
		return nu, nil
	case errors.Is(err, ErrEmailTaken): // created concurrently
		return s.cfg.Repo.UserByEmail(ctx, email)
	default:
		return User{}, err
	}
}

// Authenticate returns the active user a session token belongs to, with the user's current
// role. Users are cached for at most UserCacheTTL, so a suspension takes effect within it
// on every replica.
func (s *Service) Authenticate(ctx context.Context, token string) (User, error) {
	c, err := s.cfg.Tokens.Verify(token)
	if err != nil {
		return User{}, err
	}
	u, err := s.user(ctx, c.Subject)
	if errors.Is(err, ErrUserNotFound) {
		return User{}, ErrInvalidToken
	}
	if err != nil {
		return User{}, err
	}
	if u.Status != StatusActive {
		return User{}, ErrAccountDisabled
	}
	return u, nil
}

func (s *Service) user(ctx context.Context, id string) (User, error) {
	now := s.now()
	s.mu.Lock()
	c, ok := s.users[id]
	s.mu.Unlock()
	if ok && now.Sub(c.fetched) < UserCacheTTL {
		return c.user, nil
	}
	u, err := s.cfg.Repo.UserByID(ctx, id)
	if err != nil {
		return User{}, err
	}
	s.mu.Lock()
	if len(s.users) > 10000 {
		clear(s.users)
	}
	s.users[id] = cachedUser{user: u, fetched: now}
	s.mu.Unlock()
	return u, nil
}

func (s *Service) forgetUser(id string) {
	s.mu.Lock()
	delete(s.users, id)
	s.mu.Unlock()
}

// CreateKey makes the API key nk describes, owned by owner, with this service's prefix.
func (s *Service) CreateKey(ctx context.Context, owner User, nk NewKey) (string, APIKey, error) {
	nk.Prefix, nk.OwnerID = s.cfg.KeyPrefix, owner.ID
	return CreateAPIKey(ctx, s.cfg.Repo, nk)
}

// ListKeys returns every API key, newest first.
func (s *Service) ListKeys(ctx context.Context) ([]APIKey, error) { return s.cfg.Repo.ListAPIKeys(ctx) }

// RevokeKey revokes a key and returns when it was revoked (the first time, for a key revoked
// twice); this process stops accepting it at once, other replicas within the key cache's TTL.
func (s *Service) RevokeKey(ctx context.Context, id string) (time.Time, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	if err := s.cfg.Repo.RevokeAPIKey(ctx, id, now); err != nil {
		return time.Time{}, err
	}
	if s.cfg.Keys != nil {
		s.cfg.Keys.Forget()
	}
	// A key revoked before keeps its first revocation time; answer that one.
	if keys, err := s.cfg.Repo.ListAPIKeys(ctx); err == nil {
		for _, k := range keys {
			if k.ID == id && k.RevokedAt != nil {
				return *k.RevokedAt, nil
			}
		}
	}
	return now, nil
}

// ListUsers returns every user, oldest first.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) { return s.cfg.Repo.ListUsers(ctx) }

// Invite adds a user who may then sign in with a code.
func (s *Service) Invite(ctx context.Context, by User, email string, role Role) (User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	if !role.Valid() {
		return User{}, ErrInvalidRole
	}
	u := User{ID: "usr_" + ulid.Make().String(), Email: email, Role: role, Status: StatusPending,
		CreatedAt: s.now().UTC().Truncate(time.Millisecond), InvitedBy: by.ID}
	if err := s.cfg.Repo.CreateUser(ctx, u); err != nil {
		return User{}, err
	}
	s.cfg.Log.Info("user invited", "email", email, "role", role, "by", by.Email)
	return u, nil
}

// UpdateUser changes a user's role or status. It refuses to remove the last active ADMIN.
// A new status applies at once in this process, to the user's sessions and API keys alike;
// other replicas follow within UserCacheTTL and the key cache's TTL.
func (s *Service) UpdateUser(ctx context.Context, by User, id string, ch UserChange) (User, error) {
	if ch.Role != nil && !ch.Role.Valid() {
		return User{}, ErrInvalidRole
	}
	if ch.Status != nil && *ch.Status != StatusActive && *ch.Status != StatusSuspended && *ch.Status != StatusInactive {
		return User{}, ErrInvalidStatus
	}
	target, err := s.cfg.Repo.UserByID(ctx, id)
	if err != nil {
		return User{}, err
	}
	losesAdmin := target.Role == RoleAdmin && target.Status == StatusActive &&
		((ch.Role != nil && *ch.Role != RoleAdmin) || (ch.Status != nil && *ch.Status != StatusActive))
	if losesAdmin {
		users, err := s.cfg.Repo.ListUsers(ctx)
		if err != nil {
			return User{}, err
		}
		admins := 0
		for _, u := range users {
			if u.Role == RoleAdmin && u.Status == StatusActive {
				admins++
			}
		}
		if admins <= 1 {
			return User{}, ErrLastAdmin
		}
	}
	u, err := s.cfg.Repo.UpdateUser(ctx, id, ch)
	if err != nil {
		return User{}, err
	}
	s.forgetUser(id)
	if ch.Status != nil && s.cfg.Keys != nil {
		// Cached keys carry their owner's status: this process stops a suspended owner's
		// keys at once, other replicas within the key cache's TTL.
		s.cfg.Keys.Forget()
	}
	s.cfg.Log.Info("user changed", "user_id", id, "email", u.Email, "role", u.Role, "status", u.Status, "by", by.Email)
	return u, nil
}

// CleanCodes deletes codes that expired more than a day ago.
func (s *Service) CleanCodes(ctx context.Context) (int64, error) {
	return s.cfg.Repo.DeleteCodesBefore(ctx, s.now().Add(-24*time.Hour))
}
