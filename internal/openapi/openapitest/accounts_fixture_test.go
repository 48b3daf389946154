package openapitest_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/evp-dev/evp/internal/accounts"
)

// accountsFixture is a real accounts.Service over a real SQLite repository in a temporary
// directory, for the fixture's Deps.Accounts. Users are made directly in the repository and
// their tokens issued with the service's Tokens; sign-in codes are read from the log.
type accountsFixture struct {
	store  *accounts.Store
	repo   *flakyRepo
	tokens *accounts.Tokens
	codes  *codeLog
	svc    *accounts.Service

	mu    sync.Mutex
	users map[accounts.Role]accounts.User // one ACTIVE user per role, made on first use
}

var testSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes, HS256

func newAccounts(t testing.TB) *accountsFixture {
	t.Helper()
	st, err := accounts.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens, err := accounts.NewTokens(testSecret, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a := &accountsFixture{store: st, repo: &flakyRepo{Repository: st}, tokens: tokens, codes: &codeLog{codes: map[string]string{}},
		users: map[accounts.Role]accounts.User{}}
	a.svc = a.service(nil)
	return a
}

// service returns a Service over the fixture's repository, changed by mod when not nil.
func (a *accountsFixture) service(mod func(*accounts.ServiceConfig)) *accounts.Service {
	cfg := accounts.ServiceConfig{Repo: a.repo, Tokens: a.tokens, DevLogin: true, CodeKey: []byte("code-key"),
		KeyPrefix: "evp_", Log: slog.New(a.codes)}
	if mod != nil {
		mod(&cfg)
	}
	return accounts.NewService(cfg)
}

// addUser stores a user with this email, role and status.
func (a *accountsFixture) addUser(t testing.TB, email string, role accounts.Role, status accounts.Status) accounts.User {
	t.Helper()
	u := accounts.User{ID: "usr_" + ulid.Make().String(), Email: email, Role: role, Status: status,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := a.store.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// user returns the ACTIVE user of role (<role>@example.com), making it on first use.
func (a *accountsFixture) user(t testing.TB, role accounts.Role) accounts.User {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if u, ok := a.users[role]; ok {
		return u
	}
	u := a.addUser(t, strings.ToLower(strings.ReplaceAll(string(role), "_", "-"))+"@example.com", role, accounts.StatusActive)
	a.users[role] = u
	return u
}

// tokenFor issues a session token for u.
func (a *accountsFixture) tokenFor(t testing.TB, u accounts.User) string {
	t.Helper()
	tok, _, err := a.tokens.Issue(u)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// token is a session token of the ACTIVE user of role.
func (a *accountsFixture) token(t testing.TB, role accounts.Role) string {
	t.Helper()
	return a.tokenFor(t, a.user(t, role))
}

// flakyRepo is the repository with a switch to make storing API keys fail.
type flakyRepo struct {
	accounts.Repository
	failKeys atomic.Bool
}

func (r *flakyRepo) InsertAPIKey(ctx context.Context, k accounts.APIKey, hash [32]byte) error {
	if r.failKeys.Load() {
		return errors.New("disk I/O error")
	}
	return r.Repository.InsertAPIKey(ctx, k, hash)
}

// codeLog is the service's log: it keeps the newest sign-in code written for each email
// (EVP_DEV_LOGIN) and discards everything else.
type codeLog struct {
	mu    sync.Mutex
	codes map[string]string
}

func (c *codeLog) Enabled(context.Context, slog.Level) bool { return true }
func (c *codeLog) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *codeLog) WithGroup(string) slog.Handler            { return c }

func (c *codeLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "sign-in code" {
		return nil
	}
	var email, code string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "email":
			email = a.Value.String()
		case "code":
			code = a.Value.String()
		}
		return true
	})
	c.mu.Lock()
	c.codes[email] = code
	c.mu.Unlock()
	return nil
}

// code returns the newest code logged for email ("" when none was).
func (c *codeLog) code(email string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.codes[email]
}

// failingCounter is a rate-limit counter store that is down (Deps.AuthLimitCounter).
type failingCounter struct{}

func (failingCounter) Config(int, time.Duration) {}
func (failingCounter) Increment(string, time.Time) error {
	return errors.New("redis: connection refused")
}
func (failingCounter) IncrementBy(string, time.Time, int) error {
	return errors.New("redis: connection refused")
}
func (failingCounter) Get(string, time.Time, time.Time) (int, int, error) {
	return 0, 0, errors.New("redis: connection refused")
}
