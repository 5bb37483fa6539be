package controls

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json/jsontext"
)

// ErrUnknownControl names a control the catalog lacks.
var ErrUnknownControl = errors.New("controls: no such control")

var resultIDs = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Stored is a recorded result with its id and digest.
type Stored struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
	*Result
}

// Validate runs the tests of the controls named (every control when ids
// is empty) against tenant t's state, and records each result together
// with an audit event that carries its SHA-256, in one transaction: the
// record of the audit period is itself in the tamper-evident log.
func Validate(ctx context.Context, in *instance.Instance, t *tenant.Tenant, ids []string, actor event.Actor,
	decorate func(*event.Event)) ([]*Stored, error) {
	cs := Catalog
	if len(ids) > 0 {
		cs = nil
		for _, id := range ids {
			c, ok := ByID(id)
			if !ok {
				return nil, fmt.Errorf("%w: %q", ErrUnknownControl, id)
			}
			cs = append(cs, c)
		}
	}
	sc := Scope{In: in, Tenant: t, Now: in.Now()}
	var out []*Stored
	var evs []*event.Event
	for _, c := range cs {
		r, err := c.Test(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("controls: test %s: %w", c.ID, err)
		}
		st, ev, err := stored(in, c, r, actor, decorate)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
		evs = append(evs, ev)
	}
	ps, err := in.Log.PrepareAll(ctx, t, evs)
	if err != nil {
		return nil, err
	}
	_, err = in.Log.Do(ctx, t, func(ctx context.Context, tx *sql.Tx) error {
		for _, st := range out {
			b, _ := json.Marshal(st.Result)
			sum, _ := hex.DecodeString(st.SHA256)
			if _, err := tx.ExecContext(ctx, in.DB.Rebind(`INSERT INTO control_results (id, tenant_id, control_id, status,
				result, sha256, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)`), st.ID, t.ID, st.Control, string(st.Status), b, sum,
				st.CheckedAt.UnixMicro()); err != nil {
				return fmt.Errorf("controls: store result: %w", err)
			}
		}
		return nil
	}, ps...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// stored gives a result its id and digest, and the event that records it.
func stored(in *instance.Instance, c *Control, r *Result, actor event.Actor, decorate func(*event.Event)) (*Stored, *event.Event, error) {
	r.CheckedAt = r.CheckedAt.Truncate(time.Microsecond)
	b, err := json.Marshal(r)
	if err != nil {
		return nil, nil, fmt.Errorf("controls: encode result: %w", err)
	}
	sum := sha256.Sum256(b)
	id := make([]byte, 10)
	rand.Read(id)
	st := &Stored{ID: "res_" + resultIDs.EncodeToString(id), SHA256: hex.EncodeToString(sum[:]), Result: r}
	ev := in.ChangeEvent("control.result", "configuration", actor, event.Target{Type: "control", ID: c.ID, Name: c.Name})
	d, _ := json.Marshal(map[string]any{"result": st.ID, "status": string(r.Status), "sha256": st.SHA256,
		"findings": len(r.Findings)})
	v := jsontext.Value(d)
	if err := v.Canonicalize(); err != nil {
		return nil, nil, err
	}
	ev.Details = v
	if decorate != nil {
		decorate(ev)
	}
	ev.Clean()
	return st, ev, nil
}

// Latest returns the newest recorded result of each control for tenant t,
// by control id; a control never run is absent.
func Latest(ctx context.Context, in *instance.Instance, t *tenant.Tenant) (map[string]*Stored, error) {
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(`SELECT r.id, r.result, r.sha256 FROM control_results r
		WHERE r.tenant_id = ? AND r.checked_at = (SELECT MAX(checked_at) FROM control_results x
		WHERE x.tenant_id = r.tenant_id AND x.control_id = r.control_id)`), t.ID)
	if err != nil {
		return nil, fmt.Errorf("controls: read results: %w", err)
	}
	defer rows.Close()
	out := map[string]*Stored{}
	for rows.Next() {
		var id string
		var b, sum []byte
		if err := rows.Scan(&id, &b, &sum); err != nil {
			return nil, fmt.Errorf("controls: read result: %w", err)
		}
		r := &Result{}
		if err := json.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("controls: read result %s: %w", id, err)
		}
		out[r.Control] = &Stored{ID: id, SHA256: hex.EncodeToString(sum), Result: r}
	}
	return out, rows.Err()
}
