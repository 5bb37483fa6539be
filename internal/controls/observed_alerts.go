package controls

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// alertWindow is how far back MON-01 counts the alerts it examined.
const alertWindow = 30 * day

// alertsAcknowledged finds the alerts that waited over 24 hours without
// acknowledgement, their control failing all that while. With no alert raised in 30 days there is nothing to
// acknowledge, which shows the process works only if the controls that
// raise alerts ran: then the control passes on the results of the last 24
// hours as its evidence, and otherwise there is no evidence.
func alertsAcknowledged(ctx context.Context, sc Scope) (*Result, error) {
	r := result("MON-01", sc.Now)
	due := sc.Now.Add(-day).UTC().UnixMicro()
	// An alert whose control passed again within 24 hours was dealt
	// with, acknowledged or not.
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT a.id, a.control_id, a.raised_at FROM control_alerts a
		WHERE a.tenant_id = ? AND a.acknowledged_at IS NULL AND a.raised_at < ? AND NOT EXISTS (SELECT 1
		FROM control_results r WHERE r.tenant_id = a.tenant_id AND r.control_id = a.control_id AND r.status = 'pass'
		AND r.checked_at > a.raised_at AND r.checked_at <= a.raised_at + ?) ORDER BY a.raised_at, a.id`), sc.Tenant.ID, due,
		int64(day/time.Microsecond))
	if err != nil {
		return nil, fmt.Errorf("controls: read alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, control string
		var raised int64
		if err := rows.Scan(&id, &control, &raised); err != nil {
			return nil, fmt.Errorf("controls: read alerts: %w", err)
		}
		r.Findings = append(r.Findings, Finding{"alert:" + id, fmt.Sprintf("about %s, raised %s and not acknowledged "+
			"within 24 hours", control, micros(raised).Format(time.RFC3339))})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read alerts: %w", err)
	}
	since := sc.Now.Add(-alertWindow).UTC().UnixMicro()
	recent, err := count(ctx, sc, `SELECT COUNT(*) FROM control_alerts WHERE tenant_id = ? AND raised_at >= ?`,
		sc.Tenant.ID, since)
	if err != nil {
		return nil, err
	}
	late, err := count(ctx, sc, `SELECT COUNT(*) FROM control_alerts WHERE tenant_id = ? AND raised_at >= ?
		AND acknowledged_at IS NOT NULL AND acknowledged_at - raised_at > ?`, sc.Tenant.ID, since, int64(day/time.Microsecond))
	if err != nil {
		return nil, err
	}
	r.Evidence["alerts_30d"] = recent
	r.Evidence["acknowledged_late_30d"] = late
	examined := recent + len(r.Findings)
	if examined == 0 {
		runs, err := count(ctx, sc, `SELECT COUNT(*) FROM control_results WHERE tenant_id = ? AND checked_at >= ?`,
			sc.Tenant.ID, due)
		if err != nil {
			return nil, err
		}
		r.Evidence["control_runs_24h"] = runs
		return r.judge(runs, "no control ran in the last 24 hours, so no alert could have been raised: check that "+
			"serve runs, or run the controls (POST /api/v1/compliance/controls/validate)"), nil
	}
	return r.judge(examined, "acknowledge the listed alerts once someone owns the failure, and make sure alerts reach "+
		"a person on call (control MON-02)"), nil
}

// The webhook states of an alert whose delivery gave up, and of one whose
// last attempt failed and which is to be tried again.
const (
	webhookFailed = "failed"
	webhookRetry  = "retry"
)

// alertsDelivered checks that alerts have somewhere to go and that the
// newest delivery attempted did not fail.
func alertsDelivered(ctx context.Context, sc Scope) (*Result, error) {
	r := result("MON-02", sc.Now)
	st, err := LoadSettings(ctx, sc.In.DB, sc.In.DB.Read, sc.Tenant.ID)
	if err != nil {
		return nil, err
	}
	r.Evidence["webhook_configured"] = st.WebhookURL != ""
	if st.WebhookURL == "" {
		r.Findings = append(r.Findings, Finding{"settings:webhook_url", "no webhook receives alerts"})
	}
	var id, state, lastErr string
	var attempts int64
	err = sc.In.DB.Read.QueryRowContext(ctx, sc.In.DB.Rebind(`SELECT id, webhook_state, webhook_attempts, webhook_error
		FROM control_alerts WHERE tenant_id = ? AND webhook_state <> '' ORDER BY raised_at DESC, id DESC LIMIT 1`),
		sc.Tenant.ID).Scan(&id, &state, &attempts, &lastErr)
	examined := 1
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// A webhook nothing has reached is not yet shown to work.
		r.Evidence["newest_delivery"] = "none attempted yet"
		if st.WebhookURL != "" {
			examined = 0
		}
	case err != nil:
		return nil, fmt.Errorf("controls: read alert deliveries: %w", err)
	default:
		r.Evidence["newest_delivery"] = map[string]any{"alert": id, "state": state, "attempts": attempts}
		switch state {
		case webhookFailed:
			r.Findings = append(r.Findings, Finding{"alert:" + id, fmt.Sprintf("its webhook delivery failed after %d "+
				"attempts: %s", attempts, lastErr)})
		case webhookRetry:
			r.Findings = append(r.Findings, Finding{"alert:" + id, fmt.Sprintf("its webhook delivery has failed %d "+
				"times so far: %s", attempts, lastErr)})
		}
	}
	return r.judge(examined, "set a webhook that a person on call watches in the compliance settings, and check that it "+
		"answers 2xx to a signed POST; a failed delivery's error says why"), nil
}
