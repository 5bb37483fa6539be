package identity

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/store"
)

// Status is an account's state.
type Status string

// The account states. Only an active account signs in; a disabled one can
// be enabled again; a deleted one is kept for the audit trail but never
// returns.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
	StatusDeleted  Status = "deleted"
)

// User is an account of a tenant.
type User struct {
	ID         string
	TenantID   int64
	Email      string // canonical
	Display    string // as the user or their IdP wrote it
	Name       string
	ExternalID string
	Status     Status
	// HasPassword tells whether a password is set; the hash itself is
	// never loaded into a User.
	HasPassword bool
	// CredentialsVersion grows at every password or factor change, so
	// that a login begun before it cannot complete after it.
	CredentialsVersion int64
	CreatedAt          time.Time
	UpdatedAt          time.Time
	LastLoginAt        time.Time // zero before the first login
	DisabledAt         time.Time
	DisabledReason     string
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func randomID(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return prefix + idEncoding.EncodeToString(b)
}

// NewUserID returns a fresh user id.
func NewUserID() string { return randomID("usr_", 10) }

// Errors of the account store.
var (
	ErrEmailTaken = errors.New("identity: an account with this email exists in the tenant")
	ErrNotActive  = errors.New("identity: account is not active")
)

// MaxNameLen bounds a user's display name, in bytes.
const MaxNameLen = 200

// Users stores accounts.
type Users struct {
	db  *store.DB
	now func() time.Time
}

// NewUsers returns the account store over db.
func NewUsers(db *store.DB, now func() time.Time) *Users { return &Users{db: db, now: now} }

func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// Create stores a new active account in tx. u.Email must be canonical.
func (us *Users) Create(ctx context.Context, tx *sql.Tx, u *User) error {
	now := us.now().UTC().Truncate(time.Microsecond)
	u.CreatedAt, u.UpdatedAt, u.Status, u.CredentialsVersion = now, now, StatusActive, 1
	var ext any
	if u.ExternalID != "" {
		ext = u.ExternalID
	}
	_, err := tx.ExecContext(ctx, us.db.Rebind(`INSERT INTO users (id, tenant_id, email, email_display, name, external_id,
		status, credentials_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`),
		u.ID, u.TenantID, u.Email, u.Display, u.Name, ext, string(u.Status), now.UnixMicro(), now.UnixMicro())
	if store.IsUniqueViolation(err) {
		return ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("identity: store account: %w", err)
	}
	return nil
}

const userColumns = `id, tenant_id, email, email_display, name, external_id, password_hash IS NOT NULL, status,
	credentials_version, created_at, updated_at, last_login_at, disabled_at, disabled_reason`

func scanUser(sc interface{ Scan(...any) error }) (*User, error) {
	u := &User{}
	var ext sql.NullString
	var status string
	var created, updated int64
	var last, disabled sql.NullInt64
	err := sc.Scan(&u.ID, &u.TenantID, &u.Email, &u.Display, &u.Name, &ext, &u.HasPassword, &status,
		&u.CredentialsVersion, &created, &updated, &last, &disabled, &u.DisabledReason)
	if err != nil {
		return nil, err
	}
	u.ExternalID, u.Status = ext.String, Status(status)
	u.CreatedAt, u.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	u.LastLoginAt, u.DisabledAt = fromMicros(last), fromMicros(disabled)
	return u, nil
}

func (us *Users) one(ctx context.Context, q store.Querier, where string, args ...any) (*User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, us.db.Rebind(`SELECT `+userColumns+` FROM users WHERE `+where), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read account: %w", err)
	}
	return u, nil
}

// ByID returns an account of tenant tenantID; store.ErrNotFound when the
// tenant has no such account, whoever else might.
func (us *Users) ByID(ctx context.Context, q store.Querier, tenantID int64, id string) (*User, error) {
	if !store.StorableText(id) {
		return nil, store.ErrNotFound
	}
	return us.one(ctx, q, `id = ? AND tenant_id = ?`, id, tenantID)
}

// ByEmail returns the account of a canonical email in a tenant.
func (us *Users) ByEmail(ctx context.Context, q store.Querier, tenantID int64, email string) (*User, error) {
	if !store.StorableText(email) {
		return nil, store.ErrNotFound
	}
	return us.one(ctx, q, `tenant_id = ? AND email = ?`, tenantID, email)
}

// ByExternalID returns the account an identity provider knows by id.
func (us *Users) ByExternalID(ctx context.Context, q store.Querier, tenantID int64, ext string) (*User, error) {
	if !store.StorableText(ext) {
		return nil, store.ErrNotFound
	}
	return us.one(ctx, q, `tenant_id = ? AND external_id = ?`, tenantID, ext)
}

// List returns a tenant's accounts, deleted ones left out, oldest first.
func (us *Users) List(ctx context.Context, q store.Querier, tenantID int64) ([]*User, error) {
	rows, err := q.QueryContext(ctx, us.db.Rebind(`SELECT `+userColumns+` FROM users
		WHERE tenant_id = ? AND status <> 'deleted' ORDER BY created_at, id`), tenantID)
	if err != nil {
		return nil, fmt.Errorf("identity: list accounts: %w", err)
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("identity: read account: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// passwordHash returns an account's stored hash, "" when none is set.
func (us *Users) passwordHash(ctx context.Context, q store.Querier, id string) (string, error) {
	var h sql.NullString
	err := q.QueryRowContext(ctx, us.db.Rebind(`SELECT password_hash FROM users WHERE id = ?`), id).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("identity: read password: %w", err)
	}
	return h.String, nil
}

// setPasswordHash stores a hash; bump says whether this is a change of
// credentials (which ends sessions) rather than a rehash of the same one.
func (us *Users) setPasswordHash(ctx context.Context, tx *sql.Tx, id, hash string, bump bool) error {
	q := `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`
	if bump {
		q = `UPDATE users SET password_hash = ?, updated_at = ?, credentials_version = credentials_version + 1 WHERE id = ?`
	}
	_, err := tx.ExecContext(ctx, us.db.Rebind(q), hash, us.now().UTC().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("identity: store password: %w", err)
	}
	return nil
}

// bumpCredentials records a change of factors.
func (us *Users) bumpCredentials(ctx context.Context, tx *sql.Tx, id string) error {
	_, err := tx.ExecContext(ctx, us.db.Rebind(`UPDATE users SET credentials_version = credentials_version + 1,
		updated_at = ? WHERE id = ?`), us.now().UTC().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("identity: record credential change: %w", err)
	}
	return nil
}

// Update stores a profile change (email, name, external id) in tx.
func (us *Users) Update(ctx context.Context, tx *sql.Tx, u *User) error {
	var ext any
	if u.ExternalID != "" {
		ext = u.ExternalID
	}
	u.UpdatedAt = us.now().UTC().Truncate(time.Microsecond)
	_, err := tx.ExecContext(ctx, us.db.Rebind(`UPDATE users SET email = ?, email_display = ?, name = ?, external_id = ?,
		updated_at = ? WHERE id = ? AND tenant_id = ?`), u.Email, u.Display, u.Name, ext, u.UpdatedAt.UnixMicro(), u.ID, u.TenantID)
	if store.IsUniqueViolation(err) {
		return ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("identity: update account: %w", err)
	}
	return nil
}

// SetStatus changes an account's state in tx. Leaving active ends every
// session of the account and revokes its API keys in the same
// transaction; callers record the change with it.
func (us *Users) SetStatus(ctx context.Context, tx *sql.Tx, u *User, st Status, reason string) error {
	now := us.now().UTC().Truncate(time.Microsecond)
	var disabled any
	if st != StatusActive {
		disabled = now.UnixMicro()
	} else {
		reason = ""
	}
	email := u.Email
	if st == StatusDeleted {
		// A deleted account keeps its row for the audit trail but frees
		// its email, which a new account may take.
		email = "deleted/" + u.ID + "/" + u.Email
	}
	_, err := tx.ExecContext(ctx, us.db.Rebind(`UPDATE users SET status = ?, disabled_at = ?, disabled_reason = ?,
		updated_at = ?, credentials_version = credentials_version + 1, email = ? WHERE id = ? AND tenant_id = ?`),
		string(st), disabled, reason, now.UnixMicro(), email, u.ID, u.TenantID)
	if err != nil {
		return fmt.Errorf("identity: change account state: %w", err)
	}
	if st != StatusActive {
		if err := EndAll(ctx, us.db, tx, u.ID, "account "+string(st), now); err != nil {
			return err
		}
	}
	if st == StatusDeleted {
		if _, err := tx.ExecContext(ctx, us.db.Rebind(`DELETE FROM user_group_members WHERE user_id = ?`), u.ID); err != nil {
			return fmt.Errorf("identity: leave groups: %w", err)
		}
	}
	u.Status, u.UpdatedAt = st, now
	if st != StatusActive {
		u.DisabledAt, u.DisabledReason = now, reason
	} else {
		u.DisabledAt, u.DisabledReason = time.Time{}, ""
	}
	return nil
}

// EndAll ends every session of a user and revokes every API key the user
// holds, in tx: what a password change, factor removal, disable, deletion
// or deprovisioning does at once.
func EndAll(ctx context.Context, db *store.DB, tx *sql.Tx, userID, reason string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE sessions SET revoked_at = ?, revoke_reason = ?
		WHERE user_id = ? AND revoked_at IS NULL`), now.UnixMicro(), reason, userID); err != nil {
		return fmt.Errorf("identity: end sessions: %w", err)
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`),
		now.UnixMicro(), userID); err != nil {
		return fmt.Errorf("identity: revoke API keys: %w", err)
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM pending_logins WHERE user_id = ?`), userID); err != nil {
		return fmt.Errorf("identity: end pending logins: %w", err)
	}
	return nil
}

// MarkLogin records a completed login.
func (us *Users) markLogin(ctx context.Context, tx *sql.Tx, id string, at time.Time) error {
	_, err := tx.ExecContext(ctx, us.db.Rebind(`UPDATE users SET last_login_at = ? WHERE id = ?`), at.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("identity: record login: %w", err)
	}
	return nil
}

// Inactive lists the active accounts of a tenant that have not signed in
// since before (counting from creation for those that never have). Owners
// are left out: no job leaves a tenant without one.
func (us *Users) Inactive(ctx context.Context, q store.Querier, tenantID int64, before time.Time) ([]*User, error) {
	rows, err := q.QueryContext(ctx, us.db.Rebind(`SELECT `+userColumns+` FROM users WHERE tenant_id = ? AND status = 'active'
		AND COALESCE(last_login_at, created_at) < ?
		AND NOT EXISTS (SELECT 1 FROM role_grants g WHERE g.user_id = users.id AND g.role = 'owner')
		ORDER BY id`), tenantID, before.UTC().UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("identity: list inactive accounts: %w", err)
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("identity: read account: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
