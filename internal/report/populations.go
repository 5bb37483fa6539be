package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"strconv"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// Population is one population an auditor samples from: the events of a
// kind that attest received in the period.
type Population struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	File        string `json:"file"`
	Rows        int    `json:"rows"`
}

// PopulationFile is the path of a population's CSV in a bundle.
func PopulationFile(name string) string { return "populations/" + name + ".csv" }

// Row is one member of a population: an event of the tenant's trail.
type Row struct {
	Sequence   int64     `json:"sequence"`
	ReceivedAt time.Time `json:"received_at"`
	Action     string    `json:"action"`
	Actor      string    `json:"actor"`
	Target     string    `json:"target"`
	TargetName string    `json:"target_name"`
	Outcome    string    `json:"outcome"`
}

// CSVColumns are the columns of a population's CSV.
var CSVColumns = []string{"sequence", "received_at", "action", "actor", "target", "target_name", "outcome"}

// PopulationDef says which events of the trail make up a population. Only
// attest's own records count: a producer's ingested events cannot claim
// its source name, so none can pass for an account made or a role granted.
// Each
// filter is one indexed query; their results are merged by sequence, and
// Keep, when set, drops what the index cannot tell apart.
type PopulationDef struct {
	Name        string
	Description string
	Filters     []auditlog.Filter
	Keep        func(*event.Event) bool
}

func actions(outcome string, names ...string) []auditlog.Filter {
	fs := make([]auditlog.Filter, len(names))
	for i, n := range names {
		fs[i] = auditlog.Filter{Action: n, Outcome: outcome, Source: event.SelfSource}
	}
	return fs
}

// Populations are the populations of every report, in order.
var Populations = []PopulationDef{
	{Name: "users_created", Description: "accounts created, through the API, the command line or SCIM (user.create, " +
		"scim.user.create), or by an enrolment link for a new account, as the first owner's is (user.enrol.start " +
		"of a new account), that succeeded",
		Filters: actions("success", "user.create", "scim.user.create", "user.enrol.start"),
		Keep: func(ev *event.Event) bool {
			return ev.Action != "user.enrol.start" || bytes.Contains(ev.Details, []byte(`"new_account":true`))
		}},
	{Name: "users_terminated", Description: "accounts disabled, deleted or deprovisioned (user.disable, user.delete, " +
		"user.deprovision), that succeeded", Filters: actions("success", "user.disable", "user.delete", "user.deprovision")},
	{Name: "access_changes", Description: "role grants and revocations (role.grant, role.revoke), that succeeded",
		Filters: actions("success", "role.grant", "role.revoke")},
	{Name: "elevation_grants", Description: "temporary elevations approved (elevation.approve), that succeeded",
		Filters: actions("success", "elevation.approve")},
	{Name: "incidents", Description: "security events, every one of which attest records at high severity: " +
		"lockouts, detected credential stuffing, password spraying and account enumeration, passkey clone " +
		"warnings, break-glass use and raised alerts (category security), whatever their outcome",
		Filters: []auditlog.Filter{{Category: "security", Source: event.SelfSource}}},
	{Name: "changes", Description: "configuration changes (category configuration) that succeeded, without reads " +
		"(requests by GET or HEAD) and without the runs of control tests (compliance.controls.validate, control.result)",
		Filters: []auditlog.Filter{{Category: "configuration", Outcome: "success", Source: event.SelfSource}},
		Keep: func(ev *event.Event) bool {
			m := ev.Request.Method
			return m != "GET" && m != "HEAD" && ev.Action != "control.result" && ev.Action != "compliance.controls.validate"
		}},
}

// collectAll reads every population, in the order of Populations: the
// events received in [from, to) among the first size entries of the
// tenant's log, oldest first. All the filters of all the populations are
// answered in one scan of the trail, which reads each matching event once.
// A row needs no personal value but the target's name, when that is
// personal: only those events are restored.
func collectAll(ctx context.Context, in *instance.Instance, t *tenant.Tenant, from, to time.Time,
	size int64) ([][]Row, error) {
	var fs []auditlog.Filter
	var popOf []int
	for i, def := range Populations {
		for _, f := range def.Filters {
			f.ReceivedFrom, f.ReceivedTo = from, to.Add(-time.Microsecond)
			fs = append(fs, f)
			popOf = append(popOf, i)
		}
	}
	out := make([][]Row, len(Populations))
	opts := auditlog.ScanOptions{Size: size, Personal: []string{event.PathTargetName}}
	_, err := in.Log.Scan(ctx, t, fs, opts, func(r *auditlog.Record, matched []int) error {
		last := -1
		for _, k := range matched {
			// Filters of one population are next to each other.
			i := popOf[k]
			if i == last {
				continue
			}
			last = i
			if keep := Populations[i].Keep; keep == nil || keep(r.Event) {
				out[i] = append(out[i], rowOf(r))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func rowOf(r *auditlog.Record) Row {
	ev := r.Event
	return Row{Sequence: r.Sequence, ReceivedAt: ev.ReceivedAt.UTC(), Action: ev.Action,
		Actor: join(ev.Actor.Type, ev.Actor.ID), Target: join(ev.Target.Type, ev.Target.ID), TargetName: ev.Target.Name,
		Outcome: ev.Outcome.Result}
}

func join(kind, id string) string {
	if id == "" {
		return kind
	}
	return kind + ":" + id
}

// encodeCSV writes a population as CSV, every cell a spreadsheet would run
// as a formula defused with a leading apostrophe.
func encodeCSV(rows []Row) ([]byte, error) {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	cw.Write(CSVColumns)
	for _, r := range rows {
		cw.Write(auditlog.DefuseCells([]string{strconv.FormatInt(r.Sequence, 10), r.ReceivedAt.Format(time.RFC3339Nano), r.Action,
			r.Actor, r.Target, r.TargetName, r.Outcome}))
	}
	cw.Flush()
	return buf.Bytes(), check("write population", cw.Error())
}
