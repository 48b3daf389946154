package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/app"
	"github.com/evp-dev/evp/internal/store/sqlitestore"
)

const apikeyUsage = `Usage:
  evp apikey create --name NAME [--expires-in DURATION] [--ingest-only] [--allowed-origins ORIGINS]
  evp apikey list
  evp apikey revoke KEY_ID
`

func apikey(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, apikeyUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, args := args[0], args[1:]
	var name string
	var expiresIn time.Duration
	var ingestOnly bool
	var origins string
	extra := func(fs *flag.FlagSet) {
		if sub == "create" {
			fs.StringVar(&name, "name", "", "a name that says who uses the key (required)")
			fs.DurationVar(&expiresIn, "expires-in", 0, "lifetime of the key, like 720h (default: no expiry)")
			fs.BoolVar(&ingestOnly, "ingest-only", false, "a key that may only send events (safe in a web page or an app)")
			fs.StringVar(&origins, "allowed-origins", "", "comma-separated web origins browsers may send from with the key, like https://shop.example (default: any)")
		}
	}
	cfg, rest, code, ok := load("evp apikey "+sub, args, getenv, stdout, stderr, extra)
	if !ok {
		return code
	}
	if err := cfg.PrepareDataDir(); err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := app.OpenAccounts(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 1
	}
	defer st.Close()

	switch sub {
	case "create":
		if strings.TrimSpace(name) == "" || len(rest) > 0 {
			fmt.Fprintf(stderr, "evp: apikey create needs --name NAME\n\n%s", apikeyUsage)
			return 2
		}
		if expiresIn < 0 {
			fmt.Fprintf(stderr, "evp: invalid --expires-in=%s: must be positive\n", expiresIn)
			return 2
		}
		var exp *time.Time
		if expiresIn > 0 {
			t := time.Now().Add(expiresIn).UTC().Truncate(time.Millisecond)
			exp = &t
		}
		plain, k, err := accounts.CreateAPIKey(ctx, st, accounts.NewKey{Name: name, Prefix: cfg.APIKeyPrefix, ExpiresAt: exp, IngestOnly: ingestOnly,
			AllowedOrigins: splitList(origins)})
		if err != nil {
			fmt.Fprintf(stderr, "evp: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", plain)
		scope := ""
		if k.IngestOnly {
			scope = ", ingest-only: it may only send events"
		}
		fmt.Fprintf(stderr, "Created API key %s (%q%s). It is shown only this once: store it now.\n", k.ID, k.Name, scope)
		return 0
	case "list":
		keys, err := st.ListAPIKeys(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "evp: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKEY\tSCOPE\tCREATED\tLAST USED\tEXPIRES\tSTATUS")
		now := time.Now()
		for _, k := range keys {
			status := "active"
			switch {
			case k.RevokedAt != nil:
				status = "revoked"
			case !k.Usable(now):
				status = "expired"
			}
			scope := "ingest+read"
			if k.IngestOnly {
				scope = "ingest only"
			}
			if len(k.AllowedOrigins) > 0 {
				scope += " from " + strings.Join(k.AllowedOrigins, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s...%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.Last4, scope,
				k.CreatedAt.Format(time.RFC3339), fmtTime(k.LastUsedAt), fmtTime(k.ExpiresAt), status)
		}
		tw.Flush()
		return 0
	case "revoke":
		if len(rest) != 1 {
			fmt.Fprintf(stderr, "evp: apikey revoke needs one KEY_ID (see evp apikey list)\n")
			return 2
		}
		if err := st.RevokeAPIKey(ctx, rest[0], time.Now()); err != nil {
			if errors.Is(err, accounts.ErrKeyNotFound) {
				fmt.Fprintf(stderr, "evp: no API key with id %q\n", rest[0])
				return 1
			}
			fmt.Fprintf(stderr, "evp: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "Revoked %s. Running evp processes stop accepting it within 60 s.\n", rest[0])
		return 0
	}
	fmt.Fprintf(stderr, "evp: unknown apikey command %q\n\n%s", sub, apikeyUsage)
	return 2
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// migrate applies the migrations of the account and event stores. The buffer migrates
// itself when evp starts (it may be held by a running evp).
func migrate(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, _, code, ok := load("evp migrate", args, getenv, stdout, stderr, nil)
	if !ok {
		return code
	}
	if err := cfg.PrepareDataDir(); err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if cfg.DatabaseURL != "" {
		if !migratePostgres(ctx, cfg, stdout, stderr) {
			return 1
		}
	} else {
		acc, err := accounts.Open(ctx, cfg.DataDir)
		if err != nil {
			fmt.Fprintf(stderr, "evp: accounts: %v\n", err)
			return 1
		}
		if err := acc.Close(); err != nil {
			fmt.Fprintf(stderr, "evp: accounts: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "Accounts: embedded store in %s is current.\n", cfg.DataDir)
	}
	if cfg.MongoURI != "" {
		if !migrateMongo(ctx, cfg, stdout, stderr) {
			return 1
		}
	} else {
		st, err := sqlitestore.Open(ctx, cfg.DataDir, "FULL")
		if err != nil {
			fmt.Fprintf(stderr, "evp: event store: %v\n", err)
			return 1
		}
		if err := st.Close(); err != nil {
			fmt.Fprintf(stderr, "evp: event store: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "Events: embedded store in %s is current.\n", cfg.DataDir)
	}
	return 0
}

// healthcheck asks the local evp's /api/live; images without a shell or curl use it as
// their HEALTHCHECK.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, _, code, ok := load("evp healthcheck", args, getenv, stdout, stderr, nil)
	if !ok {
		return code
	}
	client := &http.Client{Timeout: 3 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/api/live", cfg.Port)
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "evp: healthcheck: %v\n", err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "evp: healthcheck: %s answered %d\n", url, resp.StatusCode)
		return 1
	}
	return 0
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
