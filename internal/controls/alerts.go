package controls

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

// Alert says that a control of a tenant started failing: the result that
// showed it, the status before, and what became of its webhook delivery.
type Alert struct {
	ID       string    `json:"id"`
	Control  string    `json:"control"`
	Name     string    `json:"name"`
	Previous Status    `json:"previous"`
	Status   Status    `json:"status"`
	Result   string    `json:"result"`
	RaisedAt time.Time `json:"raised_at"`
	// AcknowledgedBy and AcknowledgedAt are set once someone took it on.
	AcknowledgedBy string     `json:"acknowledged_by,omitempty"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	Webhook        Delivery   `json:"webhook"`
}

// Delivery is the state of an alert's webhook: "" until tried, then
// delivered, retry or failed.
type Delivery struct {
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	Error       string     `json:"error,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// ErrAcknowledged refuses to acknowledge an alert a second time.
var ErrAcknowledged = errors.New("controls: alert already acknowledged")

// AlertFilter selects alerts: Open (not acknowledged) or acknowledged
// ones when Acknowledged is set, at most Limit, older than the cursor.
type AlertFilter struct {
	Open, Acknowledged bool
	Limit              int
	// Before, when set, is the position of the last alert of the page
	// before: raised at BeforeAt, with id BeforeID.
	BeforeAt time.Time
	BeforeID string
}

const alertColumns = `id, control_id, result_id, previous, status, raised_at, acknowledged_by, acknowledged_at,
	webhook_state, webhook_attempts, webhook_error, delivered_at`

// Alerts lists tenant t's alerts, newest first.
func Alerts(ctx context.Context, in *instance.Instance, t *tenant.Tenant, f AlertFilter) ([]*Alert, error) {
	q := `SELECT ` + alertColumns + ` FROM control_alerts WHERE tenant_id = ?`
	args := []any{t.ID}
	switch {
	case f.Open:
		q += ` AND acknowledged_at IS NULL`
	case f.Acknowledged:
		q += ` AND acknowledged_at IS NOT NULL`
	}
	if f.BeforeID != "" {
		at := f.BeforeAt.UnixMicro()
		q += ` AND (raised_at < ? OR (raised_at = ? AND id < ?))`
		args = append(args, at, at, f.BeforeID)
	}
	q += ` ORDER BY raised_at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("controls: read alerts: %w", err)
	}
	defer rows.Close()
	out := []*Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AlertByID returns one alert of tenant t; another tenant's is
// store.ErrNotFound.
func AlertByID(ctx context.Context, in *instance.Instance, q store.Querier, t *tenant.Tenant, id string) (*Alert, error) {
	row := q.QueryRowContext(ctx, in.DB.Rebind(`SELECT `+alertColumns+` FROM control_alerts WHERE tenant_id = ? AND id = ?`),
		t.ID, id)
	a, err := scanAlert(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return a, err
}

func scanAlert(row interface{ Scan(...any) error }) (*Alert, error) {
	a := &Alert{}
	var prev, st string
	var raised int64
	var by sql.NullString
	var ackAt, delAt sql.NullInt64
	err := row.Scan(&a.ID, &a.Control, &a.Result, &prev, &st, &raised, &by, &ackAt, &a.Webhook.State, &a.Webhook.Attempts,
		&a.Webhook.Error, &delAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("controls: read alert: %w", err)
	}
	a.Previous, a.Status, a.RaisedAt, a.AcknowledgedBy = Status(prev), Status(st), micros(raised), by.String
	a.AcknowledgedAt, a.Webhook.DeliveredAt = optMicros(ackAt), optMicros(delAt)
	a.Name = a.Control
	if c, ok := ByID(a.Control); ok {
		a.Name = c.Name
	}
	return a, nil
}

// Acknowledge marks alert id of tenant t as taken on by actor, with a
// note, and records it in t's trail in the same transaction. An unknown
// alert is store.ErrNotFound; one acknowledged before, ErrAcknowledged.
func Acknowledge(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id, note string, actor event.Actor,
	decorate func(*event.Event)) (*Alert, error) {
	a, err := AlertByID(ctx, in, in.DB.Read, t, id)
	if err != nil {
		return nil, err
	}
	if a.AcknowledgedAt != nil {
		return nil, ErrAcknowledged
	}
	now := in.Now().UTC().Truncate(time.Microsecond)
	ev := in.ChangeEvent("control.alert.acknowledge", "security", actor, event.Target{Type: "control", ID: a.Control,
		Name: a.Name})
	ev.Details = canonical(map[string]any{"alert": a.ID, "note": note})
	if decorate != nil {
		decorate(ev)
	}
	ev.Clean()
	p, err := in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return nil, err
	}
	_, err = in.Log.Do(ctx, t, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, in.DB.Rebind(`UPDATE control_alerts SET acknowledged_by = ?, acknowledged_at = ?
			WHERE tenant_id = ? AND id = ? AND acknowledged_at IS NULL`), actor.ID, now.UnixMicro(), t.ID, a.ID)
		if err != nil {
			return fmt.Errorf("controls: acknowledge alert: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrAcknowledged
		}
		return nil
	}, p)
	if err != nil {
		return nil, err
	}
	a.AcknowledgedBy, a.AcknowledgedAt = actor.ID, &now
	return a, nil
}
