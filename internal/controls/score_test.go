package controls

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/google/go-cmp/cmp"
)

// seed is a stored result to insert: a control, a status, and how long
// before the end of the period it was checked.
type seed struct {
	control string
	status  Status
	before  time.Duration
}

// putResult stores a result of control for tenant t checked at at, as
// Validate would, with a finding and a remedy when it failed.
func putResult(t *testing.T, in *instance.Instance, tn *tenant.Tenant, control string, st Status, at time.Time) {
	t.Helper()
	r := result(control, at)
	r.Status = st
	if st == Fail {
		r.Findings = append(r.Findings, Finding{Resource: "user:u1", Problem: "at fault"})
		r.Remediation = "mend " + control
	}
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	id := "res_" + control + "_" + at.Format("20060102T150405.000000")
	if _, err := in.DB.Write.ExecContext(context.Background(), in.DB.Rebind(`INSERT INTO control_results (id, tenant_id,
		control_id, status, result, sha256, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)`), id, tn.ID, control, string(st), b,
		sum[:], at.UnixMicro()); err != nil {
		t.Fatal(err)
	}
}

// putException stores an exception of control; approved and revoked are
// the times of those steps, zero when not taken.
func putException(t *testing.T, in *instance.Instance, tn *tenant.Tenant, id, control string, starts, expires,
	approved, revoked time.Time) {
	t.Helper()
	opt := func(at time.Time, who string) (any, any) {
		if at.IsZero() {
			return nil, nil
		}
		return who, at.UnixMicro()
	}
	appBy, appAt := opt(approved, "approver")
	revBy, revAt := opt(revoked, "revoker")
	if _, err := in.DB.Write.ExecContext(context.Background(), in.DB.Rebind(`INSERT INTO control_exceptions (id, tenant_id,
		control_id, reason, compensating, requested_by, requested_at, starts_at, expires_at, approved_by, approved_at,
		revoked_by, revoked_at) VALUES (?, ?, ?, 'accepted risk', '', 'requester', ?, ?, ?, ?, ?, ?, ?)`), id, tn.ID, control,
		starts.UnixMicro(), starts.UnixMicro(), expires.UnixMicro(), appBy, appAt, revBy, revAt); err != nil {
		t.Fatal(err)
	}
}

// seeded opens an instance whose operator tenant covers Security and
// Confidentiality and holds the results below, all timed back from end;
// the default tenant holds a failure that must not count.
func seeded(t *testing.T, opts storetest.Options, end time.Time) (*instance.Instance, *tenant.Tenant) {
	t.Helper()
	ctx := context.Background()
	in, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL, Name: "test.example/attest",
		Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	op, err := in.Tenants.ByName(ctx, tenant.Operator)
	if err != nil {
		t.Fatal(err)
	}
	err = in.DB.InTx(ctx, func(tx *sql.Tx) error {
		return SaveSettings(ctx, in.DB, tx, op.ID, &Settings{Categories: []Category{Security, Confidentiality}}, end)
	})
	if err != nil {
		t.Fatal(err)
	}
	h := time.Hour
	for _, s := range []seed{
		{"IAM-01", Fail, 80 * h}, {"IAM-01", Pass, 50 * h}, {"IAM-01", Fail, 30 * h}, {"IAM-01", Pass, h / 2},
		{"IAM-02", Pass, 72 * h},
		{"IAM-03", Pass, 60 * h}, {"IAM-03", Fail, h},
		{"IAM-04", Pass, 48*h + h/2}, {"IAM-04", Pass, 24*h + h/2}, {"IAM-04", Pass, h},
		{"LOG-01", NoEvidence, 47 * h}, {"LOG-01", Pass, 10 * time.Minute},
		{"RET-01", Pass, 90 * h}, {"RET-01", Pass, 12 * h},
	} {
		putResult(t, in, op, s.control, s.status, end.Add(-s.before))
	}
	// IAM-03's failure is an accepted risk; IAM-02's exception was
	// revoked and IAM-04's was never approved: neither holds.
	putException(t, in, op, "exc_a", "IAM-03", end.Add(-2*h), end.Add(240*h), end.Add(-2*h), time.Time{})
	putException(t, in, op, "exc_b", "IAM-02", end.Add(-5*h), end.Add(240*h), end.Add(-5*h), end.Add(-4*h))
	putException(t, in, op, "exc_c", "IAM-04", end.Add(-5*h), end.Add(240*h), time.Time{}, time.Time{})
	def, err := in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	putResult(t, in, def, "RET-01", Fail, end.Add(-h/4))
	return in, op
}

// TestScoreByHand checks Score against readiness worked out by hand, over
// the seven identity controls (the hand figures hold whatever else the
// catalog gains).
//
// The period is [end-72h, end); scope is Security (33 criteria) and
// Confidentiality (2), 35 criteria. Twice each frequency: 2h for the
// hourly IAM-01, IAM-04 and LOG-01, 48h for the daily IAM-02, IAM-03,
// IAM-05 and RET-01.
//
// At end: IAM-01 pass (30m old); IAM-02 no evidence (its pass is 72h old,
// past 48h); IAM-03 fail, excepted (counts 0); IAM-04 pass; IAM-05 never
// ran; LOG-01 pass; RET-01 pass.
//
//	CC6.1 IAM-01 IAM-02               1/2
//	CC6.2 IAM-01 IAM-03 IAM-04 IAM-05 2/4
//	CC6.3 IAM-03 IAM-04 IAM-05        1/3
//	CC4.1 IAM-05 LOG-01               1/2
//	CC7.2 LOG-01 RET-01               2/2
//	C1.2  RET-01                      1/1
//	the other 29 criteria             0
//
// sum = 0.5 + 0.5 + 0.3333 + 0.5 + 1 + 1 = 3.8333; 100 × 3.8333 / 35 =
// 10.952, rounded 11.0. Security alone: 2.8333 / 33 = 8.586 → 8.6;
// Confidentiality: (0 + 1) / 2 → 50.0.
//
// Trend, at end-48h: IAM-01 pass (50h result, 2h old: not older than
// twice its frequency), IAM-02 pass, IAM-03 pass, IAM-04 pass, IAM-05
// none, LOG-01 none yet, RET-01 pass (42h old): CC6.1 2/2, CC6.2 3/4,
// CC6.3 2/3, CC4.1 0/2, CC7.2 1/2, C1.2 1/1: sum 3.9167 / 35 → 11.2.
// At end-24h: IAM-01 0 (its failure is 6h old: stale), IAM-02 pass (48h
// old, exactly twice), IAM-03 pass (36h), IAM-04 pass, LOG-01 0 (no
// evidence), RET-01 0 (66h old): CC6.1 1/2, CC6.2 2/4, CC6.3 2/3, the rest
// 0: sum 1.6667 / 35 → 4.8.
//
// Effectiveness over [end-72h, end): IAM-01 2 of 3 runs (its 80h failure
// is before the period), IAM-02 1/1, IAM-03 1/2, IAM-04 3/3, IAM-05 none,
// LOG-01 1/2, RET-01 1/1 (its 90h pass is before the period). Security,
// over the six that ran: (2/3 + 1 + 1/2 + 1 + 1/2 + 1) / 6 = 0.7778;
// CC6.2: (2/3 + 1/2 + 1) / 3 = 0.7222.
func TestScoreByHand(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		end := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
		in, op := seeded(t, opts, end)
		sc, err := scoreOf(context.Background(), in, op, end.Add(-72*time.Hour), end, identityControls)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Readiness != 11.0 {
			t.Errorf("readiness %v, want 11.0", sc.Readiness)
		}
		if len(sc.Criteria) != 35 {
			t.Errorf("%d criteria in scope, want 35", len(sc.Criteria))
		}
		byCat := map[Category]*CategoryScore{}
		for _, c := range sc.ByCategory {
			byCat[c.Category] = c
		}
		if got := byCat[Security]; got == nil || got.Readiness != 8.6 || !near(got.Effectiveness, 4.6667/6) {
			t.Errorf("security %+v, want readiness 8.6 and effectiveness 0.7778", got)
		}
		if got := byCat[Confidentiality]; got == nil || got.Readiness != 50 || !near(got.Effectiveness, 1) {
			t.Errorf("confidentiality %+v, want readiness 50 and effectiveness 1", got)
		}
		wantTrend := []TrendPoint{{end.Add(-48 * time.Hour), 11.2}, {end.Add(-24 * time.Hour), 4.8}, {end, 11.0}}
		if diff := cmp.Diff(wantTrend, sc.Trend); diff != "" {
			t.Errorf("trend (-want +got):\n%s", diff)
		}
		checkControls(t, sc)
		for _, want := range sc.Controls {
			got, err := ScoreControl(context.Background(), in, op, want.Control, sc.From, sc.To)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ScoreControl(%s) differs from Score (-Score +ScoreControl):\n%s", want.Control, diff)
			}
		}
		if _, err := ScoreControl(context.Background(), in, op, "NOPE-1", sc.From, sc.To); !errors.Is(err,
			ErrUnknownControl) {
			t.Errorf("ScoreControl of an unknown control: %v", err)
		}
		checkCriteria(t, sc)
		checkChanges(t, sc, end)
	})
}

func checkControls(t *testing.T, sc *Scorecard) {
	t.Helper()
	want := map[string]struct {
		status     Status
		runs, pass int
		eff        float64 // -1: none
		excepted   bool
		latest     time.Duration // before the end; -1: none
	}{
		"IAM-01": {Pass, 3, 2, 2.0 / 3, false, 30 * time.Minute},
		"IAM-02": {NoEvidence, 1, 1, 1, false, 72 * time.Hour},
		"IAM-03": {Fail, 2, 1, 0.5, true, time.Hour},
		"IAM-04": {Pass, 3, 3, 1, false, time.Hour},
		"IAM-05": {NoEvidence, 0, 0, -1, false, -1},
		"LOG-01": {Pass, 2, 1, 0.5, false, 10 * time.Minute},
		"RET-01": {Pass, 1, 1, 1, false, 12 * time.Hour},
	}
	if len(sc.Controls) != len(want) {
		t.Errorf("%d controls, want %d", len(sc.Controls), len(want))
	}
	for _, c := range sc.Controls {
		w := want[c.Control]
		if c.Status != w.status || c.Runs != w.runs || c.Passed != w.pass || (c.Excepted != nil) != w.excepted {
			t.Errorf("%s: %s, %d runs, %d passed, excepted %v; want %+v", c.Control, c.Status, c.Runs, c.Passed,
				c.Excepted != nil, w)
		}
		if (w.eff < 0) != (c.Effectiveness == nil) || (w.eff >= 0 && !near(c.Effectiveness, w.eff)) {
			t.Errorf("%s effectiveness %v, want %v", c.Control, c.Effectiveness, w.eff)
		}
		if w.latest < 0 {
			if c.Latest != nil {
				t.Errorf("%s has a latest result, want none", c.Control)
			}
			continue
		}
		if c.Latest == nil || sc.To.Sub(c.Latest.CheckedAt) != w.latest {
			t.Errorf("%s latest %+v, want %v before the end", c.Control, c.Latest, w.latest)
		}
	}
}

func checkCriteria(t *testing.T, sc *Scorecard) {
	t.Helper()
	want := map[string]struct {
		passing float64
		eff     float64
		status  Status
	}{
		"CC6.1": {0.5, (2.0/3 + 1) / 2, NoEvidence},
		"CC6.2": {0.5, (2.0/3 + 0.5 + 1) / 3, Fail},
		"CC6.3": {1.0 / 3, (0.5 + 1) / 2, Fail},
		"CC4.1": {0.5, 0.5, NoEvidence},
		"CC7.2": {1, 0.75, Pass},
		"C1.2":  {1, 1, Pass},
	}
	for _, c := range sc.Criteria {
		w, ok := want[c.Criterion]
		if !ok {
			if c.Passing != 0 || c.Effectiveness != nil || len(c.Controls) != 0 || c.Status != NoEvidence {
				t.Errorf("%s, without controls here: %+v", c.Criterion, c)
			}
			continue
		}
		if math.Abs(c.Passing-w.passing) > 1e-9 || !near(c.Effectiveness, w.eff) || c.Status != w.status {
			t.Errorf("%s: passing %v, effectiveness %v, %s; want %+v", c.Criterion, c.Passing, c.Effectiveness,
				c.Status, w)
		}
	}
}

func checkChanges(t *testing.T, sc *Scorecard, end time.Time) {
	t.Helper()
	h := time.Hour
	at := func(d time.Duration) time.Time { return end.Add(-d) }
	want := []Change{
		{"LOG-01", NoEvidence, Pass, at(10 * time.Minute)},
		{"IAM-01", Fail, Pass, at(h / 2)},
		{"IAM-03", Pass, Fail, at(h)},
		{"IAM-01", Pass, Fail, at(30 * h)},
		{"IAM-04", NoEvidence, Pass, at(48*h + h/2)},
		{"IAM-01", Fail, Pass, at(50 * h)},
		{"IAM-03", NoEvidence, Pass, at(60 * h)},
		{"IAM-02", NoEvidence, Pass, at(72 * h)},
	}
	if diff := cmp.Diff(want, sc.Changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

func near(v *float64, want float64) bool { return v != nil && math.Abs(*v-want) < 1e-4 }

// TestScoreScope leaves Confidentiality out: RET-01 still counts through
// CC7.2, C1.1 and C1.2 no longer do, and the default tenant's failure never
// counts.
func TestScoreScope(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		end := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
		in, op := seeded(t, opts, end)
		err := in.DB.InTx(ctx, func(tx *sql.Tx) error {
			return SaveSettings(ctx, in.DB, tx, op.ID, DefaultSettings(), end)
		})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := scoreOf(ctx, in, op, end.Add(-72*time.Hour), end, identityControls)
		if err != nil {
			t.Fatal(err)
		}
		// 2.8333 / 33 criteria → 8.6.
		if sc.Readiness != 8.6 || len(sc.Criteria) != 33 || len(sc.ByCategory) != 1 {
			t.Errorf("security alone: readiness %v over %d criteria, %d categories; want 8.6, 33, 1", sc.Readiness,
				len(sc.Criteria), len(sc.ByCategory))
		}
		if _, err := scoreOf(ctx, in, op, end, end, identityControls); err == nil {
			t.Error("an empty period was scored")
		}
	})
}

// TestScoreFullCatalog scores with the whole catalog: the last trend point
// is the readiness, and every control of the catalog in scope is there.
func TestScoreFullCatalog(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		end := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
		in, op := seeded(t, opts, end)
		sc, err := Score(context.Background(), in, op, end.Add(-90*24*time.Hour), end)
		if err != nil {
			t.Fatal(err)
		}
		if len(sc.Trend) != 90 || sc.Trend[89].Readiness != sc.Readiness || !sc.Trend[89].At.Equal(end) {
			t.Errorf("%d trend points ending %+v, want 90 ending at readiness %v", len(sc.Trend), sc.Trend[len(sc.Trend)-1],
				sc.Readiness)
		}
		n := 0
		for _, c := range Catalog {
			if c.InScope(sc.Categories) {
				n++
			}
		}
		if len(sc.Controls) != n {
			t.Errorf("%d controls scored, want the %d in scope", len(sc.Controls), n)
		}
	})
}

// TestTrendSteps keeps a long trend within its bound, in whole weeks.
func TestTrendSteps(t *testing.T) {
	end := time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		days, points int
		step         time.Duration
	}{
		{1, 2, day}, {2, 3, day}, {399, 400, day}, {400, 58, 7 * day}, {2799, 400, 7 * day}, {2800, 201, 14 * day},
	} {
		tr := trend(nil, nil, end.Add(-time.Duration(tc.days)*day), end)
		if len(tr) != tc.points || !tr[len(tr)-1].At.Equal(end) {
			t.Errorf("%d days: %d points ending %v, want %d ending at %v", tc.days, len(tr), tr[len(tr)-1].At, tc.points, end)
			continue
		}
		if len(tr) > 2 && tr[1].At.Sub(tr[0].At) != tc.step {
			t.Errorf("%d days: step %v, want %v", tc.days, tr[1].At.Sub(tr[0].At), tc.step)
		}
	}
}

// TestUncovered finds the criteria no control supports.
func TestUncovered(t *testing.T) {
	got := uncovered(identityControls, []Category{Confidentiality})
	if diff := cmp.Diff([]string{"C1.1"}, got); diff != "" {
		t.Errorf("uncovered confidentiality criteria (-want +got):\n%s", diff)
	}
}

// TestRerunsCountOnce checks that running a control again and again
// within one interval of its frequency counts as one run, the worst of
// them: effectiveness measures how the control held, not how often
// someone ran it.
func TestRerunsCountOnce(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	end := time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)
	in, err := instance.Open(context.Background(), instance.Options{DataDir: opts.DataDir, Name: "test.example/attest",
		Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	op, err := in.Tenants.ByName(context.Background(), tenant.Operator)
	if err != nil {
		t.Fatal(err)
	}
	// IAM-01 runs hourly: it failed at 09:10, then passed fifty times
	// between 10:00 and 10:50, and once more at 11:30, after failing at
	// 11:20 in the same hour.
	putResult(t, in, op, "IAM-01", Fail, end.Add(-170*time.Minute))
	for i := range 50 {
		putResult(t, in, op, "IAM-01", Pass, end.Add(-2*time.Hour+time.Duration(i)*time.Minute))
	}
	putResult(t, in, op, "IAM-01", Fail, end.Add(-40*time.Minute))
	putResult(t, in, op, "IAM-01", Pass, end.Add(-30*time.Minute))
	cs, err := ScoreControl(context.Background(), in, op, "IAM-01", end.Add(-24*time.Hour), end)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Runs != 3 || cs.Passed != 1 || cs.Failed != 2 || cs.Effectiveness == nil || *cs.Effectiveness != 1.0/3 {
		t.Errorf("IAM-01 scored %d runs, %d passed, %d failed, effectiveness %v; want 3, 1, 2 and 1/3", cs.Runs,
			cs.Passed, cs.Failed, cs.Effectiveness)
	}
	if cs.Status != Pass {
		t.Errorf("IAM-01 stands at %s, want pass", cs.Status)
	}
}

// TestCustomerInheritsInstanceCriteria checks that a customer tenant's
// criteria that only instance-wide controls support are named as
// inherited and left out of its scores, so that the tenant can reach 100,
// while the operator's scores keep every criterion.
func TestCustomerInheritsInstanceCriteria(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	end := time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)
	in, err := instance.Open(context.Background(), instance.Options{DataDir: opts.DataDir, Name: "test.example/attest",
		Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	def, err := in.Tenants.ByName(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range For(def) {
		putResult(t, in, def, c.ID, Pass, end.Add(-time.Minute))
	}
	sc, err := Score(context.Background(), in, def, end.Add(-24*time.Hour), end)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sc.Inherited, "CC6.6") || !slices.Contains(sc.Inherited, "CC6.7") {
		t.Errorf("inherited %v, want CC6.6 and CC6.7 among them", sc.Inherited)
	}
	for _, cr := range sc.Criteria {
		if len(cr.Controls) == 0 || slices.Contains(sc.Inherited, cr.Criterion) {
			t.Errorf("criterion %s is scored with controls %v", cr.Criterion, cr.Controls)
		}
	}
	if sc.Readiness != 100 {
		t.Errorf("every control of the tenant passes, and readiness is %v, want 100", sc.Readiness)
	}
	op, err := in.Tenants.ByName(context.Background(), tenant.Operator)
	if err != nil {
		t.Fatal(err)
	}
	if osc, err := Score(context.Background(), in, op, end.Add(-24*time.Hour), end); err != nil || len(osc.Inherited) != 0 ||
		len(osc.Criteria) != 33 {
		t.Errorf("the operator's scorecard: %v inherited, %d criteria, %v; want none and 33", osc.Inherited,
			len(osc.Criteria), err)
	}
}
