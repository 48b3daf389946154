package pgaccounts

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The migrations are the files migrations/NNNN_name.sql, versions 1..n without gaps. A
// released file is never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema step.
type migration struct {
	Version int
	Name    string
	SQL     string
}

// migrationLockKey is the pg_advisory_lock key held while migrating, so that evp processes
// starting together against one database apply each migration once. Advisory locks are
// scoped to the current database.
const migrationLockKey int64 = 0x6576705f61636331 // "evp_acc1"

var migrations = mustLoadMigrations(migrationFiles)

// SchemaVersion is the schema version this build of evp needs (its newest migration).
func SchemaVersion() int { return len(migrations) }

func mustLoadMigrations(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic(err)
	}
	return ms
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var ms []migration
	for i, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".sql")
		num, label, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || label == "" {
			return nil, fmt.Errorf("pgaccounts: migration file %s is not named NNNN_name.sql", name)
		}
		if v != i+1 {
			return nil, fmt.Errorf("pgaccounts: migration file %s has version %d, want %d", name, v, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{Version: v, Name: label, SQL: string(b)})
	}
	if len(ms) == 0 {
		return nil, errors.New("pgaccounts: no migrations embedded")
	}
	return ms, nil
}

// Migrate connects to databaseURL and applies the migrations the database lacks. It returns
// how many it applied (0 when the schema was current). Safe to run from several processes
// at once: they take turns on an advisory lock, and the later ones find nothing to do.
func Migrate(ctx context.Context, databaseURL string) (applied int, err error) {
	cfg, err := parseConfig(databaseURL)
	if err != nil {
		return 0, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return 0, fmt.Errorf("pgaccounts: connect: %w", err)
	}
	// Closing the session also releases the advisory lock, whatever happened.
	defer conn.Close(context.WithoutCancel(ctx))
	return applyMigrations(ctx, conn)
}

// applyMigrations applies the missing migrations on conn, in order and each in its own transaction,
// holding the session advisory lock throughout. The caller closes conn if this fails (which
// releases the lock if the unlock itself could not be sent).
func applyMigrations(ctx context.Context, conn *pgx.Conn) (applied int, err error) {
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return 0, fmt.Errorf("pgaccounts: take the migration lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey); uerr != nil && err == nil {
			err = fmt.Errorf("pgaccounts: release the migration lock: %w", uerr)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("pgaccounts: create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, fmt.Errorf("pgaccounts: read schema version: %w", err)
	}
	for _, m := range migrations {
		if m.Version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("pgaccounts: migration %d (%s): %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("pgaccounts: record migration %d: %w", m.Version, err)
			}
			return nil
		})
		if err != nil {
			return applied, err
		}
		applied++
	}
	return applied, nil
}

// ErrSchemaNotCurrent is returned by Open without migrate when the database lacks migrations.
var ErrSchemaNotCurrent = errors.New("pgaccounts: the PostgreSQL schema is not current")

// checkSchema fails unless every migration of this build is recorded in the database. A
// newer schema (written by a newer evp) is accepted: migrations only add.
func checkSchema(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("pgaccounts: read schema version: %w", err)
	}
	current := 0
	if exists {
		if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("pgaccounts: read schema version: %w", err)
		}
	}
	if current < SchemaVersion() {
		return fmt.Errorf("%w: the database is at version %d, this evp needs version %d; run `evp migrate` with the same DATABASE_URL (or start evp with EVP_AUTO_MIGRATE=true)",
			ErrSchemaNotCurrent, current, SchemaVersion())
	}
	return nil
}
