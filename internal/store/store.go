// Package store opens attest's database, SQLite by default and PostgreSQL when
// a URL is given, applies the schema migrations, and hides the few
// differences between the two engines behind a small dialect layer.
//
// SQL elsewhere in attest is written by hand in the subset both engines
// understand, with '?' placeholders; DB.Rebind turns them into '$n' for
// PostgreSQL. Table definitions use the type names of the Types method.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// ErrNotFound is returned by lookups that find no row.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write collides with an existing row.
var ErrConflict = errors.New("conflict")

// Dialect names a database engine.
type Dialect int

const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Options say which database to open.
type Options struct {
	// DataDir holds the SQLite file (attest.db) when URL is empty.
	DataDir string
	// URL, when set, is a postgres:// or postgresql:// connection URL.
	URL string
	// ReadConns bounds the SQLite reader pool; zero means 8.
	ReadConns int
}

// DB is an open attest database.
//
// On SQLite, writes go through one connection that begins transactions
// IMMEDIATE, so that a transaction holds the write lock from its first
// statement and concurrent processes queue on the busy timeout instead of
// failing on a lock upgrade; reads use a separate pool of query-only
// connections, which WAL mode lets run beside the writer. On PostgreSQL both
// are the same pool.
type DB struct {
	// Write runs transactions that change data.
	Write *sql.DB
	// Read runs queries.
	Read *sql.DB
	// Dialect is the engine behind Write and Read.
	Dialect Dialect

	readDSN   string   // SQLite: the DSN of a query-only connection
	rebound   sync.Map // query string -> rebound query string
	stmts     sync.Map // rebound query string -> *sql.Stmt on Write
	readStmts sync.Map // query string -> *sql.Stmt on Read, for Reads
	warm      warmPool
}

// Open opens the database that opts names, creating the SQLite file and its
// directory when they do not exist. It does not migrate; call Migrate.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.URL != "" {
		return openPostgres(ctx, opts.URL)
	}
	return openSQLite(ctx, opts)
}

func openPostgres(ctx context.Context, rawURL string) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("store: database URL must start with postgres:// or postgresql://")
	}
	db, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to postgres at %s: %w", RedactURL(rawURL), err)
	}
	return &DB{Write: db, Read: db, Dialect: Postgres}, nil
}

// sqlitePageSize is set when the database file is created. Event bundles are
// stored as blobs of tens of kilobytes; large pages keep their overflow chains
// short.
const sqlitePageSize = 16384

func openSQLite(ctx context.Context, opts Options) (*DB, error) {
	if opts.DataDir == "" {
		return nil, errors.New("store: no data directory and no database URL")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	path := filepath.Join(opts.DataDir, "attest.db")
	_, statErr := os.Stat(path)
	fresh := errors.Is(statErr, os.ErrNotExist)

	// Reads go through a memory map, as far as the SQLite build allows: it
	// caps the map at 2 GB, and reads pages beyond with pread.
	common := "_pragma=busy_timeout(30000)&_pragma=foreign_keys(1)&_pragma=temp_store(memory)" +
		"&_pragma=cache_size(-131072)&_pragma=mmap_size(1099511627776)"
	if fresh {
		// The database holds personal data, sealed or not: only its owner
		// reads it. SQLite gives its WAL and shared-memory files the same
		// mode.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: create database file: %w", err)
		}
		f.Close()
		// page_size only takes effect before the first table exists and
		// before the switch to WAL, so it gets a connection of its own.
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			return nil, fmt.Errorf("store: create sqlite database: %w", err)
		}
		_, err = db.ExecContext(ctx, "PRAGMA page_size = "+strconv.Itoa(sqlitePageSize))
		if err == nil {
			_, err = db.ExecContext(ctx, "PRAGMA journal_mode = WAL")
		}
		db.Close()
		if err != nil {
			return nil, fmt.Errorf("store: initialise sqlite database: %w", err)
		}
	}
	// secure_delete(FAST) zeroes what a change removes from a page the
	// change writes anyway, such as a destroyed subject key, at no extra
	// I/O.
	w, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=journal_mode(WAL)"+
		"&_pragma=synchronous(FULL)&_pragma=secure_delete(FAST)&"+common)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	n := opts.ReadConns
	if n <= 0 {
		n = sqliteReadConns
	}
	readDSN := "file:" + path + "?_pragma=query_only(1)&" + common
	r, err := sql.Open("sqlite", readDSN)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite reader: %w", err)
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{Write: w, Read: r, Dialect: SQLite, readDSN: readDSN}, nil
}

// Reader is a read-only handle for one goroutine that reads a lot.
type Reader struct {
	*sql.DB
	own bool
}

// Close releases the reader.
func (r *Reader) Close() error {
	if r.own {
		return r.DB.Close()
	}
	return nil
}

// OpenReader returns a read-only handle of its own for a goroutine that
// reads much in parallel with others. On SQLite it is a separate database
// handle: reads through one handle's pool do not run in parallel with the
// embedded engine used here, reads through separate handles do. On
// PostgreSQL it is the shared pool.
func (db *DB) OpenReader(ctx context.Context) (*Reader, error) {
	if db.Dialect == Postgres {
		return &Reader{DB: db.Read}, nil
	}
	r, err := sql.Open("sqlite", db.readDSN)
	if err != nil {
		return nil, fmt.Errorf("store: open reader: %w", err)
	}
	r.SetMaxOpenConns(1)
	return &Reader{DB: r, own: true}, nil
}

// Scrub removes, as far as the engine allows, the old versions of rows a
// transaction just changed. On SQLite it checkpoints the write-ahead log
// and truncates it, since its frames hold pages as they were before; it
// reports an error when readers keep it from finishing, and the log's
// space is then reused as it is written again. On PostgreSQL it does
// nothing: old row versions stay until VACUUM reclaims their space.
func (db *DB) Scrub(ctx context.Context) error {
	if db.Dialect != SQLite {
		return nil
	}
	var busy, logged, done int
	if err := db.Write.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logged, &done); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("store: checkpoint: readers kept the write-ahead log from being truncated")
	}
	return nil
}

// sqliteReadConns is the size of the SQLite read pool by default.
const sqliteReadConns = 8

// ErrBackupUnsupported means the engine's data is backed up with its own
// tools: pg_dump for PostgreSQL.
var ErrBackupUnsupported = errors.New("store: back a PostgreSQL database up with pg_dump or the server's own backups")

// BackupInto writes a consistent copy of a SQLite database to path, a file
// that must not exist, as one transaction sees it. The copy is built anew
// (VACUUM INTO), so it holds no free pages: nothing deleted before the
// backup, such as a destroyed key, is in it.
func (db *DB) BackupInto(ctx context.Context, path string) error {
	if db.Dialect != SQLite {
		return ErrBackupUnsupported
	}
	// A reader of its own, so that the writer goes on meanwhile, allowed
	// to write the copy and retired afterwards.
	conn, err := db.Read.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: back up: %w", err)
	}
	defer conn.Close()
	defer conn.Raw(func(any) error { return driver.ErrBadConn })
	if _, err := conn.ExecContext(ctx, `PRAGMA query_only = 0`); err != nil {
		return fmt.Errorf("store: back up: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("store: back up into %s: %w", path, err)
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	db.warm.stop()
	for _, m := range []*sync.Map{&db.stmts, &db.readStmts} {
		m.Range(func(_, v any) bool {
			v.(*sql.Stmt).Close()
			return true
		})
	}
	err := db.Write.Close()
	if db.Read != db.Write {
		if rerr := db.Read.Close(); err == nil {
			err = rerr
		}
	}
	return err
}

// Rebind rewrites the '?' placeholders of q for the database's dialect.
// Queries in attest never contain a literal question mark.
func (db *DB) Rebind(q string) string {
	if db.Dialect != Postgres {
		return q
	}
	if v, ok := db.rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	out := b.String()
	db.rebound.Store(q, out)
	return out
}

// Types are the column type names of a dialect, for table definitions.
type Types struct {
	Blob      string // binary data
	BigInt    string // 64-bit integer
	Serial    string // auto-assigned 64-bit primary key column definition
	Text      string
	Bool      string
	ForUpdate string // row-lock suffix for SELECT, empty where the engine locks whole files
}

// Types returns the column types of the database's dialect.
func (db *DB) Types() Types {
	if db.Dialect == Postgres {
		return Types{Blob: "BYTEA", BigInt: "BIGINT", Serial: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
			Text: "TEXT", Bool: "BOOLEAN", ForUpdate: " FOR UPDATE"}
	}
	return Types{Blob: "BLOB", BigInt: "INTEGER", Serial: "INTEGER PRIMARY KEY",
		Text: "TEXT", Bool: "BOOLEAN", ForUpdate: ""}
}

// RedactURL returns rawURL with any password replaced, for logs and errors.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// IsUniqueViolation reports whether err is a unique-constraint failure.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505") ||
		strings.Contains(s, "duplicate key value")
}

// StorableText reports whether s can be a text value in both databases:
// PostgreSQL's text holds only valid UTF-8 without NUL. A lookup by a value
// that is not finds nothing, on either database.
func StorableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
