package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
)

// sqliteFile is the name of the SQLite database in a data directory.
const sqliteFile = "attest.db"

// probe reports the instance name of the store that sf names, looking
// without creating or changing anything: no directory, file, table or row.
// A store that does not exist, or has no attest schema or no instance
// record, is refused with an error wrapping instance.ErrNotInitialised, and
// one that holds nothing of attest's yet with an emptyStoreError; a store
// that cannot be read is refused with what went wrong.
func (sf *storeFlags) probe(ctx context.Context) (string, error) {
	if sf.databaseURL != "" {
		db, err := store.Open(ctx, store.Options{URL: sf.databaseURL})
		if err != nil {
			return "", err
		}
		defer db.Close()
		return readInstanceName(ctx, db.Read, store.Postgres, "the database at --database-url")
	}
	path := filepath.Join(sf.dataDir, sqliteFile)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", notInitialised(sf, "%s has no database", sf.dataDir)
	case err != nil:
		return "", err
	case fi.Size() == 0:
		return "", notInitialised(sf, "its database %s is empty", path)
	}
	// mode=ro: not even a journal or the header of an empty database may
	// be written by looking.
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(30000)")
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return readInstanceName(ctx, db, store.SQLite, path)
}

// readInstanceName reads the instance name from a database that attest
// init or serve created, with where naming the database in errors.
func readInstanceName(ctx context.Context, db *sql.DB, d store.Dialect, where string) (string, error) {
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('schema_migrations', 'instance')`
	if d == store.Postgres {
		q = `SELECT (to_regclass('schema_migrations') IS NOT NULL)::int + (to_regclass('instance') IS NOT NULL)::int`
	}
	var tables int
	if err := db.QueryRowContext(ctx, q).Scan(&tables); err != nil {
		return "", fmt.Errorf("%s cannot be read as an attest database: %w", where, err)
	}
	if tables < 2 {
		return "", emptyStoreError{fmt.Errorf("%w: %s has no attest schema (attest init creates one)",
			instance.ErrNotInitialised, where)}
	}
	var name string
	err := db.QueryRowContext(ctx, `SELECT value FROM instance WHERE name = 'name'`).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %s has no instance record, so its initialisation never finished "+
			"(attest init finishes it)", instance.ErrNotInitialised, where)
	}
	if err != nil {
		return "", fmt.Errorf("%s cannot be read as an attest database: %w", where, err)
	}
	return name, nil
}

// emptyStoreError is probe's error for a store that holds nothing of
// attest's: no database, an empty one or one without the attest schema. It
// wraps instance.ErrNotInitialised.
type emptyStoreError struct{ error }

func (e emptyStoreError) Unwrap() error { return e.error }

func notInitialised(sf *storeFlags, format string, args ...any) error {
	return emptyStoreError{fmt.Errorf("%w: %s (attest init --data-dir %s creates one)", instance.ErrNotInitialised,
		fmt.Sprintf(format, args...), sf.dataDir)}
}

// keyFiles are the files of a data directory that hold an instance's keys.
var keyFiles = []string{instance.SigningKeyFile, instance.KEKFile}

// checkKeyFiles refuses a data directory that lacks the keys of the
// initialised store it goes with, rather than let new keys be made that
// match neither the log's signatures nor what is sealed under the old. With
// PostgreSQL that is a usage error: the keys are in whichever directory
// init or serve was given.
func (sf *storeFlags) checkKeyFiles() error {
	for _, f := range keyFiles {
		_, err := os.Stat(filepath.Join(sf.dataDir, f))
		switch {
		case err == nil:
			continue
		case sf.databaseURL != "":
			return usagef("--data-dir %s has no %s, but the database at --database-url is initialised: "+
				"give the data directory that holds this instance's keys", sf.dataDir, f)
		}
		return fmt.Errorf("%s has no %s, but its database is initialised: restore the key file from a "+
			"backup of this data directory; new keys would not match the log it holds", sf.dataDir, f)
	}
	return nil
}

// checkNoKeyFiles refuses to create a database next to key files, which
// belong to a log whose database is missing: a new database would start a
// second log signed with the same key.
func (sf *storeFlags) checkNoKeyFiles() error {
	var found []string
	for _, f := range keyFiles {
		if _, err := os.Lstat(filepath.Join(sf.dataDir, f)); err == nil {
			found = append(found, filepath.Join(sf.dataDir, f))
		}
	}
	if len(found) == 0 {
		return nil
	}
	db := "the database at --database-url"
	if sf.databaseURL == "" {
		db = filepath.Join(sf.dataDir, sqliteFile)
	}
	return fmt.Errorf("%s already holds %s, but %s is missing or has no attest schema; "+
		"a new database would start a second log signed with the same key. Restore the database "+
		"that goes with these keys, or, if they never signed a log, move them out of %s and run again",
		sf.dataDir, strings.Join(found, " and "), db, sf.dataDir)
}

// checkSecrets refuses secret key files that their group or others may
// read: the data directory's signing key and key-encryption key, and the
// TLS keys in extra. A file that does not exist yet is left to be created,
// with mode 0600. It warns when the data directory itself is open to its
// group or others.
func (sf *storeFlags) checkSecrets(log *slog.Logger, extra ...string) error {
	var files []string
	for _, f := range keyFiles {
		files = append(files, filepath.Join(sf.dataDir, f))
	}
	for _, path := range append(files, extra...) {
		if err := checkPrivate(path); err != nil {
			return err
		}
	}
	fi, err := os.Stat(sf.dataDir)
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory is open to its group or others; run chmod 700 on it", "path", sf.dataDir,
			"mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	return nil
}

// checkPrivate refuses a secret file whose mode lets its group or others in.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s holds a secret key, but its mode %04o lets its group or others read it; "+
			"run chmod 600 %s", path, perm, path)
	}
	return nil
}
