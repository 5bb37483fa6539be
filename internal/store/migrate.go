package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// migration is one step of the schema. Steps are applied in order, each in
// its own transaction together with the row that records it.
type migration struct {
	description string
	statements  func(t Types) []string
}

// migrations is the schema, oldest first. Never edit a step that has shipped;
// append a new one.
var migrations = []migration{
	{"instance settings, tenants and API keys", func(t Types) []string {
		return []string{
			`CREATE TABLE instance (
				name TEXT PRIMARY KEY,
				value TEXT NOT NULL)`,
			`CREATE TABLE tenants (
				id ` + t.Serial + `,
				name TEXT NOT NULL UNIQUE,
				system ` + t.Bool + ` NOT NULL DEFAULT FALSE,
				index_key ` + t.Blob + ` NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE TABLE api_keys (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` REFERENCES tenants(id),
				role TEXT NOT NULL,
				name TEXT NOT NULL,
				secret_hash ` + t.Blob + ` NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				expires_at ` + t.BigInt + `,
				revoked_at ` + t.BigInt + `)`,
			`CREATE INDEX api_keys_tenant ON api_keys (tenant_id)`,
		}
	}},
	{"the audit log: state, entries, tiles, checkpoints, signing keys, subjects", func(t Types) []string {
		return []string{
			`CREATE TABLE signing_keys (
				id TEXT PRIMARY KEY,
				algorithm TEXT NOT NULL,
				public_key ` + t.Blob + ` NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				retired_at ` + t.BigInt + `)`,
			`CREATE TABLE log_state (
				tenant_id ` + t.BigInt + ` PRIMARY KEY REFERENCES tenants(id),
				size ` + t.BigInt + ` NOT NULL,
				root ` + t.Blob + ` NOT NULL,
				last_received ` + t.BigInt + ` NOT NULL,
				updated_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE TABLE entries (
				tenant_id ` + t.BigInt + ` NOT NULL,
				first_seq ` + t.BigInt + ` NOT NULL,
				count ` + t.BigInt + ` NOT NULL,
				codec ` + t.BigInt + ` NOT NULL,
				leaves ` + t.Blob + ` NOT NULL,
				personal ` + t.Blob + ` NOT NULL,
				PRIMARY KEY (tenant_id, first_seq))`,
			`CREATE TABLE tiles (
				tenant_id ` + t.BigInt + ` NOT NULL,
				level ` + t.BigInt + ` NOT NULL,
				idx ` + t.BigInt + ` NOT NULL,
				width ` + t.BigInt + ` NOT NULL,
				hashes ` + t.Blob + ` NOT NULL,
				PRIMARY KEY (tenant_id, level, idx))`,
			`CREATE TABLE checkpoints (
				tenant_id ` + t.BigInt + ` NOT NULL,
				size ` + t.BigInt + ` NOT NULL,
				root ` + t.Blob + ` NOT NULL,
				key_id TEXT NOT NULL,
				note ` + t.Blob + ` NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				PRIMARY KEY (tenant_id, size))`,
			`CREATE TABLE subjects (
				tenant_id ` + t.BigInt + ` NOT NULL,
				subject TEXT NOT NULL,
				generation ` + t.BigInt + ` NOT NULL,
				wrapped_key ` + t.Blob + `,
				created_at ` + t.BigInt + ` NOT NULL,
				erased_at ` + t.BigInt + `,
				PRIMARY KEY (tenant_id, subject, generation))`,
		}
	}},
	{"the audit index: segments and their posting pages", func(t Types) []string {
		return []string{
			`CREATE TABLE segments (
				id ` + t.Serial + `,
				tenant_id ` + t.BigInt + ` NOT NULL,
				first_seq ` + t.BigInt + ` NOT NULL,
				end_seq ` + t.BigInt + ` NOT NULL,
				level ` + t.BigInt + ` NOT NULL,
				meta ` + t.Blob + ` NOT NULL)`,
			`CREATE INDEX segments_tenant ON segments (tenant_id, end_seq)`,
			`CREATE TABLE postings (
				segment_id ` + t.BigInt + ` NOT NULL,
				field ` + t.BigInt + ` NOT NULL,
				first_term ` + t.BigInt + ` NOT NULL,
				data ` + t.Blob + ` NOT NULL,
				PRIMARY KEY (segment_id, field, first_term))`,
		}
	}},
	{"merged index segments: an index generation in the log state", func(t Types) []string {
		return []string{
			`ALTER TABLE log_state ADD COLUMN index_gen ` + t.BigInt + ` NOT NULL DEFAULT 0`,
		}
	}},
	{"subject erasures: one row for each, so that every process drops the keys it holds", func(t Types) []string {
		return []string{
			`CREATE TABLE erasures (
				id ` + t.Serial + `,
				tenant_id ` + t.BigInt + ` NOT NULL,
				subject TEXT NOT NULL,
				generations ` + t.BigInt + ` NOT NULL,
				erased_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE INDEX erasures_subject ON erasures (tenant_id, subject)`,
		}
	}},
	{"retention: per-tenant policies, archive segments, and how far the log is archived and expired", func(t Types) []string {
		return []string{
			`CREATE TABLE retention (
				tenant_id ` + t.BigInt + ` PRIMARY KEY REFERENCES tenants(id),
				retention_days ` + t.BigInt + ` NOT NULL,
				hot_days ` + t.BigInt + ` NOT NULL,
				legal_hold ` + t.Bool + ` NOT NULL DEFAULT FALSE,
				hold_reason TEXT NOT NULL DEFAULT '',
				updated_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE TABLE archives (
				tenant_id ` + t.BigInt + ` NOT NULL,
				first_seq ` + t.BigInt + ` NOT NULL,
				end_seq ` + t.BigInt + ` NOT NULL,
				object TEXT NOT NULL,
				object_size ` + t.BigInt + ` NOT NULL,
				sha256 ` + t.Blob + ` NOT NULL,
				last_received ` + t.BigInt + ` NOT NULL,
				manifest ` + t.Blob + ` NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				expired_at ` + t.BigInt + `,
				object_deleted_at ` + t.BigInt + `,
				PRIMARY KEY (tenant_id, first_seq))`,
			`ALTER TABLE log_state ADD COLUMN archived_end ` + t.BigInt + ` NOT NULL DEFAULT 0`,
			`ALTER TABLE log_state ADD COLUMN expired_end ` + t.BigInt + ` NOT NULL DEFAULT 0`,
		}
	}},
	{"retention runs: one lease per tenant, and the archive objects being written", func(t Types) []string {
		return []string{
			`CREATE TABLE archive_pending (
				tenant_id ` + t.BigInt + ` NOT NULL,
				object TEXT NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				PRIMARY KEY (tenant_id, object))`,
			`CREATE TABLE retention_runs (
				tenant_id ` + t.BigInt + ` PRIMARY KEY,
				holder TEXT NOT NULL,
				expires_at ` + t.BigInt + ` NOT NULL)`,
		}
	}},
}

// SchemaVersion is the schema version this binary expects.
var SchemaVersion = len(migrations)

// ErrSchemaTooNew means the database was migrated by a newer attest.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this attest binary")

// Migrate brings the schema up to SchemaVersion. It refuses a database whose
// schema is newer than this binary knows. Concurrent callers are safe: each
// step takes the write lock and re-reads the version before applying.
func (db *DB) Migrate(ctx context.Context) error {
	if _, err := db.Write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version `+db.Types().BigInt+` PRIMARY KEY,
		description TEXT NOT NULL,
		applied_at `+db.Types().BigInt+` NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	for {
		done, err := db.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

// CheckSchema returns an error unless the database is at exactly the
// version this binary expects.
func (db *DB) CheckSchema(ctx context.Context) error {
	v, err := currentVersion(ctx, db.Read)
	if err != nil {
		return err
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("%w (database %d, binary %d)", ErrSchemaTooNew, v, SchemaVersion)
	case v < SchemaVersion:
		return fmt.Errorf("store: database schema %d is older than %d; run attest serve or attest migrate", v, SchemaVersion)
	}
	return nil
}

func currentVersion(ctx context.Context, q Querier) (int, error) {
	var v sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") || strings.Contains(err.Error(), "does not exist") {
			return 0, nil
		}
		return 0, fmt.Errorf("store: read schema version: %w", err)
	}
	return int(v.Int64), nil
}

func (db *DB) migrateOne(ctx context.Context) (done bool, err error) {
	if db.Dialect == Postgres {
		// Serialise concurrent migrators across processes.
		conn, err := db.Write.Conn(ctx)
		if err != nil {
			return false, err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7461746573)`); err != nil {
			return false, fmt.Errorf("store: migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7461746573)`)
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		v, err := currentVersion(ctx, tx)
		if err != nil {
			return err
		}
		if v > SchemaVersion {
			return fmt.Errorf("%w (database %d, binary %d)", ErrSchemaTooNew, v, SchemaVersion)
		}
		if v == SchemaVersion {
			done = true
			return nil
		}
		m := migrations[v]
		for _, s := range m.statements(db.Types()) {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("store: migration %d (%s): %w", v+1, m.description, err)
			}
		}
		_, err = tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)`),
			v+1, m.description, time.Now().UTC().UnixMicro())
		return err
	})
	return done, err
}
