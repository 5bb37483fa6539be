package access

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/store"
)

// Elevation bounds: how long an elevation may last once active, and how
// long an approved one waits to be activated.
const (
	DefaultElevation = time.Hour
	MaxElevation     = 4 * time.Hour
	ActivateWithin   = 24 * time.Hour
)

// The states of an elevation.
const (
	ElevationPending  = "pending"
	ElevationApproved = "approved"
	ElevationDenied   = "denied"
	ElevationActive   = "active"
	ElevationExpired  = "expired"
)

// Elevation is a request for privileged permissions for a while.
type Elevation struct {
	ID              string
	TenantID        int64
	UserID          string
	Permissions     []Permission
	Reason          string
	Duration        time.Duration
	ApprovalsNeeded int
	Approvers       []string
	Status          string
	RequestedAt     time.Time
	DecidedAt       time.Time
	ActivatedAt     time.Time
	ExpiresAt       time.Time
	SessionID       string
}

// Elevation errors.
var (
	ErrNoElevation      = errors.New("access: no such elevation")
	ErrSelfApproval     = errors.New("access: nobody approves their own elevation")
	ErrAlreadyDecided   = errors.New("access: you have decided on this elevation already")
	ErrElevationState   = errors.New("access: the elevation is not in a state that allows this")
	ErrNotYourRequest   = errors.New("access: only the person who requested an elevation activates it")
	ErrNothingToElevate = errors.New("access: you hold no privileged permission to elevate to")
)

// Elevations stores elevation requests and their decisions.
type Elevations struct {
	db  *store.DB
	now func() time.Time
}

// NewElevations returns the elevation store.
func NewElevations(db *store.DB, now func() time.Time) *Elevations {
	return &Elevations{db: db, now: now}
}

var elevationIDs = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewElevationID returns a fresh elevation id.
func NewElevationID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return "elv_" + elevationIDs.EncodeToString(b)
}

// PlanElevation checks a request against what the requester is eligible
// for and fills in its defaults: every privileged permission the requester
// is eligible for when none is named, one hour when no duration is given,
// and two approvers when ownership is among them.
func PlanElevation(el *Elevation, eligible []Permission) error {
	el.Reason = strings.TrimSpace(el.Reason)
	switch {
	case el.Reason == "":
		return fmt.Errorf("reason: required: say why you need the access")
	case len(el.Reason) > 500 || UnsafeText(el.Reason):
		return fmt.Errorf("reason: must be at most 500 bytes of text")
	case el.Duration < 0 || el.Duration > MaxElevation:
		return fmt.Errorf("minutes: must be between 1 and %d", int(MaxElevation/time.Minute))
	}
	if el.Duration == 0 {
		el.Duration = DefaultElevation
	}
	if len(el.Permissions) == 0 {
		for _, p := range eligible {
			if p.Privileged() {
				el.Permissions = append(el.Permissions, p)
			}
		}
		if len(el.Permissions) == 0 {
			return ErrNothingToElevate
		}
	}
	for _, p := range el.Permissions {
		if !slices.Contains(AllPermissions, p) {
			return fmt.Errorf("permissions: %q is not a permission of attest", p)
		}
		if !p.Privileged() {
			return fmt.Errorf("permissions: %s is not privileged: you hold it already or never will", p)
		}
		if !slices.Contains(eligible, p) {
			return fmt.Errorf("permissions: no role of yours carries %s", p)
		}
	}
	el.ApprovalsNeeded = 1
	if slices.Contains(el.Permissions, PermOwnership) {
		el.ApprovalsNeeded = 2
	}
	return nil
}

// Request stores a planned elevation in tx, pending approval.
func (es *Elevations) Request(ctx context.Context, tx *sql.Tx, el *Elevation) error {
	el.Status = ElevationPending
	el.RequestedAt = es.now().UTC().Truncate(time.Microsecond)
	_, err := tx.ExecContext(ctx, es.db.Rebind(`INSERT INTO elevations (id, tenant_id, user_id, permissions, reason,
		duration_seconds, approvals_needed, status, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		el.ID, el.TenantID, el.UserID, JoinPermissions(el.Permissions), el.Reason, int64(el.Duration/time.Second),
		el.ApprovalsNeeded, el.Status, el.RequestedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("access: store elevation: %w", err)
	}
	return nil
}

const elevationColumns = `id, tenant_id, user_id, permissions, reason, duration_seconds, approvals_needed, status,
	requested_at, decided_at, activated_at, expires_at, session_id`

func (es *Elevations) scan(sc interface{ Scan(...any) error }) (*Elevation, error) {
	el := &Elevation{}
	var perms string
	var dur, requested int64
	var decided, activated, expires sql.NullInt64
	var session sql.NullString
	if err := sc.Scan(&el.ID, &el.TenantID, &el.UserID, &perms, &el.Reason, &dur, &el.ApprovalsNeeded, &el.Status,
		&requested, &decided, &activated, &expires, &session); err != nil {
		return nil, err
	}
	el.Permissions, el.Duration = ParsePermissions(perms), time.Duration(dur)*time.Second
	el.RequestedAt = time.UnixMicro(requested).UTC()
	for _, p := range []struct {
		v   sql.NullInt64
		dst *time.Time
	}{{decided, &el.DecidedAt}, {activated, &el.ActivatedAt}, {expires, &el.ExpiresAt}} {
		if p.v.Valid {
			*p.dst = time.UnixMicro(p.v.Int64).UTC()
		}
	}
	el.SessionID = session.String
	now := es.now()
	switch {
	case el.Status == ElevationActive && !now.Before(el.ExpiresAt),
		el.Status == ElevationApproved && !now.Before(el.DecidedAt.Add(ActivateWithin)),
		el.Status == ElevationPending && !now.Before(el.RequestedAt.Add(ActivateWithin)):
		el.Status = ElevationExpired
	}
	return el, nil
}

// Get returns an elevation of a tenant with its approvers.
func (es *Elevations) Get(ctx context.Context, q store.Querier, tenantID int64, id string) (*Elevation, error) {
	if !store.StorableText(id) {
		return nil, ErrNoElevation
	}
	el, err := es.scan(q.QueryRowContext(ctx, es.db.Rebind(`SELECT `+elevationColumns+` FROM elevations
		WHERE id = ? AND tenant_id = ?`), id, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoElevation
	}
	if err != nil {
		return nil, fmt.Errorf("access: read elevation: %w", err)
	}
	rows, err := q.QueryContext(ctx, es.db.Rebind(`SELECT approver_id FROM elevation_decisions
		WHERE elevation_id = ? AND decision = 'approve' ORDER BY decided_at`), id)
	if err != nil {
		return nil, fmt.Errorf("access: read approvals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		el.Approvers = append(el.Approvers, a)
	}
	return el, rows.Err()
}

// List returns a tenant's elevations, newest first, at most 200, each
// with its approvers.
func (es *Elevations) List(ctx context.Context, q store.Querier, tenantID int64) ([]*Elevation, error) {
	rows, err := q.QueryContext(ctx, es.db.Rebind(`SELECT `+elevationColumns+` FROM elevations WHERE tenant_id = ?
		ORDER BY requested_at DESC, id LIMIT 200`), tenantID)
	if err != nil {
		return nil, fmt.Errorf("access: list elevations: %w", err)
	}
	defer rows.Close()
	var out []*Elevation
	byID := map[string]*Elevation{}
	for rows.Next() {
		el, err := es.scan(rows)
		if err != nil {
			return nil, fmt.Errorf("access: read elevation: %w", err)
		}
		out = append(out, el)
		byID[el.ID] = el
	}
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	rows.Close()
	ids := make([]any, len(out))
	for i, el := range out {
		ids[i] = el.ID
	}
	arows, err := q.QueryContext(ctx, es.db.Rebind(`SELECT elevation_id, approver_id FROM elevation_decisions
		WHERE decision = 'approve' AND elevation_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)
		ORDER BY decided_at`), ids...)
	if err != nil {
		return nil, fmt.Errorf("access: read approvals: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var id, approver string
		if err := arows.Scan(&id, &approver); err != nil {
			return nil, err
		}
		if el := byID[id]; el != nil {
			el.Approvers = append(el.Approvers, approver)
		}
	}
	return out, arows.Err()
}

// Decide records an approver's decision in tx. The requester never
// decides; each approver decides once; a denial ends the request, and the
// last approval needed approves it. The caller checks that the approver
// holds PermElevationApprove and is eligible for every permission asked.
func (es *Elevations) Decide(ctx context.Context, tx *sql.Tx, tenantID int64, id, approverID string, approve bool, reason string) (*Elevation, error) {
	el, err := es.Get(ctx, tx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if el.UserID == approverID {
		return nil, ErrSelfApproval
	}
	if el.Status != ElevationPending {
		return nil, ErrElevationState
	}
	decision := "deny"
	if approve {
		decision = "approve"
	}
	now := es.now().UTC().Truncate(time.Microsecond)
	_, err = tx.ExecContext(ctx, es.db.Rebind(`INSERT INTO elevation_decisions (elevation_id, approver_id, decision, reason,
		decided_at) VALUES (?, ?, ?, ?, ?)`), id, approverID, decision, reason, now.UnixMicro())
	if store.IsUniqueViolation(err) {
		return nil, ErrAlreadyDecided
	}
	if err != nil {
		return nil, fmt.Errorf("access: store decision: %w", err)
	}
	status := ElevationPending
	if !approve {
		status = ElevationDenied
	} else {
		el.Approvers = append(el.Approvers, approverID)
		if len(el.Approvers) >= el.ApprovalsNeeded {
			status = ElevationApproved
		}
	}
	if status != ElevationPending {
		if _, err := tx.ExecContext(ctx, es.db.Rebind(`UPDATE elevations SET status = ?, decided_at = ? WHERE id = ?`),
			status, now.UnixMicro(), id); err != nil {
			return nil, fmt.Errorf("access: store decision: %w", err)
		}
		el.DecidedAt = now
	}
	el.Status = status
	return el, nil
}

// Activate starts an approved elevation in the requester's session, in tx:
// it runs for its duration from now and then ends by itself. The caller
// has verified a fresh second factor and rotates the session's token.
func (es *Elevations) Activate(ctx context.Context, tx *sql.Tx, tenantID int64, id, userID, sessionID string) (*Elevation, error) {
	el, err := es.Get(ctx, tx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if el.UserID != userID {
		return nil, ErrNotYourRequest
	}
	if el.Status != ElevationApproved {
		return nil, ErrElevationState
	}
	now := es.now().UTC().Truncate(time.Microsecond)
	el.Status, el.ActivatedAt, el.ExpiresAt, el.SessionID = ElevationActive, now, now.Add(el.Duration), sessionID
	if _, err := tx.ExecContext(ctx, es.db.Rebind(`UPDATE elevations SET status = ?, activated_at = ?, expires_at = ?,
		session_id = ? WHERE id = ?`), el.Status, now.UnixMicro(), el.ExpiresAt.UnixMicro(), sessionID, id); err != nil {
		return nil, fmt.Errorf("access: activate elevation: %w", err)
	}
	if _, err := tx.ExecContext(ctx, es.db.Rebind(`UPDATE sessions SET elevation_id = ?, mfa_at = ? WHERE id = ?`),
		id, now.UnixMicro(), sessionID); err != nil {
		return nil, fmt.Errorf("access: activate elevation: %w", err)
	}
	return el, nil
}
