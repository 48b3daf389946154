package accounts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// A status change made through the Service applies to the owner's keys at once in this
// process, although the key cache would keep them far longer.
func TestStatusChangeAppliesToKeysAtOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	keys := NewKeyAuth(s, time.Hour)
	tokens, err := NewTokens(bytes.Repeat([]byte("s"), MinSecretLen), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(ServiceConfig{Repo: s, Tokens: tokens, Keys: keys, KeyPrefix: testPrefix,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	admin := User{ID: "usr_admin", Email: "admin@example.com", Role: RoleAdmin, Status: StatusActive, CreatedAt: time.Now()}
	owner := User{ID: "usr_owner", Email: "owner@example.com", Role: RoleOperator, Status: StatusActive, CreatedAt: time.Now()}
	for _, u := range []User{admin, owner} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	plain, _, err := svc.CreateKey(ctx, owner, NewKey{Name: "owned"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, plain); err != nil {
		t.Fatalf("the key of an active owner: %v", err)
	}
	for _, st := range []Status{StatusSuspended, StatusActive, StatusInactive} {
		if _, err := svc.UpdateUser(ctx, admin, owner.ID, UserChange{Status: &st}); err != nil {
			t.Fatalf("UpdateUser(%s): %v", st, err)
		}
		_, err := keys.Authenticate(ctx, plain)
		if st == StatusActive && err != nil {
			t.Errorf("the key right after its owner was made ACTIVE again: %v", err)
		}
		if st != StatusActive && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("the key right after its owner was made %s: %v, want ErrInvalidKey", st, err)
		}
	}
}
