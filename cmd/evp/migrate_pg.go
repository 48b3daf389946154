package main

import (
	"context"
	"fmt"
	"io"

	"github.com/evp-dev/evp/internal/accounts/pgaccounts"
	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/store/mongostore"
)

// migrateMongo creates the MongoDB collections' indexes (what the store would create when
// evp starts) and reports false after printing the error.
func migrateMongo(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) bool {
	st, err := mongostore.Open(ctx, mongostore.Options{URI: cfg.MongoURI, Database: cfg.MongoDB, RetentionDays: cfg.RetentionDays})
	if err != nil {
		fmt.Fprintf(stderr, "evp: MongoDB event store (MONGO_URI): %v\n", err)
		return false
	}
	if err := st.Close(); err != nil {
		fmt.Fprintf(stderr, "evp: MongoDB event store (MONGO_URI): %v\n", err)
		return false
	}
	fmt.Fprintf(stdout, "MongoDB: indexes of database %q are in place.\n", cfg.MongoDB)
	return true
}

// migratePostgres applies the PostgreSQL accounts migrations when DATABASE_URL is set and
// says what it applied. It reports false after printing the error.
func migratePostgres(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) bool {
	if cfg.DatabaseURL == "" {
		return true
	}
	n, err := pgaccounts.Migrate(ctx, cfg.DatabaseURL)
	if err != nil {
		fmt.Fprintf(stderr, "evp: PostgreSQL accounts (DATABASE_URL): %v\n", err)
		return false
	}
	if n == 0 {
		fmt.Fprintf(stdout, "PostgreSQL accounts: schema already current (version %d), nothing applied.\n", pgaccounts.SchemaVersion())
	} else {
		fmt.Fprintf(stdout, "PostgreSQL accounts: applied %d migration(s), schema now at version %d.\n", n, pgaccounts.SchemaVersion())
	}
	return true
}
