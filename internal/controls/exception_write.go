package controls

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

// MaxException bounds how long an exception may hold: a year.
const MaxException = 365 * day

// The audit actions of exceptions, which are also the names of the API
// routes that take them.
const (
	ActionExceptionRequest = "compliance.exception.request"
	ActionExceptionApprove = "compliance.exception.approve"
	ActionExceptionRevoke  = "compliance.exception.revoke"
)

// ErrNoException names an exception the tenant lacks.
var ErrNoException = errors.New("controls: no such exception")

// ExceptionRequest asks to accept the risk of a failing control.
type ExceptionRequest struct {
	Control      string
	Reason       string
	Compensating string
	// StartsAt is when the exception is to begin holding; zero means now.
	StartsAt  time.Time
	ExpiresAt time.Time
}

// RequestException records a request to accept the risk of a control's
// failure for tenant t, by actor, with its audit event in the same
// transaction. A fault in req is an *InputError.
func RequestException(ctx context.Context, in *instance.Instance, t *tenant.Tenant, req *ExceptionRequest,
	actor event.Actor, decorate func(*event.Event)) (*Exception, error) {
	now := in.Now().UTC().Truncate(time.Microsecond)
	e := &Exception{ID: newID("exc_"), Control: req.Control, Reason: strings.TrimSpace(req.Reason),
		Compensating: strings.TrimSpace(req.Compensating), RequestedBy: actor.ID, RequestedAt: now,
		StartsAt: req.StartsAt.UTC().Truncate(time.Microsecond), ExpiresAt: req.ExpiresAt.UTC().Truncate(time.Microsecond)}
	if e.StartsAt.IsZero() {
		e.StartsAt = now
	}
	if err := checkException(t, e, now); err != nil {
		return nil, err
	}
	ev, err := exceptionEvent(in, ActionExceptionRequest, e, actor, decorate, map[string]any{
		"starts_at": e.StartsAt.Format(time.RFC3339), "expires_at": e.ExpiresAt.Format(time.RFC3339)})
	if err != nil {
		return nil, err
	}
	err = commitEvent(ctx, in, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, in.DB.Rebind(`INSERT INTO control_exceptions (id, tenant_id, control_id, reason,
			compensating, requested_by, requested_at, starts_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			e.ID, t.ID, e.Control, e.Reason, e.Compensating, e.RequestedBy, e.RequestedAt.UnixMicro(),
			e.StartsAt.UnixMicro(), e.ExpiresAt.UnixMicro())
		if err != nil {
			return fmt.Errorf("controls: store exception: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func checkException(t *tenant.Tenant, e *Exception, now time.Time) error {
	if e.Control == "" {
		return inputErr("control", "required: the id of the control whose failure is accepted")
	}
	if _, ok := ForByID(t, e.Control); !ok {
		return inputErr("control", "no control %q in the catalog", e.Control)
	}
	if err := checkReason("reason", e.Reason, true); err != nil {
		return err
	}
	if err := checkReason("compensating", e.Compensating, false); err != nil {
		return err
	}
	switch {
	case e.ExpiresAt.IsZero():
		return inputErr("expires_at", "required: the RFC 3339 time at which the exception ends")
	case !e.ExpiresAt.After(e.StartsAt):
		return inputErr("expires_at", "must be after starts_at")
	case !e.ExpiresAt.After(now):
		return inputErr("expires_at", "is already past")
	case e.ExpiresAt.Sub(e.StartsAt) > MaxException:
		return inputErr("expires_at", "is more than 365 days after starts_at: an exception is accepted for a year at most")
	}
	return nil
}

// ExceptionByID returns one of tenant t's exceptions; another tenant's is
// ErrNoException.
func ExceptionByID(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id string) (*Exception, error) {
	if !store.StorableText(id) {
		return nil, ErrNoException
	}
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(`SELECT `+exceptionColumns+` FROM control_exceptions
		WHERE tenant_id = ? AND id = ?`), t.ID, id)
	if err != nil {
		return nil, fmt.Errorf("controls: read exception: %w", err)
	}
	es, err := scanExceptions(rows)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, ErrNoException
	}
	return es[0], nil
}

// ApproveException approves tenant t's exception id. The approver must be
// a person other than its requester, and the exception pending and not
// yet over.
func ApproveException(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id string, actor event.Actor,
	decorate func(*event.Event)) (*Exception, error) {
	e, err := ExceptionByID(ctx, in, t, id)
	if err != nil {
		return nil, err
	}
	if err := secondPerson(ctx, in, t, e.RequestedBy, actor); err != nil {
		return nil, err
	}
	now := in.Now().UTC().Truncate(time.Microsecond)
	switch {
	case e.RevokedAt != nil:
		return nil, fmt.Errorf("%w: the exception is revoked", ErrDecided)
	case e.ApprovedAt != nil:
		return nil, fmt.Errorf("%w: the exception is already approved", ErrDecided)
	case !now.Before(e.ExpiresAt):
		return nil, fmt.Errorf("%w: the exception expired before it was approved", ErrDecided)
	}
	ev, err := exceptionEvent(in, ActionExceptionApprove, e, actor, decorate, map[string]any{"requested_by": e.RequestedBy,
		"expires_at": e.ExpiresAt.Format(time.RFC3339)})
	if err != nil {
		return nil, err
	}
	err = commitEvent(ctx, in, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		return decide(ctx, in, tx, `UPDATE control_exceptions SET approved_by = ?, approved_at = ? WHERE tenant_id = ?
			AND id = ? AND approved_at IS NULL AND revoked_at IS NULL`, actor.ID, now.UnixMicro(), t.ID, id)
	})
	if err != nil {
		return nil, err
	}
	e.ApprovedBy, e.ApprovedAt = actor.ID, &now
	return e, nil
}

// RevokeException ends tenant t's exception id now, for a reason the
// audit event keeps.
func RevokeException(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id, reason string, actor event.Actor,
	decorate func(*event.Event)) (*Exception, error) {
	reason = strings.TrimSpace(reason)
	if err := checkReason("reason", reason, true); err != nil {
		return nil, err
	}
	e, err := ExceptionByID(ctx, in, t, id)
	if err != nil {
		return nil, err
	}
	if e.RevokedAt != nil {
		return nil, fmt.Errorf("%w: the exception is already revoked", ErrDecided)
	}
	now := in.Now().UTC().Truncate(time.Microsecond)
	ev, err := exceptionEvent(in, ActionExceptionRevoke, e, actor, decorate, map[string]any{"reason": reason})
	if err != nil {
		return nil, err
	}
	err = commitEvent(ctx, in, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		return decide(ctx, in, tx, `UPDATE control_exceptions SET revoked_by = ?, revoked_at = ? WHERE tenant_id = ?
			AND id = ? AND revoked_at IS NULL`, actor.ID, now.UnixMicro(), t.ID, id)
	})
	if err != nil {
		return nil, err
	}
	e.RevokedBy, e.RevokedAt = actor.ID, &now
	return e, nil
}

// ActiveException returns the exception of list that holds for control at
// time at, the first in list order when several do, or nil.
func ActiveException(list []*Exception, control string, at time.Time) *Exception {
	for _, e := range list {
		if e.Control == control && e.ActiveAt(at) {
			return e
		}
	}
	return nil
}

func exceptionEvent(in *instance.Instance, action string, e *Exception, actor event.Actor, decorate func(*event.Event),
	extra map[string]any) (*event.Event, error) {
	ev := in.ChangeEvent(action, "configuration", actor, event.Target{Type: "exception", ID: e.ID, Name: e.Control})
	extra["exception"], extra["control"] = e.ID, e.Control
	return withDetails(ev, extra, decorate)
}
