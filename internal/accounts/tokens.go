package accounts

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Session tokens are JWTs (github.com/golang-jwt/jwt/v5, the maintained fork of the
// reference Go implementation) signed with HS256. The algorithm, issuer and audience are
// pinned on verification, and exp is required.
const (
	tokenIssuer   = "evp"
	tokenAudience = "evp-dashboard"
	// MinSecretLen is the shortest JWT_SECRET accepted in production (256 bits for HS256).
	MinSecretLen = 32
)

// ErrInvalidToken means a session token is malformed, forged, expired or for someone else.
var ErrInvalidToken = errors.New("accounts: invalid session token")

// Tokens issues and verifies session tokens.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewTokens returns a token issuer; the secret must be at least MinSecretLen bytes.
func NewTokens(secret []byte, ttl time.Duration) (*Tokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("accounts: the JWT secret has %d bytes; at least %d are needed", len(secret), MinSecretLen)
	}
	if ttl <= 0 {
		return nil, errors.New("accounts: the token lifetime must be positive")
	}
	return &Tokens{secret: secret, ttl: ttl, now: time.Now}, nil
}

// Claims are what a session token says.
type Claims struct {
	Email string `json:"email"`
	Role  Role   `json:"role"`
	jwt.RegisteredClaims
}

// Issue returns a signed token for u and its expiry.
func (t *Tokens) Issue(u User) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl)
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", time.Time{}, err
	}
	c := Claims{Email: u.Email, Role: u.Role, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   u.ID,
		Audience:  jwt.ClaimStrings{tokenAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        fmt.Sprintf("%x", jti),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: sign token: %w", err)
	}
	return s, exp, nil
}

// Verify checks the token and returns its claims, or ErrInvalidToken.
func (t *Tokens) Verify(token string) (Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithAudience(tokenAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil || c.Subject == "" {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	return c, nil
}

// LoadOrCreateSecret returns the JWT secret kept in dir/jwt-secret, creating a random one
// the first time. This is the embedded-mode default, so that a laptop needs no setup and
// sessions survive a restart.
func LoadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, "jwt-secret")
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("accounts: %s holds a secret shorter than %d bytes; delete it to make a new one", path, MinSecretLen)
		}
		return []byte(s), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("accounts: read JWT secret: %w", err)
	}
	s, err := GenerateKey("")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process made it first
		return LoadOrCreateSecret(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: create JWT secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("accounts: write JWT secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return []byte(s), f.Close()
}
