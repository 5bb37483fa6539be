package report

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
)

// PDF renders the report as a PDF in a core font: text outside the
// Windows-1252 code page, which the core fonts cover, prints as a
// question mark.
func PDF(r *Report) ([]byte, error) {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetTitle("SOC 2 report "+r.Tenant, true)
	f.SetCreator("attest", true)
	f.SetCreationDate(r.GeneratedAt)
	f.SetModificationDate(r.GeneratedAt)
	f.SetAutoPageBreak(true, 15)
	tr := f.UnicodeTranslatorFromDescriptor("")
	p := &pdfWriter{f: f, tr: tr}
	f.AddPage()

	p.heading(16, "SOC 2 report")
	p.para(fmt.Sprintf("Tenant %s, period from %s to %s (end excluded), generated %s.", r.Tenant, stamp(r.From),
		stamp(r.To), stamp(r.GeneratedAt)))
	p.para(fmt.Sprintf("Readiness at the end of the period: %.1f of 100. %s", r.Readiness.Score, r.Readiness.Formula))

	p.heading(13, "System description")
	for _, s := range r.System.Sections {
		p.heading(11, s.Section)
		if s.Status == ManagementMustWrite {
			p.para("[Management must write this section.]")
		} else {
			p.para(s.Text)
		}
	}

	p.heading(13, "Criteria and controls")
	for _, c := range r.Criteria {
		st := string(c.Status)
		if c.Inherited {
			st = "inherited: met by the operator's instance-wide controls"
		}
		p.heading(11, fmt.Sprintf("%s  %s", c.ID, st))
		p.para(c.Series + ". " + c.Summary)
		if len(c.Controls) == 0 {
			p.para("No control of the catalog supports this criterion.")
		}
		for _, ctl := range c.Controls {
			p.control(ctl)
		}
	}

	p.heading(13, "Populations and samples")
	p.para("Seed " + r.Seed + ". " + r.SampleRule)
	for i, pop := range r.Populations {
		s := r.Samples[i]
		p.para(fmt.Sprintf("%s: %d items (%s), file %s. Sample of %d: sequences %s.", pop.Name, pop.Rows,
			pop.Description, pop.File, s.Size, joinInts(s.Sequences)))
	}

	p.heading(13, "Log checkpoint")
	p.para(fmt.Sprintf("Pinned to the log %s at tree size %d, root %s, key %s.", r.Checkpoint.Origin,
		r.Checkpoint.TreeSize, r.Checkpoint.RootHash, r.Checkpoint.KeyID))
	p.mono(r.Checkpoint.Note)

	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		return nil, check("render pdf", err)
	}
	return buf.Bytes(), nil
}

type pdfWriter struct {
	f  *fpdf.Fpdf
	tr func(string) string
}

func (p *pdfWriter) heading(size float64, text string) {
	p.f.SetFont("Helvetica", "B", size)
	p.f.Ln(2)
	p.f.MultiCell(0, size*0.5, p.tr(text), "", "L", false)
	p.f.Ln(1)
}

func (p *pdfWriter) para(text string) {
	p.f.SetFont("Helvetica", "", 9)
	p.f.MultiCell(0, 4.5, p.tr(text), "", "L", false)
	p.f.Ln(1)
}

func (p *pdfWriter) mono(text string) {
	p.f.SetFont("Courier", "", 8)
	p.f.MultiCell(0, 4, p.tr(text), "", "L", false)
}

func (p *pdfWriter) control(c *Control) {
	eff := "no runs"
	if c.Effectiveness != nil {
		eff = fmt.Sprintf("%.1f%%", *c.Effectiveness*100)
	}
	status := string(c.LatestStatus)
	if len(c.Exceptions) > 0 {
		status += " (excepted)"
	}
	text := fmt.Sprintf("%s %s (owner %s). Test: %s", c.ID, c.Name, c.Owner, c.TestProcedure)
	if c.ManualRequirement != "" {
		text += " Manual evidence: " + c.ManualRequirement
	}
	text += fmt.Sprintf(" Runs %d, passed %d, failed %d, no evidence %d; effectiveness %s; latest %s.", c.Runs,
		c.Passed, c.Failed, c.NoEvidence, eff, status)
	if c.Remediation != "" {
		text += " Remediation: " + c.Remediation
	}
	for _, e := range c.Exceptions {
		text += fmt.Sprintf(" Exception %s from %s to %s, approved by %s: %s.", e.ID, stamp(e.StartsAt),
			stamp(e.ExpiresAt), e.ApprovedBy, e.Reason)
	}
	for _, e := range c.Evidence {
		text += fmt.Sprintf(" Evidence %s: %s, holding from %s to %s, approved by %s; SHA-256 %s.", e.ID, e.Title,
			stamp(e.EffectiveAt), stamp(e.ExpiresAt), e.ApprovedBy, e.SHA256)
	}
	p.f.SetLeftMargin(15)
	p.para(text)
	p.f.SetLeftMargin(10)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func joinInts(vs []int64) string {
	if len(vs) == 0 {
		return "none"
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, " ")
}
