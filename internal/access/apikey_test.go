package access_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

func TestRoleScope(t *testing.T) {
	for _, tc := range []struct {
		role, other access.Role
		revoke      bool
	}{
		{access.RoleOperator, access.RoleOperator, true},
		{access.RoleOperator, access.RoleAdmin, true},
		{access.RoleAdmin, access.RoleOperator, false},
		{access.RoleAdmin, access.RoleAdmin, true},
		{access.RoleAdmin, access.RoleIngest, true},
		{access.RoleAdmin, access.RoleReader, true},
		{access.RoleIngest, access.RoleIngest, false},
		{access.RoleReader, access.RoleReader, false},
	} {
		if got := tc.role.CanRevoke(tc.other); got != tc.revoke {
			t.Errorf("%s.CanRevoke(%s) = %v, want %v", tc.role, tc.other, got, tc.revoke)
		}
	}
	for _, r := range access.Roles {
		if got, want := r.CrossTenant(), r == access.RoleOperator; got != want {
			t.Errorf("%s.CrossTenant() = %v, want %v", r, got, want)
		}
	}
}

func TestRoleTenant(t *testing.T) {
	for _, tc := range []struct {
		role     access.Role
		operator bool
		ok       bool
	}{
		{access.RoleOperator, true, true},
		{access.RoleOperator, false, false},
		{access.RoleAdmin, true, true},
		{access.RoleAdmin, false, true},
		{access.RoleIngest, true, false},
		{access.RoleIngest, false, true},
		{access.RoleReader, true, true},
		{access.RoleReader, false, true},
	} {
		if err := tc.role.CheckTenant(tc.operator); (err == nil) != tc.ok {
			t.Errorf("%s.CheckTenant(operator tenant %v) = %v, want allowed %v", tc.role, tc.operator, err, tc.ok)
		}
	}
}

// clock is a test clock that moves on by a second each time it is read.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

func TestRevokeTwice(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		in, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL, Name: "test.example/attest"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		op, err := in.Operator(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		keys := access.NewKeys(in.DB, clk.Now)
		id := access.NewKeyID()
		inTx := func(f func(tx *sql.Tx) error) error { return in.DB.InTx(ctx, f) }
		if err := inTx(func(tx *sql.Tx) error {
			_, _, err := keys.Create(ctx, tx, id, op.ID, access.RoleReader, "r", time.Time{}, "")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		revoke := func(id string) error {
			return inTx(func(tx *sql.Tx) error { return keys.Revoke(ctx, tx, id) })
		}
		if err := revoke(id); err != nil {
			t.Fatalf("first revocation: %v", err)
		}
		first, err := keys.Get(ctx, in.DB.Read, 0, id)
		if err != nil || first.RevokedAt.IsZero() {
			t.Fatalf("after revocation: %+v, %v", first, err)
		}
		if err := revoke(id); !errors.Is(err, access.ErrAlreadyRevoked) {
			t.Errorf("second revocation: %v, want %v", err, access.ErrAlreadyRevoked)
		}
		again, err := keys.Get(ctx, in.DB.Read, 0, id)
		if err != nil || !again.RevokedAt.Equal(first.RevokedAt) {
			t.Errorf("revoked_at moved from %v to %v (%v)", first.RevokedAt, again.RevokedAt, err)
		}
		if err := revoke(access.NewKeyID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoking a missing key: %v, want %v", err, store.ErrNotFound)
		}
	})
}
