package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/app"
	"github.com/evp-dev/evp/internal/config"
)

const userUsage = `Usage:
  evp user add --email EMAIL [--role ADMIN|OPERATOR|VIEWER|API_CLIENT]
  evp user list
  evp user forget USERID

"user add" invites someone from the command line: they sign in with a code sent to EMAIL.
Adding the first ADMIN this way, before evp is reachable, means nobody else can become the
first user (who is made ADMIN) by signing in first.

"user forget" deletes every stored event whose userId is exactly USERID, from the events
and from the analytics (an erasure request), as DELETE /api/v1/users/{userId}/events does;
it opens the event store the settings name (EVP_DATA_DIR or MONGO_URI), also while evp runs.
Events of the user still in the buffer, or sent later, are stored afterwards. A running evp
stops counting them once it has rebuilt those hours (in the background, starting within a
second); answers it cached before expire within 10 s.
`

func user(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, userUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, args := args[0], args[1:]
	var email, role string
	extra := func(fs *flag.FlagSet) {
		if sub == "add" {
			fs.StringVar(&email, "email", "", "the person's email address (required)")
			fs.StringVar(&role, "role", "VIEWER", "ADMIN, OPERATOR, VIEWER or API_CLIENT")
		}
	}
	cfg, rest, code, ok := load("evp user "+sub, args, getenv, stdout, stderr, extra)
	if !ok {
		return code
	}
	if sub == "forget" {
		return forget(cfg, rest, stdout, stderr)
	}
	if sub != "add" && sub != "list" {
		fmt.Fprintf(stderr, "evp: unknown user command %q\n\n%s", sub, userUsage)
		return 2
	}
	var norm string
	if sub == "add" {
		var err error
		if norm, err = accounts.NormalizeEmail(email); err != nil || len(rest) > 0 {
			fmt.Fprintf(stderr, "evp: user add needs --email with an address like name@example.com\n\n%s", userUsage)
			return 2
		}
		if !accounts.Role(role).Valid() {
			fmt.Fprintf(stderr, "evp: invalid --role=%q: must be ADMIN, OPERATOR, VIEWER or API_CLIENT\n", role)
			return 2
		}
	}
	if err := cfg.PrepareDataDir(); err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	repo, err := app.OpenAccounts(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 1
	}
	defer repo.Close()

	if sub == "add" {
		u := accounts.User{ID: "usr_" + ulid.Make().String(), Email: norm, Role: accounts.Role(role),
			Status: accounts.StatusPending, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
		if err := repo.CreateUser(ctx, u); err != nil {
			if errors.Is(err, accounts.ErrEmailTaken) {
				fmt.Fprintf(stderr, "evp: a user with email %s exists\n", norm)
				return 1
			}
			fmt.Fprintf(stderr, "evp: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "Added %s as %s (%s). They sign in with a code sent to that address.\n", norm, role, u.ID)
		return 0
	}
	users, err := repo.ListUsers(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tROLE\tSTATUS\tCREATED\tLAST SIGN-IN")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Email, u.Role, strings.ReplaceAll(string(u.Status), "_", " "),
			u.CreatedAt.Format(time.RFC3339), fmtTime(u.LastLoginAt))
	}
	tw.Flush()
	return 0
}

// forget is evp user forget USERID.
func forget(cfg *config.Config, rest []string, stdout, stderr io.Writer) int {
	if len(rest) != 1 || rest[0] == "" {
		fmt.Fprintf(stderr, "evp: user forget needs one user id\n\n%s", userUsage)
		return 2
	}
	if err := cfg.PrepareDataDir(); err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := app.ForgetUser(ctx, cfg, slog.New(slog.NewTextHandler(stderr, nil)), rest[0])
	if err != nil {
		fmt.Fprintf(stderr, "evp: deleted %d events of user %q, then: %v\nRun it again to delete the rest.\n", n, rest[0], err)
		return 1
	}
	fmt.Fprintf(stdout, "Deleted %d events of user %q.\n", n, rest[0])
	return 0
}
