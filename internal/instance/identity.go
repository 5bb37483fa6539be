package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/tenant"
)

// change commits fn in t's log transaction together with the success
// event ev, so the change and its record land together or not at all.
func (in *Instance) change(ctx context.Context, t *tenant.Tenant, ev *event.Event, fn func(ctx context.Context, tx *sql.Tx) error) error {
	ev.Clean()
	p, err := in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return err
	}
	_, err = in.Log.Do(ctx, t, fn, p)
	return err
}

// IssueEnrolment issues an enrolment link in tenant t: for the account of
// email when it is set, or for a new account of role otherwise (how the
// first owner is made). It returns the token, shown once.
func (in *Instance) IssueEnrolment(ctx context.Context, t *tenant.Tenant, email, role string, ttl time.Duration,
	actor event.Actor, decorate func(*event.Event)) (string, *identity.Enrolment, error) {
	link := &identity.Enrolment{TenantID: t.ID, Role: role}
	target := event.Target{Type: "user", ID: "(new " + role + ")"}
	if email != "" {
		u, err := in.userByEmail(ctx, t, email)
		if err != nil {
			return "", nil, err
		}
		link.UserID, link.Role, target.ID = u.ID, "", u.ID
	} else if _, ok := access.BuiltinPermissions(role); !ok {
		return "", nil, fmt.Errorf("no such built-in role %q", role)
	}
	ev := in.ChangeEvent("user.enrolment.issue", "admin", actor, target)
	ev.Details = detailsJSON(map[string]any{"role": role, "expires_hours": int(ttl / time.Hour)})
	if decorate != nil {
		decorate(ev)
	}
	var tok string
	err := in.change(ctx, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		tok, err = in.Identity.IssueEnrolment(ctx, tx, link, actor.ID, ttl)
		return err
	})
	return tok, link, err
}

// ErrNoUser means a tenant has no account with the email given.
var ErrNoUser = errors.New("instance: no account with this email in the tenant")

func (in *Instance) userByEmail(ctx context.Context, t *tenant.Tenant, email string) (*identity.User, error) {
	canon, err := identity.CanonicalEmail(email)
	if err != nil {
		return nil, err
	}
	u, err := in.Identity.Users.ByEmail(ctx, in.DB.Read, t.ID, canon)
	if err != nil || u.Status == identity.StatusDeleted {
		return nil, ErrNoUser
	}
	return u, nil
}

// SetUserStatus disables, enables or deletes the account of email in
// tenant t. Leaving active ends every session and API key of the account in
// the same transaction as the event that records it.
func (in *Instance) SetUserStatus(ctx context.Context, t *tenant.Tenant, email string, st identity.Status, reason string,
	actor event.Actor, decorate func(*event.Event)) (*identity.User, error) {
	u, err := in.userByEmail(ctx, t, email)
	if err != nil {
		return nil, err
	}
	action := map[identity.Status]string{identity.StatusActive: "user.enable", identity.StatusDisabled: "user.disable",
		identity.StatusDeleted: "user.delete"}[st]
	ev := in.ChangeEvent(action, "admin", actor, event.Target{Type: "user", ID: u.ID})
	ev.Details = detailsJSON(map[string]any{"status": string(st), "reason": reason})
	if decorate != nil {
		decorate(ev)
	}
	err = in.change(ctx, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		return in.Identity.Users.SetStatus(ctx, tx, u, st, reason)
	})
	return u, err
}

// DisableInactive disables, in every tenant, the active accounts that have
// not signed in for the tenant's inactive_days, each with its event. It
// returns how many it disabled.
func (in *Instance) DisableInactive(ctx context.Context) (int, error) {
	ts, err := in.Tenants.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		p, err := in.Identity.Sessions.Policy(ctx, in.DB.Read, t.ID)
		if err != nil {
			return n, err
		}
		before := in.Now().Add(-time.Duration(p.InactiveDays) * 24 * time.Hour)
		us, err := in.Identity.Users.Inactive(ctx, in.DB.Read, t.ID, before)
		if err != nil {
			return n, err
		}
		for _, u := range us {
			reason := fmt.Sprintf("unused for %d days", p.InactiveDays)
			ev := in.ChangeEvent("user.disable", "admin", SystemActor(), event.Target{Type: "user", ID: u.ID})
			ev.Details = detailsJSON(map[string]any{"status": "disabled", "reason": reason})
			if err := in.change(ctx, t, ev, func(ctx context.Context, tx *sql.Tx) error {
				return in.Identity.Users.SetStatus(ctx, tx, u, identity.StatusDisabled, reason)
			}); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
