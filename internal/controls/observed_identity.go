package controls

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/store"
)

const year = 365 * day

func sessionsHaveSecondFactor(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-06", sc.Now)
	now := sc.Now.UTC().UnixMicro()
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(identity.SecondFactors)), ", ")
	args := []any{sc.Tenant.ID, now}
	for _, f := range identity.SecondFactors {
		args = append(args, f)
	}
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT id, user_id, factor FROM sessions
		WHERE tenant_id = ? AND revoked_at IS NULL AND expires_at > ? AND factor NOT IN (`+marks+`) ORDER BY id`), args...)
	if err != nil {
		return nil, fmt.Errorf("controls: read sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, user, factor string
		if err := rows.Scan(&id, &user, &factor); err != nil {
			return nil, fmt.Errorf("controls: read sessions: %w", err)
		}
		r.Findings = append(r.Findings, Finding{"session:" + id, fmt.Sprintf("of user %s, live and opened with %q, "+
			"not a second factor", user, factor)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read sessions: %w", err)
	}
	n, err := count(ctx, sc, `SELECT COUNT(*) FROM sessions WHERE tenant_id = ? AND revoked_at IS NULL AND expires_at > ?`,
		sc.Tenant.ID, now)
	if err != nil {
		return nil, err
	}
	r.Evidence["live_sessions"] = n
	return r.judge(n, "end the listed sessions (DELETE /api/v1/users/{id}/sessions/{sid}) and find how they began "+
		"without a second factor: every session must pass identity's gate"), nil
}

func elevationsApprovedAndBounded(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-07", sc.Now)
	since := sc.Now.Add(-90 * day).UTC().UnixMicro()
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT e.id, e.duration_seconds, e.approvals_needed,
		e.activated_at, e.expires_at,
		COALESCE(SUM(CASE WHEN d.decision = 'approve' AND d.approver_id <> e.user_id THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN d.approver_id = e.user_id THEN 1 ELSE 0 END), 0)
		FROM elevations e LEFT JOIN elevation_decisions d ON d.elevation_id = e.id
		WHERE e.tenant_id = ? AND e.requested_at >= ?
		GROUP BY e.id, e.duration_seconds, e.approvals_needed, e.activated_at, e.expires_at ORDER BY e.id`),
		sc.Tenant.ID, since)
	if err != nil {
		return nil, fmt.Errorf("controls: read elevations: %w", err)
	}
	defer rows.Close()
	limit := int64(access.MaxElevation / time.Second)
	n := 0
	for rows.Next() {
		var id string
		var dur, needed, others, self int64
		var activated, expires sql.NullInt64
		if err := rows.Scan(&id, &dur, &needed, &activated, &expires, &others, &self); err != nil {
			return nil, fmt.Errorf("controls: read elevations: %w", err)
		}
		n++
		res := "elevation:" + id
		if dur > limit {
			r.Findings = append(r.Findings, Finding{res, fmt.Sprintf("asks for %d minutes, more than %d", dur/60, limit/60)})
		}
		if self > 0 {
			r.Findings = append(r.Findings, Finding{res, "decided by its own requester"})
		}
		if !activated.Valid {
			continue
		}
		if needed < 1 || others < needed {
			r.Findings = append(r.Findings, Finding{res, fmt.Sprintf("activated with %d of the %d approvals it needs "+
				"from people other than its requester", others, max(needed, 1))})
		}
		switch {
		case !expires.Valid:
			r.Findings = append(r.Findings, Finding{res, "active with no end"})
		case expires.Int64-activated.Int64 > limit*1e6:
			r.Findings = append(r.Findings, Finding{res, fmt.Sprintf("runs %s, longer than %s",
				time.Duration(expires.Int64-activated.Int64)*time.Microsecond, access.MaxElevation)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read elevations: %w", err)
	}
	r.Evidence["elevations_90d"] = n
	return r.judge(n, "end the listed elevations' sessions (DELETE /api/v1/users/{id}/sessions/{sid}) and review "+
		"what they did in the trail; elevations go through POST /api/v1/elevations and another person's approval"), nil
}

func passwordHashesCurrent(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-08", sc.Now)
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT id, password_hash FROM users
		WHERE tenant_id = ? AND status = 'active' AND password_hash IS NOT NULL ORDER BY id`), sc.Tenant.ID)
	if err != nil {
		return nil, fmt.Errorf("controls: read password hashes: %w", err)
	}
	defer rows.Close()
	h := sc.In.Identity.Hasher
	n := 0
	for rows.Next() {
		var id, stored string
		if err := rows.Scan(&id, &stored); err != nil {
			return nil, fmt.Errorf("controls: read password hashes: %w", err)
		}
		n++
		ok, err := h.Current(stored)
		switch {
		case err != nil:
			r.Findings = append(r.Findings, Finding{"user:" + id, "its stored password hash does not parse as Argon2id"})
		case !ok:
			r.Findings = append(r.Findings, Finding{"user:" + id, "its password is hashed under older parameters"})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read password hashes: %w", err)
	}
	p := h.Params
	r.Evidence["parameters"] = fmt.Sprintf("argon2id m=%d,t=%d,p=%d", p.MemoryKiB, p.Time, p.Threads)
	return r.judge(n, "a hash under older parameters is replaced at its person's next sign-in: ask the listed people "+
		"to sign in or change their password (POST /api/v1/me/password); an account whose hash does not parse needs "+
		"a new enrolment link (POST /api/v1/users/{id}/enrolment)"), nil
}

// breakGlassOwner is the owner instance records on the keys a break-glass
// use mints.
const breakGlassOwner = "breakglass:"

func breakGlassSealed(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-09", sc.Now)
	rows, err := sc.In.DB.Read.QueryContext(ctx, `SELECT name, rotation_required, last_used_at FROM break_glass ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("controls: read break-glass account: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		var rotate bool
		var used sql.NullInt64
		if err := rows.Scan(&name, &rotate, &used); err != nil {
			return nil, fmt.Errorf("controls: read break-glass account: %w", err)
		}
		n++
		if rotate {
			at := "at an unknown time"
			if used.Valid {
				at = micros(used.Int64).Format(time.RFC3339)
			}
			r.Findings = append(r.Findings, Finding{"break_glass:" + name, "used " + at + " and not rotated since"})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read break-glass account: %w", err)
	}
	now := sc.Now.UTC().UnixMicro()
	krows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT id FROM api_keys WHERE user_id LIKE ?
		AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY id`), breakGlassOwner+"%", now)
	if err != nil {
		return nil, fmt.Errorf("controls: read break-glass keys: %w", err)
	}
	ids, err := store.Strings(krows)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		r.Findings = append(r.Findings, Finding{"apikey:" + id, "minted by a break-glass use and still works"})
	}
	return r.judge(n, "on attest's host, run attest breakglass rotate: it sets a new passphrase and revokes the keys "+
		"the use minted; keep the new passphrase sealed offline (attest breakglass init creates the account)"), nil
}

func apiKeysRotated(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-10", sc.Now)
	now := sc.Now.UTC()
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT id, created_at FROM api_keys WHERE tenant_id = ?
		AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at, id`),
		sc.Tenant.ID, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("controls: read API keys: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id string
		var created int64
		if err := rows.Scan(&id, &created); err != nil {
			return nil, fmt.Errorf("controls: read API keys: %w", err)
		}
		n++
		if age := now.Sub(micros(created)); age > year {
			r.Findings = append(r.Findings, Finding{"apikey:" + id, fmt.Sprintf("created %d days ago and still works",
				int(age/day))})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read API keys: %w", err)
	}
	r.Evidence["working_keys"] = n
	return r.judge(n, "create a replacement for each listed key (POST /api/v1/apikeys, or attest apikey create, with an "+
		"expiry within a year), move its users over, then revoke the old key (DELETE /api/v1/apikeys/{id})"), nil
}

// roleWindow is how far back IAM-11 reads the trail: a quarter, so that
// every change lands in at least one quarterly review's window.
const roleWindow = quarter

func noSelfAccessChange(ctx context.Context, sc Scope) (*Result, error) {
	r := result("IAM-11", sc.Now)
	owners := map[string]string{}
	n := 0
	for _, action := range []string{"role.grant", "role.revoke"} {
		f := auditlog.Filter{Action: action, Outcome: "success", ReceivedFrom: sc.Now.Add(-roleWindow), Limit: 1000}
		for {
			page, err := sc.In.Log.Query(ctx, sc.Tenant, f)
			if err != nil {
				return nil, fmt.Errorf("controls: read the trail: %w", err)
			}
			for _, rec := range page.Items {
				n++
				ev := rec.Event
				actor, err := actorPerson(ctx, sc, owners, ev.Actor.ID)
				if err != nil {
					return nil, err
				}
				if ev.Target.Type != "user" || actor == "" || actor != ev.Target.ID {
					continue
				}
				var d struct {
					Role string `json:"role"`
				}
				json.Unmarshal(ev.Details, &d)
				verb := map[string]string{"role.grant": "granted themselves", "role.revoke": "revoked their own"}[action]
				r.Findings = append(r.Findings, Finding{fmt.Sprintf("event:%d", rec.Sequence),
					fmt.Sprintf("user %s %s role %q", actor, verb, d.Role)})
			}
			if page.Next == "" {
				break
			}
			f.Cursor = page.Next
		}
	}
	r.Evidence["role_changes_92d"] = n
	return r.judge(n, "have another administrator review each listed change and undo it where it was not warranted "+
		"(PUT or DELETE /api/v1/users/{id}/roles/{role}); attest refuses self-grants, so find the path that allowed it"), nil
}

// actorPerson returns the person an event's actor id stands for: the
// user itself, or the owner of the API key it names; empty for neither.
func actorPerson(ctx context.Context, sc Scope, owners map[string]string, actorID string) (string, error) {
	keyID, ok := strings.CutPrefix(actorID, "apikey:")
	if !ok {
		return actorID, nil
	}
	if o, seen := owners[keyID]; seen {
		return o, nil
	}
	var owner sql.NullString
	err := sc.In.DB.Read.QueryRowContext(ctx, sc.In.DB.Rebind(`SELECT user_id FROM api_keys WHERE id = ?`), keyID).Scan(&owner)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("controls: read API key owner: %w", err)
	}
	owners[keyID] = owner.String
	return owner.String, nil
}
