package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tenant"
)

// SetRetention changes tenant t's retention days, hot window or both (a nil
// one is kept), keeping its legal hold, and records the change in t's trail
// in the same transaction.
func (in *Instance) SetRetention(ctx context.Context, t *tenant.Tenant, retentionDays, hotDays *int, actor event.Actor,
	decorate func(*event.Event)) (auditlog.Policy, error) {
	if retentionDays == nil && hotDays == nil {
		return auditlog.Policy{}, &auditlog.PolicyError{Field: "body", Reason: "give retention_days, hot_days or both"}
	}
	return in.changePolicy(ctx, t, "audit.retention.update", actor, decorate, nil, func(p *auditlog.Policy) map[string]any {
		old := map[string]any{"retention_days": p.RetentionDays, "hot_days": p.HotDays}
		if retentionDays != nil {
			p.RetentionDays = *retentionDays
		}
		if hotDays != nil {
			p.HotDays = *hotDays
		}
		return map[string]any{"before": old, "retention_days": p.RetentionDays, "hot_days": p.HotDays}
	})
}

// SetLegalHold sets or releases tenant t's legal hold, which while set
// forbids deleting any of its audit data: retention expiry and subject
// erasure.
func (in *Instance) SetLegalHold(ctx context.Context, t *tenant.Tenant, hold bool, reason string, actor event.Actor,
	decorate func(*event.Event)) (auditlog.Policy, error) {
	if err := CheckReason(reason); err != nil {
		return auditlog.Policy{}, err
	}
	action := "audit.legal_hold.release"
	if hold {
		action = "audit.legal_hold.set"
	}
	check := func(p auditlog.Policy) error {
		switch {
		case hold && p.LegalHold:
			return fmt.Errorf("%w (%s): one hold covers every matter; to change its reason, release it and set it "+
				"again", ErrHoldSet, p.HoldReason)
		case !hold && !p.LegalHold:
			return ErrNoHold
		}
		return nil
	}
	return in.changePolicy(ctx, t, action, actor, decorate, check, func(p *auditlog.Policy) map[string]any {
		p.LegalHold, p.HoldReason = hold, reason
		return map[string]any{"reason": reason}
	})
}

// CheckReason checks the reason given for a legal hold or its release.
func CheckReason(reason string) error {
	switch {
	case strings.TrimSpace(reason) == "":
		return &auditlog.PolicyError{Field: "reason", Reason: "required: say why, such as the matter it is for"}
	case len(reason) > event.MaxReason:
		return &auditlog.PolicyError{Field: "reason", Reason: fmt.Sprintf("longer than %d bytes", event.MaxReason)}
	case event.CleanText(reason, event.MaxReason) != reason || access.UnsafeText(reason):
		return &auditlog.PolicyError{Field: "reason",
			Reason: "holds a control character, a bidirectional formatting character or invalid UTF-8"}
	}
	return nil
}

// Errors of legal holds set or released twice.
var (
	ErrHoldSet = errors.New("a legal hold is already set")
	ErrNoHold  = errors.New("no legal hold is set")
)

func (in *Instance) changePolicy(ctx context.Context, t *tenant.Tenant, action string, actor event.Actor,
	decorate func(*event.Event), check func(auditlog.Policy) error,
	change func(p *auditlog.Policy) map[string]any) (auditlog.Policy, error) {
	if check == nil {
		check = func(auditlog.Policy) error { return nil }
	}
	// The change is validated on the policy read now, and written on the
	// one read in the writer's transaction.
	cur, err := in.Log.Policy(ctx, in.DB.Read, t.ID)
	if err != nil {
		return cur, err
	}
	if err := check(cur); err != nil {
		return cur, err
	}
	details := change(&cur)
	if err := cur.Validate(); err != nil {
		return cur, err
	}
	ev := in.ChangeEvent(action, "configuration", actor, event.Target{Type: "retention_policy", ID: t.Name})
	ev.Details = detailsJSON(details)
	if decorate != nil {
		decorate(ev)
	}
	ev.Clean()
	p, err := in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return cur, err
	}
	var out auditlog.Policy
	_, err = in.Log.Do(ctx, t, func(ctx context.Context, tx *sql.Tx) error {
		pol, err := in.Log.Policy(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		if err := check(pol); err != nil {
			return err
		}
		change(&pol)
		pol.Default = false
		out = pol
		return in.Log.WritePolicy(ctx, tx, t.ID, pol)
	}, p)
	if err != nil {
		return out, err
	}
	out.UpdatedAt = in.Now().UTC()
	return out, nil
}

// RunRetention applies every tenant's retention policy, or only t's when t
// is not nil, as attest itself: see auditlog.Log.RunRetention. progress,
// when set, hears of each segment archived or expired.
func (in *Instance) RunRetention(ctx context.Context, t *tenant.Tenant,
	progress func(t *tenant.Tenant, step string, s auditlog.ArchiveSegment)) ([]*auditlog.RetentionReport, error) {
	ts := []*tenant.Tenant{t}
	if t == nil {
		var err error
		if ts, err = in.Tenants.List(ctx); err != nil {
			return nil, err
		}
	}
	var reps []*auditlog.RetentionReport
	var errs []error
	for _, t := range ts {
		opts := auditlog.RetentionOptions{Event: func(action string, target event.Target, details map[string]any) *event.Event {
			ev := in.ChangeEvent(action, "system", SystemActor(), target)
			ev.Details = detailsJSON(details)
			return ev
		}}
		if progress != nil {
			opts.Progress = func(step string, s auditlog.ArchiveSegment) { progress(t, step, s) }
		}
		rep, err := in.Log.RunRetention(ctx, t, opts)
		if rep != nil {
			reps = append(reps, rep)
		}
		if err != nil {
			if ctx.Err() != nil {
				return reps, err
			}
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
		}
	}
	return reps, errors.Join(errs...)
}
