package access

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/store"
)

// The states of an access review campaign.
const (
	CampaignOpen      = "open"
	CampaignCompleted = "completed"
)

// What a campaign's deadline does to the items nobody decided: revoke
// them, or hand them to another reviewer for one more week.
const (
	OnDeadlineRevoke   = "revoke"
	OnDeadlineEscalate = "escalate"
)

// The decisions on a review item.
const (
	DecisionKeep   = "keep"
	DecisionRevoke = "revoke"
)

// The cadence of access reviews: one a quarter, each open for two weeks
// unless its creator says otherwise, and an escalation adds one week once.
const (
	ReviewWindow    = 14 * 24 * time.Hour
	MaxReviewWindow = 180 * 24 * time.Hour
	// MinReviewWindow keeps a campaign from being a way to revoke roles
	// in bulk before anyone can look: its deadline is at least this far.
	MinReviewWindow  = 7 * 24 * time.Hour
	ReviewEscalation = 7 * 24 * time.Hour
	ReviewCadence    = 3 // months
)

// OverdueReason is the reason recorded on an item the deadline decided.
const OverdueReason = "not reviewed by the deadline"

// Bounds of a campaign's free text.
const (
	maxCampaignName = 200
	maxReviewReason = 500
)

// NextReviewDue is when the review after one started at last is due.
func NextReviewDue(last time.Time) time.Time { return last.AddDate(0, ReviewCadence, 0) }

// Campaign is an access review: the grants of a tenant frozen at its start
// into items, each decided by a reviewer before the deadline.
type Campaign struct {
	ID         string
	TenantID   int64
	Name       string
	Status     string
	OnDeadline string
	// EscalateTo is the user who takes over the undecided items at the
	// deadline when OnDeadline is OnDeadlineEscalate.
	EscalateTo string
	// Roles limits the campaign to these roles; empty means every role.
	Roles       []string
	CreatedBy   string
	StartedAt   time.Time
	Deadline    time.Time
	EscalatedAt time.Time // zero unless the deadline was extended
	CompletedAt time.Time // zero while open
	// Items and Decided count the campaign's items and those decided.
	Items, Decided int
}

// ReviewItem is one role one user held when a campaign started, with the
// user's email and name as they were then, and its decision once made.
type ReviewItem struct {
	CampaignID string
	UserID     string
	Role       string
	UserEmail  string
	UserName   string
	ReviewerID string
	Decision   string // empty while undecided
	Reason     string
	DecidedBy  string
	DecidedAt  time.Time
}

// CampaignError says which field of a campaign cannot be used, and why.
type CampaignError struct {
	Field, Reason string
}

func (e *CampaignError) Error() string { return e.Field + ": " + e.Reason }

// Errors of the review store.
var (
	ErrNoCampaign   = errors.New("access: no such review campaign")
	ErrNoReviewItem = errors.New("access: the campaign has no such item")
	ErrDecided      = errors.New("access: the item is decided already, and a decision is final")
	ErrSelfReview   = errors.New("access: nobody reviews their own access")
	ErrEscalated    = errors.New("access: the campaign is closed or its deadline was extended already")
)

// Reviews stores access review campaigns and their items.
type Reviews struct {
	db     *store.DB
	now    func() time.Time
	grants *Grants
}

// NewReviews returns the review store; revocations go through grants.
func NewReviews(db *store.DB, now func() time.Time, grants *Grants) *Reviews {
	return &Reviews{db: db, now: now, grants: grants}
}

// NewCampaignID returns a fresh campaign id.
func NewCampaignID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return "rvw_" + elevationIDs.EncodeToString(b)
}

// PlanCampaign checks a campaign before it starts and fills in its
// defaults: it starts now, its deadline is ReviewWindow later, and what
// nobody decides by then is revoked. Errors are *CampaignError.
func PlanCampaign(c *Campaign, now time.Time) error {
	c.Name = strings.TrimSpace(c.Name)
	if c.OnDeadline == "" {
		c.OnDeadline = OnDeadlineRevoke
	}
	c.StartedAt = now.UTC().Truncate(time.Microsecond)
	if c.Deadline.IsZero() {
		c.Deadline = c.StartedAt.Add(ReviewWindow)
	}
	c.Deadline = c.Deadline.UTC().Truncate(time.Microsecond)
	switch {
	case c.Name == "":
		return &CampaignError{"name", "required: say what the review is, such as \"2026 Q1 access review\""}
	case len(c.Name) > maxCampaignName || UnsafeText(c.Name) || !store.StorableText(c.Name):
		return &CampaignError{"name", fmt.Sprintf("must be at most %d bytes of text", maxCampaignName)}
	case c.OnDeadline != OnDeadlineRevoke && c.OnDeadline != OnDeadlineEscalate:
		return &CampaignError{"on_deadline", `must be "revoke" or "escalate"`}
	case c.OnDeadline == OnDeadlineEscalate && c.EscalateTo == "":
		return &CampaignError{"escalate_to", "required when on_deadline is escalate: the user who takes over"}
	case c.OnDeadline != OnDeadlineEscalate && c.EscalateTo != "":
		return &CampaignError{"escalate_to", "only a campaign whose on_deadline is escalate takes it"}
	case c.Deadline.Sub(c.StartedAt) < MinReviewWindow:
		return &CampaignError{"deadline", fmt.Sprintf("must be at least %d days away", int(MinReviewWindow/(24*time.Hour)))}
	case c.Deadline.Sub(c.StartedAt) > MaxReviewWindow:
		return &CampaignError{"deadline", fmt.Sprintf("must be at most %d days away", int(MaxReviewWindow/(24*time.Hour)))}
	case len(c.Roles) > 200:
		return &CampaignError{"roles", "at most 200"}
	}
	for i, r := range c.Roles {
		if slices.Contains(c.Roles[:i], r) {
			return &CampaignError{"roles", fmt.Sprintf("%q is listed twice", r)}
		}
	}
	return nil
}

// heldGrant is a grant of an active user, with the user as they are now.
type heldGrant struct {
	Grant
	userID, email, name string
}

// Start stores a planned campaign in tx with one item for every role an
// active user of the tenant holds (of c.Roles, when set). Each item goes
// to reviewer when it is set, else to the first user by id holding
// PermReviewsManage, else to the campaign's creator, else to its
// escalate_to user, but never to the user it is about; an item nobody
// else could review refuses the campaign. A campaign with nothing to
// review completes at once.
func (rs *Reviews) Start(ctx context.Context, tx *sql.Tx, c *Campaign, reviewer string) ([]*ReviewItem, error) {
	for _, f := range []struct{ field, id string }{{"reviewer", reviewer}, {"escalate_to", c.EscalateTo}} {
		if err := rs.activeUser(ctx, tx, c.TenantID, f.field, f.id); err != nil {
			return nil, err
		}
	}
	for _, r := range c.Roles {
		if _, err := rs.grants.RolePermissions(ctx, tx, c.TenantID, r); errors.Is(err, ErrNoRole) {
			return nil, &CampaignError{"roles", fmt.Sprintf("%q is no role of the tenant", r)}
		} else if err != nil {
			return nil, err
		}
	}
	held, err := rs.held(ctx, tx, c.TenantID)
	if err != nil {
		return nil, err
	}
	managers, err := rs.managers(ctx, tx, c.TenantID, held)
	if err != nil {
		return nil, err
	}
	candidates := append(append([]string{reviewer}, managers...), c.CreatedBy, c.EscalateTo)
	var items []*ReviewItem
	for _, g := range held {
		if len(c.Roles) > 0 && !slices.Contains(c.Roles, g.Role) {
			continue
		}
		it := &ReviewItem{CampaignID: c.ID, UserID: g.userID, Role: g.Role, UserEmail: g.email, UserName: g.name}
		if it.ReviewerID = pickReviewer(g.userID, candidates); it.ReviewerID == "" {
			return nil, &CampaignError{"reviewer", "nobody but " + g.userID + " could review their own access: name a reviewer"}
		}
		items = append(items, it)
	}
	c.Status, c.Items, c.Decided, c.CompletedAt = CampaignOpen, len(items), 0, time.Time{}
	if len(items) == 0 {
		c.Status, c.CompletedAt = CampaignCompleted, c.StartedAt
	}
	if err := rs.insert(ctx, tx, c, items); err != nil {
		return nil, err
	}
	return items, nil
}

// pickReviewer returns the first candidate who is not the subject.
func pickReviewer(subject string, candidates []string) string {
	for _, id := range candidates {
		if id != "" && id != subject {
			return id
		}
	}
	return ""
}

// activeUser refuses, as a CampaignError on field, an id that is not an
// active user of the tenant; an empty id passes.
func (rs *Reviews) activeUser(ctx context.Context, q store.Querier, tenantID int64, field, id string) error {
	if id == "" {
		return nil
	}
	notUser := &CampaignError{field, "no active user of the tenant has this id"}
	if !store.StorableText(id) {
		return notUser
	}
	var status string
	err := q.QueryRowContext(ctx, rs.db.Rebind(`SELECT status FROM users WHERE id = ? AND tenant_id = ?`),
		id, tenantID).Scan(&status)
	if (err == nil && status != "active") || errors.Is(err, sql.ErrNoRows) {
		return notUser
	}
	if err != nil {
		return fmt.Errorf("access: read reviewer: %w", err)
	}
	return nil
}

// held lists the grants of the tenant's active users, by user and role.
func (rs *Reviews) held(ctx context.Context, q store.Querier, tenantID int64) ([]heldGrant, error) {
	rows, err := q.QueryContext(ctx, rs.db.Rebind(`SELECT g.user_id, g.role, g.period_start, g.period_end,
		u.email_display, u.name FROM role_grants g JOIN users u ON u.id = g.user_id
		WHERE g.tenant_id = ? AND u.tenant_id = ? AND u.status = 'active' ORDER BY g.user_id, g.role`), tenantID, tenantID)
	if err != nil {
		return nil, fmt.Errorf("access: read grants: %w", err)
	}
	defer rows.Close()
	var out []heldGrant
	for rows.Next() {
		var g heldGrant
		var start, end sql.NullInt64
		if err := rows.Scan(&g.userID, &g.Role, &start, &end, &g.email, &g.name); err != nil {
			return nil, fmt.Errorf("access: read grant: %w", err)
		}
		if start.Valid && end.Valid {
			g.PeriodStart, g.PeriodEnd = time.UnixMicro(start.Int64).UTC(), time.UnixMicro(end.Int64).UTC()
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// managers lists, by id, the users of held whose roles in force carry
// PermReviewsManage.
func (rs *Reviews) managers(ctx context.Context, q store.Querier, tenantID int64, held []heldGrant) ([]string, error) {
	custom, err := rs.grants.CustomRoles(ctx, q, tenantID)
	if err != nil {
		return nil, err
	}
	perms := map[string][]Permission{}
	for _, r := range custom {
		perms[r.Name] = r.Permissions
	}
	now := rs.now()
	var out []string
	for _, g := range held {
		ps, ok := builtinPerms[g.Role]
		if !ok {
			ps = perms[g.Role]
		}
		if g.InForce(now) && slices.Contains(ps, PermReviewsManage) && !slices.Contains(out, g.userID) {
			out = append(out, g.userID)
		}
	}
	return out, nil // held is ordered by user id, and so is out
}

// itemBatch bounds the rows of one INSERT, well within both engines'
// limits on parameters.
const itemBatch = 200

func (rs *Reviews) insert(ctx context.Context, tx *sql.Tx, c *Campaign, items []*ReviewItem) error {
	_, err := tx.ExecContext(ctx, rs.db.Rebind(`INSERT INTO review_campaigns (id, tenant_id, name, status, on_deadline,
		escalate_to, created_by, started_at, deadline, completed_at, scope_roles) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.ID, c.TenantID, c.Name, c.Status, c.OnDeadline, c.EscalateTo, c.CreatedBy, c.StartedAt.UnixMicro(),
		c.Deadline.UnixMicro(), micros(c.CompletedAt), strings.Join(c.Roles, ","))
	if err != nil {
		return fmt.Errorf("access: store campaign: %w", err)
	}
	for len(items) > 0 {
		batch := items[:min(len(items), itemBatch)]
		items = items[len(batch):]
		args := make([]any, 0, 6*len(batch))
		for _, it := range batch {
			args = append(args, c.ID, it.UserID, it.Role, it.UserEmail, it.UserName, it.ReviewerID)
		}
		q := `INSERT INTO review_items (campaign_id, user_id, role, user_email, user_name, reviewer_id) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(batch)), ", ")
		if _, err := tx.ExecContext(ctx, rs.db.Rebind(q), args...); err != nil {
			return fmt.Errorf("access: store review items: %w", err)
		}
	}
	return nil
}

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

const campaignColumns = `c.id, c.tenant_id, c.name, c.status, c.on_deadline, c.escalate_to, c.created_by, c.started_at,
	c.deadline, c.completed_at, c.scope_roles, c.escalated_at,
	(SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id),
	(SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id AND i.decision <> '')`

func scanCampaign(sc interface{ Scan(...any) error }) (*Campaign, error) {
	c := &Campaign{}
	var started, deadline int64
	var completed, escalated sql.NullInt64
	var roles string
	if err := sc.Scan(&c.ID, &c.TenantID, &c.Name, &c.Status, &c.OnDeadline, &c.EscalateTo, &c.CreatedBy, &started,
		&deadline, &completed, &roles, &escalated, &c.Items, &c.Decided); err != nil {
		return nil, err
	}
	c.StartedAt, c.Deadline = time.UnixMicro(started).UTC(), time.UnixMicro(deadline).UTC()
	c.CompletedAt, c.EscalatedAt = fromMicros(completed), fromMicros(escalated)
	if roles != "" {
		c.Roles = strings.Split(roles, ",")
	}
	return c, nil
}

// Campaign returns a campaign of the tenant; ErrNoCampaign when the
// tenant has none of this id, whoever else might.
func (rs *Reviews) Campaign(ctx context.Context, q store.Querier, tenantID int64, id string) (*Campaign, error) {
	if !store.StorableText(id) {
		return nil, ErrNoCampaign
	}
	c, err := scanCampaign(q.QueryRowContext(ctx, rs.db.Rebind(`SELECT `+campaignColumns+` FROM review_campaigns c
		WHERE c.id = ? AND c.tenant_id = ?`), id, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoCampaign
	}
	if err != nil {
		return nil, fmt.Errorf("access: read campaign: %w", err)
	}
	return c, nil
}

// Campaigns lists the tenant's campaigns, newest first, at most 200.
func (rs *Reviews) Campaigns(ctx context.Context, q store.Querier, tenantID int64) ([]*Campaign, error) {
	return rs.campaigns(ctx, q, `c.tenant_id = ? ORDER BY c.started_at DESC, c.id LIMIT 200`, tenantID)
}

// Due lists the tenant's open campaigns whose deadline is not after now.
func (rs *Reviews) Due(ctx context.Context, q store.Querier, tenantID int64, now time.Time) ([]*Campaign, error) {
	return rs.campaigns(ctx, q, `c.tenant_id = ? AND c.status = 'open' AND c.deadline <= ? ORDER BY c.deadline, c.id`,
		tenantID, now.UTC().UnixMicro())
}

func (rs *Reviews) campaigns(ctx context.Context, q store.Querier, where string, args ...any) ([]*Campaign, error) {
	rows, err := q.QueryContext(ctx, rs.db.Rebind(`SELECT `+campaignColumns+` FROM review_campaigns c WHERE `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("access: list campaigns: %w", err)
	}
	defer rows.Close()
	var out []*Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("access: read campaign: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const itemColumns = `i.campaign_id, i.user_id, i.role, i.user_email, i.user_name, i.reviewer_id, i.decision, i.reason,
	i.decided_by, i.decided_at`

func scanItem(sc interface{ Scan(...any) error }) (*ReviewItem, error) {
	it := &ReviewItem{}
	var decided sql.NullInt64
	if err := sc.Scan(&it.CampaignID, &it.UserID, &it.Role, &it.UserEmail, &it.UserName, &it.ReviewerID, &it.Decision,
		&it.Reason, &it.DecidedBy, &decided); err != nil {
		return nil, err
	}
	it.DecidedAt = fromMicros(decided)
	return it, nil
}

// Items lists a campaign's items by user and role; none for a campaign
// of another tenant.
func (rs *Reviews) Items(ctx context.Context, q store.Querier, tenantID int64, campaignID string) ([]*ReviewItem, error) {
	rows, err := q.QueryContext(ctx, rs.db.Rebind(`SELECT `+itemColumns+` FROM review_items i
		JOIN review_campaigns c ON c.id = i.campaign_id WHERE c.tenant_id = ? AND c.id = ? ORDER BY i.user_id, i.role`),
		tenantID, campaignID)
	if err != nil {
		return nil, fmt.Errorf("access: list review items: %w", err)
	}
	defer rows.Close()
	var out []*ReviewItem
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("access: read review item: %w", err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// Item returns one item of a campaign of the tenant.
func (rs *Reviews) Item(ctx context.Context, q store.Querier, tenantID int64, campaignID, userID,
	role string) (*ReviewItem, error) {
	if !store.StorableText(campaignID + userID + role) {
		return nil, ErrNoReviewItem
	}
	it, err := scanItem(q.QueryRowContext(ctx, rs.db.Rebind(`SELECT `+itemColumns+` FROM review_items i
		JOIN review_campaigns c ON c.id = i.campaign_id WHERE c.tenant_id = ? AND c.id = ? AND i.user_id = ? AND i.role = ?`),
		tenantID, campaignID, userID, role))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoReviewItem
	}
	if err != nil {
		return nil, fmt.Errorf("access: read review item: %w", err)
	}
	return it, nil
}

// Decide records a decision on an undecided item in tx, by whom (a user
// id, or the actor id of a key or of attest itself). A revocation takes
// the role away in the same transaction, so the last owner rule may refuse
// it with ErrLastOwner; a role already gone counts as revoked. The last
// decision of a campaign completes it. The caller checks that by may
// decide; Decide refuses only the user the item is about.
func (rs *Reviews) Decide(ctx context.Context, tx *sql.Tx, tenantID int64, campaignID, userID, role, decision, reason,
	by string) (*ReviewItem, *Campaign, error) {
	if err := CheckDecision(decision, reason); err != nil {
		return nil, nil, err
	}
	it, err := rs.Item(ctx, tx, tenantID, campaignID, userID, role)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case by == it.UserID:
		return nil, nil, ErrSelfReview
	case it.Decision != "":
		return nil, nil, ErrDecided
	}
	if decision == DecisionRevoke {
		if err := rs.grants.Revoke(ctx, tx, tenantID, userID, role); err != nil && !errors.Is(err, ErrNotGranted) {
			return nil, nil, err
		}
	}
	now := rs.now().UTC().Truncate(time.Microsecond)
	res, err := tx.ExecContext(ctx, rs.db.Rebind(`UPDATE review_items SET decision = ?, reason = ?, decided_by = ?,
		decided_at = ? WHERE campaign_id = (SELECT id FROM review_campaigns WHERE id = ? AND tenant_id = ?)
		AND user_id = ? AND role = ? AND decision = ''`),
		decision, reason, by, now.UnixMicro(), campaignID, tenantID, userID, role)
	if err != nil {
		return nil, nil, fmt.Errorf("access: store decision: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, nil, ErrDecided
	}
	it.Decision, it.Reason, it.DecidedBy, it.DecidedAt = decision, reason, by, now
	if _, err := tx.ExecContext(ctx, rs.db.Rebind(`UPDATE review_campaigns SET status = 'completed', completed_at = ?
		WHERE id = ? AND tenant_id = ? AND status = 'open' AND NOT EXISTS
		(SELECT 1 FROM review_items i WHERE i.campaign_id = review_campaigns.id AND i.decision = '')`),
		now.UnixMicro(), campaignID, tenantID); err != nil {
		return nil, nil, fmt.Errorf("access: complete campaign: %w", err)
	}
	c, err := rs.Campaign(ctx, tx, tenantID, campaignID)
	if err != nil {
		return nil, nil, err
	}
	return it, c, nil
}

// CheckDecision checks a decision and its reason. Errors are
// *CampaignError.
func CheckDecision(decision, reason string) error {
	switch {
	case decision != DecisionKeep && decision != DecisionRevoke:
		return &CampaignError{"decision", `must be "keep" or "revoke"`}
	case strings.TrimSpace(reason) == "":
		return &CampaignError{"reason", "required: say why the access stays or goes"}
	case len(reason) > maxReviewReason || UnsafeText(reason) || !store.StorableText(reason):
		return &CampaignError{"reason", fmt.Sprintf("must be at most %d bytes of text", maxReviewReason)}
	}
	return nil
}

// Reassign hands an undecided item to another reviewer in tx.
func (rs *Reviews) Reassign(ctx context.Context, tx *sql.Tx, tenantID int64, campaignID, userID, role, to string) error {
	if to == userID {
		return ErrSelfReview
	}
	res, err := tx.ExecContext(ctx, rs.db.Rebind(`UPDATE review_items SET reviewer_id = ?
		WHERE campaign_id = (SELECT id FROM review_campaigns WHERE id = ? AND tenant_id = ?)
		AND user_id = ? AND role = ? AND decision = ''`), to, campaignID, tenantID, userID, role)
	if err != nil {
		return fmt.Errorf("access: reassign review item: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrDecided
	}
	return nil
}

// Extend moves an open campaign's deadline to deadline in tx and marks it
// escalated; a campaign is escalated once, and ErrEscalated refuses a
// second time.
func (rs *Reviews) Extend(ctx context.Context, tx *sql.Tx, tenantID int64, campaignID string, deadline time.Time) error {
	res, err := tx.ExecContext(ctx, rs.db.Rebind(`UPDATE review_campaigns SET deadline = ?, escalated_at = ?
		WHERE id = ? AND tenant_id = ? AND status = 'open' AND escalated_at IS NULL`),
		deadline.UTC().UnixMicro(), rs.now().UTC().UnixMicro(), campaignID, tenantID)
	if err != nil {
		return fmt.Errorf("access: extend campaign: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrEscalated
	}
	return nil
}
