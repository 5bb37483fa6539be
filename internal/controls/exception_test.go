package controls_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

// TestExceptionLifecycle requests an exception, has a second person approve
// it, and watches it hold until it expires; another is revoked.
func TestExceptionLifecycle(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		in, op, c := openInstance(t, opts)
		now := c.Now()
		e, err := controls.RequestException(ctx, in, op, &controls.ExceptionRequest{Control: "IAM-01",
			Reason: "the break-glass account has no second factor by design", Compensating: "sealed credentials, alerts on use",
			ExpiresAt: now.Add(90 * oneDay)}, alice, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !e.StartsAt.Equal(now) || e.RequestedBy != alice.ID {
			t.Errorf("requested %+v", e)
		}
		list := func() []*controls.Exception {
			es, err := controls.Exceptions(ctx, in, op)
			if err != nil {
				t.Fatal(err)
			}
			return es
		}
		if x := controls.ActiveException(list(), "IAM-01", c.Now()); x != nil {
			t.Errorf("an unapproved exception holds: %+v", x)
		}
		if _, err := controls.ApproveException(ctx, in, op, e.ID, alice, nil); !errors.Is(err, controls.ErrSelfApproval) {
			t.Errorf("the requester approving: %v, want ErrSelfApproval", err)
		}
		if _, err := controls.ApproveException(ctx, in, op, e.ID, robot, nil); !errors.Is(err, controls.ErrNotAPerson) {
			t.Errorf("an API key approving: %v, want ErrNotAPerson", err)
		}
		if _, err := controls.ApproveException(ctx, in, op, e.ID, bob, nil); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Minute)
		if x := controls.ActiveException(list(), "IAM-01", c.Now()); x == nil || x.ID != e.ID {
			t.Errorf("the approved exception does not hold: %+v", x)
		}
		if x := controls.ActiveException(list(), "IAM-02", c.Now()); x != nil {
			t.Errorf("an exception of IAM-01 holds for IAM-02: %+v", x)
		}
		if x := controls.ActiveException(list(), "IAM-01", now.Add(90*oneDay)); x != nil {
			t.Errorf("the exception holds at its expiry: %+v", x)
		}

		r, err := controls.RequestException(ctx, in, op, &controls.ExceptionRequest{Control: "GOV-05",
			Reason: "training vendor change", StartsAt: now, ExpiresAt: now.Add(30 * oneDay)}, alice, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := controls.ApproveException(ctx, in, op, r.ID, bob, nil); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Minute)
		if _, err := controls.RevokeException(ctx, in, op, r.ID, "the new vendor is live", bob, nil); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Minute)
		if x := controls.ActiveException(list(), "GOV-05", c.Now()); x != nil {
			t.Errorf("a revoked exception holds: %+v", x)
		}
		if _, err := controls.ApproveException(ctx, in, op, r.ID, bob, nil); !errors.Is(err, controls.ErrDecided) {
			t.Errorf("approving a revoked exception: %v, want ErrDecided", err)
		}

		c.Add(100 * oneDay)
		late, err := controls.RequestException(ctx, in, op, &controls.ExceptionRequest{Control: "GOV-05", Reason: "r",
			StartsAt: c.Now(), ExpiresAt: c.Now().Add(time.Hour)}, alice, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Add(2 * time.Hour)
		if _, err := controls.ApproveException(ctx, in, op, late.ID, bob, nil); !errors.Is(err, controls.ErrDecided) {
			t.Errorf("approving an expired request: %v, want ErrDecided", err)
		}
	})
}

func TestExceptionRefusals(t *testing.T) {
	ctx := context.Background()
	_, opts := storetest.OpenSQLite(t)
	in, op, c := openInstance(t, opts)
	now := c.Now()
	for _, tc := range []struct {
		name  string
		req   controls.ExceptionRequest
		field string
	}{
		{"unknown control", controls.ExceptionRequest{Control: "NOPE-1", Reason: "r", ExpiresAt: now.Add(oneDay)}, "control"},
		{"no control", controls.ExceptionRequest{Reason: "r", ExpiresAt: now.Add(oneDay)}, "control"},
		{"no reason", controls.ExceptionRequest{Control: "IAM-01", ExpiresAt: now.Add(oneDay)}, "reason"},
		{"no expiry", controls.ExceptionRequest{Control: "IAM-01", Reason: "r"}, "expires_at"},
		{"over a year", controls.ExceptionRequest{Control: "IAM-01", Reason: "r", StartsAt: now,
			ExpiresAt: now.Add(366 * oneDay)}, "expires_at"},
		{"ends before it starts", controls.ExceptionRequest{Control: "IAM-01", Reason: "r", StartsAt: now.Add(10 * oneDay),
			ExpiresAt: now.Add(5 * oneDay)}, "expires_at"},
		{"already over", controls.ExceptionRequest{Control: "IAM-01", Reason: "r", StartsAt: now.Add(-10 * oneDay),
			ExpiresAt: now.Add(-oneDay)}, "expires_at"},
		{"control characters", controls.ExceptionRequest{Control: "IAM-01", Reason: "r", Compensating: "a\x1b[31mb",
			ExpiresAt: now.Add(oneDay)}, "compensating"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := controls.RequestException(ctx, in, op, &tc.req, alice, nil); !isField(err, tc.field) {
				t.Errorf("got %v, want an InputError for %s", err, tc.field)
			}
		})
	}
	if _, err := controls.RequestException(ctx, in, op, &controls.ExceptionRequest{Control: "IAM-01", Reason: "r",
		StartsAt: now, ExpiresAt: now.Add(365 * oneDay)}, alice, nil); err != nil {
		t.Errorf("a year to the day: %v", err)
	}
}

// TestManualControlsInCatalog checks every manual control is complete and
// judged by its evidence.
func TestManualControlsInCatalog(t *testing.T) {
	n := 0
	for _, c := range controls.Catalog {
		if c.Manual == nil {
			continue
		}
		n++
		if c.Test == nil || c.Frequency <= 0 || c.Owner == "" || c.Description == "" || c.Manual.Requirement == "" ||
			c.Manual.MaxAge <= 0 || len(c.Criteria) == 0 || len(c.Watches) == 0 {
			t.Errorf("%s is incomplete: %+v", c.ID, c)
		}
		for _, id := range c.Criteria {
			if _, ok := controls.CriterionByID(id); !ok {
				t.Errorf("%s names no criterion %q", c.ID, id)
			}
		}
	}
	if n != 32 {
		t.Errorf("%d manual controls, want 32", n)
	}
}
