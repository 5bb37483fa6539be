package controls

import (
	"context"
	"slices"
	"time"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// Status is what a control's test found.
type Status string

// The results of a test. A test that finds nothing to judge reports
// NoEvidence, never Pass.
const (
	Pass       Status = "pass"
	Fail       Status = "fail"
	NoEvidence Status = "no_evidence"
)

// Finding names one resource a test found at fault, and how.
type Finding struct {
	Resource string `json:"resource"`
	Problem  string `json:"problem"`
}

// Result is one run of a control's test.
type Result struct {
	Control  string         `json:"control"`
	Status   Status         `json:"status"`
	Findings []Finding      `json:"findings"`
	Evidence map[string]any `json:"evidence"`
	// Remediation tells the person who must act what to do; set when the
	// control fails or lacks evidence.
	Remediation string    `json:"remediation,omitempty"`
	CheckedAt   time.Time `json:"checked_at"`
}

// Scope is what a test reads: the instance, the tenant whose state it
// judges (the operator's, for the operator's own SOC 2), and the time.
type Scope struct {
	In     *instance.Instance
	Tenant *tenant.Tenant
	Now    time.Time
}

// Test reads the real state of the system and judges it. It returns an
// error only when it could not look; what it saw, good or bad, is the
// Result.
type Test func(ctx context.Context, sc Scope) (*Result, error)

// Control is one control of the operator's SOC 2 programme.
type Control struct {
	ID          string
	Name        string
	Description string
	Owner       string // the role answerable for it
	Frequency   time.Duration
	Criteria    []string // the criteria it supports, by id
	Test        Test
	// Watches names the audit actions after which serve runs the test
	// again within seconds, as well as on its frequency.
	Watches []string
	// InstanceWide marks a control that judges the instance as a whole
	// (its listener, keys, backups, or every tenant's log): it belongs to
	// the operator's programme alone, and a customer tenant's catalog
	// leaves it out, so that no tenant learns of the instance or of the
	// others.
	InstanceWide bool
	// Manual, set for a control whose state attest cannot observe, says
	// what evidence a person must supply; the control's Test judges that
	// evidence.
	Manual *Manual
}

// Manual describes the evidence a person supplies for a control attest
// cannot observe. Evidence counts from its effective date until it
// expires, and only once someone other than its submitter approved it.
type Manual struct {
	// Requirement says what the evidence must show, for the person who
	// supplies it and the auditor who reads it.
	Requirement string
	// MaxAge bounds how long after its effective date a piece of evidence
	// may be set to expire: a yearly policy review, 366 days.
	MaxAge time.Duration
}

// Every names the control's frequency: hourly, daily, or the interval.
func (c *Control) Every() string {
	switch c.Frequency {
	case time.Hour:
		return "hourly"
	case 24 * time.Hour:
		return "daily"
	}
	return c.Frequency.String()
}

// InScope reports whether the control supports a criterion of one of the
// categories given.
func (c *Control) InScope(cats []Category) bool {
	for _, id := range c.Criteria {
		cr, ok := CriterionByID(id)
		if ok && slices.Contains(cats, cr.Category) {
			return true
		}
	}
	return false
}

// For returns the controls that judge tenant t: the whole catalog for the
// operator tenant, and for any other tenant the controls that are not
// instance-wide.
func For(t *tenant.Tenant) []*Control {
	if t.Name == tenant.Operator {
		return Catalog
	}
	var out []*Control
	for _, c := range Catalog {
		if !c.InstanceWide {
			out = append(out, c)
		}
	}
	return out
}

// ForByID returns the control id of tenant t's catalog and whether it is
// there.
func ForByID(t *tenant.Tenant, id string) (*Control, bool) {
	c, ok := ByID(id)
	if !ok || (c.InstanceWide && t.Name != tenant.Operator) {
		return nil, false
	}
	return c, true
}

// ByID returns a control of the catalog and whether it exists.
func ByID(id string) (*Control, bool) {
	for _, c := range Catalog {
		if c.ID == id {
			return c, true
		}
	}
	return nil, false
}

// result starts a Result of control id at now.
func result(id string, now time.Time) *Result {
	return &Result{Control: id, Findings: []Finding{}, Evidence: map[string]any{}, CheckedAt: now.UTC()}
}

// judge settles a result from what was examined and found: nothing
// examined is no evidence, a finding is a failure, and otherwise a pass.
func (r *Result) judge(examined int, remedy string) *Result {
	r.Evidence["examined"] = examined
	switch {
	case examined == 0:
		r.Status, r.Remediation = NoEvidence, "nothing this control watches exists yet: "+remedy
	case len(r.Findings) > 0:
		r.Status, r.Remediation = Fail, remedy
	default:
		r.Status = Pass
	}
	return r
}
