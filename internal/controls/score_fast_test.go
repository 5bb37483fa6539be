package controls

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/google/go-cmp/cmp"
)

// rawResult is a result as the reference reads it back.
type rawResult struct {
	id     string
	status Status
	at     time.Time
}

// TestScoreMatchesReference scores random histories and compares the
// timelines, counts and changes with a reference that walks every result
// of every control by the rules of Formula: random statuses, gaps around
// twice the frequency, results at the same instant, at the bounds of the
// period and at the end of days, and a control without a frequency.
func TestScoreMatchesReference(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		end := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
		in, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL,
			Name: "test.example/attest", Now: func() time.Time { return end }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		op, err := in.Tenants.ByName(ctx, tenant.Operator)
		if err != nil {
			t.Fatal(err)
		}
		cs := []*Control{{ID: "R-HOURLY", Frequency: time.Hour}, {ID: "R-DAILY", Frequency: day},
			{ID: "R-ALWAYS"}, {ID: "R-NEVER", Frequency: time.Hour}}
		from, to := end.Add(-10*day), end
		rng := rand.New(rand.NewPCG(7, uint64(len(opts.URL))))
		for _, c := range cs[:3] {
			randomHistory(t, in, op, rng, c, from, to)
		}
		for round := range 3 {
			// The first round scores the whole period, the others parts of it.
			f, u := from, to
			if round > 0 {
				f = from.Add(time.Duration(rng.Int64N(int64(5 * day))))
				u = f.Add(time.Duration(1 + rng.Int64N(int64(5*day))))
			}
			compareWithReference(t, in, op, cs, f, u, rng)
		}
	})
}

// randomHistory stores results of c from three days before from to to.
func randomHistory(t *testing.T, in *instance.Instance, tn *tenant.Tenant, rng *rand.Rand, c *Control, from,
	to time.Time) {
	t.Helper()
	f := c.Frequency
	if f == 0 {
		f = 5 * time.Hour
	}
	statuses := []Status{Pass, Pass, Pass, Fail, NoEvidence}
	at := from.Add(-3 * day)
	var rows []rawResult
	for at.Before(to) {
		st := statuses[rng.IntN(len(statuses))]
		if len(rows) > 0 && rng.IntN(3) > 0 {
			st = rows[len(rows)-1].status
		}
		rows = append(rows, rawResult{fmt.Sprintf("r%s%06d", c.ID, rng.IntN(1000000)), st, at})
		switch rng.IntN(8) {
		case 0: // the same instant
		case 1:
			at = at.Add(2 * f)
		case 2:
			at = at.Add(2*f + time.Microsecond)
		case 3:
			at = at.Add(2*f - time.Microsecond)
		case 4:
			at = at.Add(time.Duration(rng.Int64N(int64(4 * f))))
		default:
			at = at.Add(f/2 + time.Duration(rng.Int64N(int64(f))))
		}
	}
	for _, b := range []time.Time{from, to, from.Add(day).Truncate(day), to.Add(-day)} {
		rows = append(rows, rawResult{fmt.Sprintf("r%s%06d", c.ID, rng.IntN(1000000)), statuses[rng.IntN(3)], b})
	}
	// Two of a status at the end of the period: the first is not a run of it.
	rows = append(rows, rawResult{fmt.Sprintf("r%s%06d", c.ID, rng.IntN(1000000)), Pass, to.Add(-time.Hour)},
		rawResult{fmt.Sprintf("r%s%06d", c.ID, rng.IntN(1000000)), Pass, to},
		rawResult{fmt.Sprintf("r%s%06d", c.ID, rng.IntN(1000000)), Pass, to})
	for _, r := range rows {
		b, _ := json.Marshal(&Result{Control: c.ID, Status: r.status, CheckedAt: r.at})
		if _, err := in.DB.Write.ExecContext(context.Background(), in.DB.Rebind(`INSERT INTO control_results (id,
			tenant_id, control_id, status, result, sha256, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)`), r.id, tn.ID, c.ID,
			string(r.status), b, []byte{0}, r.at.UnixMicro()); err != nil && !strings.Contains(err.Error(),
			"UNIQUE") && !strings.Contains(err.Error(), "duplicate") {
			t.Fatal(err)
		}
	}
}

// compareWithReference checks the timelines of cs over [from, to]
// against every result the tenant has.
func compareWithReference(t *testing.T, in *instance.Instance, tn *tenant.Tenant, cs []*Control, from, to time.Time,
	rng *rand.Rand) {
	t.Helper()
	ctx := context.Background()
	from, to = from.UTC().Truncate(time.Microsecond), to.UTC().Truncate(time.Microsecond)
	lines, _, err := timelines(ctx, in, tn, cs, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var got []Change
	want := []Change{}
	for _, c := range cs {
		all := allResults(t, in, tn, c.ID)
		tl := lines[c.ID]
		probes := []time.Time{from, to}
		for _, r := range all {
			for _, d := range []time.Duration{-time.Microsecond, 0, time.Microsecond, 2 * c.Frequency,
				2*c.Frequency + time.Microsecond} {
				probes = append(probes, r.at.Add(d))
			}
		}
		for at := from.Truncate(day).Add(day); at.Before(to); at = at.Add(day) {
			probes = append(probes, at)
		}
		for range 200 {
			probes = append(probes, from.Add(time.Duration(rng.Int64N(int64(to.Sub(from))))))
		}
		for _, p := range probes {
			if p.Before(from) || p.After(to) {
				continue
			}
			if g, w := tl.statusAt(p), referenceStatus(c, all, p); g != w {
				t.Errorf("%s at %s: %s, want %s", c.ID, p.Format(time.RFC3339Nano), g, w)
			}
		}
		cs := controlScore(tl, nil, to)
		var w ControlScore
		w.Control, w.Status = c.ID, referenceStatus(c, all, to)
		prev := NoEvidence
		// The reference counts a run for each interval of the control's
		// frequency holding results, by the worst of them.
		every := c.Frequency.Microseconds()
		if every <= 0 {
			every = (24 * time.Hour).Microseconds()
		}
		worst := map[int64]Status{}
		for _, r := range all {
			if !r.at.Before(from) && r.at.Before(to) {
				iv := r.at.UnixMicro() / every
				if w, ok := worst[iv]; !ok || r.status == Fail || (r.status == NoEvidence && w == Pass) {
					worst[iv] = r.status
				}
			}
		}
		for _, st := range worst {
			w.Runs++
			switch st {
			case Pass:
				w.Passed++
			case Fail:
				w.Failed++
			default:
				w.NoEvidence++
			}
		}
		for _, r := range all {
			if !r.at.Before(from) && r.at.Before(to) {
				if r.status != prev {
					want = append(want, Change{c.ID, prev, r.status, r.at})
				}
			}
			prev = r.status
		}
		if cs.Control != w.Control || cs.Status != w.Status || cs.Runs != w.Runs || cs.Passed != w.Passed ||
			cs.Failed != w.Failed || cs.NoEvidence != w.NoEvidence {
			t.Errorf("%s over [%s, %s): %+v, want %+v", c.ID, from, to, cs, w)
		}
		if len(tl.marks) > 10 && len(tl.marks) >= len(all) {
			t.Errorf("%s: %d marks for %d results: none left out", c.ID, len(tl.marks), len(all))
		}
	}
	got = changes(cs, lines, from, to)
	slices.SortStableFunc(want, func(a, b Change) int { return b.At.Compare(a.At) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes over [%s, %s) (-want +got):\n%s", from, to, diff)
	}
}

// allResults reads every result of control, ordered in Go by time and id.
func allResults(t *testing.T, in *instance.Instance, tn *tenant.Tenant, control string) []rawResult {
	t.Helper()
	rows, err := in.DB.Read.QueryContext(context.Background(), in.DB.Rebind(`SELECT id, status, checked_at
		FROM control_results WHERE tenant_id = ? AND control_id = ?`), tn.ID, control)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []rawResult
	for rows.Next() {
		var r rawResult
		var at int64
		if err := rows.Scan(&r.id, &r.status, &at); err != nil {
			t.Fatal(err)
		}
		r.at = micros(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b rawResult) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return out
}

// referenceStatus is the status of control c at p by Formula: its latest
// result at or before p, unless that is older than twice its frequency.
func referenceStatus(c *Control, all []rawResult, p time.Time) Status {
	var last *rawResult
	for i := range all {
		if !all[i].at.After(p) {
			last = &all[i]
		}
	}
	if last == nil || (c.Frequency > 0 && p.Sub(last.at) > 2*c.Frequency) {
		return NoEvidence
	}
	return last.status
}
