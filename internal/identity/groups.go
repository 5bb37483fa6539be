package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/attest/attest/internal/store"
)

// Group is a tenant's group of users, as an identity provider keeps it.
type Group struct {
	ID          string
	TenantID    int64
	DisplayName string
	ExternalID  string
	Members     []string // user ids
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Group errors.
var (
	ErrNoGroup        = errors.New("identity: no such group")
	ErrGroupNameTaken = errors.New("identity: a group with this name exists in the tenant")
	ErrNoMember       = errors.New("identity: a member is not a user of the tenant")
)

// NewGroupID returns a fresh group id.
func NewGroupID() string { return randomID("grp_", 10) }

// Groups stores groups and their members.
type Groups struct {
	db  *store.DB
	now func() time.Time
}

// NewGroups returns the group store.
func NewGroups(db *store.DB, now func() time.Time) *Groups { return &Groups{db: db, now: now} }

// Put creates or replaces a group and its members in tx.
func (gs *Groups) Put(ctx context.Context, tx *sql.Tx, g *Group, create bool) error {
	now := gs.now().UTC().Truncate(time.Microsecond)
	var ext any
	if g.ExternalID != "" {
		ext = g.ExternalID
	}
	var err error
	if create {
		g.CreatedAt = now
		_, err = tx.ExecContext(ctx, gs.db.Rebind(`INSERT INTO user_groups (id, tenant_id, display_name, display_key, external_id,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`), g.ID, g.TenantID, g.DisplayName,
			strings.ToLower(g.DisplayName), ext, now.UnixMicro(), now.UnixMicro())
	} else {
		var res sql.Result
		res, err = tx.ExecContext(ctx, gs.db.Rebind(`UPDATE user_groups SET display_name = ?, display_key = ?, external_id = ?,
			updated_at = ? WHERE id = ? AND tenant_id = ?`), g.DisplayName, strings.ToLower(g.DisplayName), ext,
			now.UnixMicro(), g.ID, g.TenantID)
		if err == nil {
			if n, _ := res.RowsAffected(); n != 1 {
				return ErrNoGroup
			}
		}
	}
	if store.IsUniqueViolation(err) {
		return ErrGroupNameTaken
	}
	if err != nil {
		return fmt.Errorf("identity: store group: %w", err)
	}
	g.UpdatedAt = now
	if _, err := tx.ExecContext(ctx, gs.db.Rebind(`DELETE FROM user_group_members WHERE group_id = ?`), g.ID); err != nil {
		return fmt.Errorf("identity: store group members: %w", err)
	}
	for _, m := range g.Members {
		var n int
		if err := tx.QueryRowContext(ctx, gs.db.Rebind(`SELECT COUNT(*) FROM users WHERE id = ? AND tenant_id = ?
			AND status <> 'deleted'`), m, g.TenantID).Scan(&n); err != nil {
			return fmt.Errorf("identity: check group member: %w", err)
		}
		if n != 1 {
			return ErrNoMember
		}
		if _, err := tx.ExecContext(ctx, gs.db.Rebind(`INSERT INTO user_group_members (group_id, user_id) VALUES (?, ?)`),
			g.ID, m); err != nil {
			return fmt.Errorf("identity: store group member: %w", err)
		}
	}
	return nil
}

// Delete removes a group of a tenant and its memberships in tx.
func (gs *Groups) Delete(ctx context.Context, tx *sql.Tx, tenantID int64, id string) error {
	if _, err := tx.ExecContext(ctx, gs.db.Rebind(`DELETE FROM user_group_members WHERE group_id IN
		(SELECT id FROM user_groups WHERE id = ? AND tenant_id = ?)`), id, tenantID); err != nil {
		return fmt.Errorf("identity: delete group: %w", err)
	}
	res, err := tx.ExecContext(ctx, gs.db.Rebind(`DELETE FROM user_groups WHERE id = ? AND tenant_id = ?`), id, tenantID)
	if err != nil {
		return fmt.Errorf("identity: delete group: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNoGroup
	}
	return nil
}

// Get returns a group of a tenant with its members.
func (gs *Groups) Get(ctx context.Context, q store.Querier, tenantID int64, id string) (*Group, error) {
	if !store.StorableText(id) {
		return nil, ErrNoGroup
	}
	gr, _, err := gs.list(ctx, q, tenantID, `id = ?`, []any{id}, 1, 1)
	if err != nil {
		return nil, err
	}
	if len(gr) == 0 {
		return nil, ErrNoGroup
	}
	return gr[0], nil
}

// List returns a page of a tenant's groups matching where (a condition on
// user_groups' columns), and how many match in all.
func (gs *Groups) List(ctx context.Context, q store.Querier, tenantID int64, where string, args []any, start, count int) ([]*Group, int, error) {
	return gs.list(ctx, q, tenantID, where, args, start, count)
}

func (gs *Groups) list(ctx context.Context, q store.Querier, tenantID int64, where string, args []any, start, count int) ([]*Group, int, error) {
	cond := `tenant_id = ?`
	all := append([]any{tenantID}, args...)
	if where != "" {
		cond += ` AND ` + where
	}
	var total int
	if err := q.QueryRowContext(ctx, gs.db.Rebind(`SELECT COUNT(*) FROM user_groups WHERE `+cond), all...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("identity: count groups: %w", err)
	}
	rows, err := q.QueryContext(ctx, gs.db.Rebind(`SELECT id, tenant_id, display_name, external_id, created_at, updated_at
		FROM user_groups WHERE `+cond+` ORDER BY created_at, id LIMIT ? OFFSET ?`), append(all, count, start-1)...)
	if err != nil {
		return nil, 0, fmt.Errorf("identity: list groups: %w", err)
	}
	var out []*Group
	for rows.Next() {
		g := &Group{}
		var ext sql.NullString
		var created, updated int64
		if err := rows.Scan(&g.ID, &g.TenantID, &g.DisplayName, &ext, &created, &updated); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("identity: read group: %w", err)
		}
		g.ExternalID, g.CreatedAt, g.UpdatedAt = ext.String, time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
		out = append(out, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	for _, g := range out {
		if g.Members, err = gs.members(ctx, q, g.ID); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

func (gs *Groups) members(ctx context.Context, q store.Querier, groupID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, gs.db.Rebind(`SELECT user_id FROM user_group_members WHERE group_id = ? ORDER BY user_id`), groupID)
	if err != nil {
		return nil, fmt.Errorf("identity: read group members: %w", err)
	}
	return store.Strings(rows)
}

// OfUser returns the groups a user belongs to, as id and display name.
func (gs *Groups) OfUser(ctx context.Context, q store.Querier, userID string) ([][2]string, error) {
	rows, err := q.QueryContext(ctx, gs.db.Rebind(`SELECT g.id, g.display_name FROM user_group_members m
		JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.display_name`), userID)
	if err != nil {
		return nil, fmt.Errorf("identity: read user groups: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// LeaveAll removes a user from every group in tx.
func (gs *Groups) LeaveAll(ctx context.Context, tx *sql.Tx, userID string) error {
	if _, err := tx.ExecContext(ctx, gs.db.Rebind(`DELETE FROM user_group_members WHERE user_id = ?`), userID); err != nil {
		return fmt.Errorf("identity: leave groups: %w", err)
	}
	return nil
}

// Page lists a page of a tenant's accounts, deleted ones left out, that
// match where (a condition on users' columns), and how many match in all.
func (us *Users) Page(ctx context.Context, q store.Querier, tenantID int64, where string, args []any, start, count int) ([]*User, int, error) {
	cond := `tenant_id = ? AND status <> 'deleted'`
	all := append([]any{tenantID}, args...)
	if where != "" {
		cond += ` AND ` + where
	}
	var total int
	if err := q.QueryRowContext(ctx, us.db.Rebind(`SELECT COUNT(*) FROM users WHERE `+cond), all...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("identity: count accounts: %w", err)
	}
	rows, err := q.QueryContext(ctx, us.db.Rebind(`SELECT `+userColumns+` FROM users WHERE `+cond+`
		ORDER BY created_at, id LIMIT ? OFFSET ?`), append(all, count, start-1)...)
	if err != nil {
		return nil, 0, fmt.Errorf("identity: list accounts: %w", err)
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("identity: read account: %w", err)
		}
		out = append(out, u)
	}
	return out, total, rows.Err()
}
