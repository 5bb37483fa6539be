package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/store"
)

// Grants stores the roles people hold and the tenants' custom roles.
type Grants struct {
	db  *store.DB
	now func() time.Time
}

// NewGrants returns the grant store over db.
func NewGrants(db *store.DB, now func() time.Time) *Grants { return &Grants{db: db, now: now} }

// Errors of the grant store.
var (
	ErrNoRole      = errors.New("access: no such role")
	ErrRoleExists  = errors.New("access: a role with this name exists")
	ErrRoleInUse   = errors.New("access: the role is granted to someone: revoke it first")
	ErrNotGranted  = errors.New("access: the user does not hold this role")
	ErrLastOwner   = errors.New("access: the tenant's last owner keeps the owner role")
	ErrPeriodRules = errors.New("access: an auditor's grant needs an audit period, and only an auditor's grant has one")
)

// RolePermissions returns the permissions of a built-in role or of one of
// the tenant's custom roles.
func (g *Grants) RolePermissions(ctx context.Context, q store.Querier, tenantID int64, role string) ([]Permission, error) {
	if ps, ok := builtinPerms[role]; ok {
		return ps, nil
	}
	r, err := g.CustomRole(ctx, q, tenantID, role)
	if err != nil {
		return nil, err
	}
	return r.Permissions, nil
}

// Grant gives a user a role in tx; granting a role the user holds replaces
// its period. by names who granted it.
func (g *Grants) Grant(ctx context.Context, tx *sql.Tx, tenantID int64, userID string, gr Grant, by string) error {
	if (gr.Role == RoleAuditor) != gr.Bounded() || (gr.Bounded() && !gr.PeriodStart.Before(gr.PeriodEnd)) {
		return ErrPeriodRules
	}
	if _, err := g.RolePermissions(ctx, tx, tenantID, gr.Role); err != nil {
		return err
	}
	var start, end any
	if gr.Bounded() {
		start, end = gr.PeriodStart.UTC().UnixMicro(), gr.PeriodEnd.UTC().UnixMicro()
	}
	_, err := tx.ExecContext(ctx, g.db.Rebind(`INSERT INTO role_grants (tenant_id, user_id, role, period_start, period_end,
		granted_by, granted_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, role) DO UPDATE SET
		period_start = excluded.period_start, period_end = excluded.period_end, granted_by = excluded.granted_by,
		granted_at = excluded.granted_at`), tenantID, userID, gr.Role, start, end, by, g.now().UTC().UnixMicro())
	if err != nil {
		return fmt.Errorf("access: grant role: %w", err)
	}
	return nil
}

// Revoke takes a role from a user in tx. The tenant's last active owner
// keeps the owner role.
func (g *Grants) Revoke(ctx context.Context, tx *sql.Tx, tenantID int64, userID, role string) error {
	if role == RoleOwner {
		var n int
		if err := tx.QueryRowContext(ctx, g.db.Rebind(`SELECT COUNT(*) FROM role_grants g JOIN users u ON u.id = g.user_id
			WHERE g.tenant_id = ? AND g.role = 'owner' AND u.status = 'active' AND g.user_id <> ?`), tenantID, userID).Scan(&n); err != nil {
			return fmt.Errorf("access: count owners: %w", err)
		}
		if n == 0 {
			return ErrLastOwner
		}
	}
	res, err := tx.ExecContext(ctx, g.db.Rebind(`DELETE FROM role_grants WHERE tenant_id = ? AND user_id = ? AND role = ?`),
		tenantID, userID, role)
	if err != nil {
		return fmt.Errorf("access: revoke role: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotGranted
	}
	return g.revokeUnheldKeys(ctx, tx, userID)
}

// revokeUnheldKeys revokes, in tx, the user's API keys whose role carries
// a permission the user's remaining roles do not: a key never keeps what
// its person has lost.
func (g *Grants) revokeUnheldKeys(ctx context.Context, tx *sql.Tx, userID string) error {
	grants, custom, err := g.ForUser(ctx, tx, userID)
	if err != nil {
		return err
	}
	sub := &Subject{Active: true, Grants: grants, Custom: custom}
	held := sub.Eligible(g.now())
	rows, err := tx.QueryContext(ctx, g.db.Rebind(`SELECT id, role FROM api_keys WHERE user_id = ? AND revoked_at IS NULL`), userID)
	if err != nil {
		return fmt.Errorf("access: read keys: %w", err)
	}
	var drop []string
	for rows.Next() {
		var id, role string
		if err := rows.Scan(&id, &role); err != nil {
			rows.Close()
			return fmt.Errorf("access: read keys: %w", err)
		}
		for _, p := range rolePerms[Role(role)] {
			if !slices.Contains(held, p) {
				drop = append(drop, id)
				break
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range drop {
		if _, err := tx.ExecContext(ctx, g.db.Rebind(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`),
			g.now().UTC().UnixMicro(), id); err != nil {
			return fmt.Errorf("access: revoke key: %w", err)
		}
	}
	return nil
}

// Sponsored reports whether userID owes their account or a role to
// sponsor: whether sponsor, or anyone who owes their own account or role to
// sponsor, however far back, granted one of userID's roles or issued an
// enrolment link for the account (whoever holds a link can enrol as its
// account). A grant or link made with an API key counts as made by the
// key's owner. Such a user is no independent second person for sponsor.
func (g *Grants) Sponsored(ctx context.Context, q store.Querier, userID, sponsor string) (bool, error) {
	seen := map[string]bool{userID: true}
	next := []string{userID}
	for len(next) > 0 && len(seen) <= maxSponsorChain {
		var found []string
		for _, u := range next {
			rows, err := q.QueryContext(ctx, g.db.Rebind(`SELECT granted_by FROM role_grants WHERE user_id = ?
				UNION SELECT created_by FROM enrolments WHERE user_id = ?`), u, u)
			if err != nil {
				return false, fmt.Errorf("access: read grants: %w", err)
			}
			bys, err := store.Strings(rows)
			if err != nil {
				return false, fmt.Errorf("access: read grants: %w", err)
			}
			for _, by := range bys {
				if keyID, ok := strings.CutPrefix(by, "apikey:"); ok {
					var owner sql.NullString
					err := q.QueryRowContext(ctx, g.db.Rebind(`SELECT user_id FROM api_keys WHERE id = ?`), keyID).Scan(&owner)
					if err != nil && !errors.Is(err, sql.ErrNoRows) {
						return false, fmt.Errorf("access: read key: %w", err)
					}
					by = owner.String
				}
				if by == sponsor {
					return true, nil
				}
				if by != "" && !seen[by] {
					seen[by] = true
					found = append(found, by)
				}
			}
		}
		next = found
	}
	return false, nil
}

// maxSponsorChain bounds the accounts Sponsored follows back.
const maxSponsorChain = 1000

// LastOwner reports whether userID is the tenant's only active owner.
func (g *Grants) LastOwner(ctx context.Context, q store.Querier, tenantID int64, userID string) (bool, error) {
	var mine, others int
	err := q.QueryRowContext(ctx, g.db.Rebind(`SELECT
		COUNT(CASE WHEN g.user_id = ? THEN 1 END), COUNT(CASE WHEN g.user_id <> ? THEN 1 END)
		FROM role_grants g JOIN users u ON u.id = g.user_id
		WHERE g.tenant_id = ? AND g.role = 'owner' AND u.status = 'active'`), userID, userID, tenantID).Scan(&mine, &others)
	if err != nil {
		return false, fmt.Errorf("access: count owners: %w", err)
	}
	return mine > 0 && others == 0, nil
}

// ForUser returns a user's grants with the permissions of the custom roles
// among them, in one query: what every request of a person reads.
func (g *Grants) ForUser(ctx context.Context, q store.Querier, userID string) ([]Grant, map[string][]Permission, error) {
	rows, err := q.QueryContext(ctx, g.db.Rebind(`SELECT g.role, g.period_start, g.period_end, r.permissions
		FROM role_grants g LEFT JOIN roles r ON r.tenant_id = g.tenant_id AND r.name = g.role
		WHERE g.user_id = ? ORDER BY g.role`), userID)
	if err != nil {
		return nil, nil, fmt.Errorf("access: read grants: %w", err)
	}
	defer rows.Close()
	var out []Grant
	custom := map[string][]Permission{}
	for rows.Next() {
		var gr Grant
		var start, end sql.NullInt64
		var perms sql.NullString
		if err := rows.Scan(&gr.Role, &start, &end, &perms); err != nil {
			return nil, nil, fmt.Errorf("access: read grant: %w", err)
		}
		if start.Valid && end.Valid {
			gr.PeriodStart, gr.PeriodEnd = time.UnixMicro(start.Int64).UTC(), time.UnixMicro(end.Int64).UTC()
		}
		if perms.Valid {
			custom[gr.Role] = ParsePermissions(perms.String)
		}
		out = append(out, gr)
	}
	return out, custom, rows.Err()
}

// Holder is a user as an authorization question sees them: whether the
// tenant has them, whether they are active, and their grants.
type Holder struct {
	Found  bool
	Active bool
	Grants []Grant
	Custom map[string][]Permission
}

// Load reads a user of tenant tenantID with their grants and the
// permissions of their custom roles, in one query: what an authorization
// check needs. A user the tenant does not have is Found false.
func (g *Grants) Load(ctx context.Context, q store.Querier, tenantID int64, userID string) (*Holder, error) {
	h := &Holder{Custom: map[string][]Permission{}}
	if !store.StorableText(userID) {
		return h, nil
	}
	rows, err := q.QueryContext(ctx, g.db.Rebind(`SELECT u.status, gr.role, gr.period_start, gr.period_end, r.permissions
		FROM users u LEFT JOIN role_grants gr ON gr.user_id = u.id
		LEFT JOIN roles r ON r.tenant_id = gr.tenant_id AND r.name = gr.role
		WHERE u.id = ? AND u.tenant_id = ? ORDER BY gr.role`), userID, tenantID)
	if err != nil {
		return nil, fmt.Errorf("access: read grants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var role, perms sql.NullString
		var start, end sql.NullInt64
		if err := rows.Scan(&status, &role, &start, &end, &perms); err != nil {
			return nil, fmt.Errorf("access: read grant: %w", err)
		}
		h.Found, h.Active = true, status == "active"
		if !role.Valid {
			continue
		}
		gr := Grant{Role: role.String}
		if start.Valid && end.Valid {
			gr.PeriodStart, gr.PeriodEnd = time.UnixMicro(start.Int64).UTC(), time.UnixMicro(end.Int64).UTC()
		}
		if perms.Valid {
			h.Custom[gr.Role] = ParsePermissions(perms.String)
		}
		h.Grants = append(h.Grants, gr)
	}
	return h, rows.Err()
}

// Holders lists the users of a tenant holding role.
func (g *Grants) Holders(ctx context.Context, q store.Querier, tenantID int64, role string) ([]string, error) {
	rows, err := q.QueryContext(ctx, g.db.Rebind(`SELECT user_id FROM role_grants WHERE tenant_id = ? AND role = ? ORDER BY user_id`),
		tenantID, role)
	if err != nil {
		return nil, fmt.Errorf("access: read grants: %w", err)
	}
	return store.Strings(rows)
}

// CreateRole stores a custom role in tx.
func (g *Grants) CreateRole(ctx context.Context, tx *sql.Tx, tenantID int64, r *CustomRole) error {
	if err := ValidateCustomRole(r); err != nil {
		return err
	}
	r.CreatedAt = g.now().UTC().Truncate(time.Microsecond)
	_, err := tx.ExecContext(ctx, g.db.Rebind(`INSERT INTO roles (tenant_id, name, description, permissions, created_at)
		VALUES (?, ?, ?, ?, ?)`), tenantID, r.Name, r.Description, JoinPermissions(r.Permissions), r.CreatedAt.UnixMicro())
	if store.IsUniqueViolation(err) {
		return ErrRoleExists
	}
	if err != nil {
		return fmt.Errorf("access: store role: %w", err)
	}
	return nil
}

// DeleteRole removes a custom role nobody holds, in tx.
func (g *Grants) DeleteRole(ctx context.Context, tx *sql.Tx, tenantID int64, name string) error {
	var n int
	if err := tx.QueryRowContext(ctx, g.db.Rebind(`SELECT COUNT(*) FROM role_grants WHERE tenant_id = ? AND role = ?`),
		tenantID, name).Scan(&n); err != nil {
		return fmt.Errorf("access: count grants: %w", err)
	}
	if n > 0 {
		return ErrRoleInUse
	}
	res, err := tx.ExecContext(ctx, g.db.Rebind(`DELETE FROM roles WHERE tenant_id = ? AND name = ?`), tenantID, name)
	if err != nil {
		return fmt.Errorf("access: delete role: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNoRole
	}
	return nil
}

// CustomRole returns one of a tenant's custom roles.
func (g *Grants) CustomRole(ctx context.Context, q store.Querier, tenantID int64, name string) (*CustomRole, error) {
	if !store.StorableText(name) {
		return nil, ErrNoRole
	}
	r := &CustomRole{Name: name}
	var perms string
	var created int64
	err := q.QueryRowContext(ctx, g.db.Rebind(`SELECT description, permissions, created_at FROM roles
		WHERE tenant_id = ? AND name = ?`), tenantID, name).Scan(&r.Description, &perms, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoRole
	}
	if err != nil {
		return nil, fmt.Errorf("access: read role: %w", err)
	}
	r.Permissions, r.CreatedAt = ParsePermissions(perms), time.UnixMicro(created).UTC()
	return r, nil
}

// CustomRoles lists a tenant's custom roles by name.
func (g *Grants) CustomRoles(ctx context.Context, q store.Querier, tenantID int64) ([]*CustomRole, error) {
	rows, err := q.QueryContext(ctx, g.db.Rebind(`SELECT name, description, permissions, created_at FROM roles
		WHERE tenant_id = ? ORDER BY name`), tenantID)
	if err != nil {
		return nil, fmt.Errorf("access: list roles: %w", err)
	}
	defer rows.Close()
	var out []*CustomRole
	for rows.Next() {
		r := &CustomRole{}
		var perms string
		var created int64
		if err := rows.Scan(&r.Name, &r.Description, &perms, &created); err != nil {
			return nil, fmt.Errorf("access: read role: %w", err)
		}
		r.Permissions, r.CreatedAt = ParsePermissions(perms), time.UnixMicro(created).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// KeyRolePermissions returns what an API key role holds, for checking
// that a person creating a key holds all of it.
func KeyRolePermissions(r Role) []Permission { return slices.Clone(rolePerms[r]) }
