package controls

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// How long manual evidence may hold: a year's, a quarter's or a month's.
const (
	evidenceYear    = 366 * day
	evidenceQuarter = quarter
	evidenceMonth   = 31 * day
)

// manualWatches are the actions after which a manual control is judged
// again: its evidence changed.
var manualWatches = []string{ActionEvidenceSubmit, ActionEvidenceApprove, ActionEvidenceRevoke}

// manualControls are proved by evidence a person supplies. The operator
// runs a voice AI platform for real estate agencies, whose call recordings
// and transcripts are full of personal data; the requirements say what
// its evidence must show.
var manualControls = withManualTests([]*Control{
	{ID: "GOV-01", Name: "Code of conduct acknowledged",
		Description: "Every employee and contractor acknowledges the code of conduct at hire and every year.",
		Owner:       "people", Criteria: []string{"CC1.1"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The signed acknowledgement register for the year: every person on the staff list, with the " +
				"date each accepted the current code of conduct."}},
	{ID: "GOV-02", Name: "Board oversight of security",
		Description: "The board, independent of management, reviews the security programme at least once a year.",
		Owner:       "leadership", Criteria: []string{"CC1.2"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "Minutes of the board meeting that reviewed security and privacy risks, including those of " +
				"call recordings and transcripts, with the decisions taken."}},
	{ID: "GOV-03", Name: "Organisation chart and security responsibilities",
		Description: "A current organisation chart names who is responsible for security, privacy and each control.",
		Owner:       "leadership", Criteria: []string{"CC1.3"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The organisation chart and the list of security roles and their holders, approved this year."}},
	{ID: "GOV-04", Name: "Background checks before hire",
		Description: "Everyone who may reach customer data passes a background check before they start.",
		Owner:       "people", Criteria: []string{"CC1.4"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The HR register of hires in the period with the date each background check cleared, " +
				"before the start date; no personal details of the checks themselves."}},
	{ID: "GOV-05", Name: "Security awareness training yearly",
		Description: "Every person completes security and privacy awareness training at hire and every year.",
		Owner:       "security", Criteria: []string{"CC1.4", "CC2.2"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The training platform's completion report: every person on the staff list completed this " +
				"year's course, which covers handling call recordings and transcripts."}},
	{ID: "GOV-06", Name: "Control owners accountable in performance reviews",
		Description: "Each control owner's performance review covers how their controls operated.",
		Owner:       "people", Criteria: []string{"CC1.5"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "A record from this year's review cycle showing each control owner was assessed on their controls."}},
	{ID: "COM-01", Name: "Security policies approved yearly",
		Description: "Management reviews and approves the information security policies every year and publishes them to staff.",
		Owner:       "compliance", Criteria: []string{"CC2.1", "CC5.3"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The policy set with its version history, showing this year's approval by management and " +
				"publication to staff."}},
	{ID: "COM-02", Name: "Commitments and system description communicated to customers",
		Description: "Customers receive the system description, security commitments and how to report an issue.",
		Owner:       "compliance", Criteria: []string{"CC2.3"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The current customer agreement, data processing addendum and public security page, " +
				"with the date each was last published."}},
	{ID: "RSK-01", Name: "Annual risk assessment",
		Description: "Risks to the service's objectives are identified, rated and given treatments every year.",
		Owner:       "compliance", Criteria: []string{"CC3.1", "CC3.2", "CC9.1"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "This year's risk register, approved by management, covering the voice platform, its " +
				"speech and language providers, and the personal data in recordings and transcripts."}},
	{ID: "RSK-02", Name: "Fraud risk assessment",
		Description: "The risk assessment considers fraud, including misuse of access and of customer data.",
		Owner:       "compliance", Criteria: []string{"CC3.3"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The fraud section of this year's risk assessment: incentives, opportunities and the " +
				"controls that answer them."}},
	{ID: "RSK-03", Name: "Significant changes assessed for risk",
		Description: "Significant changes to the business, the system or its vendors are assessed for risk before they happen.",
		Owner:       "engineering", Criteria: []string{"CC3.4"}, Manual: &Manual{MaxAge: evidenceQuarter,
			Requirement: "The quarter's list of significant changes (new models, providers, regions, products), " +
				"each with its risk review."}},
	{ID: "AUD-01", Name: "Annual penetration test and control evaluation",
		Description: "An independent party tests the platform's security every year and its findings are tracked to closure.",
		Owner:       "security", Criteria: []string{"CC4.1", "CC4.2", "CC7.1"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The penetration test report of the voice platform and its APIs, with the remediation " +
				"status of every finding."}},
	{ID: "CTL-01", Name: "Control matrix reviewed against risks",
		Description: "The control matrix is reviewed every year against the risk register, so each risk has its controls.",
		Owner:       "compliance", Criteria: []string{"CC5.1", "CC5.2"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The control matrix mapped to the risk register, with this year's review sign-off."}},
	{ID: "PHY-01", Name: "Data-centre physical access (provider's SOC 2 reviewed)",
		Description: "The hosting provider's SOC 2 report is obtained and reviewed every year, its user controls included.",
		Owner:       "security", Criteria: []string{"CC6.4"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The hosting provider's current SOC 2 Type II report and our review of its exceptions and " +
				"complementary user entity controls."}},
	{ID: "PHY-02", Name: "Media disposal",
		Description: "Devices and media that held customer data are wiped or destroyed, with a record of each.",
		Owner:       "IT", Criteria: []string{"CC6.5"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The disposal log for the period, or certificates of destruction, for every retired device."}},
	{ID: "END-01", Name: "Endpoint protection on staff devices",
		Description: "Staff devices are managed, encrypted, patched and run endpoint protection.",
		Owner:       "IT", Criteria: []string{"CC6.8"}, Manual: &Manual{MaxAge: evidenceQuarter,
			Requirement: "The device management report for the quarter: every staff device encrypted, patched and " +
				"running endpoint protection, with exceptions resolved."}},
	{ID: "VUL-01", Name: "Vulnerability scanning and patching",
		Description: "Infrastructure and dependencies are scanned every month and findings are fixed within policy.",
		Owner:       "security", Criteria: []string{"CC7.1"}, Manual: &Manual{MaxAge: evidenceMonth,
			Requirement: "This month's scan report of hosts, containers and dependencies, with critical and high " +
				"findings fixed within the policy's deadlines."}},
	{ID: "INC-01", Name: "Incident response plan tested yearly",
		Description: "The incident response plan is exercised every year and lessons feed back into it.",
		Owner:       "security", Criteria: []string{"CC7.3", "CC7.4", "CC7.5"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The report of this year's exercise, for example a leaked transcript store, with actions " +
				"and the updated plan."}},
	{ID: "CHG-01", Name: "Changes reviewed, tested and approved before deploy",
		Description: "Every production change is peer reviewed, passes tests and is approved before it is deployed.",
		Owner:       "engineering", Criteria: []string{"CC8.1"}, Manual: &Manual{MaxAge: evidenceQuarter,
			Requirement: "The quarter's sample of production changes, each with its review, passing tests and " +
				"approval before deploy."}},
	{ID: "BCP-01", Name: "Business continuity and disaster recovery tested",
		Description: "Backups are restored and the recovery plan is exercised every year against its objectives.",
		Owner:       "engineering", Criteria: []string{"CC9.1", "A1.3"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The report of this year's recovery test: what was restored, how long it took against the " +
				"recovery objectives, and what was fixed."}},
	{ID: "VEN-01", Name: "Vendor risk management",
		Description: "Vendors that handle customer data are assessed before use and reviewed every year.",
		Owner:       "compliance", Criteria: []string{"CC9.2"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The vendor register with this year's review of each vendor that touches recordings or " +
				"transcripts (telephony, speech-to-text, language models, hosting), and their reports or contracts."}},
	{ID: "CAP-01", Name: "Capacity planning reviewed",
		Description: "Capacity and demand are reviewed every quarter and headroom is kept for peaks in call volume.",
		Owner:       "engineering", Criteria: []string{"A1.1"}, Manual: &Manual{MaxAge: evidenceQuarter,
			Requirement: "The quarter's capacity review: usage against limits, forecast call volume and the actions taken."}},
	{ID: "CNF-01", Name: "Confidential information classified",
		Description: "Data is classified by sensitivity, with call recordings and transcripts marked confidential.",
		Owner:       "security", Criteria: []string{"C1.1"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The data classification policy and data inventory, reviewed this year."}},
	{ID: "PI-01", Name: "Processing specifications and input/output validation defined",
		Description: "What the platform processes, how inputs and outputs are validated and how errors are handled are specified.",
		Owner:       "engineering", Criteria: []string{"PI1.1", "PI1.2", "PI1.3", "PI1.4", "PI1.5"},
		Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The processing specification of calls, transcription and summaries, with input and " +
				"output validation, error handling and reconciliation, reviewed this year."}},
	{ID: "PRV-10", Name: "Privacy notice published",
		Description: "A privacy notice tells callers and customers what personal data is collected and why.",
		Owner:       "privacy", Criteria: []string{"P1.1"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The published privacy notice, reviewed this year, covering call recording and transcription."}},
	{ID: "PRV-11", Name: "Consent captured, including call-recording consent",
		Description: "Consent is captured where needed, callers are told of recording before it starts.",
		Owner:       "privacy", Criteria: []string{"P2.1"}, Manual: &Manual{MaxAge: evidenceQuarter,
			Requirement: "The quarter's sample of calls showing the recording disclosure played and consent captured " +
				"before recording, and the consent records."}},
	{ID: "PRV-12", Name: "Collection limited to stated purposes",
		Description: "Only the personal data needed for the stated purposes is collected.",
		Owner:       "privacy", Criteria: []string{"P3.1", "P3.2"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The record of processing with the purpose of each field collected from calls, reviewed this year."}},
	{ID: "PRV-13", Name: "Use, retention and disposal policy",
		Description: "Personal data is used for its purposes only, kept no longer than the schedule and then disposed of.",
		Owner:       "privacy", Criteria: []string{"P4.1", "P4.2", "P4.3"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The retention schedule for recordings, transcripts and summaries, and evidence that data " +
				"past it was deleted."}},
	{ID: "PRV-14", Name: "Subject access and correction",
		Description: "People can see and correct the personal data held about them, within the legal deadlines.",
		Owner:       "privacy", Criteria: []string{"P5.1", "P5.2"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The log of access and correction requests in the period, each with its response date."}},
	{ID: "PRV-15", Name: "Disclosure to third parties and breach notification",
		Description: "Personal data goes to third parties only as agreed, and breaches are notified as the law and contracts require.",
		Owner:       "privacy", Criteria: []string{"P6.1", "P6.2", "P6.3", "P6.4", "P6.5", "P6.6", "P6.7"},
		Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The subprocessor list with agreements, the disclosure log, and the breach notification " +
				"procedure with any notifications made."}},
	{ID: "PRV-16", Name: "Personal data quality",
		Description: "Personal data is kept accurate and complete for its purposes.",
		Owner:       "privacy", Criteria: []string{"P7.1"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The procedure that keeps contact and lead data accurate, with this year's review of its results."}},
	{ID: "PRV-17", Name: "Privacy complaints and monitoring",
		Description: "Privacy complaints are received, resolved and monitored, and privacy compliance is reviewed.",
		Owner:       "privacy", Criteria: []string{"P8.1"}, Manual: &Manual{MaxAge: evidenceYear,
			Requirement: "The privacy complaints log with resolutions, and this year's privacy compliance review."}},
})

// withManualTests gives each manual control its test, its daily frequency
// and the actions that have it judged again.
func withManualTests(cs []*Control) []*Control {
	for _, c := range cs {
		c.Test, c.Frequency, c.Watches = manualTest(c), daily, manualWatches
	}
	return cs
}

// manualTest judges a manual control by its evidence: a pass when some
// counts now, a failure naming each item and why it does not count, and
// no evidence when none was ever submitted.
func manualTest(c *Control) Test {
	return func(ctx context.Context, sc Scope) (*Result, error) {
		r := result(c.ID, sc.Now)
		es, err := EvidenceList(ctx, sc.In, sc.Tenant, c.ID)
		if err != nil {
			return nil, err
		}
		r.Evidence["submitted"] = len(es)
		if len(es) == 0 {
			r.Status = NoEvidence
			r.Remediation = fmt.Sprintf("the %s owner must submit evidence (POST /api/v1/compliance/evidence): %s "+
				"Another person with compliance.manage must then approve it.", c.Owner, c.Manual.Requirement)
			return r, nil
		}
		var counting []map[string]string
		pending, lapsed := false, false
		for _, e := range es {
			if e.CountsAt(sc.Now) {
				counting = append(counting, map[string]string{"id": e.ID, "sha256": e.SHA256,
					"expires_at": e.ExpiresAt.Format(time.RFC3339)})
				continue
			}
			why := notCounting(e, sc.Now)
			pending = pending || e.ApprovedAt == nil && e.RevokedAt == nil && sc.Now.Before(e.ExpiresAt)
			lapsed = lapsed || e.ApprovedAt != nil
			r.Findings = append(r.Findings, Finding{Resource: "evidence:" + e.ID, Problem: strings.Join(why, "; ")})
		}
		if len(counting) > 0 {
			r.Status, r.Findings = Pass, []Finding{}
			r.Evidence["counting"] = counting
			return r, nil
		}
		// Evidence that once counted and no longer does is a lapse; evidence
		// never approved was never evidence.
		r.Status = NoEvidence
		if lapsed {
			r.Status = Fail
		}
		renew := fmt.Sprintf("the %s owner must submit current evidence and have it approved, and renew it before it "+
			"expires (%s)", c.Owner, c.Manual.Requirement)
		r.Remediation = "no evidence counts now: " + renew
		if pending {
			r.Remediation = "a person with compliance.manage other than the submitter must approve the pending " +
				"evidence (POST /api/v1/compliance/evidence/{id}/approve), or " + renew
		}
		return r, nil
	}
}

// notCounting says why evidence e does not count at now.
func notCounting(e *Evidence, now time.Time) []string {
	var why []string
	if e.RevokedAt != nil {
		why = append(why, "revoked at "+e.RevokedAt.Format(time.RFC3339))
	}
	if !now.Before(e.ExpiresAt) {
		why = append(why, "expired at "+e.ExpiresAt.Format(time.RFC3339))
	}
	if e.EffectiveAt.After(now) {
		why = append(why, "not yet effective: holds from "+e.EffectiveAt.Format(time.RFC3339))
	}
	if e.ApprovedAt == nil && e.RevokedAt == nil {
		why = append(why, "not yet approved")
	}
	if len(why) == 0 {
		why = append(why, "approved only at "+e.ApprovedAt.Format(time.RFC3339))
	}
	return why
}
