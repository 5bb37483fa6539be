package controls

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// Formula states the readiness score in words, for the API and reports.
const Formula = "readiness at T = 100 × the mean, over the criteria of the categories in scope, of the share of " +
	"each criterion's controls passing at T, rounded to one decimal; a control passes at T when its latest result " +
	"at or before T passed and is no older than twice the control's frequency (older is no evidence); a failure " +
	"under an approved exception counts 0 and is shown as excepted; a criterion without controls counts 0, but " +
	"for a customer tenant a criterion only the operator's instance-wide controls support is inherited: named, " +
	"and left out. " +
	"Effectiveness of a control = its passed runs ÷ its runs in [from, to), where the runs within one interval of " +
	"the control's frequency (aligned to the Unix epoch: an hour, a day) count as one, failed when any of them " +
	"failed, else without evidence when any lacked it, else passed; of a criterion or category, the mean over " +
	"its controls that ran. The trend is readiness at the end of each UTC day (each week past 400 days)."

// maxTrend bounds the points of a trend.
const maxTrend = 400

// Change is a control's status moving from one result to the next.
type Change struct {
	Control string    `json:"control"`
	From    Status    `json:"from"`
	To      Status    `json:"to"`
	At      time.Time `json:"at"`
}

// mark is one result on a control's timeline: its status and time, its
// place among the control's results of the period (1 for the first, 0 for
// the one before the period), and whether the control held its status
// without a break since the result before it: the same status, no older
// than twice the frequency by then.
type mark struct {
	status Status
	at     time.Time
	seq    int
	joined bool
}

// timeline is a control's results in time order: at most one before the
// period (the standing it began with), then those of the period up to and
// including its end where its standing may change: the first and the last
// of each run of results of one status without a break, and those at the
// end. A result left out lies between two joined marks of its status, and
// seq counts it.
type timeline struct {
	c     *Control
	marks []mark
	// runs counts the results of the period by interval of the control's
	// frequency, so that running a test again and again within one counts
	// once: effectiveness is how often the control held when due, not
	// how often someone ran it.
	runs runCount
}

// runCount counts runs by interval: the interval being gathered, the
// worst status seen in it, and the intervals settled so far.
type runCount struct {
	open                         bool
	interval                     int64
	worst                        Status
	runs, passed, failed, noEvid int
}

// add counts a result of status st at at, in microseconds, for a control
// run every every microseconds.
func (rc *runCount) add(st Status, at, every int64) {
	iv := at / every
	if rc.open && iv == rc.interval {
		if severity(st) > severity(rc.worst) {
			rc.worst = st
		}
		return
	}
	rc.settle()
	rc.open, rc.interval, rc.worst = true, iv, st
}

// settle counts the interval being gathered.
func (rc *runCount) settle() {
	if !rc.open {
		return
	}
	rc.open = false
	rc.runs++
	switch rc.worst {
	case Pass:
		rc.passed++
	case Fail:
		rc.failed++
	default:
		rc.noEvid++
	}
}

// severity orders statuses for an interval's count: a failure outweighs
// missing evidence, which outweighs a pass.
func severity(s Status) int {
	switch s {
	case Pass:
		return 0
	case Fail:
		return 2
	}
	return 1
}

// statusAt is the control's standing at t: its latest result at or
// before t, or no evidence when there is none or it is older than twice
// the control's frequency. Within a run of joined marks, the results left
// out keep the status current.
func (tl *timeline) statusAt(t time.Time) Status {
	i, _ := slices.BinarySearchFunc(tl.marks, t, func(m mark, t time.Time) int {
		if m.at.After(t) {
			return 1
		}
		return -1
	})
	if i == 0 {
		return NoEvidence
	}
	m := tl.marks[i-1]
	if i < len(tl.marks) && tl.marks[i].joined {
		return m.status
	}
	if stale(tl.c, m.at, t) {
		return NoEvidence
	}
	return m.status
}

// stale reports whether a result checked at was too old at t to count.
func stale(c *Control, at, t time.Time) bool {
	return c.Frequency > 0 && t.Sub(at) > 2*c.Frequency
}

// Score computes tenant t's scorecard over [from, to): readiness and
// status at to, the effectiveness of each control, criterion and category
// in scope over the period, the status changes and the daily trend. It
// reads the tenant's settings, its exceptions and, in two queries, the
// latest result of each control before the period and at its end, and
// the status and time of each result of the period, gathered by control;
// it keeps of those only where a standing may change. Formula states the rules.
func Score(ctx context.Context, in *instance.Instance, t *tenant.Tenant, from, to time.Time) (*Scorecard, error) {
	return scoreOf(ctx, in, t, from, to, For(t))
}

// scoreOf is Score over the controls of catalog.
func scoreOf(ctx context.Context, in *instance.Instance, t *tenant.Tenant, from, to time.Time,
	catalog []*Control) (*Scorecard, error) {
	from, to = from.UTC(), to.UTC()
	if !from.Before(to) {
		return nil, fmt.Errorf("controls: score: from %s is not before to %s", from.Format(time.RFC3339),
			to.Format(time.RFC3339))
	}
	set, err := LoadSettings(ctx, in.DB, in.DB.Read, t.ID)
	if err != nil {
		return nil, err
	}
	var scoped []*Control
	for _, c := range catalog {
		if c.InScope(set.Categories) {
			scoped = append(scoped, c)
		}
	}
	lines, latest, err := timelines(ctx, in, t, scoped, from, to)
	if err != nil {
		return nil, err
	}
	exs, err := Exceptions(ctx, in, t)
	if err != nil {
		return nil, err
	}
	sc := &Scorecard{From: from, To: to, Categories: set.Categories, Formula: Formula}
	byID := map[string]*ControlScore{}
	for _, c := range scoped {
		cs := controlScore(lines[c.ID], latest[c.ID], to)
		cs.Excepted = activeException(exs, c.ID, to)
		sc.Controls = append(sc.Controls, cs)
		byID[c.ID] = cs
	}
	crits := criteriaIn(set.Categories, scoped)
	// A customer tenant's criteria that only the operator's instance-wide
	// controls support are the operator's to meet, not the tenant's: they
	// are named as inherited and left out of its scores.
	if t.Name != tenant.Operator {
		crits = slices.DeleteFunc(crits, func(cr scopedCriterion) bool {
			if len(cr.controls) == 0 && coveredBy(Catalog, cr.ID) {
				sc.Inherited = append(sc.Inherited, cr.ID)
				return true
			}
			return false
		})
	}
	sc.Criteria = criterionScores(crits, byID)
	sc.Readiness = readinessAt(crits, lines, to)
	for _, cat := range set.Categories {
		sc.ByCategory = append(sc.ByCategory, categoryScore(cat, crits, byID, lines, to))
	}
	sc.Trend = trend(crits, lines, from, to)
	sc.Changes = changes(scoped, lines, from, to)
	return sc, nil
}

// ScoreControl is one control's record over [from, to) for tenant t, in
// scope or not, by the rules of Score: its standing at to, its runs and
// effectiveness, and the exception holding at to.
func ScoreControl(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id string, from,
	to time.Time) (*ControlScore, error) {
	c, ok := ForByID(t, id)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownControl, id)
	}
	from, to = from.UTC(), to.UTC()
	lines, latest, err := timelines(ctx, in, t, []*Control{c}, from, to)
	if err != nil {
		return nil, err
	}
	exs, err := Exceptions(ctx, in, t)
	if err != nil {
		return nil, err
	}
	cs := controlScore(lines[id], latest[id], to)
	cs.Excepted = activeException(exs, id, to)
	return cs, nil
}

// controlScore gives a control's runs of [from, to), counted by
// interval, and settles its standing at to.
func controlScore(tl *timeline, latest *Stored, to time.Time) *ControlScore {
	cs := &ControlScore{Control: tl.c.ID, Status: tl.statusAt(to), Latest: latest}
	rc := tl.runs
	rc.settle()
	cs.Runs, cs.Passed, cs.Failed, cs.NoEvidence = rc.runs, rc.passed, rc.failed, rc.noEvid
	if cs.Runs > 0 {
		e := float64(cs.Passed) / float64(cs.Runs)
		cs.Effectiveness = &e
	}
	return cs
}

// scopedCriterion is a criterion in scope and its controls in scope.
type scopedCriterion struct {
	Criterion
	controls []string
}

// criteriaIn lists the criteria of cats, in catalog order, each with the
// controls of scoped that support it.
// coveredBy reports whether a control of catalog supports criterion id.
func coveredBy(catalog []*Control, id string) bool {
	return slices.ContainsFunc(catalog, func(c *Control) bool { return slices.Contains(c.Criteria, id) })
}

func criteriaIn(cats []Category, scoped []*Control) []scopedCriterion {
	var out []scopedCriterion
	for _, cr := range Criteria {
		if !slices.Contains(cats, cr.Category) {
			continue
		}
		sc := scopedCriterion{Criterion: cr, controls: []string{}}
		for _, c := range scoped {
			if slices.Contains(c.Criteria, cr.ID) {
				sc.controls = append(sc.controls, c.ID)
			}
		}
		out = append(out, sc)
	}
	return out
}

func criterionScores(crits []scopedCriterion, byID map[string]*ControlScore) []*CriterionScore {
	out := make([]*CriterionScore, 0, len(crits))
	for _, cr := range crits {
		s := &CriterionScore{Criterion: cr.ID, Controls: cr.controls, Status: NoEvidence}
		var sts []Status
		var effs []*float64
		for _, id := range cr.controls {
			sts = append(sts, byID[id].Status)
			effs = append(effs, byID[id].Effectiveness)
		}
		s.Passing = share(sts)
		s.Effectiveness = mean(effs)
		switch {
		case slices.Contains(sts, Fail):
			s.Status = Fail
		case len(sts) > 0 && !slices.Contains(sts, NoEvidence):
			s.Status = Pass
		}
		out = append(out, s)
	}
	return out
}

// share is the fraction of sts that are Pass; 0 when sts is empty.
func share(sts []Status) float64 {
	if len(sts) == 0 {
		return 0
	}
	n := 0
	for _, s := range sts {
		if s == Pass {
			n++
		}
	}
	return float64(n) / float64(len(sts))
}

// mean is the mean of the values present; nil when none is.
func mean(vs []*float64) *float64 {
	sum, n := 0.0, 0
	for _, v := range vs {
		if v != nil {
			sum += *v
			n++
		}
	}
	if n == 0 {
		return nil
	}
	m := sum / float64(n)
	return &m
}

// readinessAt is 100 × the mean of the criteria's passing shares at t,
// rounded to one decimal; 0 without criteria.
func readinessAt(crits []scopedCriterion, lines map[string]*timeline, t time.Time) float64 {
	if len(crits) == 0 {
		return 0
	}
	sum := 0.0
	for _, cr := range crits {
		sts := make([]Status, len(cr.controls))
		for i, id := range cr.controls {
			sts[i] = lines[id].statusAt(t)
		}
		sum += share(sts)
	}
	return math.Round(1000*sum/float64(len(crits))) / 10
}

func categoryScore(cat Category, crits []scopedCriterion, byID map[string]*ControlScore, lines map[string]*timeline,
	to time.Time) *CategoryScore {
	var own []scopedCriterion
	seen := map[string]bool{}
	var effs []*float64
	for _, cr := range crits {
		if cr.Category != cat {
			continue
		}
		own = append(own, cr)
		for _, id := range cr.controls {
			if !seen[id] {
				seen[id] = true
				effs = append(effs, byID[id].Effectiveness)
			}
		}
	}
	return &CategoryScore{Category: cat, Readiness: readinessAt(own, lines, to), Effectiveness: mean(effs)}
}

// trend is readiness at the end of each UTC day from from to to, the last
// point at to; when that makes more than maxTrend points, at the end of
// each week, or of as few weeks at a time as keep within maxTrend.
func trend(crits []scopedCriterion, lines map[string]*timeline, from, to time.Time) []TrendPoint {
	start := from.Truncate(day)
	points := func(step time.Duration) int { return int((to.Sub(start)-1)/step) + 1 }
	step := day
	for w := time.Duration(1); points(step) > maxTrend; w++ {
		step = 7 * day * w
	}
	out := make([]TrendPoint, 0, points(step))
	for at := start.Add(step); at.Before(to); at = at.Add(step) {
		out = append(out, TrendPoint{At: at, Readiness: readinessAt(crits, lines, at)})
	}
	return append(out, TrendPoint{At: to, Readiness: readinessAt(crits, lines, to)})
}

// changes lists the status changes of the controls' results in
// [from, to), newest first: a result whose status differs from the
// control's previous result, or, for its first result ever, from no
// evidence.
func changes(scoped []*Control, lines map[string]*timeline, from, to time.Time) []Change {
	out := []Change{}
	for _, c := range scoped {
		prev := NoEvidence
		for _, m := range lines[c.ID].marks {
			if m.status != prev && !m.at.Before(from) && m.at.Before(to) {
				out = append(out, Change{Control: c.ID, From: prev, To: m.status, At: m.at})
			}
			prev = m.status
		}
	}
	slices.SortStableFunc(out, func(a, b Change) int { return b.At.Compare(a.At) })
	return out
}

// activeException is the first of exs for control that holds at t.
func activeException(exs []*Exception, control string, t time.Time) *Exception {
	for _, e := range exs {
		if e.Control == control && e.ActiveAt(t) {
			return e
		}
	}
	return nil
}

// timelines reads the timelines of the controls for tenant t over
// [from, to], and in full the latest result of each at or before to, in
// two queries.
func timelines(ctx context.Context, in *instance.Instance, t *tenant.Tenant, cs []*Control, from,
	to time.Time) (map[string]*timeline, map[string]*Stored, error) {
	lines := map[string]*timeline{}
	for _, c := range cs {
		lines[c.ID] = &timeline{c: c}
	}
	f, u := from.UnixMicro(), to.UnixMicro()
	latest, err := anchors(ctx, in, t, cs, lines, f, u)
	if err != nil {
		return nil, nil, err
	}
	return lines, latest, periodMarks(ctx, in, t, cs, lines, f, u)
}

// anchors reads, in one query of an index seek for each, the latest result
// of each control before f, which it marks on the control's timeline, and
// the latest at or before u, which it returns by control.
func anchors(ctx context.Context, in *instance.Instance, t *tenant.Tenant, cs []*Control, lines map[string]*timeline,
	f, u int64) (map[string]*Stored, error) {
	latest := map[string]*Stored{}
	if len(cs) == 0 {
		return latest, nil
	}
	const one = `SELECT id, control_id, result, sha256, checked_at FROM (SELECT id, control_id, result, sha256, checked_at
		FROM control_results WHERE tenant_id = ? AND control_id = ? AND checked_at %s ?
		ORDER BY checked_at DESC, id DESC LIMIT 1) AS %s`
	var parts []string
	var args []any
	for i, c := range cs {
		parts = append(parts, fmt.Sprintf(one, "<", fmt.Sprintf("b%d", i)), fmt.Sprintf(one, "<=", fmt.Sprintf("l%d", i)))
		args = append(args, t.ID, c.ID, f, t.ID, c.ID, u)
	}
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(strings.Join(parts, " UNION ALL ")), args...)
	if err != nil {
		return nil, fmt.Errorf("controls: read latest results: %w", err)
	}
	defer rows.Close()
	anchored := map[string]bool{}
	for rows.Next() {
		var id, control string
		var b, sum []byte
		var at int64
		if err := rows.Scan(&id, &control, &b, &sum, &at); err != nil {
			return nil, fmt.Errorf("controls: read result: %w", err)
		}
		r := &Result{}
		if err := json.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("controls: read result %s: %w", id, err)
		}
		if at < f && !anchored[control] {
			anchored[control] = true
			lines[control].marks = append(lines[control].marks, mark{status: r.Status, at: micros(at)})
		}
		if l := latest[control]; l == nil || r.CheckedAt.After(l.CheckedAt) {
			latest[control] = &Stored{ID: id, SHA256: hex.EncodeToString(sum), Result: r}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read latest results: %w", err)
	}
	return latest, nil
}

// periodMarks appends to each timeline the marks of [f, u], in
// microseconds. The database gathers each control's results of the
// period into one text, in time order, and this walks it.
func periodMarks(ctx context.Context, in *instance.Instance, t *tenant.Tenant, cs []*Control,
	lines map[string]*timeline, f, u int64) error {
	if len(cs) == 0 {
		return nil
	}
	ids := make([]string, len(cs))
	args := []any{t.ID, f, u}
	for i, c := range cs {
		ids[i] = "?"
		args = append(args, c.ID)
	}
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(`SELECT control_id,
		string_agg(CAST(checked_at AS TEXT) || status, ',' ORDER BY checked_at, id) FROM control_results
		WHERE tenant_id = ? AND checked_at >= ? AND checked_at <= ? AND control_id IN (`+strings.Join(ids, ", ")+`)
		GROUP BY control_id`), args...)
	if err != nil {
		return fmt.Errorf("controls: read results: %w", err)
	}
	defer rows.Close()
	end := micros(u)
	for rows.Next() {
		var control string
		var list sql.RawBytes
		if err := rows.Scan(&control, &list); err != nil {
			return fmt.Errorf("controls: read results: %w", err)
		}
		if err := lines[control].addList(list, end); err != nil {
			return fmt.Errorf("controls: read results of %s: %w", control, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("controls: read results: %w", err)
	}
	return nil
}

// addList adds to the timeline the results of list, in time order, each
// its time in microseconds followed by its status, separated by commas.
func (tl *timeline) addList(list []byte, end time.Time) error {
	for seq := 1; len(list) > 0; seq++ {
		item := list
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		i := 0
		var at int64
		for ; i < len(item) && item[i] >= '0' && item[i] <= '9'; i++ {
			at = 10*at + int64(item[i]-'0')
		}
		if i == 0 || i == len(item) {
			return fmt.Errorf("malformed result %q", item)
		}
		st := status(item[i:])
		tl.add(st, micros(at), seq, end)
		if at < end.UnixMicro() {
			tl.runs.add(st, at, tl.every())
		}
	}
	return nil
}

// every is the control's frequency in microseconds; a day for a control
// that names none.
func (tl *timeline) every() int64 {
	if f := tl.c.Frequency.Microseconds(); f > 0 {
		return f
	}
	return (24 * time.Hour).Microseconds()
}

// status is the Status named b.
func status(b []byte) Status {
	switch string(b) {
	case string(Pass):
		return Pass
	case string(Fail):
		return Fail
	case string(NoEvidence):
		return NoEvidence
	}
	return Status(b)
}

// add appends the seq-th result of the period, of status st checked at
// at, to the timeline; in place of the last mark when that one lies
// within a run of its status, joined to the result before it and to this
// one, and before end.
func (tl *timeline) add(st Status, at time.Time, seq int, end time.Time) {
	m := mark{status: st, at: at, seq: seq}
	if n := len(tl.marks); n > 0 {
		b := tl.marks[n-1]
		m.joined = b.status == st && !stale(tl.c, b.at, at)
		if m.joined && b.joined && b.at.Before(end) {
			tl.marks[n-1] = m
			return
		}
	}
	tl.marks = append(tl.marks, m)
}

// Uncovered lists the criteria of cats that no control of the catalog
// supports, in order. A complete catalog has none.
func Uncovered(cats []Category) []string { return uncovered(Catalog, cats) }

func uncovered(catalog []*Control, cats []Category) []string {
	var out []string
	for _, cr := range criteriaIn(cats, catalog) {
		if len(cr.controls) == 0 {
			out = append(out, cr.ID)
		}
	}
	return out
}
