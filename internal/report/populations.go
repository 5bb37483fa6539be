package report

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
	"golang.org/x/sync/errgroup"
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
		"scim.user.create), that succeeded", Filters: actions("success", "user.create", "scim.user.create")},
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

// pageSize is the largest page the query API returns.
const pageSize = 1000

// collectAll reads every population, in the order of Populations: the
// events received in [from, to) among the first size entries of the
// tenant's log, oldest first. Each filter of each population is one
// indexed query of the query API, paged; the queries run side by side,
// as many at a time as there are processors.
func collectAll(ctx context.Context, in *instance.Instance, t *tenant.Tenant, from, to time.Time,
	size int64) ([][]Row, error) {
	type job struct{ pop, filter int }
	var jobs []job
	for i, def := range Populations {
		for j := range def.Filters {
			jobs = append(jobs, job{i, j})
		}
	}
	parts := make([][]Row, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for k, jb := range jobs {
		g.Go(func() error {
			def := Populations[jb.pop]
			rows, err := collect(gctx, in, t, def.Filters[jb.filter], def.Keep, from, to, size)
			parts[k] = rows
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([][]Row, len(Populations))
	for k, jb := range jobs {
		out[jb.pop] = append(out[jb.pop], parts[k]...)
	}
	for i, rows := range out {
		slices.SortFunc(rows, func(a, b Row) int { return cmp.Compare(a.Sequence, b.Sequence) })
		out[i] = slices.CompactFunc(rows, func(a, b Row) bool { return a.Sequence == b.Sequence })
	}
	return out, nil
}

// collect reads the rows of one filter of a population, page by page.
func collect(ctx context.Context, in *instance.Instance, t *tenant.Tenant, f auditlog.Filter,
	keep func(*event.Event) bool, from, to time.Time, size int64) ([]Row, error) {
	f.ReceivedFrom, f.ReceivedTo = from, to.Add(-time.Microsecond)
	f.Asc, f.Limit = true, pageSize
	var rows []Row
	for {
		page, err := in.Log.Query(ctx, t, f)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Items {
			if r.Sequence >= size {
				return rows, nil
			}
			if keep == nil || keep(r.Event) {
				rows = append(rows, rowOf(r))
			}
		}
		if page.Next == "" {
			return rows, nil
		}
		f.Cursor = page.Next
	}
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
