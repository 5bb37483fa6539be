package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tenant"
)

// Reviews returns the store of access review campaigns.
func (in *Instance) Reviews() *access.Reviews { return access.NewReviews(in.DB, in.Now, in.Grants) }

// CloseDueReviews applies the deadline of every open access review, in
// every tenant, that has reached it. By the campaign's policy each
// undecided item is revoked with access.OverdueReason, or handed to the
// campaign's escalate_to user while the deadline moves a week on; that
// happens once, and what is still undecided at the later deadline is
// revoked. Each change commits with its audit event. It returns how many
// items it revoked or handed on.
func (in *Instance) CloseDueReviews(ctx context.Context) (int, error) {
	ts, err := in.Tenants.List(ctx)
	if err != nil {
		return 0, err
	}
	rv := in.Reviews()
	n := 0
	for _, t := range ts {
		cs, err := rv.Due(ctx, in.DB.Read, t.ID, in.Now())
		if err != nil {
			return n, err
		}
		for _, c := range cs {
			k, err := in.closeReview(ctx, t, rv, c)
			n += k
			if err != nil {
				return n, fmt.Errorf("instance: deadline of review %s: %w", c.ID, err)
			}
		}
	}
	return n, nil
}

// closeReview applies one campaign's deadline.
func (in *Instance) closeReview(ctx context.Context, t *tenant.Tenant, rv *access.Reviews, c *access.Campaign) (int, error) {
	items, err := rv.Items(ctx, in.DB.Read, t.ID, c.ID)
	if err != nil {
		return 0, err
	}
	escalate := c.OnDeadline == access.OnDeadlineEscalate && c.EscalatedAt.IsZero()
	n := 0
	for _, it := range items {
		if it.Decision != "" {
			continue
		}
		var acted bool
		if escalate {
			acted, err = in.escalateItem(ctx, t, rv, c, it)
		} else {
			acted, err = in.revokeOverdue(ctx, t, rv, c, it)
		}
		if err != nil {
			return n, err
		}
		if acted {
			n++
		}
	}
	if !escalate {
		return n, nil
	}
	// The items first, then the deadline: a run cut short between them
	// finds the campaign still due and hands on only what it has not.
	return n, in.extendReview(ctx, t, rv, c)
}

// revokeOverdue revokes an item nobody decided in time. When the last
// owner rule refuses, the owner keeps the role, and the item says why.
func (in *Instance) revokeOverdue(ctx context.Context, t *tenant.Tenant, rv *access.Reviews, c *access.Campaign,
	it *access.ReviewItem) (bool, error) {
	perms, perr := in.Grants.RolePermissions(ctx, in.DB.Read, t.ID, it.Role)
	if it.Role == access.RoleOwner || perr != nil || access.AnyPrivileged(perms) {
		// Ownership, and any role with privileged permissions, is never
		// taken away unattended.
		err := in.decideOverdue(ctx, t, rv, c, it, access.DecisionKeep,
			access.OverdueReason+"; a role with privileged permissions is never revoked automatically: review it by hand")
		if errors.Is(err, access.ErrDecided) {
			return false, nil
		}
		return err == nil, err
	}
	err := in.decideOverdue(ctx, t, rv, c, it, access.DecisionRevoke, access.OverdueReason)
	if errors.Is(err, access.ErrLastOwner) {
		err = in.decideOverdue(ctx, t, rv, c, it, access.DecisionKeep,
			access.OverdueReason+"; revoking was refused because the tenant's last owner keeps the owner role")
	}
	if errors.Is(err, access.ErrDecided) {
		return false, nil // decided by its reviewer meanwhile
	}
	return err == nil, err
}

func (in *Instance) decideOverdue(ctx context.Context, t *tenant.Tenant, rv *access.Reviews, c *access.Campaign,
	it *access.ReviewItem, decision, reason string) error {
	actor := SystemActor()
	ev := in.ChangeEvent("review.item.deadline", "admin", actor, event.Target{Type: "user", ID: it.UserID})
	ev.Details = detailsJSON(map[string]any{"campaign": c.ID, "role": it.Role, "decision": decision, "reason": reason,
		"reviewer": it.ReviewerID})
	return in.change(ctx, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		_, _, err := rv.Decide(ctx, tx, t.ID, c.ID, it.UserID, it.Role, decision, reason, actor.ID)
		return err
	})
}

// escalateItem hands an undecided item to the campaign's escalate_to
// user, unless that user is the one the item is about.
func (in *Instance) escalateItem(ctx context.Context, t *tenant.Tenant, rv *access.Reviews, c *access.Campaign,
	it *access.ReviewItem) (bool, error) {
	if it.ReviewerID == c.EscalateTo || it.UserID == c.EscalateTo {
		return false, nil
	}
	ev := in.ChangeEvent("review.item.escalate", "admin", SystemActor(), event.Target{Type: "user", ID: it.UserID})
	ev.Details = detailsJSON(map[string]any{"campaign": c.ID, "role": it.Role, "from": it.ReviewerID,
		"to": c.EscalateTo, "reason": "not reviewed by the deadline"})
	err := in.change(ctx, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		return rv.Reassign(ctx, tx, t.ID, c.ID, it.UserID, it.Role, c.EscalateTo)
	})
	if errors.Is(err, access.ErrDecided) {
		return false, nil
	}
	return err == nil, err
}

// extendReview moves an escalated campaign's deadline a week on from the
// old one, or from now when the old one is more than a week past.
func (in *Instance) extendReview(ctx context.Context, t *tenant.Tenant, rv *access.Reviews, c *access.Campaign) error {
	deadline := c.Deadline.Add(access.ReviewEscalation)
	if now := in.Now(); !deadline.After(now) {
		deadline = now.Add(access.ReviewEscalation)
	}
	deadline = deadline.UTC().Truncate(time.Microsecond)
	ev := in.ChangeEvent("review.campaign.escalate", "admin", SystemActor(),
		event.Target{Type: "review_campaign", ID: c.ID, Name: c.Name})
	ev.Details = detailsJSON(map[string]any{"escalate_to": c.EscalateTo, "deadline_was": c.Deadline.Format(time.RFC3339),
		"deadline": deadline.Format(time.RFC3339)})
	err := in.change(ctx, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		return rv.Extend(ctx, tx, t.ID, c.ID, deadline)
	})
	if errors.Is(err, access.ErrEscalated) {
		return nil // another process got there first
	}
	return err
}
