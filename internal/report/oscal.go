package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/defenseunicorns/go-oscal/src/pkg/validation"
	oscal "github.com/defenseunicorns/go-oscal/src/types/oscal-1-1-3"
	"github.com/google/uuid"

	"github.com/attest/attest/internal/controls"
)

// oscalNS is the namespace of the properties attest adds.
const oscalNS = "https://github.com/attest/attest/ns/oscal"

// namespace seeds the name-based UUIDs of a report's OSCAL objects, so the
// same report gives the same document.
var namespace = uuid.MustParse("5b0e7c1a-4d0a-4f53-9d5e-2f3a1c0b7e61")

// OSCAL renders the report as an OSCAL 1.1 assessment-results document:
// one result for the period, an observation for each control's record and
// a finding for each criterion a control supports, the finding relating
// the criterion id to the observation. The document is validated against
// the OSCAL schema before it is returned.
func OSCAL(r *Report) ([]byte, error) {
	id := func(parts ...string) string {
		return uuid.NewSHA1(namespace, []byte(r.Seed+"\x00"+r.GeneratedAt.String()+"\x00"+strings.Join(parts, "\x00"))).String()
	}
	var sel []oscal.AssessedControlsSelectControlById
	var obs []oscal.Observation
	var finds []oscal.Finding
	seen := map[string]string{} // control id -> observation uuid
	for _, c := range r.Criteria {
		sel = append(sel, oscal.AssessedControlsSelectControlById{ControlId: c.ID})
		for _, ctl := range c.Controls {
			ou, ok := seen[ctl.ID]
			if !ok {
				ou = id("observation", ctl.ID)
				seen[ctl.ID] = ou
				obs = append(obs, observation(ou, ctl, r.GeneratedAt))
			}
			finds = append(finds, finding(id("finding", c.ID, ctl.ID), c, ctl, ou))
		}
	}
	res := oscal.Result{UUID: id("result"), Title: "SOC 2 controls of " + r.Tenant,
		Description: fmt.Sprintf("The record of attest's controls for tenant %s from %s to %s (end excluded). "+
			"Readiness %.1f: %s", r.Tenant, stamp(r.From), stamp(r.To), r.Readiness.Score, r.Readiness.Formula),
		Start: r.From, End: ptr(r.To),
		ReviewedControls: oscal.ReviewedControls{ControlSelections: []oscal.AssessedControls{{IncludeControls: &sel}}},
		Props: &[]oscal.Property{{Name: "log-checkpoint", Ns: oscalNS, Value: fmt.Sprintf("%s %d %s",
			r.Checkpoint.Origin, r.Checkpoint.TreeSize, r.Checkpoint.RootHash)}}}
	if len(obs) > 0 {
		res.Observations = &obs
	}
	if len(finds) > 0 {
		res.Findings = &finds
	}
	doc := oscal.OscalModels{AssessmentResults: &oscal.AssessmentResults{UUID: id("assessment-results"),
		ImportAp: oscal.ImportAp{Href: "#soc2-" + r.Tenant},
		Metadata: oscal.Metadata{Title: "SOC 2 assessment results: " + r.Tenant, LastModified: r.GeneratedAt,
			Version: r.GeneratedAt.Format(time.RFC3339), OscalVersion: oscal.Version},
		Results: []oscal.Result{res}}}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, check("encode oscal", err)
	}
	if err := ValidateOSCAL(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ValidateOSCAL validates an OSCAL document against its schema with
// go-oscal, naming the first faults.
func ValidateOSCAL(doc []byte) error {
	v, err := validation.NewValidator(doc)
	if err != nil {
		return check("validate oscal", err)
	}
	if err := v.Validate(); err != nil {
		res, _ := v.GetValidationResult()
		var faults []string
		for i, e := range res.Errors {
			if i == 3 {
				break
			}
			faults = append(faults, e.InstanceLocation+": "+e.Error)
		}
		return fmt.Errorf("report: oscal document is not valid: %w %v", err, faults)
	}
	return nil
}

func observation(id string, c *Control, generated time.Time) oscal.Observation {
	collected := generated
	if c.LatestAt != nil {
		collected = *c.LatestAt
	}
	desc := fmt.Sprintf("%s %s. %s Runs %d, passed %d, failed %d, no evidence %d; latest %s.", c.ID, c.Name,
		c.TestProcedure, c.Runs, c.Passed, c.Failed, c.NoEvidence, c.LatestStatus)
	props := []oscal.Property{{Name: "control-id", Ns: oscalNS, Value: c.ID},
		{Name: "latest-status", Ns: oscalNS, Value: string(c.LatestStatus)},
		{Name: "runs", Ns: oscalNS, Value: fmt.Sprint(c.Runs)}}
	if c.Effectiveness != nil {
		props = append(props, oscal.Property{Name: "effectiveness", Ns: oscalNS, Value: fmt.Sprintf("%.4f", *c.Effectiveness)})
	}
	o := oscal.Observation{UUID: id, Title: c.ID + " " + c.Name, Description: desc, Methods: []string{"TEST"},
		Collected: collected, Props: &props}
	if c.ManualRequirement != "" {
		o.Methods = []string{"EXAMINE"}
	}
	if c.LatestResult != "" {
		o.RelevantEvidence = &[]oscal.RelevantEvidence{{Description: "control result " + c.LatestResult}}
	}
	return o
}

func finding(id string, cr *Criterion, c *Control, obs string) oscal.Finding {
	st := oscal.ObjectiveStatus{State: "not-satisfied", Reason: "fail"}
	switch c.LatestStatus {
	case controls.Pass:
		st = oscal.ObjectiveStatus{State: "satisfied", Reason: "pass"}
	case controls.NoEvidence:
		st.Reason, st.Remarks = "other", "no evidence"
	}
	var remarks []string
	for _, e := range c.Exceptions {
		remarks = append(remarks, fmt.Sprintf("exception %s in force from %s to %s: %s", e.ID, stamp(e.StartsAt),
			stamp(e.ExpiresAt), e.Reason))
	}
	if c.Remediation != "" {
		remarks = append(remarks, "remediation: "+c.Remediation)
	}
	return oscal.Finding{UUID: id, Title: cr.ID + " by " + c.ID, Description: fmt.Sprintf("%s as supported by %s %s.",
		cr.ID, c.ID, c.Name), Target: oscal.FindingTarget{Type: "objective-id", TargetId: cr.ID, Status: st},
		RelatedObservations: &[]oscal.RelatedObservation{{ObservationUuid: obs}}, Remarks: strings.Join(remarks, "; ")}
}

func ptr[T any](v T) *T { return &v }
