// Package access decides who may do what: API keys for machines, the roles
// they carry, and the permission each API action needs.
package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/attest/attest/internal/store"
)

// Role is what an API key may do.
type Role string

// The roles of API keys.
const (
	// RoleOperator acts on every tenant and manages tenants.
	RoleOperator Role = "operator"
	// RoleAdmin manages its tenant's keys, reads and writes its log.
	RoleAdmin Role = "admin"
	// RoleIngest only sends events.
	RoleIngest Role = "ingest"
	// RoleReader reads the log: queries, events, proofs, checkpoints, tiles;
	// in the operator tenant also the metrics.
	RoleReader Role = "reader"
	// RoleSCIM is an identity provider's SCIM token: it provisions and
	// deprovisions its tenant's users and groups, and nothing else.
	RoleSCIM Role = "scim"
	// RoleAuthz is a platform service that asks whether a user may act.
	RoleAuthz Role = "authz"
)

// Roles lists every role, most powerful first.
var Roles = []Role{RoleOperator, RoleAdmin, RoleIngest, RoleReader, RoleSCIM, RoleAuthz}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !slices.Contains(Roles, r) {
		return "", fmt.Errorf("role must be one of operator, admin, ingest, reader, scim, authz, not %q", s)
	}
	return r, nil
}

// Permission is one kind of action on attest's API.
type Permission string

// The permissions. Every API route requires exactly one.
const (
	PermEventsWrite Permission = "audit.events.write"
	PermLogRead     Permission = "audit.log.read"
	PermKeysManage  Permission = "apikeys.manage"
	PermKeysRead    Permission = "apikeys.read"
	PermTenants     Permission = "tenants.manage"
	PermTenantsRead Permission = "tenants.read"
	// PermPrivacyErase destroys a subject's personal values.
	PermPrivacyErase Permission = "privacy.erase"
	// PermRetentionManage sets a tenant's retention policy and legal hold.
	PermRetentionManage Permission = "audit.retention.manage"
	// PermMetricsRead reads the Prometheus metrics, which describe every
	// tenant: only keys of the operator tenant exercise it. Every role that
	// reads holds it, so that nobody can grant it without holding it.
	PermMetricsRead Permission = "metrics.read"
	// PermNone marks routes that need no credential at all.
	PermNone Permission = ""
	// PermAny is held by every valid key: it marks routes that only need
	// to know who is calling.
	PermAny Permission = "any"
)

// Machines cannot elevate, so an admin or operator key holds its
// privileged permissions standing; creating one is itself privileged. A
// SCIM key can deprovision owners, so only owners (and operator keys)
// create one.
var rolePerms = map[Role][]Permission{
	RoleOperator: AllPermissions,
	RoleAdmin:    AllPermissionsExcept(PermTenants, PermTenantsRead, PermOwnership, PermSCIM),
	RoleIngest:   {PermEventsWrite},
	RoleReader:   {PermLogRead, PermMetricsRead, PermExport, PermComplianceRead},
	RoleSCIM:     {PermSCIM},
	RoleAuthz:    {PermAuthzCheck},
}

// tenantBound lists the permissions that only keys of the operator tenant
// exercise, whatever their role.
var tenantBound = []Permission{PermMetricsRead}

// OperatorTenantOnly reports whether a permission is held only by keys of
// the operator tenant.
func (p Permission) OperatorTenantOnly() bool { return slices.Contains(tenantBound, p) }

// Allows reports whether a role holds a permission.
func (r Role) Allows(p Permission) bool {
	return p == PermNone || p == PermAny || slices.Contains(rolePerms[r], p)
}

// CanGrant reports whether a key of role r may create a key of role other:
// nobody grants a permission they do not hold.
func (r Role) CanGrant(other Role) bool {
	if !r.Allows(PermKeysManage) {
		return false
	}
	for _, p := range rolePerms[other] {
		if !r.Allows(p) {
			return false
		}
	}
	return true
}

// CanRevoke reports whether a key of role r may revoke a key of role other:
// nobody revokes a key that holds a permission they do not hold.
func (r Role) CanRevoke(other Role) bool { return r.CanGrant(other) }

// CrossTenant reports whether a key of role r may act on other tenants than
// its own: only an operator key may. An admin key acts only in its own
// tenant, the operator tenant included.
func (r Role) CrossTenant() bool { return r == RoleOperator }

// CheckTenant refuses a role for a key of a tenant that may not hold it:
// operator keys belong to the operator tenant, and ingest keys to every
// other, since the operator tenant holds attest's own audit trail and takes
// no events from producers. operatorTenant tells whether the key's tenant
// is the operator tenant.
func (r Role) CheckTenant(operatorTenant bool) error {
	switch {
	case r == RoleOperator && !operatorTenant:
		return errors.New("operator keys belong to the operator tenant")
	case r == RoleIngest && operatorTenant:
		return errors.New("the operator tenant holds attest's own audit trail and takes no events, " +
			"so it has no ingest keys; create the key in the tenant it sends to")
	}
	return nil
}

// MaxKeyNameLen bounds a key's name, in bytes.
const MaxKeyNameLen = 128

// ValidateKeyName checks a key's name: at most MaxKeyNameLen bytes of UTF-8
// holding no control or bidirectional formatting character.
func ValidateKeyName(name string) error {
	if len(name) > MaxKeyNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("name must be at most %d bytes of UTF-8", MaxKeyNameLen)
	}
	if UnsafeText(name) {
		return errors.New("name must not hold control or bidirectional formatting characters")
	}
	return nil
}

// UnsafeText reports whether s holds a control character (U+0000 to U+001F,
// U+007F to U+009F) or a bidirectional embedding, override or isolate
// (U+202A to U+202E, U+2066 to U+2069), any of which can make a name read
// as something it is not.
func UnsafeText(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
	})
}

// Key is a stored API key, without its secret.
type Key struct {
	ID        string
	TenantID  int64
	Role      Role
	Name      string
	CreatedAt time.Time
	ExpiresAt time.Time // zero when the key does not expire
	RevokedAt time.Time // zero unless revoked
	// UserID is the person who created the key, if a person did: their
	// deprovisioning revokes it.
	UserID string
}

// Token is the secret form of a key, shown once. It never prints itself.
type Token string

// LogValue redacts the token to its public id.
func (t Token) LogValue() slog.Value {
	id, _, ok := splitToken(string(t))
	if !ok {
		return slog.StringValue("(malformed token)")
	}
	return slog.StringValue("atk_" + id + "_REDACTED")
}

// String redacts the token, so that a stray %v cannot print it.
func (t Token) String() string { return t.LogValue().String() }

// Reveal returns the token itself, for the one time it is shown.
func (t Token) Reveal() string { return string(t) }

const tokenPrefix = "atk_"

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func splitToken(tok string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(secret) != 52 {
		return "", "", false
	}
	return id, secret, true
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte("attest/apikey/v1\x00" + secret))
	return h[:]
}

// NewKeyID returns a fresh key id.
func NewKeyID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}

// Keys stores and checks API keys.
type Keys struct {
	db  *store.DB
	now func() time.Time
}

// NewKeys returns a key store over db; now is the clock.
func NewKeys(db *store.DB, now func() time.Time) *Keys {
	if now == nil {
		now = time.Now
	}
	return &Keys{db: db, now: now}
}

// Create stores a new key with the given id (from NewKeyID) in tx and returns
// its token. A zero expires means the key does not expire; userID names the
// person creating it, or is empty.
func (ks *Keys) Create(ctx context.Context, tx *sql.Tx, id string, tenantID int64, role Role, name string, expires time.Time,
	userID string) (Token, *Key, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	sec := idEncoding.EncodeToString(secret)
	k := &Key{ID: id, TenantID: tenantID, Role: role, Name: name, CreatedAt: ks.now().UTC().Truncate(time.Microsecond),
		ExpiresAt: expires, UserID: userID}
	var exp, user any
	if !expires.IsZero() {
		exp = expires.UTC().UnixMicro()
	}
	if userID != "" {
		user = userID
	}
	_, err := tx.ExecContext(ctx, ks.db.Rebind(`INSERT INTO api_keys (id, tenant_id, role, name, secret_hash, created_at, expires_at,
		user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), id, tenantID, string(role), name, hashSecret(sec), k.CreatedAt.UnixMicro(), exp, user)
	if err != nil {
		return "", nil, fmt.Errorf("access: store key: %w", err)
	}
	return Token(tokenPrefix + id + "_" + sec), k, nil
}

// Authentication failures. They are kept apart for the audit trail and the
// metrics; a client is told only that it is not authenticated.
var (
	ErrMalformedToken = errors.New("access: malformed API key")
	ErrUnknownKey     = errors.New("access: unknown API key")
	ErrRevoked        = errors.New("access: API key revoked")
	ErrExpired        = errors.New("access: API key expired")
)

// ErrAlreadyRevoked reports revoking a key that is revoked already; its
// revocation time stays as it was.
var ErrAlreadyRevoked = errors.New("access: API key already revoked")

// Authenticate checks a token and returns its key. It reads the database on
// every call, so that a revocation, even by another process, takes effect on
// the next request.
func (ks *Keys) Authenticate(ctx context.Context, tok string) (*Key, error) {
	id, secret, ok := splitToken(tok)
	if !ok {
		return nil, ErrMalformedToken
	}
	k, hash, err := ks.get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same work as a found key.
		subtle.ConstantTimeCompare(hashSecret(secret), make([]byte, sha256.Size))
		return nil, ErrUnknownKey
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(hashSecret(secret), hash) != 1 {
		return nil, ErrUnknownKey
	}
	if !k.RevokedAt.IsZero() {
		return k, ErrRevoked
	}
	if !k.ExpiresAt.IsZero() && !ks.now().Before(k.ExpiresAt) {
		return k, ErrExpired
	}
	return k, nil
}

func (ks *Keys) get(ctx context.Context, id string) (*Key, []byte, error) {
	if !store.StorableText(id) {
		return nil, nil, store.ErrNotFound
	}
	var rows []keyRow
	var err error
	if werr := ks.db.Warm(ctx, func() { rows, err = ks.query(ctx, ks.db.Reads(), `id = ?`, id) }); werr != nil {
		return nil, nil, werr
	}
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, store.ErrNotFound
	}
	return rows[0].key, rows[0].hash, nil
}

type keyRow struct {
	key  *Key
	hash []byte
}

func (ks *Keys) query(ctx context.Context, q store.Querier, where string, args ...any) ([]keyRow, error) {
	rows, err := q.QueryContext(ctx, ks.db.Rebind(`SELECT id, tenant_id, role, name, secret_hash, created_at, expires_at, revoked_at,
		user_id FROM api_keys WHERE `+where+` ORDER BY created_at, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("access: query keys: %w", err)
	}
	defer rows.Close()
	var out []keyRow
	for rows.Next() {
		var r keyRow
		k := &Key{}
		var role string
		var created int64
		var expires, revoked sql.NullInt64
		var user sql.NullString
		if err := rows.Scan(&k.ID, &k.TenantID, &role, &k.Name, &r.hash, &created, &expires, &revoked, &user); err != nil {
			return nil, fmt.Errorf("access: read key: %w", err)
		}
		k.Role, k.UserID = Role(role), user.String
		k.CreatedAt = time.UnixMicro(created).UTC()
		if expires.Valid {
			k.ExpiresAt = time.UnixMicro(expires.Int64).UTC()
		}
		if revoked.Valid {
			k.RevokedAt = time.UnixMicro(revoked.Int64).UTC()
		}
		r.key = k
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("access: query keys: %w", err)
	}
	return out, nil
}

// List returns the keys of a tenant, or of every tenant when tenantID is 0.
func (ks *Keys) List(ctx context.Context, tenantID int64) ([]*Key, error) {
	where, args := `1 = 1`, []any(nil)
	if tenantID != 0 {
		where, args = `tenant_id = ?`, []any{tenantID}
	}
	rows, err := ks.query(ctx, ks.db.Read, where, args...)
	if err != nil {
		return nil, err
	}
	out := make([]*Key, len(rows))
	for i, r := range rows {
		out[i] = r.key
	}
	return out, nil
}

// Get returns one key, in any tenant when tenantID is 0; store.ErrNotFound
// when it does not exist in that scope.
func (ks *Keys) Get(ctx context.Context, q store.Querier, tenantID int64, id string) (*Key, error) {
	if !store.StorableText(id) {
		return nil, store.ErrNotFound
	}
	where, args := `id = ?`, []any{id}
	if tenantID != 0 {
		where, args = `id = ? AND tenant_id = ?`, []any{id, tenantID}
	}
	rows, err := ks.query(ctx, q, where, args...)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, store.ErrNotFound
	}
	return rows[0].key, nil
}

// ChildOwner is the owner recorded for a key made by key id, when that key
// belongs to no person: revoking the parent revokes the child.
func ChildOwner(id string) string { return "apikey:" + id }

// revokeChildren revokes, in tx, the keys made by key id and by those, to
// any depth.
func (ks *Keys) revokeChildren(ctx context.Context, tx *sql.Tx, id string) error {
	queue := []string{id}
	now := ks.now().UTC().UnixMicro()
	for len(queue) > 0 && len(queue) < 100000 {
		parent := queue[0]
		queue = queue[1:]
		rows, err := tx.QueryContext(ctx, ks.db.Rebind(`SELECT id FROM api_keys WHERE user_id = ? AND revoked_at IS NULL`),
			ChildOwner(parent))
		if err != nil {
			return fmt.Errorf("access: revoke keys: %w", err)
		}
		kids, err := store.Strings(rows)
		if err != nil {
			return fmt.Errorf("access: revoke keys: %w", err)
		}
		for _, k := range kids {
			if _, err := tx.ExecContext(ctx, ks.db.Rebind(`UPDATE api_keys SET revoked_at = ? WHERE id = ?`), now, k); err != nil {
				return fmt.Errorf("access: revoke key: %w", err)
			}
		}
		queue = append(queue, kids...)
	}
	return nil
}

// Revoke marks a key revoked in tx. It returns ErrAlreadyRevoked, changing
// nothing, when the key is revoked already, and store.ErrNotFound when there
// is no such key.
func (ks *Keys) Revoke(ctx context.Context, tx *sql.Tx, id string) error {
	if !store.StorableText(id) {
		return store.ErrNotFound
	}
	res, err := tx.ExecContext(ctx, ks.db.Rebind(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`),
		ks.now().UTC().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("access: revoke key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("access: revoke key: %w", err)
	}
	if n == 1 {
		return ks.revokeChildren(ctx, tx, id)
	}
	rows, err := ks.query(ctx, tx, `id = ?`, id)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return store.ErrNotFound
	}
	return ErrAlreadyRevoked
}
