package controls

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// Evidence is a piece of manual evidence for a control: an uploaded file
// or a link. It counts from EffectiveAt, the time from which what it shows
// is true, until ExpiresAt, and only once approved by someone other than
// its submitter and while not revoked.
type Evidence struct {
	ID          string     `json:"id"`
	Control     string     `json:"control"`
	Kind        string     `json:"kind"` // "file" or "link"
	Title       string     `json:"title"`
	URL         string     `json:"url,omitempty"`
	FileName    string     `json:"file_name,omitempty"`
	MediaType   string     `json:"media_type,omitempty"`
	Size        int64      `json:"size"`
	SHA256      string     `json:"sha256"`
	EffectiveAt time.Time  `json:"effective_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	SubmittedBy string     `json:"submitted_by"`
	SubmittedAt time.Time  `json:"submitted_at"`
	ApprovedBy  string     `json:"approved_by,omitempty"`
	ApprovedAt  *time.Time `json:"approved_at,omitempty"`
	RevokedBy   string     `json:"revoked_by,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// CountsAt reports whether the evidence counts at time t.
func (e *Evidence) CountsAt(t time.Time) bool {
	return e.ApprovedAt != nil && !e.ApprovedAt.After(t) && e.RevokedAt == nil && !e.EffectiveAt.After(t) &&
		t.Before(e.ExpiresAt)
}

const evidenceColumns = `id, control_id, kind, title, url, file_name, media_type, size, sha256, effective_at, expires_at,
	submitted_by, submitted_at, approved_by, approved_at, revoked_by, revoked_at`

// EvidenceList returns tenant t's evidence, newest submission first; of
// one control when control is not empty. File contents are not read.
func EvidenceList(ctx context.Context, in *instance.Instance, t *tenant.Tenant, control string) ([]*Evidence, error) {
	q := `SELECT ` + evidenceColumns + ` FROM control_evidence WHERE tenant_id = ?`
	args := []any{t.ID}
	if control != "" {
		q += ` AND control_id = ?`
		args = append(args, control)
	}
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(q+` ORDER BY submitted_at DESC, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("controls: read evidence: %w", err)
	}
	return scanEvidence(rows)
}

// scanEvidence reads rows of evidenceColumns and closes them.
func scanEvidence(rows *sql.Rows) ([]*Evidence, error) {
	defer rows.Close()
	out := []*Evidence{}
	for rows.Next() {
		e := &Evidence{}
		var sum []byte
		var eff, exp, sub int64
		var appBy, revBy sql.NullString
		var appAt, revAt sql.NullInt64
		if err := rows.Scan(&e.ID, &e.Control, &e.Kind, &e.Title, &e.URL, &e.FileName, &e.MediaType, &e.Size, &sum,
			&eff, &exp, &e.SubmittedBy, &sub, &appBy, &appAt, &revBy, &revAt); err != nil {
			return nil, fmt.Errorf("controls: read evidence: %w", err)
		}
		e.SHA256 = hex.EncodeToString(sum)
		e.EffectiveAt, e.ExpiresAt, e.SubmittedAt = micros(eff), micros(exp), micros(sub)
		e.ApprovedBy, e.ApprovedAt = appBy.String, optMicros(appAt)
		e.RevokedBy, e.RevokedAt = revBy.String, optMicros(revAt)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read evidence: %w", err)
	}
	return out, nil
}

// Exception is an accepted risk: a failing control whose failure
// management accepted, for a reason and a bounded time. It counts from
// StartsAt until ExpiresAt, once approved by someone other than its
// requester and while not revoked. Reports show an excepted failure as
// such; it is never shown as a pass.
type Exception struct {
	ID           string     `json:"id"`
	Control      string     `json:"control"`
	Reason       string     `json:"reason"`
	Compensating string     `json:"compensating,omitempty"`
	RequestedBy  string     `json:"requested_by"`
	RequestedAt  time.Time  `json:"requested_at"`
	StartsAt     time.Time  `json:"starts_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	ApprovedBy   string     `json:"approved_by,omitempty"`
	ApprovedAt   *time.Time `json:"approved_at,omitempty"`
	RevokedBy    string     `json:"revoked_by,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

// ActiveAt reports whether the exception holds at time t.
func (e *Exception) ActiveAt(t time.Time) bool {
	return e.ApprovedAt != nil && !e.ApprovedAt.After(t) && (e.RevokedAt == nil || e.RevokedAt.After(t)) &&
		!e.StartsAt.After(t) && t.Before(e.ExpiresAt)
}

const exceptionColumns = `id, control_id, reason, compensating, requested_by, requested_at, starts_at, expires_at,
	approved_by, approved_at, revoked_by, revoked_at`

// Exceptions returns tenant t's exceptions, newest request first.
func Exceptions(ctx context.Context, in *instance.Instance, t *tenant.Tenant) ([]*Exception, error) {
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(`SELECT `+exceptionColumns+` FROM control_exceptions
		WHERE tenant_id = ? ORDER BY requested_at DESC, id`), t.ID)
	if err != nil {
		return nil, fmt.Errorf("controls: read exceptions: %w", err)
	}
	return scanExceptions(rows)
}

// scanExceptions reads rows of exceptionColumns and closes them.
func scanExceptions(rows *sql.Rows) ([]*Exception, error) {
	defer rows.Close()
	out := []*Exception{}
	for rows.Next() {
		e := &Exception{}
		var req, st, exp int64
		var appBy, revBy sql.NullString
		var appAt, revAt sql.NullInt64
		if err := rows.Scan(&e.ID, &e.Control, &e.Reason, &e.Compensating, &e.RequestedBy, &req, &st, &exp, &appBy, &appAt,
			&revBy, &revAt); err != nil {
			return nil, fmt.Errorf("controls: read exception: %w", err)
		}
		e.RequestedAt, e.StartsAt, e.ExpiresAt = micros(req), micros(st), micros(exp)
		e.ApprovedBy, e.ApprovedAt = appBy.String, optMicros(appAt)
		e.RevokedBy, e.RevokedAt = revBy.String, optMicros(revAt)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read exceptions: %w", err)
	}
	return out, nil
}

func micros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func optMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := micros(v.Int64)
	return &t
}
