package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	attestevent "github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/report"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/ledongthuc/pdf"
)

// markup is a target name that would run in a page that did not escape it.
const markup = `<script>alert("x")</script><b>bold</b>`

// formula is a target name a spreadsheet would run.
const formula = `=HYPERLINK("https://example.com")`

// TestSOC2Report seeds a trail (accounts created, one disabled, a role
// granted, a configuration change whose target name is markup), then reads
// the report in every format: populations hold exactly those rows, the
// HTML escapes the markup, the PDF names every criterion in scope, the
// OSCAL validates, and the zip's signed manifest verifies with the log's
// public key until a byte of the report changes.
func TestSOC2Report(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now().UTC())
		ts := startClocked(t, opts, c, server.Config{})
		hdr := map[string]string{"Attest-Tenant": tenant.Default}
		from := c.Now().Add(-time.Hour).Truncate(time.Second)
		var ids []string
		for i := range 3 {
			var u struct{ User struct{ ID string } }
			ts.do("POST", "/api/v1/users", ts.operator, hdr, fmt.Sprintf(`{"email":"p%d@example.com","name":"P %d"}`, i, i),
				http.StatusCreated, &u)
			ids = append(ids, u.User.ID)
		}
		ts.do("POST", "/api/v1/users/"+ids[1]+"/disable", ts.operator, hdr, "", http.StatusOK, nil)
		ts.do("PUT", "/api/v1/users/"+ids[2]+"/roles/admin", ts.operator, hdr, "", http.StatusOK, nil)
		ing := ts.key(tenant.Default, "ingest")
		for _, name := range []string{markup, formula} {
			ts.do("POST", "/api/v1/audit/events", ing, nil, `{"occurred_at":"`+c.Now().Format(time.RFC3339)+`","source":"svc",`+
				`"actor":{"type":"user","id":"u-1"},"action":"settings.update","category":"configuration",`+
				`"outcome":{"result":"success"},"target":{"type":"tenant","id":"t-1","name":`+jsonString(name)+`}}`,
				http.StatusOK, nil)
		}
		// A producer's events cannot pass for attest's own: only attest's
		// records of changes make up the populations. Attest's own
		// records may still carry hostile text, which every format must
		// render as text.
		def, err := ts.in.Tenants.ByName(context.Background(), tenant.Default)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{markup, formula} {
			ev := ts.in.ChangeEvent("settings.update", "configuration", instance.SystemActor(),
				attestevent.Target{Type: "tenant", ID: "t-1", Name: name})
			if err := ts.in.Record(context.Background(), def, ev); err != nil {
				t.Fatal(err)
			}
		}
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, "", http.StatusOK, nil)
		ts.waitTrail(tenant.Default, "&action=settings.update", 4)
		c.Add(time.Second)
		to := c.Now().Add(time.Hour).Truncate(time.Second)
		period := "from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
		ts.waitCheckpointCovers(tenant.Default)

		var rep report.Report
		resp := ts.do("GET", "/api/v1/compliance/reports/soc2?"+period, ts.operator, hdr, "", http.StatusOK, &rep)
		rows := map[string][]string{}
		for _, s := range rep.Samples {
			for _, r := range s.Rows {
				rows[s.Population] = append(rows[s.Population], r.Action+" "+r.Target)
			}
		}
		want := map[string][]string{
			"users_created":    {"user.create user:" + ids[0], "user.create user:" + ids[1], "user.create user:" + ids[2]},
			"users_terminated": {"user.disable user:" + ids[1]},
			"access_changes":   {"role.grant user:" + ids[2]},
			"changes":          {"settings.update tenant:t-1", "settings.update tenant:t-1"},
		}
		for name, w := range want {
			if !slices.Equal(rows[name], w) {
				t.Errorf("population %s: %q, want %q", name, rows[name], w)
			}
		}
		if len(rows["elevation_grants"]) != 0 {
			t.Errorf("elevation_grants holds %q, want nothing", rows["elevation_grants"])
		}
		if len(rep.Criteria) == 0 || rep.Criteria[0].ID != "CC1.1" || rep.Checkpoint == nil || len(rep.Seed) != 64 {
			t.Fatalf("report lacks criteria, checkpoint or seed: %d criteria, seed %q", len(rep.Criteria), rep.Seed)
		}
		if !hasMgmtSection(rep.System.Sections) {
			t.Errorf("the system description marks no section for management to write")
		}

		// The generation is on record with the manifest's digest.
		sum := resp.Header.Get("X-Manifest-SHA256")
		trail := ts.waitTrail(tenant.Default, "&action=compliance.report.generate", 1)
		if sum == "" || !strings.Contains(string(trail), sum) {
			t.Errorf("the trail lacks the report's manifest digest %q", sum)
		}

		// A population as CSV, its formula-like cell defused.
		resp = ts.do("GET", "/api/v1/compliance/reports/soc2?"+period+"&format=csv&population=changes", ts.operator, hdr, "",
			http.StatusOK, nil)
		recs, err := csv.NewReader(resp.Body).ReadAll()
		if err != nil || len(recs) != 3 || !slices.Equal(recs[0], report.CSVColumns) || recs[1][5] != markup ||
			recs[2][5] != "'"+formula {
			t.Errorf("changes CSV: %q, %v", recs, err)
		}

		resp = ts.do("GET", "/api/v1/compliance/reports/soc2?"+period+"&format=html", ts.operator, hdr, "", http.StatusOK, nil)
		html, _ := io.ReadAll(resp.Body)
		if bytes.Contains(html, []byte("<script")) || bytes.Contains(html, []byte("<b>bold")) ||
			!bytes.Contains(html, []byte("&lt;script&gt;")) {
			t.Errorf("the HTML does not escape the target name")
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
			strings.Contains(csp, "unsafe") {
			t.Errorf("HTML CSP %q", csp)
		}

		resp = ts.do("GET", "/api/v1/compliance/reports/soc2?"+period+"&format=pdf", ts.operator, hdr, "", http.StatusOK, nil)
		text := pdfText(t, resp.Body)
		for _, cr := range rep.Criteria {
			if !strings.Contains(text, cr.ID) {
				t.Errorf("the PDF lacks criterion %s", cr.ID)
			}
		}

		resp = ts.do("GET", "/api/v1/compliance/reports/soc2?"+period+"&format=oscal", ts.operator, hdr, "", http.StatusOK, nil)
		doc, _ := io.ReadAll(resp.Body)
		if err := report.ValidateOSCAL(doc); err != nil || !bytes.Contains(doc, []byte(`"target-id": "CC6.1"`)) {
			t.Errorf("OSCAL: %v", err)
		}

		// The zip verifies offline with the log's verifier key, and stops
		// verifying once one byte of the report changes.
		seed := strings.Repeat("ab", 32)
		resp = ts.do("GET", "/api/v1/compliance/reports/soc2?"+period+"&format=zip&seed="+seed, ts.operator, hdr, "",
			http.StatusOK, nil)
		dir := unzip(t, resp.Body)
		resp = ts.do("GET", "/api/v1/audit/public-key", ts.operator, hdr, "", http.StatusOK, nil)
		pub, _ := io.ReadAll(resp.Body)
		vk := strings.TrimSpace(string(pub))
		m, err := report.VerifyDir(dir, vk)
		if err != nil {
			t.Fatalf("verify the bundle: %v", err)
		}
		if m.Seed != seed || m.Tenant != tenant.Default || !m.From.Equal(from) {
			t.Errorf("manifest %s %s %s, want the seed, tenant and period asked for", m.Seed, m.Tenant, m.From)
		}
		p := filepath.Join(dir, report.ReportFile)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 1
		os.WriteFile(p, b, 0o644)
		if _, err := report.VerifyDir(dir, vk); err == nil {
			t.Errorf("a report with one byte changed verifies")
		}

		ts.do("GET", "/api/v1/compliance/reports/soc2?from=2026-01-01T00:00:00Z", ts.operator, hdr, "", http.StatusBadRequest, nil)
		ts.do("GET", "/api/v1/compliance/reports/soc2?"+period+"&seed=abc", ts.operator, hdr, "", http.StatusBadRequest, nil)
		ts.do("GET", "/api/v1/compliance/reports/soc2?"+period+"&format=csv", ts.operator, hdr, "", http.StatusBadRequest, nil)
		ts.do("GET", "/api/v1/compliance/reports/soc2?"+period, ts.key(tenant.Default, "ingest"), nil, "", http.StatusForbidden, nil)
	})
}

// TestSOC2ReportAuditorPeriod checks that an auditor's report keeps to the
// grant's audit period.
func TestSOC2ReportAuditorPeriod(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC))
	ts := startClocked(t, opts, c, server.Config{})
	aud := ts.enrol(c, tenant.Default, "aud@example.com", "")
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
		`{"period_start":"2026-10-01T00:00:00Z","period_end":"2026-11-01T00:00:00Z"}`, http.StatusOK, nil)
	ts.waitCheckpointCovers(tenant.Default)
	var rep report.Report
	ts.do("GET", "/api/v1/compliance/reports/soc2?from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z", aud.session, nil, "",
		http.StatusOK, &rep)
	if !rep.From.Equal(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)) || !rep.To.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("the auditor's report covers %s to %s, want the audit period", rep.From, rep.To)
	}
	ts.do("GET", "/api/v1/compliance/reports/soc2?from=2026-11-02T00:00:00Z&to=2026-12-01T00:00:00Z", aud.session, nil, "",
		http.StatusBadRequest, nil)
	// An end after now is cut to now; a period not yet begun is refused.
	var cut report.Report
	ts.do("GET", "/api/v1/compliance/reports/soc2?from=2026-11-01T00:00:00Z&to=2027-01-01T00:00:00Z", ts.operator,
		map[string]string{"Attest-Tenant": tenant.Default}, "", http.StatusOK, &cut)
	if !cut.To.Equal(c.Now()) {
		t.Errorf("a report to 2027 ends at %s, want now (%s)", cut.To, c.Now())
	}
	ts.do("GET", "/api/v1/compliance/reports/soc2?from=2030-01-01T00:00:00Z&to=2030-06-01T00:00:00Z", ts.operator,
		map[string]string{"Attest-Tenant": tenant.Default}, "", http.StatusBadRequest, nil)
}

func hasMgmtSection(ss []report.Section) bool {
	return slices.ContainsFunc(ss, func(s report.Section) bool {
		return s.Status == report.ManagementMustWrite && s.Text == ""
	})
}

// waitCheckpointCovers waits until the tenant's newest checkpoint covers
// its whole log.
func (ts *testServer) waitCheckpointCovers(tenantName string) {
	ts.t.Helper()
	tn, err := ts.in.Tenants.ByName(ts.t.Context(), tenantName)
	if err != nil {
		ts.t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var size int64
		ts.in.DB.Read.QueryRowContext(ts.t.Context(), ts.in.DB.Rebind(`SELECT size FROM log_state WHERE tenant_id = ?`),
			tn.ID).Scan(&size)
		cp, err := ts.in.Log.LatestCheckpoint(ts.t.Context(), ts.in.DB.Read, tn.ID)
		if err == nil && cp.Size >= size {
			return
		}
	}
	ts.t.Fatalf("no checkpoint covers the log of %s", tenantName)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func pdfText(t *testing.T, r io.Reader) string {
	t.Helper()
	b, _ := io.ReadAll(r)
	doc, err := pdf.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("read the PDF: %v", err)
	}
	var sb strings.Builder
	for i := 1; i <= doc.NumPage(); i++ {
		p := doc.Page(i)
		if p.V.IsNull() {
			continue
		}
		s, err := p.GetPlainText(nil)
		if err != nil {
			t.Fatalf("read page %d: %v", i, err)
		}
		sb.WriteString(s)
	}
	return sb.String()
}

func unzip(t *testing.T, r io.Reader) string {
	t.Helper()
	b, _ := io.ReadAll(r)
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
	}
	return dir
}

// TestAuditorSeesTheirPeriod checks that an auditor's grant bounds the
// compliance records as it bounds the report: results as they stood at the
// period's end, and evidence and alerts of the period only.
func TestAuditorSeesTheirPeriod(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC))
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	aud := ts.enrol(c, tenant.Default, "aud@example.com", "")
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, hdr,
		`{"period_start":"2026-10-01T00:00:00Z","period_end":"2026-11-01T00:00:00Z"}`, http.StatusOK, nil)
	submit := func(title, effective string) string {
		var e struct{ ID string }
		ts.do("POST", "/api/v1/compliance/evidence", ts.operator, hdr, `{"control":"GOV-03","title":"`+title+`",`+
			`"url":"https://wiki.example.com/org","effective_at":"`+effective+`","expires_at":"2027-09-01T00:00:00Z"}`,
			http.StatusCreated, &e)
		return e.ID
	}
	inPeriod := submit("org chart, October", "2026-10-05T00:00:00Z")
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, `{"controls":["IAM-02"]}`, http.StatusOK, nil)

	c.Add(26 * 24 * time.Hour) // 10 November, after the period
	after := submit("org chart, November", "2026-11-05T00:00:00Z")
	ts.do("POST", "/api/v1/users", ts.operator, hdr, `{"email":"late@example.com","name":"Late"}`, http.StatusCreated, nil)
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, `{"controls":["IAM-01","IAM-02"]}`,
		http.StatusOK, nil)
	session := ts.login(c, tenant.Default, aud)

	var ev struct{ Evidence []struct{ ID string } }
	ts.do("GET", "/api/v1/compliance/evidence", session, nil, "", http.StatusOK, &ev)
	if len(ev.Evidence) != 1 || ev.Evidence[0].ID != inPeriod {
		t.Errorf("the auditor sees evidence %v, want only %s", ev.Evidence, inPeriod)
	}
	ts.do("GET", "/api/v1/compliance/evidence/"+after, session, nil, "", http.StatusNotFound, nil)
	ts.do("GET", "/api/v1/compliance/evidence/"+after, ts.operator, hdr, "", http.StatusOK, nil)

	var list struct {
		Controls []struct {
			ID     string
			Latest *struct {
				CheckedAt time.Time `json:"checked_at"`
			}
		}
	}
	ts.do("GET", "/api/v1/compliance/controls", session, nil, "", http.StatusOK, &list)
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, cv := range list.Controls {
		if cv.Latest != nil && !cv.Latest.CheckedAt.Before(end) {
			t.Errorf("the auditor sees %s's result of %s, after the period", cv.ID, cv.Latest.CheckedAt)
		}
		if cv.ID == "IAM-02" && cv.Latest == nil {
			t.Errorf("the auditor does not see IAM-02's result of the period")
		}
	}

	var mine, theirs struct {
		Alerts []struct {
			RaisedAt time.Time `json:"raised_at"`
		}
	}
	ts.do("GET", "/api/v1/compliance/alerts", ts.operator, hdr, "", http.StatusOK, &mine)
	ts.do("GET", "/api/v1/compliance/alerts", session, nil, "", http.StatusOK, &theirs)
	late := 0
	for _, a := range mine.Alerts {
		if !a.RaisedAt.Before(end) {
			late++
		}
	}
	if late == 0 {
		t.Fatal("no alert was raised after the period, so the test proves nothing")
	}
	if len(theirs.Alerts) != len(mine.Alerts)-late {
		t.Errorf("the auditor sees %d alerts, want the %d raised in the period", len(theirs.Alerts), len(mine.Alerts)-late)
	}
}
