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
	"math"
	"slices"
	"sync"
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
	// Alert is the id of the alert this result raised, if it raised one.
	Alert string `json:"alert,omitempty"`
	*Result
}

// tenantLocks serialise the runs of one tenant's controls in this process,
// so that two runs at once cannot both read the same previous status and
// both raise an alert for one change.
var tenantLocks sync.Map // tenant id -> *sync.Mutex

func lockTenant(id int64) (unlock func()) {
	m, _ := tenantLocks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Validate runs the tests of the controls named (every control when ids
// is empty) against tenant t's state, and records each result together
// with an audit event that carries its SHA-256, in one transaction: the
// record of the audit period is itself in the tamper-evident log.
//
// A control that starts failing raises an alert in the same transaction,
// with a control.alert event: see Raises.
func Validate(ctx context.Context, in *instance.Instance, t *tenant.Tenant, ids []string, actor event.Actor,
	decorate func(*event.Event)) ([]*Stored, error) {
	cs := For(t)
	if len(ids) > 0 {
		cs = nil
		for _, id := range ids {
			c, ok := ForByID(t, id)
			if !ok {
				return nil, fmt.Errorf("%w: %q", ErrUnknownControl, id)
			}
			// A control named twice runs once.
			if !slices.Contains(cs, c) {
				cs = append(cs, c)
			}
		}
	}
	defer lockTenant(t.ID)()
	prev, last, err := latestStatuses(ctx, in, t)
	if err != nil {
		return nil, err
	}
	sc := Scope{In: in, Tenant: t, Now: in.Now()}
	var out []*Stored
	var alerts []*Alert
	var evs []*event.Event
	for _, c := range cs {
		r, err := c.Test(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("controls: test %s: %w", c.ID, err)
		}
		// Each result of a control is later than the one before, so that
		// the latest is never in doubt, even when a clock stands still.
		if l, ok := last[c.ID]; ok && !r.CheckedAt.Truncate(time.Microsecond).After(l) {
			r.CheckedAt = l.Add(time.Microsecond)
		}
		st, ev, err := stored(in, c, r, actor, decorate)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
		evs = append(evs, ev)
		if p, ran := prev[c.ID]; Raises(p, ran, r.Status) {
			a := &Alert{ID: newID("alr_"), Control: c.ID, Name: c.Name, Previous: p, Status: r.Status, Result: st.ID,
				RaisedAt: st.CheckedAt}
			if !ran {
				a.Previous = none
			}
			st.Alert = a.ID
			alerts = append(alerts, a)
			evs = append(evs, alertEvent(in, c, a, actor, decorate))
		}
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
		for _, a := range alerts {
			if _, err := tx.ExecContext(ctx, in.DB.Rebind(`INSERT INTO control_alerts (id, tenant_id, control_id, result_id,
				previous, status, raised_at) VALUES (?, ?, ?, ?, ?, ?, ?)`), a.ID, t.ID, a.Control, a.Result, string(a.Previous),
				string(a.Status), a.RaisedAt.UnixMicro()); err != nil {
				return fmt.Errorf("controls: store alert: %w", err)
			}
		}
		return nil
	}, ps...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// none is the previous status of an alert raised by a control's first run.
const none Status = "none"

// Raises reports whether a result of status now, after a previous one
// (ran is false when the control never ran for the tenant), starts a
// failure that deserves an alert: a fail after anything but a fail, and
// no evidence after a pass. A recovery raises nothing; it is on record as
// its result, and a run that stays failing raises nothing more.
func Raises(previous Status, ran bool, now Status) bool {
	switch now {
	case Fail:
		return !ran || previous != Fail
	case NoEvidence:
		return ran && previous == Pass
	}
	return false
}

// latestStatuses reads the status and time of the newest result of each
// control of tenant t, in one query.
func latestStatuses(ctx context.Context, in *instance.Instance, t *tenant.Tenant) (map[string]Status, map[string]time.Time,
	error) {
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(`SELECT r.control_id, r.status, r.checked_at FROM control_results r
		WHERE r.tenant_id = ? AND r.checked_at = (SELECT MAX(checked_at) FROM control_results x
		WHERE x.tenant_id = r.tenant_id AND x.control_id = r.control_id)`), t.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("controls: read previous results: %w", err)
	}
	defer rows.Close()
	out, last := map[string]Status{}, map[string]time.Time{}
	for rows.Next() {
		var id, st string
		var at int64
		if err := rows.Scan(&id, &st, &at); err != nil {
			return nil, nil, fmt.Errorf("controls: read previous results: %w", err)
		}
		out[id], last[id] = Status(st), micros(at)
	}
	return out, last, rows.Err()
}

// alertEvent records an alert: high severity for a failure, medium for
// evidence gone missing.
func alertEvent(in *instance.Instance, c *Control, a *Alert, actor event.Actor, decorate func(*event.Event)) *event.Event {
	ev := in.ChangeEvent("control.alert", "security", actor, event.Target{Type: "control", ID: c.ID, Name: c.Name})
	sev := "medium"
	if a.Status == Fail {
		sev = "high"
	}
	ev.Details = canonical(map[string]any{"alert": a.ID, "result": a.Result, "previous": string(a.Previous),
		"status": string(a.Status), "severity": sev})
	if decorate != nil {
		decorate(ev)
	}
	ev.Clean()
	return ev
}

// canonical encodes details in canonical form.
func canonical(m map[string]any) jsontext.Value {
	d, _ := json.Marshal(m)
	v := jsontext.Value(d)
	if v.Canonicalize() != nil {
		return nil
	}
	return v
}

// newID is a random id with a prefix.
func newID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + resultIDs.EncodeToString(b)
}

// stored gives a result its id and digest, and the event that records it.
func stored(in *instance.Instance, c *Control, r *Result, actor event.Actor, decorate func(*event.Event)) (*Stored, *event.Event, error) {
	r.CheckedAt = r.CheckedAt.Truncate(time.Microsecond)
	b, err := json.Marshal(r)
	if err != nil {
		return nil, nil, fmt.Errorf("controls: encode result: %w", err)
	}
	sum := sha256.Sum256(b)
	st := &Stored{ID: newID("res_"), SHA256: hex.EncodeToString(sum[:]), Result: r}
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
	return LatestBefore(ctx, in, t, time.UnixMicro(math.MaxInt64))
}

// LatestBefore returns the newest result of each control for tenant t
// recorded before the time given: how the controls stood then.
func LatestBefore(ctx context.Context, in *instance.Instance, t *tenant.Tenant, before time.Time) (map[string]*Stored,
	error) {
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(`SELECT r.id, r.result, r.sha256 FROM control_results r
		WHERE r.tenant_id = ? AND r.checked_at = (SELECT MAX(checked_at) FROM control_results x
		WHERE x.tenant_id = r.tenant_id AND x.control_id = r.control_id AND x.checked_at < ?)`), t.ID,
		before.UTC().UnixMicro())
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

// Due lists the controls of tenant t whose test is due at now: never run,
// or last run at least their frequency ago (a day when they name none).
func Due(ctx context.Context, in *instance.Instance, t *tenant.Tenant, now time.Time) ([]string, error) {
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(`SELECT control_id, MAX(checked_at) FROM control_results
		WHERE tenant_id = ? GROUP BY control_id`), t.ID)
	if err != nil {
		return nil, fmt.Errorf("controls: read last runs: %w", err)
	}
	defer rows.Close()
	last := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("controls: read last runs: %w", err)
		}
		last[id] = time.UnixMicro(at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read last runs: %w", err)
	}
	var out []string
	for _, c := range For(t) {
		f := c.Frequency
		if f <= 0 {
			f = daily
		}
		if at, ok := last[c.ID]; !ok || now.Sub(at) >= f {
			out = append(out, c.ID)
		}
	}
	return out, nil
}

// Watchers maps each audit action some control watches to the ids of the
// controls that watch it.
func Watchers() map[string][]string {
	out := map[string][]string{}
	for _, c := range Catalog {
		for _, a := range c.Watches {
			if !slices.Contains(out[a], c.ID) {
				out[a] = append(out[a], c.ID)
			}
		}
	}
	return out
}
