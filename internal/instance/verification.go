package instance

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"fmt"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tenant"
)

// Verification is one verification of a tenant's log, as log_verifications
// keeps it: the evidence that the trail was checked intact, or how it was
// found damaged.
type Verification struct {
	ID         string
	TenantID   int64
	Tenant     string
	StartedAt  time.Time
	FinishedAt time.Time
	TreeSize   int64
	OK         bool
	// Problem names the first bad entry and what is wrong with it, or why
	// the verification could not finish; empty when OK.
	Problem string
}

var verificationIDs = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewVerification is the record of a verification of t that ran from
// started to finished: rep is its report, or nil when err stopped it.
func NewVerification(t *tenant.Tenant, started, finished time.Time, rep *auditlog.VerifyReport, err error) *Verification {
	b := make([]byte, 10)
	rand.Read(b)
	v := &Verification{ID: "ver_" + verificationIDs.EncodeToString(b), TenantID: t.ID, Tenant: t.Name,
		StartedAt: started.UTC().Truncate(time.Microsecond), FinishedAt: finished.UTC().Truncate(time.Microsecond)}
	switch {
	case err != nil:
		v.Problem = "the verification could not finish: " + err.Error()
	case rep.Problem != nil:
		v.TreeSize, v.Problem = rep.Size, rep.Problem.Error()
	default:
		v.TreeSize, v.OK = rep.Size, true
	}
	return v
}

// InsertVerifications stores verifications in tx. Call it through
// RecordWith, so that they commit with the event that records them.
func (in *Instance) InsertVerifications(ctx context.Context, tx *sql.Tx, vs []*Verification) error {
	for _, v := range vs {
		if _, err := tx.ExecContext(ctx, in.DB.Rebind(`INSERT INTO log_verifications (id, tenant_id, started_at,
			finished_at, tree_size, ok, problem) VALUES (?, ?, ?, ?, ?, ?, ?)`), v.ID, v.TenantID, v.StartedAt.UnixMicro(),
			v.FinishedAt.UnixMicro(), v.TreeSize, v.OK, v.Problem); err != nil {
			return fmt.Errorf("instance: store verification: %w", err)
		}
	}
	return nil
}

// RecordWith commits ev to tenant t's trail in the same transaction as
// what fn writes.
func (in *Instance) RecordWith(ctx context.Context, t *tenant.Tenant, ev *event.Event,
	fn func(ctx context.Context, tx *sql.Tx) error) error {
	return in.change(ctx, t, ev, fn)
}

// RecordVerification verifies tenant t's log against this data
// directory's signing key and witness, and stores the outcome in
// log_verifications together with an audit.log.verify event, in one
// transaction. The event goes to the operator's trail, which holds what
// concerns the instance, so that a damaged log is not appended to. A
// verification that finds damage is recorded and answered without error;
// one that cannot finish is recorded as failed and its error returned.
func (in *Instance) RecordVerification(ctx context.Context, t *tenant.Tenant, actor event.Actor,
	decorate func(*event.Event)) (*Verification, error) {
	start := in.Now()
	rep, verr := in.Log.Verify(ctx, t, auditlog.VerifyOptions{})
	v := NewVerification(t, start, in.Now(), rep, verr)
	op, err := in.Operator(ctx)
	if err != nil {
		return nil, err
	}
	ev := in.ChangeEvent("audit.log.verify", "data_access", actor, event.Target{Type: "tenant", ID: t.Name, Name: t.Name})
	ev.OccurredAt = v.StartedAt
	if !v.OK {
		ev.Outcome = event.Outcome{Result: "failure", Reason: "verification failed: " + t.Name}
	}
	ev.Details = detailsJSON(map[string]any{"verification": v.ID, "tree_size": v.TreeSize, "ok": v.OK})
	if decorate != nil {
		decorate(ev)
	}
	err = in.RecordWith(ctx, op, ev, func(ctx context.Context, tx *sql.Tx) error {
		return in.InsertVerifications(ctx, tx, []*Verification{v})
	})
	if err != nil {
		return nil, err
	}
	if verr != nil {
		return v, fmt.Errorf("instance: verify %s: %w", t.Name, verr)
	}
	return v, nil
}
