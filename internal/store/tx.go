package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Querier is what both *sql.DB and *sql.Tx offer for running SQL.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// InTx runs fn in a write transaction and commits it when fn returns nil.
// Any error from fn, or a panic, rolls the transaction back.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
		if err != nil {
			tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// ReadTx runs fn in a read-only transaction, so that every query fn makes
// sees the same snapshot of the database.
func (db *DB) ReadTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.ReadTxOn(ctx, db.Read, fn)
}

// ReadTxOn is ReadTx on a given handle, such as one from OpenReader.
func (db *DB) ReadTxOn(ctx context.Context, h *sql.DB, fn func(tx *sql.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := h.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// Prepare prepares write statements once, for Stmt to hand out in
// transactions. It must run outside any transaction: on SQLite the one
// write connection would otherwise be busy.
func (db *DB) Prepare(ctx context.Context, queries ...string) error {
	for _, query := range queries {
		q := db.Rebind(query)
		if _, ok := db.stmts.Load(q); ok {
			continue
		}
		s, err := db.Write.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("store: prepare: %w", err)
		}
		if _, loaded := db.stmts.LoadOrStore(q, s); loaded {
			s.Close()
		}
	}
	return nil
}

// Stmt returns a statement for use in tx: the one Prepare made for query, or
// else one prepared in tx, which lasts until tx ends.
func (db *DB) Stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	q := db.Rebind(query)
	if s, ok := db.stmts.Load(q); ok {
		return tx.StmtContext(ctx, s.(*sql.Stmt)), nil
	}
	s, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	return s, nil
}

// Strings reads rows of one text column into a slice, and closes rows.
func Strings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Reads runs queries on Read, each distinct statement prepared once for
// the life of db: for the few fixed queries made on every request, whose
// parsing would otherwise cost more than running them. Give it only
// queries whose text is fixed, since every distinct one is kept.
func (db *DB) Reads() Querier { return readCache{db} }

type readCache struct{ db *DB }

func (c readCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := c.db.readStmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := c.db.Read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := c.db.readStmts.LoadOrStore(query, s); loaded {
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

func (c readCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (c readCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

func (c readCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := c.stmt(ctx, query)
	if err != nil {
		// Let the error surface from Scan, as QueryRowContext does.
		return c.db.Read.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// Cached runs the queries of one transaction, or of one handle, preparing
// each distinct statement once: a query that looks up a term in hundreds of
// segments parses its SQL once instead of hundreds of times.
type Cached struct {
	q     preparer
	stmts map[string]*sql.Stmt
}

type preparer interface {
	Querier
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// Cache wraps q, a *sql.Tx or *sql.DB. Close it before q ends.
func Cache(q preparer) *Cached { return &Cached{q: q, stmts: map[string]*sql.Stmt{}} }

func (c *Cached) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := c.stmts[query]; ok {
		return s, nil
	}
	s, err := c.q.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = s
	return s, nil
}

// ExecContext runs a prepared statement.
func (c *Cached) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

// QueryContext runs a prepared query.
func (c *Cached) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryRowContext runs a prepared query expected to return at most one row.
func (c *Cached) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := c.stmt(ctx, query)
	if err != nil {
		// Let the error surface from Scan, as QueryRowContext does.
		return c.q.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// Close closes the prepared statements.
func (c *Cached) Close() {
	for _, s := range c.stmts {
		s.Close()
	}
	clear(c.stmts)
}
