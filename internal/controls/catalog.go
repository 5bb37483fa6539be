package controls

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/store"
)

const (
	day     = 24 * time.Hour
	hourly  = time.Hour
	daily   = day
	quarter = 92 * day
)

// Catalog lists every control, in order: those whose state attest reads
// itself, then those proved by manual evidence.
var Catalog = slices.Concat(identityControls, observedControls, manualControls)

// identityControls watch accounts, sessions, reviews and the trail.
var identityControls = []*Control{
	{ID: "IAM-01", Name: "Every active account has a second factor",
		Description: "Each active person's account has a confirmed TOTP factor or a passkey, so no one signs in with a password alone.",
		Owner:       "security", Frequency: hourly, Criteria: []string{"CC6.1", "CC6.2"}, Test: everyoneHasMFA,
		Watches: accountChanges("user.enrol.finish", "user.webauthn.register", "user.webauthn.remove",
			"security.webauthn.counter_regression")},
	{ID: "IAM-02", Name: "Session policy within limits",
		Description: "Sessions end after at most 15 idle minutes and 12 hours, with at most 3 live sessions a person.",
		Owner:       "security", Frequency: daily, Criteria: []string{"CC6.1"}, Test: sessionPolicy,
		Watches: []string{"settings.sessions.update"}},
	{ID: "IAM-03", Name: "Unused accounts are disabled",
		Description: "No active account, owners apart, has gone unused for longer than the tenant's inactivity limit.",
		Owner:       "security", Frequency: daily, Criteria: []string{"CC6.2", "CC6.3"}, Test: unusedDisabled,
		Watches: accountChanges("settings.sessions.update")},
	{ID: "IAM-04", Name: "Deprovisioned people hold nothing live",
		Description: "A disabled or deleted account has no live session and no working API key.",
		Owner:       "security", Frequency: hourly, Criteria: []string{"CC6.2", "CC6.3"}, Test: deprovisionedHoldNothing,
		Watches: accountChanges("session.revoke", "session.revoke_own", "apikey.create", "apikey.revoke", "user.logout",
			"user.password.change")},
	{ID: "IAM-05", Name: "Access is reviewed every quarter",
		Description: "An access review campaign completed within the last 92 days, with every item decided by a reviewer.",
		Owner:       "compliance", Frequency: daily, Criteria: []string{"CC6.2", "CC6.3", "CC4.1"}, Test: quarterlyReview,
		Watches: []string{"review.campaign.create", "review.item.decide", "review.item.deadline", "review.campaign.escalate"}},
	{ID: "LOG-01", InstanceWide: true, Name: "The audit trail is checkpointed on time",
		Description: "Every log with entries has a signed checkpoint covering its newest entry, signed within the last minute of it.",
		Owner:       "security", Frequency: hourly, Criteria: []string{"CC4.1", "CC7.2"}, Test: checkpointsCurrent},
	{ID: "RET-01", InstanceWide: true, Name: "Audit records are kept seven years",
		Description: "Every tenant keeps its audit trail at least 2557 days (seven years) before expiry.",
		Owner:       "compliance", Frequency: daily, Criteria: []string{"CC7.2", "C1.2"}, Test: retentionSevenYears,
		Watches: []string{"audit.retention.update", "tenant.create"}},
}

// accountChanges are the actions that create, enable, disable or remove
// an account, whichever way they come (the API, SCIM, serve's identity
// job), with more.
func accountChanges(more ...string) []string {
	return append([]string{"user.create", "scim.user.create", "user.enable", "user.disable", "user.delete",
		"user.deprovision"}, more...)
}

func everyoneHasMFA(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-01", sc.Now)
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT u.id FROM users u WHERE u.tenant_id = ?
		AND u.status = 'active' AND NOT EXISTS (SELECT 1 FROM totp_factors f WHERE f.user_id = u.id)
		AND NOT EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.user_id = u.id AND w.clone_warning = ?)
		ORDER BY u.id`), sc.Tenant.ID, false)
	if err != nil {
		return nil, fmt.Errorf("controls: read accounts: %w", err)
	}
	ids, err := store.Strings(rows)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		r.Findings = append(r.Findings, Finding{Resource: "user:" + id, Problem: "active without a second factor"})
	}
	n, err := count(ctx, sc, `SELECT COUNT(*) FROM users WHERE tenant_id = ? AND status = 'active'`, sc.Tenant.ID)
	if err != nil {
		return nil, err
	}
	r.Evidence["active_accounts"] = n
	return r.judge(n, "issue each listed account an enrolment link (POST /api/v1/users/{id}/enrolment), or disable it"), nil
}

func sessionPolicy(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-02", sc.Now)
	p, err := sc.In.Identity.Sessions.Policy(ctx, sc.In.DB.Read, sc.Tenant.ID)
	if err != nil {
		return nil, err
	}
	r.Evidence["idle_minutes"] = int(p.Idle / time.Minute)
	r.Evidence["absolute_hours"] = int(p.Absolute / time.Hour)
	r.Evidence["max_sessions"] = p.MaxSessions
	lim := identity.DefaultPolicy
	if p.Idle > lim.Idle {
		r.Findings = append(r.Findings, Finding{"policy:idle_minutes", fmt.Sprintf("%d, more than %d", int(p.Idle/time.Minute),
			int(lim.Idle/time.Minute))})
	}
	if p.Absolute > lim.Absolute {
		r.Findings = append(r.Findings, Finding{"policy:absolute_hours", fmt.Sprintf("%d, more than %d",
			int(p.Absolute/time.Hour), int(lim.Absolute/time.Hour))})
	}
	if p.MaxSessions > lim.MaxSessions {
		r.Findings = append(r.Findings, Finding{"policy:max_sessions", fmt.Sprintf("%d, more than %d", p.MaxSessions,
			lim.MaxSessions)})
	}
	return r.judge(1, "set the session policy back within the limits: PUT /api/v1/settings/sessions"), nil
}

func unusedDisabled(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-03", sc.Now)
	p, err := sc.In.Identity.Sessions.Policy(ctx, sc.In.DB.Read, sc.Tenant.ID)
	if err != nil {
		return nil, err
	}
	us, err := sc.In.Identity.Users.Inactive(ctx, sc.In.DB.Read, sc.Tenant.ID, sc.Now.Add(-time.Duration(p.InactiveDays)*day))
	if err != nil {
		return nil, err
	}
	for _, u := range us {
		r.Findings = append(r.Findings, Finding{"user:" + u.ID, fmt.Sprintf("active but unused for more than %d days",
			p.InactiveDays)})
	}
	n, err := count(ctx, sc, `SELECT COUNT(*) FROM users WHERE tenant_id = ? AND status = 'active'`, sc.Tenant.ID)
	if err != nil {
		return nil, err
	}
	r.Evidence["inactive_days"] = p.InactiveDays
	return r.judge(n, "disable the listed accounts (attest user disable), or check that serve's identity job runs"), nil
}

func deprovisionedHoldNothing(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-04", sc.Now)
	now := sc.Now.UTC().UnixMicro()
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT u.id, 'a live session' FROM users u
		JOIN sessions s ON s.user_id = u.id WHERE u.tenant_id = ? AND u.status <> 'active' AND s.revoked_at IS NULL
		AND s.expires_at > ?
		UNION ALL SELECT u.id, 'a working API key' FROM users u JOIN api_keys k ON k.user_id = u.id
		WHERE u.tenant_id = ? AND u.status <> 'active' AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)`),
		sc.Tenant.ID, now, sc.Tenant.ID, now)
	if err != nil {
		return nil, fmt.Errorf("controls: read sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, what string
		if err := rows.Scan(&id, &what); err != nil {
			return nil, err
		}
		r.Findings = append(r.Findings, Finding{"user:" + id, "deprovisioned but holds " + what})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	n, err := count(ctx, sc, `SELECT COUNT(*) FROM users WHERE tenant_id = ? AND status <> 'active'`, sc.Tenant.ID)
	if err != nil {
		return nil, err
	}
	return r.judge(n, "end the listed sessions and revoke the keys, then find how they outlived the account"), nil
}

func quarterlyReview(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-05", sc.Now)
	cs, err := sc.In.Reviews().Campaigns(ctx, sc.In.DB.Read, sc.Tenant.ID)
	if err != nil {
		return nil, err
	}
	var latest time.Time
	var latestID string
	for _, c := range cs {
		if c.Status == "completed" && c.CompletedAt.After(latest) {
			latest, latestID = c.CompletedAt, c.ID
		}
	}
	if len(cs) == 0 {
		return r.judge(0, "start an access review: POST /api/v1/reviews"), nil
	}
	r.Evidence["campaigns"] = len(cs)
	if latestID == "" {
		r.Findings = append(r.Findings, Finding{"reviews", "no campaign has completed"})
	} else {
		r.Evidence["latest_completed"] = latestID
		r.Evidence["latest_completed_at"] = latest.Format(time.RFC3339)
		if sc.Now.Sub(latest) > quarter {
			r.Findings = append(r.Findings, Finding{"review:" + latestID, "completed more than 92 days ago"})
		}
	}
	return r.judge(len(cs), "run this quarter's access review to completion: POST /api/v1/reviews"), nil
}

func checkpointsCurrent(ctx context.Context, sc Scope) (*Result, error) {
	r := result("LOG-01", sc.Now)
	ts, err := sc.In.Tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	examined := 0
	for _, t := range ts {
		var size int64
		var last sql.NullInt64
		err := sc.In.DB.Read.QueryRowContext(ctx, sc.In.DB.Rebind(`SELECT size, last_received FROM log_state WHERE tenant_id = ?`),
			t.ID).Scan(&size, &last)
		if errors.Is(err, sql.ErrNoRows) || size == 0 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("controls: read log state: %w", err)
		}
		examined++
		cp, err := sc.In.Log.LatestCheckpoint(ctx, sc.In.DB.Read, t.ID)
		if errors.Is(err, auditlog.ErrNoCheckpoint) {
			r.Findings = append(r.Findings, Finding{"log:" + t.Name, "has entries but no signed checkpoint"})
			continue
		}
		if err != nil {
			return nil, err
		}
		if cp.Size < size && sc.Now.Sub(time.UnixMicro(last.Int64)) > time.Minute {
			r.Findings = append(r.Findings, Finding{"log:" + t.Name, fmt.Sprintf("checkpoint covers %d of %d entries, "+
				"and the newest arrived over a minute ago", cp.Size, size)})
		}
	}
	return r.judge(examined, "check that serve is running: it signs checkpoints every half second"), nil
}

func retentionSevenYears(ctx context.Context, sc Scope) (*Result, error) {
	r := result("RET-01", sc.Now)
	ts, err := sc.In.Tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		p, err := sc.In.Log.Policy(ctx, sc.In.DB.Read, t.ID)
		if err != nil {
			return nil, err
		}
		if p.RetentionDays < 2557 {
			r.Findings = append(r.Findings, Finding{"tenant:" + t.Name, fmt.Sprintf("keeps its trail %d days", p.RetentionDays)})
		}
	}
	r.Evidence["tenants"] = len(ts)
	return r.judge(len(ts), "set retention_days to at least 2557: PUT /api/v1/retention"), nil
}

func count(ctx context.Context, sc Scope, q string, args ...any) (int, error) {
	var n int
	if err := sc.In.DB.Read.QueryRowContext(ctx, sc.In.DB.Rebind(q), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("controls: count: %w", err)
	}
	return n, nil
}
