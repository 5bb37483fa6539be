package controls

import (
	"context"
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
