// Package report builds a tenant's SOC 2 report for an audit period: the
// system description as far as attest's own configuration tells it, each
// criterion in scope with its controls and their record over the period,
// the populations an auditor samples from, reproducible sample draws, and a
// manifest signed with the log's key that pins all of it to a signed
// checkpoint of the tenant's audit trail.
//
// A report is a Bundle of files: report.json (the Report), report.html,
// one CSV per population and manifest.json with its signature manifest.sig.
// The PDF and OSCAL renderings are made from the same Report.
package report

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// Kind names the report in its JSON.
const Kind = "soc2"

// Options choose a report's period and its sample seed.
type Options struct {
	// From and To bound the period, [From, To). Required.
	From, To time.Time
	// Seed seeds the sample draws; nil draws a random one. The seed is in
	// the report, so the same draws can be made again.
	Seed []byte
	// Version is attest's version, for the system description.
	Version string
	// Progress, when set, is told each step as it starts.
	Progress func(step string)
}

// SeedSize is the length of a sample seed in bytes.
const SeedSize = 32

// ErrBadSeed means a seed is not 32 bytes.
var ErrBadSeed = errors.New("report: seed must be 32 bytes, 64 hex digits")

// ErrBadPeriod means the period is empty or reversed.
var ErrBadPeriod = errors.New("report: period must have from before to")

// ErrNoCheckpoint means the tenant's log has no signed checkpoint to pin
// the report to yet.
var ErrNoCheckpoint = errors.New("report: the tenant's log has no signed checkpoint yet")

// Report is the SOC 2 report of one tenant for one period.
type Report struct {
	Report      string    `json:"report"`
	Tenant      string    `json:"tenant"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	GeneratedAt time.Time `json:"generated_at"`
	System      System    `json:"system"`
	Readiness   Readiness `json:"readiness"`
	// Criteria lists every criterion of the categories in scope, in the
	// catalog's order.
	Criteria    []*Criterion  `json:"criteria"`
	Populations []*Population `json:"populations"`
	// Seed is the sample seed in hex.
	Seed       string      `json:"seed"`
	SampleRule string      `json:"sample_rule"`
	Samples    []*Sample   `json:"samples"`
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// Readiness is the readiness score at the end of the period and how it is
// computed.
type Readiness struct {
	Score   float64 `json:"score"`
	Formula string  `json:"formula"`
}

// Criterion is one criterion in scope and the controls that support it.
type Criterion struct {
	ID       string            `json:"id"`
	Category controls.Category `json:"category"`
	Series   string            `json:"series"`
	Summary  string            `json:"summary"`
	// Status is the criterion's standing at the end of the period; no
	// evidence when no control supports it.
	Status        controls.Status `json:"status"`
	Effectiveness *float64        `json:"effectiveness"`
	Controls      []*Control      `json:"controls"`
	// Inherited marks, in a customer tenant's report, a criterion that
	// only the operator's instance-wide controls support: the operator
	// meets it, outside this tenant's scores.
	Inherited bool `json:"inherited,omitempty"`
}

// Control is one control under a criterion, with its record over the
// period.
type Control struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Owner string `json:"owner"`
	// TestProcedure is what the control's test checks.
	TestProcedure string `json:"test_procedure"`
	// ManualRequirement, for a control proved by manual evidence, says
	// what that evidence must show.
	ManualRequirement string   `json:"manual_requirement,omitempty"`
	Runs              int      `json:"runs"`
	Passed            int      `json:"passed"`
	Failed            int      `json:"failed"`
	NoEvidence        int      `json:"no_evidence"`
	Effectiveness     *float64 `json:"effectiveness"`
	// LatestStatus is the control's standing at the end of the period. An
	// excepted failure stays a failure; its exceptions are listed.
	LatestStatus controls.Status `json:"latest_status"`
	LatestResult string          `json:"latest_result,omitempty"`
	LatestAt     *time.Time      `json:"latest_at,omitempty"`
	// Remediation comes from the latest result when it did not pass.
	Remediation string `json:"remediation,omitempty"`
	// Exceptions are the approved exceptions in force at some time in the
	// period.
	Exceptions []*controls.Exception `json:"exceptions"`
	// Evidence, for a control proved by manual evidence, is the approved
	// evidence that held at some time in the period, each with its
	// SHA-256 as the trail recorded it when collected.
	Evidence []*controls.Evidence `json:"evidence,omitempty"`
}

// Checkpoint is the signed checkpoint of the tenant's log a report is
// pinned to: the newest one when it was generated.
type Checkpoint struct {
	Origin   string `json:"origin"`
	TreeSize int64  `json:"tree_size"`
	RootHash string `json:"root_hash"` // hex
	KeyID    string `json:"key_id"`
	// Note is the signed checkpoint, as the log serves it.
	Note string `json:"note"`
}

// Bundle is a generated report: the Report, its population CSVs by file
// name, and the signed manifest over them.
type Bundle struct {
	Report *Report
	// JSON is report.json, the canonical form the manifest hashes.
	JSON []byte
	// HTML is report.html; PDF and OSCAL are report.pdf and
	// report.oscal.json, the same report rendered for print and for
	// machines.
	HTML  []byte
	PDF   []byte
	OSCAL []byte
	// CSV holds each population's CSV, by population name.
	CSV      map[string][]byte
	Manifest *Manifest
	// ManifestJSON is manifest.json; Signature is manifest.sig, the signed
	// note over it.
	ManifestJSON []byte
	Signature    []byte
}

// Build generates tenant t's report for the period of opts from sc, the
// scorecard of the same period (controls.Score), reading the tenant's
// configuration, exceptions and audit trail, and signs its manifest with
// the instance's log key.
func Build(ctx context.Context, in *instance.Instance, t *tenant.Tenant, sc *controls.Scorecard, opts Options) (*Bundle, error) {
	if !opts.From.Before(opts.To) {
		return nil, ErrBadPeriod
	}
	seed := opts.Seed
	if seed == nil {
		seed = make([]byte, SeedSize)
		rand.Read(seed)
	}
	if len(seed) != SeedSize {
		return nil, ErrBadSeed
	}
	step := opts.Progress
	if step == nil {
		step = func(string) {}
	}
	r := &Report{Report: Kind, Tenant: t.Name, From: opts.From.UTC(), To: opts.To.UTC(),
		GeneratedAt: in.Now().UTC().Truncate(time.Microsecond), Seed: hex.EncodeToString(seed), SampleRule: SampleRule,
		Readiness: Readiness{Score: sc.Readiness, Formula: sc.Formula}}

	// The checkpoint is read first: the populations come from the trail it
	// covers, and whatever arrives later is not in the report.
	step("checkpoint")
	cp, err := in.Log.LatestCheckpoint(ctx, in.DB.Read, t.ID)
	if errors.Is(err, auditlog.ErrNoCheckpoint) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, err
	}
	r.Checkpoint = &Checkpoint{Origin: in.Log.Origin(t.Name), TreeSize: cp.Size, RootHash: hex.EncodeToString(cp.Root[:]),
		KeyID: cp.KeyID, Note: string(cp.Note)}

	step("system description")
	if r.System, err = describe(ctx, in, t, sc, opts.Version); err != nil {
		return nil, err
	}
	step("criteria")
	evs, err := controls.EvidenceList(ctx, in, t, "")
	if err != nil {
		return nil, err
	}
	exs, err := controls.Exceptions(ctx, in, t)
	if err != nil {
		return nil, err
	}
	r.Criteria = criteria(sc, exs, evs, r.From, r.To)

	step("populations")
	all, err := collectAll(ctx, in, t, r.From, r.To, cp.Size)
	if err != nil {
		return nil, err
	}
	csvs := map[string][]byte{}
	for i, def := range Populations {
		rows := all[i]
		b, err := encodeCSV(rows)
		if err != nil {
			return nil, err
		}
		csvs[def.Name] = b
		r.Populations = append(r.Populations, &Population{Name: def.Name, Description: def.Description,
			File: PopulationFile(def.Name), Rows: len(rows)})
		r.Samples = append(r.Samples, draw(seed, def.Name, rows))
	}

	step("manifest")
	return seal(in, t, r, csvs)
}

// criteria lays out the criteria in scope with their controls' record.
func criteria(sc *controls.Scorecard, exs []*controls.Exception, evs []*controls.Evidence, from,
	to time.Time) []*Criterion {
	byControl := map[string]*controls.ControlScore{}
	for _, cs := range sc.Controls {
		byControl[cs.Control] = cs
	}
	byCriterion := map[string]*controls.CriterionScore{}
	for _, cs := range sc.Criteria {
		byCriterion[cs.Criterion] = cs
	}
	var out []*Criterion
	for _, cr := range controls.Criteria {
		if !slices.Contains(sc.Categories, cr.Category) {
			continue
		}
		c := &Criterion{ID: cr.ID, Category: cr.Category, Series: cr.Series, Summary: cr.Summary,
			Status: controls.NoEvidence, Controls: []*Control{}}
		if s := byCriterion[cr.ID]; s != nil {
			c.Status, c.Effectiveness = s.Status, s.Effectiveness
		}
		c.Inherited = slices.Contains(sc.Inherited, cr.ID)
		for _, ctl := range controls.Catalog {
			// The scorecard holds the tenant's controls in scope.
			if slices.Contains(ctl.Criteria, cr.ID) && byControl[ctl.ID] != nil {
				c.Controls = append(c.Controls, control(ctl, byControl[ctl.ID], exs, evs, from, to))
			}
		}
		out = append(out, c)
	}
	return out
}

// control is one control's record: its score over the period, the
// exceptions in force during it, and what to do when it did not pass.
func control(ctl *controls.Control, s *controls.ControlScore, exs []*controls.Exception, evs []*controls.Evidence,
	from, to time.Time) *Control {
	c := &Control{ID: ctl.ID, Name: ctl.Name, Owner: ctl.Owner, TestProcedure: ctl.Description,
		LatestStatus: controls.NoEvidence, Exceptions: []*controls.Exception{}}
	if ctl.Manual != nil {
		c.ManualRequirement = ctl.Manual.Requirement
	}
	if s != nil {
		c.Runs, c.Passed, c.Failed, c.NoEvidence = s.Runs, s.Passed, s.Failed, s.NoEvidence
		c.Effectiveness, c.LatestStatus = s.Effectiveness, s.Status
		if l := s.Latest; l != nil {
			at := l.CheckedAt
			c.LatestResult, c.LatestAt = l.ID, &at
			if l.Status != controls.Pass {
				c.Remediation = l.Remediation
			}
		}
	}
	for _, e := range exs {
		if e.Control == ctl.ID && inForce(e, from, to) {
			c.Exceptions = append(c.Exceptions, e)
		}
	}
	for _, e := range evs {
		if e.Control == ctl.ID && heldDuring(e, from, to) {
			c.Evidence = append(c.Evidence, e)
		}
	}
	return c
}

// heldDuring reports whether evidence e counted at some time in [from,
// to): approved before to, effective before to, and neither expired nor
// revoked by from.
func heldDuring(e *controls.Evidence, from, to time.Time) bool {
	if e.ApprovedAt == nil || !e.ApprovedAt.Before(to) || !e.EffectiveAt.Before(to) || !e.ExpiresAt.After(from) {
		return false
	}
	return e.RevokedAt == nil || e.RevokedAt.After(from)
}

// inForce reports whether an approved exception held at some time in
// [from, to).
func inForce(e *controls.Exception, from, to time.Time) bool {
	if e.ApprovedAt == nil {
		return false
	}
	start := e.StartsAt
	if e.ApprovedAt.After(start) {
		start = *e.ApprovedAt
	}
	end := e.ExpiresAt
	if e.RevokedAt != nil && e.RevokedAt.Before(end) {
		end = *e.RevokedAt
	}
	return start.Before(to) && end.After(from) && start.Before(end)
}

// check wraps the error of a step with the package prefix.
func check(step string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("report: %s: %w", step, err)
}
