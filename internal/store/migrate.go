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
	{"identity: users, roles, factors, login counters, enrolments, pending logins and sessions", func(t Types) []string {
		return []string{
			`CREATE TABLE users (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				email TEXT NOT NULL,
				email_display TEXT NOT NULL,
				name TEXT NOT NULL,
				external_id TEXT,
				password_hash TEXT,
				status TEXT NOT NULL,
				credentials_version ` + t.BigInt + ` NOT NULL DEFAULT 1,
				created_at ` + t.BigInt + ` NOT NULL,
				updated_at ` + t.BigInt + ` NOT NULL,
				last_login_at ` + t.BigInt + `,
				disabled_at ` + t.BigInt + `,
				disabled_reason TEXT NOT NULL DEFAULT '',
				UNIQUE (tenant_id, email))`,
			`CREATE INDEX users_external ON users (tenant_id, external_id)`,
			`CREATE TABLE roles (
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				name TEXT NOT NULL,
				description TEXT NOT NULL,
				permissions TEXT NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				PRIMARY KEY (tenant_id, name))`,
			`CREATE TABLE role_grants (
				tenant_id ` + t.BigInt + ` NOT NULL,
				user_id TEXT NOT NULL REFERENCES users(id),
				role TEXT NOT NULL,
				period_start ` + t.BigInt + `,
				period_end ` + t.BigInt + `,
				granted_by TEXT NOT NULL,
				granted_at ` + t.BigInt + ` NOT NULL,
				PRIMARY KEY (user_id, role))`,
			`CREATE INDEX role_grants_tenant ON role_grants (tenant_id, role)`,
			`CREATE TABLE totp_factors (
				user_id TEXT PRIMARY KEY REFERENCES users(id),
				secret ` + t.Blob + ` NOT NULL,
				last_step ` + t.BigInt + ` NOT NULL DEFAULT 0,
				confirmed_at ` + t.BigInt + ` NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE TABLE totp_pending (
				user_id TEXT PRIMARY KEY REFERENCES users(id),
				secret ` + t.Blob + ` NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE TABLE recovery_codes (
				user_id TEXT NOT NULL REFERENCES users(id),
				code_hash ` + t.Blob + ` NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				used_at ` + t.BigInt + `,
				PRIMARY KEY (user_id, code_hash))`,
			`CREATE TABLE webauthn_credentials (
				id ` + t.Blob + ` PRIMARY KEY,
				user_id TEXT NOT NULL REFERENCES users(id),
				name TEXT NOT NULL,
				credential ` + t.Blob + ` NOT NULL,
				sign_count ` + t.BigInt + ` NOT NULL,
				clone_warning ` + t.Bool + ` NOT NULL DEFAULT FALSE,
				created_at ` + t.BigInt + ` NOT NULL,
				last_used_at ` + t.BigInt + `)`,
			`CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id)`,
			`CREATE TABLE login_counters (
				counter_key ` + t.Blob + ` PRIMARY KEY,
				failures ` + t.BigInt + ` NOT NULL,
				first_failure_at ` + t.BigInt + ` NOT NULL,
				last_failure_at ` + t.BigInt + ` NOT NULL,
				locked_until ` + t.BigInt + ` NOT NULL DEFAULT 0)`,
			`CREATE TABLE enrolments (
				token_hash ` + t.Blob + ` PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				user_id TEXT,
				role TEXT NOT NULL DEFAULT '',
				created_by TEXT NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				expires_at ` + t.BigInt + ` NOT NULL,
				used_at ` + t.BigInt + `)`,
			`CREATE TABLE pending_logins (
				token_hash ` + t.Blob + ` PRIMARY KEY,
				user_id TEXT NOT NULL REFERENCES users(id),
				purpose TEXT NOT NULL,
				credentials_version ` + t.BigInt + ` NOT NULL,
				challenge ` + t.Blob + `,
				failures ` + t.BigInt + ` NOT NULL DEFAULT 0,
				created_at ` + t.BigInt + ` NOT NULL,
				expires_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE TABLE sessions (
				id TEXT PRIMARY KEY,
				token_hash ` + t.Blob + ` NOT NULL UNIQUE,
				tenant_id ` + t.BigInt + ` NOT NULL,
				user_id TEXT NOT NULL REFERENCES users(id),
				factor TEXT NOT NULL,
				mfa_at ` + t.BigInt + ` NOT NULL,
				elevation_id TEXT,
				ip TEXT NOT NULL,
				user_agent TEXT NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				last_active_at ` + t.BigInt + ` NOT NULL,
				expires_at ` + t.BigInt + ` NOT NULL,
				revoked_at ` + t.BigInt + `,
				revoke_reason TEXT NOT NULL DEFAULT '')`,
			`CREATE INDEX sessions_user ON sessions (user_id, revoked_at)`,
			`CREATE TABLE session_policies (
				tenant_id ` + t.BigInt + ` PRIMARY KEY REFERENCES tenants(id),
				idle_seconds ` + t.BigInt + ` NOT NULL,
				absolute_seconds ` + t.BigInt + ` NOT NULL,
				max_sessions ` + t.BigInt + ` NOT NULL,
				on_limit TEXT NOT NULL,
				inactive_days ` + t.BigInt + ` NOT NULL,
				updated_at ` + t.BigInt + ` NOT NULL)`,
			`ALTER TABLE api_keys ADD COLUMN user_id TEXT`,
			`CREATE INDEX api_keys_user ON api_keys (user_id)`,
			`CREATE TABLE elevations (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				user_id TEXT NOT NULL REFERENCES users(id),
				permissions TEXT NOT NULL,
				reason TEXT NOT NULL,
				duration_seconds ` + t.BigInt + ` NOT NULL,
				approvals_needed ` + t.BigInt + ` NOT NULL,
				status TEXT NOT NULL,
				requested_at ` + t.BigInt + ` NOT NULL,
				decided_at ` + t.BigInt + `,
				activated_at ` + t.BigInt + `,
				expires_at ` + t.BigInt + `,
				session_id TEXT)`,
			`CREATE INDEX elevations_tenant ON elevations (tenant_id, status)`,
			`CREATE TABLE elevation_decisions (
				elevation_id TEXT NOT NULL REFERENCES elevations(id),
				approver_id TEXT NOT NULL,
				decision TEXT NOT NULL,
				reason TEXT NOT NULL,
				decided_at ` + t.BigInt + ` NOT NULL,
				PRIMARY KEY (elevation_id, approver_id))`,
			`CREATE TABLE review_campaigns (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				name TEXT NOT NULL,
				status TEXT NOT NULL,
				on_deadline TEXT NOT NULL,
				escalate_to TEXT NOT NULL DEFAULT '',
				created_by TEXT NOT NULL,
				started_at ` + t.BigInt + ` NOT NULL,
				deadline ` + t.BigInt + ` NOT NULL,
				completed_at ` + t.BigInt + `,
				scope_roles TEXT NOT NULL DEFAULT '',
				escalated_at ` + t.BigInt + `)`,
			`CREATE INDEX review_campaigns_tenant ON review_campaigns (tenant_id, status)`,
			`CREATE TABLE review_items (
				campaign_id TEXT NOT NULL REFERENCES review_campaigns(id),
				user_id TEXT NOT NULL,
				role TEXT NOT NULL,
				user_email TEXT NOT NULL,
				user_name TEXT NOT NULL,
				reviewer_id TEXT NOT NULL,
				decision TEXT NOT NULL DEFAULT '',
				reason TEXT NOT NULL DEFAULT '',
				decided_by TEXT NOT NULL DEFAULT '',
				decided_at ` + t.BigInt + `,
				PRIMARY KEY (campaign_id, user_id, role))`,
			`CREATE TABLE user_groups (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				display_name TEXT NOT NULL,
				display_key TEXT NOT NULL,
				external_id TEXT,
				created_at ` + t.BigInt + ` NOT NULL,
				updated_at ` + t.BigInt + ` NOT NULL,
				UNIQUE (tenant_id, display_key))`,
			`CREATE TABLE user_group_members (
				group_id TEXT NOT NULL REFERENCES user_groups(id),
				user_id TEXT NOT NULL REFERENCES users(id),
				PRIMARY KEY (group_id, user_id))`,
			`CREATE INDEX user_group_members_user ON user_group_members (user_id)`,
			`CREATE TABLE break_glass (
				name TEXT PRIMARY KEY,
				password_hash TEXT NOT NULL,
				created_at ` + t.BigInt + ` NOT NULL,
				last_used_at ` + t.BigInt + `,
				rotation_required ` + t.Bool + ` NOT NULL DEFAULT FALSE)`,
		}
	}},
	{"controls: the results of control tests", func(t Types) []string {
		return []string{
			`CREATE TABLE control_results (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				control_id TEXT NOT NULL,
				status TEXT NOT NULL,
				result ` + t.Blob + ` NOT NULL,
				sha256 ` + t.Blob + ` NOT NULL,
				checked_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE INDEX control_results_control ON control_results (tenant_id, control_id, checked_at)`,
		}
	}},
	{"compliance: scope and alert settings, manual evidence, exceptions, alerts, service posture, log verifications", func(t Types) []string {
		return []string{
			`CREATE TABLE compliance_settings (
				tenant_id ` + t.BigInt + ` PRIMARY KEY REFERENCES tenants(id),
				categories TEXT NOT NULL,
				webhook_url TEXT NOT NULL DEFAULT '',
				webhook_secret TEXT NOT NULL DEFAULT '',
				updated_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE TABLE control_evidence (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				control_id TEXT NOT NULL,
				kind TEXT NOT NULL,
				title TEXT NOT NULL,
				url TEXT NOT NULL DEFAULT '',
				file_name TEXT NOT NULL DEFAULT '',
				media_type TEXT NOT NULL DEFAULT '',
				content ` + t.Blob + `,
				size ` + t.BigInt + ` NOT NULL DEFAULT 0,
				sha256 ` + t.Blob + ` NOT NULL,
				effective_at ` + t.BigInt + ` NOT NULL,
				expires_at ` + t.BigInt + ` NOT NULL,
				submitted_by TEXT NOT NULL,
				submitted_at ` + t.BigInt + ` NOT NULL,
				approved_by TEXT,
				approved_at ` + t.BigInt + `,
				revoked_by TEXT,
				revoked_at ` + t.BigInt + `)`,
			`CREATE INDEX control_evidence_control ON control_evidence (tenant_id, control_id, expires_at)`,
			`CREATE TABLE control_exceptions (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				control_id TEXT NOT NULL,
				reason TEXT NOT NULL,
				compensating TEXT NOT NULL DEFAULT '',
				requested_by TEXT NOT NULL,
				requested_at ` + t.BigInt + ` NOT NULL,
				starts_at ` + t.BigInt + ` NOT NULL,
				expires_at ` + t.BigInt + ` NOT NULL,
				approved_by TEXT,
				approved_at ` + t.BigInt + `,
				revoked_by TEXT,
				revoked_at ` + t.BigInt + `)`,
			`CREATE INDEX control_exceptions_control ON control_exceptions (tenant_id, control_id, expires_at)`,
			`CREATE TABLE control_alerts (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				control_id TEXT NOT NULL,
				result_id TEXT NOT NULL,
				previous TEXT NOT NULL,
				status TEXT NOT NULL,
				raised_at ` + t.BigInt + ` NOT NULL,
				acknowledged_by TEXT,
				acknowledged_at ` + t.BigInt + `,
				webhook_state TEXT NOT NULL DEFAULT '',
				webhook_attempts ` + t.BigInt + ` NOT NULL DEFAULT 0,
				webhook_error TEXT NOT NULL DEFAULT '',
				delivered_at ` + t.BigInt + `)`,
			`CREATE INDEX control_alerts_tenant ON control_alerts (tenant_id, raised_at)`,
			`CREATE TABLE service_posture (
				process TEXT PRIMARY KEY,
				addr TEXT NOT NULL,
				tls_min TEXT NOT NULL,
				tls_max TEXT NOT NULL,
				cert_subject TEXT NOT NULL,
				cert_not_after ` + t.BigInt + ` NOT NULL,
				rate_limits ` + t.Bool + ` NOT NULL,
				self_audit ` + t.Bool + ` NOT NULL,
				started_at ` + t.BigInt + ` NOT NULL,
				seen_at ` + t.BigInt + ` NOT NULL)`,
			`CREATE TABLE log_verifications (
				id TEXT PRIMARY KEY,
				tenant_id ` + t.BigInt + ` NOT NULL REFERENCES tenants(id),
				started_at ` + t.BigInt + ` NOT NULL,
				finished_at ` + t.BigInt + ` NOT NULL,
				tree_size ` + t.BigInt + ` NOT NULL,
				ok ` + t.Bool + ` NOT NULL,
				problem TEXT NOT NULL DEFAULT '')`,
			`CREATE INDEX log_verifications_tenant ON log_verifications (tenant_id, finished_at)`,
		}
	}},
	{"control results: a covering index, so that scores read each result's status from the index alone", func(t Types) []string {
		return []string{
			`CREATE INDEX control_results_timeline ON control_results (tenant_id, control_id, checked_at, id, status)`,
			`DROP INDEX control_results_control`,
		}
	}},
	{"change notices: a count of attest's own changes in each tenant's log, which every process's console streams read", func(t Types) []string {
		return []string{
			`ALTER TABLE log_state ADD COLUMN changes ` + t.BigInt + ` NOT NULL DEFAULT 0`,
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
