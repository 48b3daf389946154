package accountstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
)

// testCodeAttemptRace takes tries of one code from many goroutines at once: exactly the
// limit are granted.
func testCodeAttemptRace(t *testing.T, r accounts.Repository) {
	ctx := context.Background()
	now := time.Now()
	c := accounts.LoginCode{ID: "code_race", Email: "race@example.com", Hash: []byte{1}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := r.SaveCode(ctx, c); err != nil {
		t.Fatal(err)
	}
	const tries, limit = 40, 5
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := r.TakeCodeAttempt(ctx, c.ID, limit, now)
			if err != nil {
				t.Errorf("TakeCodeAttempt: %v", err)
			}
			if ok {
				granted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := granted.Load(); n != limit {
		t.Fatalf("%d concurrent TakeCodeAttempt calls with a limit of %d granted %d tries", tries, limit, n)
	}
	if got, _ := r.LatestCode(ctx, c.Email); got.Attempts != limit {
		t.Fatalf("attempts = %d after the race, want %d", got.Attempts, limit)
	}
}

// codeMail keeps the codes a Service sends, by email.
type codeMail struct {
	mu    sync.Mutex
	codes map[string]string
}

func (m *codeMail) SendCode(_ context.Context, to, code string, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.codes == nil {
		m.codes = map[string]string{}
	}
	m.codes[to] = code
	return nil
}

// newService returns a Service over r that mails codes to m; services made with the same m
// share the code key, so they accept each other's codes.
func newService(t *testing.T, r accounts.Repository, m *codeMail) *accounts.Service {
	t.Helper()
	tokens, err := accounts.NewTokens(bytes.Repeat([]byte("s"), accounts.MinSecretLen), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return accounts.NewService(accounts.ServiceConfig{Repo: r, Tokens: tokens, Mailer: m,
		CodeKey: []byte("accountstest code key"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// requestCode asks svc for a code for email and returns it.
func requestCode(t *testing.T, svc *accounts.Service, m *codeMail, email string) string {
	t.Helper()
	if err := svc.RequestCode(context.Background(), email); err != nil {
		t.Fatalf("RequestCode(%s): %v", email, err)
	}
	svc.WaitForMail()
	m.mu.Lock()
	defer m.mu.Unlock()
	code := m.codes[email]
	if code == "" {
		t.Fatalf("no code was sent to %s", email)
	}
	return code
}

// wrongCode returns a well-formed code other than code.
func wrongCode(code string, i int) string {
	w := fmt.Sprintf("%06d", i)
	if w == code {
		w = fmt.Sprintf("%06d", i+1)
	}
	return w
}

// gatedRepo holds each LatestCode call until n calls have read, so that n verifications
// all read the code before any of them goes on: the interleaving in which a read, compare,
// then increment lets more guesses through than the limit.
type gatedRepo struct {
	accounts.Repository
	read sync.WaitGroup
}

func newGatedRepo(r accounts.Repository, n int) *gatedRepo {
	g := &gatedRepo{Repository: r}
	g.read.Add(n)
	return g
}

func (g *gatedRepo) LatestCode(ctx context.Context, email string) (accounts.LoginCode, error) {
	c, err := g.Repository.LatestCode(ctx, email)
	g.read.Done()
	g.read.Wait()
	return c, err
}

// verifyAll verifies each of codes for email through svc, all at once.
func verifyAll(svc *accounts.Service, email string, codes []string) ([]accounts.Session, []error) {
	sessions := make([]accounts.Session, len(codes))
	errs := make([]error, len(codes))
	var wg sync.WaitGroup
	for i, code := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sessions[i], errs[i] = svc.Verify(context.Background(), email, code)
		}()
	}
	wg.Wait()
	return sessions, errs
}

// testCodeGuesses: concurrent wrong guesses are compared at most MaxCodeAttempts times in
// all, and a code whose tries are used up never signs in; the last allowed try may be the
// right code.
func testCodeGuesses(t *testing.T, r accounts.Repository) {
	ctx := context.Background()
	m := &codeMail{}
	svc := newService(t, r, m)
	const email = "ann@example.com"
	code := requestCode(t, svc, m, email)

	const guesses = 40
	wrong := make([]string, guesses)
	for i := range wrong {
		wrong[i] = wrongCode(code, i)
	}
	_, errs := verifyAll(newService(t, newGatedRepo(r, guesses), m), email, wrong)
	for i, err := range errs {
		if !errors.Is(err, accounts.ErrInvalidCode) {
			t.Fatalf("wrong guess #%d: %v, want ErrInvalidCode", i, err)
		}
	}
	c, err := r.LatestCode(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	if c.Attempts != accounts.MaxCodeAttempts {
		t.Errorf("%d concurrent wrong guesses counted %d tries, want %d: no more guesses are compared than the limit",
			guesses, c.Attempts, accounts.MaxCodeAttempts)
	}
	if _, err := svc.Verify(ctx, email, code); !errors.Is(err, accounts.ErrInvalidCode) {
		t.Fatalf("the right code after its tries were used up: %v, want ErrInvalidCode", err)
	}

	// The right code on the last allowed try signs in.
	const other = "bob@example.com"
	code = requestCode(t, svc, m, other)
	for i := range accounts.MaxCodeAttempts - 1 {
		if _, err := svc.Verify(ctx, other, wrongCode(code, i)); !errors.Is(err, accounts.ErrInvalidCode) {
			t.Fatalf("wrong guess #%d: %v, want ErrInvalidCode", i, err)
		}
	}
	if s, err := svc.Verify(ctx, other, code); err != nil || s.Token == "" {
		t.Fatalf("the right code on try %d of %d: %v", accounts.MaxCodeAttempts, accounts.MaxCodeAttempts, err)
	}
}

// testCodeSingleUse: the right code guessed twice at once signs in once.
func testCodeSingleUse(t *testing.T, r accounts.Repository) {
	m := &codeMail{}
	svc := newService(t, r, m)
	const email = "ann@example.com"
	code := requestCode(t, svc, m, email)
	sessions, errs := verifyAll(newService(t, newGatedRepo(r, 2), m), email, []string{code, code})
	signedIn := 0
	for i, err := range errs {
		switch {
		case err == nil && sessions[i].Token != "":
			signedIn++
		case !errors.Is(err, accounts.ErrInvalidCode):
			t.Fatalf("verification #%d: %v", i, err)
		}
	}
	if signedIn != 1 {
		t.Fatalf("the right code verified twice at once signed in %d times, want 1", signedIn)
	}
	if _, err := svc.Verify(context.Background(), email, code); !errors.Is(err, accounts.ErrInvalidCode) {
		t.Fatalf("the code once more: %v, want ErrInvalidCode", err)
	}
}
