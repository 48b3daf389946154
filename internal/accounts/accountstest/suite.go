// Package accountstest is the contract every accounts.Repository passes. Each backend's
// tests call Run with a function that opens a fresh, empty repository.
package accountstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
)

// Run runs the contract against repositories made by open (each call: a new empty one).
func Run(t *testing.T, open func(t *testing.T) accounts.Repository) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open(t)) })
	t.Run("FirstUserRace", func(t *testing.T) { testFirstUserRace(t, open(t)) })
	t.Run("Codes", func(t *testing.T) { testCodes(t, open(t)) })
	t.Run("CodeAttemptRace", func(t *testing.T) { testCodeAttemptRace(t, open(t)) })
	t.Run("CodeGuesses", func(t *testing.T) { testCodeGuesses(t, open(t)) })
	t.Run("CodeSingleUse", func(t *testing.T) { testCodeSingleUse(t, open(t)) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, open(t)) })
	t.Run("Settings", func(t *testing.T) { testSettings(t, open(t)) })
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func user(id, email string, role accounts.Role, at time.Time) accounts.User {
	return accounts.User{ID: id, Email: email, Role: role, Status: accounts.StatusActive, CreatedAt: at}
}

func testUsers(t *testing.T, r accounts.Repository) {
	ctx := context.Background()
	if n, err := r.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on an empty store = %d, %v", n, err)
	}
	if _, err := r.UserByEmail(ctx, "a@example.com"); !errors.Is(err, accounts.ErrUserNotFound) {
		t.Fatalf("UserByEmail(unknown) = %v, want ErrUserNotFound", err)
	}
	a := user("usr_a", "Ann@Example.com", accounts.RoleAdmin, t0)
	if err := r.CreateUser(ctx, a); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	dup := user("usr_dup", "ann@example.COM", accounts.RoleViewer, t0)
	if err := r.CreateUser(ctx, dup); !errors.Is(err, accounts.ErrEmailTaken) {
		t.Fatalf("CreateUser with the same email in other case = %v, want ErrEmailTaken", err)
	}
	b := user("usr_b", "bob@example.com", accounts.RoleViewer, t0.Add(time.Second))
	b.Status = accounts.StatusPending
	b.InvitedBy = a.ID
	if err := r.CreateUser(ctx, b); err != nil {
		t.Fatalf("CreateUser(b): %v", err)
	}
	got, err := r.UserByEmail(ctx, "ANN@example.com")
	if err != nil {
		t.Fatalf("UserByEmail: %v", err)
	}
	if got.ID != a.ID || got.Email != "ann@example.com" || got.Role != accounts.RoleAdmin || got.Status != accounts.StatusActive ||
		!got.CreatedAt.Equal(t0) || got.LastLoginAt != nil || got.InvitedBy != "" {
		t.Errorf("UserByEmail = %+v; want ann, lower-cased, ADMIN, ACTIVE, created %v, never signed in", got, t0)
	}
	gb, err := r.UserByID(ctx, b.ID)
	if err != nil || gb.Email != "bob@example.com" || gb.Status != accounts.StatusPending || gb.InvitedBy != a.ID {
		t.Errorf("UserByID(b) = %+v, %v", gb, err)
	}
	if _, err := r.UserByID(ctx, "usr_none"); !errors.Is(err, accounts.ErrUserNotFound) {
		t.Errorf("UserByID(unknown) = %v", err)
	}
	list, err := r.ListUsers(ctx)
	if err != nil || len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("ListUsers = %+v, %v; want ann then bob", list, err)
	}
	if n, _ := r.CountUsers(ctx); n != 2 {
		t.Errorf("CountUsers = %d, want 2", n)
	}

	op := accounts.RoleOperator
	u, err := r.UpdateUser(ctx, b.ID, accounts.UserChange{Role: &op})
	if err != nil || u.Role != accounts.RoleOperator || u.Status != accounts.StatusPending {
		t.Fatalf("UpdateUser(role) = %+v, %v; want OPERATOR and status untouched", u, err)
	}
	sus := accounts.StatusSuspended
	u, err = r.UpdateUser(ctx, b.ID, accounts.UserChange{Status: &sus})
	if err != nil || u.Role != accounts.RoleOperator || u.Status != accounts.StatusSuspended {
		t.Fatalf("UpdateUser(status) = %+v, %v", u, err)
	}
	if _, err := r.UpdateUser(ctx, "usr_none", accounts.UserChange{Status: &sus}); !errors.Is(err, accounts.ErrUserNotFound) {
		t.Errorf("UpdateUser(unknown) = %v, want ErrUserNotFound", err)
	}

	// RecordLogin activates a pending user, and only a pending one.
	c := user("usr_c", "cy@example.com", accounts.RoleViewer, t0)
	c.Status = accounts.StatusPending
	if err := r.CreateUser(ctx, c); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Hour)
	if err := r.RecordLogin(ctx, c.ID, at); err != nil {
		t.Fatalf("RecordLogin: %v", err)
	}
	gc, _ := r.UserByID(ctx, c.ID)
	if gc.Status != accounts.StatusActive || gc.LastLoginAt == nil || !gc.LastLoginAt.Equal(at) {
		t.Errorf("after RecordLogin: %+v; want ACTIVE, last login %v", gc, at)
	}
	if err := r.RecordLogin(ctx, b.ID, at); err != nil {
		t.Fatal(err)
	}
	if gb, _ := r.UserByID(ctx, b.ID); gb.Status != accounts.StatusSuspended {
		t.Errorf("RecordLogin changed a suspended user's status to %s", gb.Status)
	}
	if err := r.RecordLogin(ctx, "usr_none", at); !errors.Is(err, accounts.ErrUserNotFound) {
		t.Errorf("RecordLogin(unknown) = %v, want ErrUserNotFound", err)
	}
}

func testFirstUserRace(t *testing.T, r accounts.Repository) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	results := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.CreateFirstUser(ctx, user(fmt.Sprintf("usr_%d", i), fmt.Sprintf("u%d@example.com", i), accounts.RoleAdmin, t0))
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreateFirstUser #%d: %v", i, errs[i])
		}
		if results[i] {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent CreateFirstUser calls created %d users, want exactly 1", n, created)
	}
	if c, _ := r.CountUsers(ctx); c != 1 {
		t.Fatalf("CountUsers = %d after the race, want 1", c)
	}
	if ok, err := r.CreateFirstUser(ctx, user("usr_late", "late@example.com", accounts.RoleAdmin, t0)); ok || err != nil {
		t.Errorf("CreateFirstUser with a user present = %v, %v; want false, nil", ok, err)
	}
}

func testCodes(t *testing.T, r accounts.Repository) {
	ctx := context.Background()
	if _, err := r.LatestCode(ctx, "a@example.com"); !errors.Is(err, accounts.ErrCodeNotFound) {
		t.Fatalf("LatestCode(none) = %v, want ErrCodeNotFound", err)
	}
	for i, at := range []time.Time{t0, t0.Add(5 * time.Minute), t0.Add(10 * time.Minute)} {
		c := accounts.LoginCode{ID: fmt.Sprintf("code_%d", i), Email: "A@example.com", Hash: []byte{byte(i), 1, 2},
			CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute)}
		if err := r.SaveCode(ctx, c); err != nil {
			t.Fatalf("SaveCode: %v", err)
		}
	}
	other := accounts.LoginCode{ID: "code_other", Email: "b@example.com", Hash: []byte{9}, CreatedAt: t0.Add(time.Hour), ExpiresAt: t0.Add(time.Hour + 5*time.Minute)}
	if err := r.SaveCode(ctx, other); err != nil {
		t.Fatal(err)
	}
	if n, err := r.CountCodesSince(ctx, "a@EXAMPLE.com", t0.Add(5*time.Minute)); err != nil || n != 2 {
		t.Errorf("CountCodesSince = %d, %v; want 2 (inclusive bound, case-insensitive email)", n, err)
	}
	c, err := r.LatestCode(ctx, "a@example.com")
	if err != nil || c.ID != "code_2" || string(c.Hash) != string([]byte{2, 1, 2}) || c.Attempts != 0 || c.UsedAt != nil ||
		!c.CreatedAt.Equal(t0.Add(10*time.Minute)) || !c.ExpiresAt.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("LatestCode = %+v, %v; want code_2 as saved", c, err)
	}
	now := t0.Add(11 * time.Minute) // code_2 is valid from t0+10m to t0+15m
	for i := 1; i <= 3; i++ {
		if ok, err := r.TakeCodeAttempt(ctx, c.ID, 3, now); err != nil || !ok {
			t.Fatalf("TakeCodeAttempt #%d with a limit of 3 = %v, %v; want true", i, ok, err)
		}
	}
	if ok, err := r.TakeCodeAttempt(ctx, c.ID, 3, now); err != nil || ok {
		t.Fatalf("TakeCodeAttempt past the limit = %v, %v; want false", ok, err)
	}
	if ok, err := r.TakeCodeAttempt(ctx, c.ID, 4, now); err != nil || !ok {
		t.Fatalf("TakeCodeAttempt with a limit of 4 after 3 tries = %v, %v; want true (a refused try is not counted)", ok, err)
	}
	for _, tc := range []struct {
		name string
		id   string
		at   time.Time
	}{
		{"unknown", "code_none", now},
		{"expired", "code_1", now},
		{"at its expiry", "code_2", t0.Add(15 * time.Minute)},
	} {
		if ok, err := r.TakeCodeAttempt(ctx, tc.id, 10, tc.at); err != nil || ok {
			t.Errorf("TakeCodeAttempt(%s code) = %v, %v; want false", tc.name, ok, err)
		}
	}
	// Single use, also under concurrent verification.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := r.UseCode(ctx, c.ID, t0.Add(11*time.Minute))
			if err != nil {
				t.Errorf("UseCode: %v", err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("6 concurrent UseCode calls succeeded %d times, want 1", wins)
	}
	c, _ = r.LatestCode(ctx, "a@example.com")
	if c.UsedAt == nil || !c.UsedAt.Equal(t0.Add(11*time.Minute)) || c.Attempts != 4 {
		t.Errorf("after use: %+v; want used at %v after 4 tries", c, t0.Add(11*time.Minute))
	}
	if ok, err := r.TakeCodeAttempt(ctx, c.ID, 10, now); err != nil || ok {
		t.Errorf("TakeCodeAttempt(used code) = %v, %v; want false", ok, err)
	}
	n, err := r.DeleteCodesBefore(ctx, t0.Add(14*time.Minute))
	if err != nil || n != 2 {
		t.Errorf("DeleteCodesBefore = %d, %v; want the 2 codes that expired before", n, err)
	}
	if c, err := r.LatestCode(ctx, "b@example.com"); err != nil || c.ID != "code_other" {
		t.Errorf("other email's code = %+v, %v", c, err)
	}
}

func testAPIKeys(t *testing.T, r accounts.Repository) {
	ctx := context.Background()
	owner := user("usr_owner", "owner@example.com", accounts.RoleOperator, t0)
	if err := r.CreateUser(ctx, owner); err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(24 * time.Hour)
	k1 := accounts.APIKey{ID: "key_1", Name: "one", Prefix: "evp_abcd", Last4: "wxyz", CreatedAt: t0}
	k2 := accounts.APIKey{ID: "key_2", Name: "two", Prefix: "evp_efgh", Last4: "stuv", OwnerID: owner.ID, CreatedAt: t0.Add(time.Minute), ExpiresAt: &exp, IngestOnly: true,
		AllowedOrigins: []string{"https://shop.example", "http://localhost:8080"}}
	h1, h2 := accounts.HashKey("evp_secret_one"), accounts.HashKey("evp_secret_two")
	if err := r.InsertAPIKey(ctx, k1, h1); err != nil {
		t.Fatalf("InsertAPIKey: %v", err)
	}
	if err := r.InsertAPIKey(ctx, k2, h2); err != nil {
		t.Fatalf("InsertAPIKey: %v", err)
	}
	if err := r.InsertAPIKey(ctx, accounts.APIKey{ID: "key_3", Name: "same hash", Prefix: "p", Last4: "l", CreatedAt: t0}, h1); err == nil {
		t.Error("InsertAPIKey accepted a second key with the same hash")
	}
	list, err := r.ListAPIKeys(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "key_2" || list[1].ID != "key_1" {
		t.Fatalf("ListAPIKeys = %+v, %v; want key_2, key_1 (newest first)", list, err)
	}
	if list[0].OwnerID != owner.ID || list[0].ExpiresAt == nil || !list[0].ExpiresAt.Equal(exp) || list[0].Name != "two" || list[0].Prefix != "evp_efgh" || list[0].Last4 != "stuv" || !list[0].IngestOnly {
		t.Errorf("listed key_2 = %+v", list[0])
	}
	if list[1].IngestOnly {
		t.Errorf("listed key_1 = %+v, want a key that is not ingest-only", list[1])
	}
	got, err := r.LookupAPIKey(ctx, h2)
	if err != nil || got.ID != "key_2" || got.OwnerStatus != accounts.StatusActive || !got.IngestOnly ||
		!slices.Equal(got.AllowedOrigins, k2.AllowedOrigins) {
		t.Fatalf("LookupAPIKey = %+v, %v; want key_2, ingest-only, with its owner ACTIVE", got, err)
	}
	got, err = r.LookupAPIKey(ctx, h1)
	if err != nil || got.ID != "key_1" || got.OwnerID != "" || got.OwnerStatus != "" || got.IngestOnly || got.AllowedOrigins != nil {
		t.Fatalf("LookupAPIKey(ownerless) = %+v, %v", got, err)
	}
	if _, err := r.LookupAPIKey(ctx, accounts.HashKey("nope")); !errors.Is(err, accounts.ErrKeyNotFound) {
		t.Errorf("LookupAPIKey(unknown) = %v, want ErrKeyNotFound", err)
	}
	sus := accounts.StatusSuspended
	if _, err := r.UpdateUser(ctx, owner.ID, accounts.UserChange{Status: &sus}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.LookupAPIKey(ctx, h2); got.OwnerStatus != accounts.StatusSuspended || got.Usable(t0) {
		t.Errorf("key of a suspended owner: status %q, usable %v", got.OwnerStatus, got.Usable(t0))
	}

	first, second := t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	if err := r.RevokeAPIKey(ctx, "key_1", first); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	if err := r.RevokeAPIKey(ctx, "key_1", second); err != nil {
		t.Fatalf("second RevokeAPIKey: %v", err)
	}
	if got, _ := r.LookupAPIKey(ctx, h1); got.RevokedAt == nil || !got.RevokedAt.Equal(first) {
		t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, first)
	}
	if err := r.RevokeAPIKey(ctx, "key_none", first); !errors.Is(err, accounts.ErrKeyNotFound) {
		t.Errorf("RevokeAPIKey(unknown) = %v, want ErrKeyNotFound", err)
	}

	later, earlier := t0.Add(5*time.Hour), t0.Add(4*time.Hour)
	if err := r.TouchAPIKeys(ctx, map[string]time.Time{"key_1": later}); err != nil {
		t.Fatal(err)
	}
	if err := r.TouchAPIKeys(ctx, map[string]time.Time{"key_1": earlier, "key_2": earlier}); err != nil {
		t.Fatal(err)
	}
	k, _ := r.LookupAPIKey(ctx, h1)
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(later) {
		t.Errorf("LastUsedAt = %v, want %v (never moved backwards)", k.LastUsedAt, later)
	}
	if k, _ := r.LookupAPIKey(ctx, h2); k.LastUsedAt == nil || !k.LastUsedAt.Equal(earlier) {
		t.Errorf("key_2 LastUsedAt = %v, want %v", k.LastUsedAt, earlier)
	}
}

func testSettings(t *testing.T, r accounts.Repository) {
	ctx := context.Background()
	u := user("usr_s", "s@example.com", accounts.RoleViewer, t0)
	if err := r.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if s, err := r.Settings(ctx, u.ID); err != nil || string(s) != "{}" {
		t.Fatalf("Settings(none) = %q, %v; want {}", s, err)
	}
	for _, v := range []string{`{"theme":"dark"}`, `{"theme":"light","refresh":10}`} {
		if err := r.SaveSettings(ctx, u.ID, []byte(v)); err != nil {
			t.Fatalf("SaveSettings: %v", err)
		}
		s, err := r.Settings(ctx, u.ID)
		if err != nil || !sameJSON(s, v) {
			t.Errorf("Settings = %s, %v; want %s", s, err, v)
		}
	}
}
