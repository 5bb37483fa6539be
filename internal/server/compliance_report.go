package server

import (
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/report"
)

func (s *Server) reportRoutes() []*route {
	return []*route{
		{method: "GET", pattern: "/api/v1/compliance/reports/soc2", name: "compliance.report.soc2", category: "data_access",
			perm: access.PermComplianceRead, params: []string{"from", "to", "format", "seed", "population"},
			handle: s.soc2Report},
	}
}

// reportFormats are the formats of GET /api/v1/compliance/reports/soc2.
var reportFormats = []string{"json", "html", "pdf", "oscal", "zip", "csv"}

// reportParams are the checked parameters of a report request.
type reportParams struct {
	from, to   time.Time
	format     string
	seed       []byte
	population string
}

func parseReportParams(rq *request) (*reportParams, error) {
	q := rq.r.URL.Query()
	p := &reportParams{format: q.Get("format"), population: q.Get("population")}
	if p.format == "" {
		p.format = "json"
	}
	if !slices.Contains(reportFormats, p.format) {
		return nil, badRequest("format", "format must be one of "+strings.Join(reportFormats, ", "))
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &p.from}, {"to", &p.to}} {
		raw := q.Get(t.name)
		v, ok := event.ParseTime(raw)
		if !ok {
			what := " is required"
			if raw != "" {
				what = " is not a valid time"
			}
			return nil, badRequest(t.name, t.name+what+": an RFC 3339 time such as 2026-01-01T00:00:00Z")
		}
		*t.dst = v.UTC()
	}
	var err error
	if p.from, p.to, err = report.Period(p.from, p.to, rq.s.in.Now()); err != nil {
		pe := err.(*report.PeriodError)
		return nil, badRequest(pe.Field, pe.Reason)
	}
	if s := q.Get("seed"); s != "" {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != report.SeedSize {
			return nil, badRequest("seed", "seed must be 64 hex digits (32 bytes)")
		}
		p.seed = b
	}
	if (p.format == "csv") != (p.population != "") {
		return nil, badRequest("population", "population goes with format=csv, and format=csv needs one")
	}
	if p.population != "" && !slices.ContainsFunc(report.Populations, func(d report.PopulationDef) bool {
		return d.Name == p.population
	}) {
		return nil, badRequest("population", "no population "+p.population)
	}
	// An auditor's report covers the audit period of the grant alone.
	if g := rq.decision.Period; g != nil {
		if p.from.Before(g.PeriodStart) {
			p.from = g.PeriodStart
		}
		if p.to.After(g.PeriodEnd) {
			p.to = g.PeriodEnd
		}
		if !p.from.Before(p.to) {
			return nil, badRequest("from", "the period asked for lies outside your audit period")
		}
	}
	return p, nil
}

// soc2Report generates the tenant's SOC 2 report for a period. The
// generation, with the manifest's SHA-256, is on record in the trail
// before a byte of the report leaves.
func (s *Server) soc2Report(rq *request) error {
	p, err := parseReportParams(rq)
	if err != nil {
		return err
	}
	ctx := rq.r.Context()
	sc, err := controls.Score(ctx, s.in, rq.tenant, p.from, p.to)
	if err != nil {
		return err
	}
	b, err := report.Build(ctx, s.in, rq.tenant, sc, report.Options{From: p.from, To: p.to, Seed: p.seed,
		Version: s.cfg.Version})
	if errors.Is(err, report.ErrNoCheckpoint) {
		return &apiError{status: http.StatusConflict, title: "Conflict",
			detail: "the tenant's log has no signed checkpoint yet to pin the report to; try again in a second"}
	}
	if err != nil {
		return err
	}
	body, contentType, name, err := renderReport(b, p)
	if err != nil {
		return err
	}
	details := map[string]any{"format": p.format, "from": fmtTime(p.from), "to": fmtTime(p.to),
		"manifest_sha256": report.SHA256(b.ManifestJSON), "report_sha256": b.Manifest.ReportSHA256,
		"tree_size": b.Report.Checkpoint.TreeSize, "seed": b.Report.Seed}
	if p.population != "" {
		details["population"] = p.population
	}
	decorate := rq.changeDecorator(http.StatusOK)
	if err := s.in.RecordAccess(ctx, rq.tenant, "compliance.report.generate", rq.actor(), details, decorate); err != nil {
		return &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable",
			detail: "the report could not be recorded in the audit trail, so it is withheld; try again"}
	}
	rq.details = details
	h := rq.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Manifest-SHA256", details["manifest_sha256"].(string))
	if p.format == "html" {
		h.Set("Content-Security-Policy", "default-src 'none'; style-src "+report.StyleSource()+"; frame-ancestors 'none'")
	} else {
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	rq.w.WriteHeader(http.StatusOK)
	_, err = rq.w.Write(body)
	return err
}

// renderReport answers the bundle in the format asked for.
func renderReport(b *report.Bundle, p *reportParams) (body []byte, contentType, name string, err error) {
	base := "soc2-" + b.Report.Tenant + "-" + b.Report.From.Format("20060102") + "-" + b.Report.To.Format("20060102")
	switch p.format {
	case "json":
		return b.JSON, "application/json", base + ".json", nil
	case "html":
		return b.HTML, "text/html; charset=utf-8", base + ".html", nil
	case "pdf":
		return b.PDF, "application/pdf", base + ".pdf", nil
	case "oscal":
		return b.OSCAL, "application/json", base + ".oscal.json", nil
	case "zip":
		body, err = b.Zip()
		return body, "application/zip", base + ".zip", err
	}
	return b.CSV[p.population], "text/csv; charset=utf-8", base + "-" + p.population + ".csv", nil
}
