package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"time"
)

// HTML renders the report as one self-contained HTML page: every value
// escaped by html/template, styles inline, no script and nothing fetched.
func HTML(r *Report) ([]byte, error) {
	var buf bytes.Buffer
	if err := page.Execute(&buf, r); err != nil {
		return nil, check("render html", err)
	}
	return buf.Bytes(), nil
}

// pageCSS is the page's one style element.
const pageCSS = `body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#111}
h1,h2,h3{line-height:1.2}table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#eee}
.pass{color:#176f2c}.fail{color:#a4161a;font-weight:bold}.no_evidence{color:#8a5a00}
.todo{background:#fff4ce;border:1px dashed #c90;padding:.5em}code{font-size:90%;word-break:break-all}
pre{white-space:pre-wrap;font-size:85%;background:#f6f6f6;padding:.5em}`

// StyleSource is the Content-Security-Policy source that allows the
// page's one style element and nothing else.
func StyleSource() string {
	sum := sha256.Sum256([]byte(pageCSS))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

var funcs = template.FuncMap{
	"time": func(v any) string {
		switch t := v.(type) {
		case time.Time:
			return stamp(t)
		case *time.Time:
			if t != nil {
				return stamp(*t)
			}
		}
		return ""
	},
	"pct": func(p *float64) string {
		if p == nil {
			return "no runs"
		}
		return fmt.Sprintf("%.1f%%", *p*100)
	},
	"css": func() template.CSS { return template.CSS(pageCSS) },
}

var page = template.Must(template.New("report").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SOC 2 report: {{.Tenant}}, {{time .From}} to {{time .To}}</title>
<style>{{css}}</style></head><body>
<h1>SOC 2 report</h1>
<p>Tenant <strong>{{.Tenant}}</strong>, period from {{time .From}} to {{time .To}} (end excluded),
generated {{time .GeneratedAt}}.</p>
<p>Readiness at the end of the period: <strong>{{printf "%.1f" .Readiness.Score}}</strong> of 100.
{{.Readiness.Formula}}</p>

<h2>System description</h2>
<table>
<tr><th>Instance</th><td>{{.System.Instance}} (attest {{.System.Version}})</td></tr>
{{if .System.Tenants}}<tr><th>Tenants served</th><td>{{.System.Tenants}}</td></tr>{{end}}
<tr><th>Categories in scope</th><td>{{range $i, $c := .System.Categories}}{{if $i}}, {{end}}{{$c}}{{end}}</td></tr>
<tr><th>Transport</th><td>{{.System.TLS}}</td></tr>
<tr><th>Session policy</th><td>idle {{.System.SessionPolicy.IdleMinutes}} minutes, absolute
{{.System.SessionPolicy.AbsoluteHours}} hours, at most {{.System.SessionPolicy.MaxSessions}} sessions
({{.System.SessionPolicy.OnLimit}} at the limit), accounts disabled after {{.System.SessionPolicy.InactiveDays}} days unused</td></tr>
<tr><th>Retention</th><td>{{.System.Retention.RetentionDays}} days, {{.System.Retention.HotDays}} hot{{if .System.Retention.LegalHold}}, under legal hold{{end}}</td></tr>
<tr><th>Log origin</th><td><code>{{.System.LogOrigin}}</code></td></tr>
<tr><th>Signing keys</th><td>{{range .System.SigningKeys}}<code>{{.}}</code> {{end}}</td></tr>
<tr><th>Controls</th><td>{{.System.ScopeControls}} in scope of {{.System.CatalogControls}} in the catalog</td></tr>
</table>
{{range .System.Sections}}<h3>{{.Section}}</h3>
{{if eq .Status "management_must_write"}}<p class="todo">Management must write this section.</p>{{else}}<p>{{.Text}}</p>{{end}}
{{end}}

<h2>Criteria and controls</h2>
{{range .Criteria}}<h3 id="{{.ID}}">{{.ID}} {{if .Inherited}}<span>inherited: met by the operator's instance-wide controls</span>{{else}}<span class="{{.Status}}">{{.Status}}</span>{{end}}</h3>
<p>{{.Series}}. {{.Summary}}</p>
{{if .Controls}}<table><tr><th>Control</th><th>Owner</th><th>Test procedure</th><th>Runs</th><th>Passed</th>
<th>Failed</th><th>No evidence</th><th>Effectiveness</th><th>Latest</th></tr>
{{range .Controls}}<tr><td><strong>{{.ID}}</strong> {{.Name}}</td><td>{{.Owner}}</td>
<td>{{.TestProcedure}}{{if .ManualRequirement}}<br><em>Manual evidence:</em> {{.ManualRequirement}}{{end}}</td>
<td>{{.Runs}}</td><td>{{.Passed}}</td><td>{{.Failed}}</td><td>{{.NoEvidence}}</td><td>{{pct .Effectiveness}}</td>
<td class="{{.LatestStatus}}">{{.LatestStatus}}{{if .Exceptions}} (excepted){{end}}</td></tr>
{{if .Remediation}}<tr><td colspan="9">Remediation: {{.Remediation}}</td></tr>{{end}}
{{range .Exceptions}}<tr><td colspan="9">Exception {{.ID}}, from {{time .StartsAt}} to {{time .ExpiresAt}}, approved by
{{.ApprovedBy}}: {{.Reason}}{{if .Compensating}}; compensating: {{.Compensating}}{{end}}{{if .RevokedAt}};
revoked {{time .RevokedAt}}{{end}}</td></tr>{{end}}
{{range .Evidence}}<tr><td colspan="9">Evidence {{.ID}}: {{.Title}} ({{.Kind}}), holding from {{time .EffectiveAt}} to
{{time .ExpiresAt}}, approved by {{.ApprovedBy}}; SHA-256 {{.SHA256}}</td></tr>{{end}}
{{end}}</table>{{else}}<p class="no_evidence">No control of the catalog supports this criterion.</p>{{end}}
{{end}}

<h2>Populations and samples</h2>
<p>Seed <code>{{.Seed}}</code>. {{.SampleRule}}</p>
{{range $i, $p := .Populations}}<h3>{{$p.Name}}: {{$p.Rows}} items</h3><p>{{$p.Description}}. File <code>{{$p.File}}</code>.</p>
{{with index $.Samples $i}}<p>Sample of {{.Size}}: sequences {{range .Sequences}}{{.}} {{end}}</p>
{{if .Rows}}<table><tr><th>Sequence</th><th>Received</th><th>Action</th><th>Actor</th><th>Target</th><th>Target name</th>
<th>Outcome</th></tr>{{range .Rows}}<tr><td>{{.Sequence}}</td><td>{{time .ReceivedAt}}</td><td>{{.Action}}</td>
<td>{{.Actor}}</td><td>{{.Target}}</td><td>{{.TargetName}}</td><td>{{.Outcome}}</td></tr>{{end}}</table>{{end}}{{end}}
{{end}}

<h2>Log checkpoint</h2>
<p>The report is pinned to the log <code>{{.Checkpoint.Origin}}</code> at tree size {{.Checkpoint.TreeSize}}, root
<code>{{.Checkpoint.RootHash}}</code>, signed with key <code>{{.Checkpoint.KeyID}}</code>:</p>
<pre>{{.Checkpoint.Note}}</pre>
</body></html>
`))
