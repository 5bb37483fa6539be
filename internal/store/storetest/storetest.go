// Package storetest opens real databases for tests: a SQLite file in the
// test's temporary directory, and a fresh schema in the PostgreSQL database
// named by ATTEST_TEST_DATABASE_URL.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/attest/attest/internal/store"
)

// EnvURL names the variable holding the PostgreSQL test database URL.
const EnvURL = "ATTEST_TEST_DATABASE_URL"

// Engine is a database engine a test can run on.
type Engine struct {
	Name string
	// Open returns a migrated, empty database and, for SQLite, its data
	// directory. It skips the test when the engine is unavailable.
	Open func(t testing.TB) (*store.DB, Options)
}

// Options are what a caller needs to open the same database again, as a
// separate process would.
type Options = store.Options

// Engines lists SQLite and PostgreSQL.
func Engines() []Engine {
	return []Engine{{"sqlite", OpenSQLite}, {"postgres", OpenPostgres}}
}

// Run runs f as a subtest on each engine.
func Run(t *testing.T, f func(t *testing.T, db *store.DB, opts Options)) {
	for _, e := range Engines() {
		t.Run(e.Name, func(t *testing.T) {
			db, opts := e.Open(t)
			f(t, db, opts)
		})
	}
}

// OpenSQLite opens a migrated SQLite database in a temporary directory.
func OpenSQLite(t testing.TB) (*store.DB, Options) {
	t.Helper()
	opts := Options{DataDir: t.TempDir()}
	return open(t, opts), opts
}

// PostgresURL returns a URL for a fresh, empty schema in the test database,
// dropped when the test ends, or skips the test when none is configured.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s to a PostgreSQL URL to run them", EnvURL)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", store.RedactURL(base), err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		a.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// OpenPostgres opens a migrated fresh schema in the PostgreSQL test database.
func OpenPostgres(t testing.TB) (*store.DB, Options) {
	t.Helper()
	opts := Options{URL: PostgresURL(t), DataDir: t.TempDir()}
	return open(t, opts), opts
}

func open(t testing.TB, opts Options) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}
