package server_test

import (
	"archive/zip"
	"bytes"
	"context"
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

	"github.com/attest/attest/internal/evidence"
	"github.com/attest/attest/internal/report"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// reportsSaveTo has the browser of ctx save downloads into dir, each
// named by its GUID, and report their progress.
func reportsSaveTo(dir string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		on := true
		_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &on})
		return err
	})
}

// reportsDownload clicks the button sel names and waits for the browser
// to save what it downloads into dir, answering the name the page gave the
// file and its bytes. status names the element that says why when nothing
// comes.
func reportsDownload(t *testing.T, ctx context.Context, dir, sel, status string) (string, []byte) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// Subscribed before the click, so that no event is missed.
	begins := chromedp.Events(dctx, cdpbrowser.DownloadWillBegin)
	progress := chromedp.Events(dctx, cdpbrowser.DownloadProgress)
	if err := chromedp.Do(dctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatal(err)
	}
	var begun cdpbrowser.EventDownloadWillBegin
	for ev, err := range begins {
		if err != nil {
			screenshot(t, ctx, "reports-failed")
			t.Fatalf("no download began after %s: %v; the page says %q", sel, err,
				pageText(t, ctx, chromedp.ID(status)))
		}
		begun = ev
		break
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("the download of %s did not finish: %v", begun.SuggestedFilename, err)
		}
		if ev.GUID != begun.GUID || ev.State == cdpbrowser.DownloadProgressStateInProgress {
			continue
		}
		if ev.State != cdpbrowser.DownloadProgressStateCompleted {
			t.Fatalf("the download of %s ended %s", begun.SuggestedFilename, ev.State)
		}
		break
	}
	b, err := os.ReadFile(filepath.Join(dir, begun.GUID))
	if err != nil {
		t.Fatal(err)
	}
	return begun.SuggestedFilename, b
}

// TestConsoleReportsDownload has a compliance officer download the SOC 2
// report from the reports page: the PDF is a PDF, and the signed bundle
// is a zip whose manifest verifies with the log's key, the key the page
// shows. A period longer than a report may cover gets the API's reason.
// Elevated, the officer exports the audit trail as a bundle that verifies.
func TestConsoleReportsDownload(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	approver := ts.enrol(c, tenant.Default, "adam@example.com", "admin")
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, "", http.StatusOK, nil)
	ts.waitCheckpointCovers(tenant.Default)
	c.Add(30 * time.Second)
	dir := t.TempDir()
	err := within(ctx, append(signIn(t, ts.url+"/#reports", c, p),
		chromedp.WaitVisible(chromedp.ID("report-pdf")),
		chromedp.WaitVisible(chromedp.ID("report-key")),
		reportsSaveTo(dir))...)
	if err != nil {
		screenshot(t, ctx, "reports-failed")
		t.Fatal(err)
	}
	screenshot(t, ctx, "reports")
	today := time.Now().UTC().Format("2006-01-02")
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("report-to"))); v != today {
		t.Errorf("the period ends %q, want today %s", v, today)
	}
	if reportsCount(t, ctx, "#export-part") != 0 {
		t.Errorf("a compliance officer who is not elevated is offered the trail export")
	}

	name, pdf := reportsDownload(t, ctx, dir, "#report-pdf", "report-status")
	if !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Errorf("%s starts %q, want %%PDF", name, pdf[:min(len(pdf), 8)])
	}
	if !strings.HasPrefix(name, "soc2-"+tenant.Default+"-") || !strings.HasSuffix(name, ".pdf") {
		t.Errorf("the PDF is saved as %q", name)
	}

	name, bundle := reportsDownload(t, ctx, dir, "#report-zip", "report-status")
	if !strings.HasSuffix(name, ".zip") {
		t.Errorf("the bundle is saved as %q", name)
	}
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatalf("the bundle is not a zip: %v", err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	for _, want := range []string{report.PDFFile, report.ManifestFile, report.SignatureFile} {
		if !slices.Contains(names, want) {
			t.Errorf("the bundle holds %q, without %s", names, want)
		}
	}
	resp := ts.do("GET", "/api/v1/audit/public-key", ts.operator, hdr, "", http.StatusOK, nil)
	pub, _ := io.ReadAll(resp.Body)
	vk := strings.TrimSpace(string(pub))
	if got := pageText(t, ctx, chromedp.ID("report-key")); got != vk {
		t.Errorf("the page gives the key %q, want the log's %q", got, vk)
	}
	m, err := report.VerifyDir(unzip(t, bytes.NewReader(bundle)), vk)
	if err != nil {
		t.Fatalf("the downloaded bundle does not verify: %v", err)
	}
	if m.Tenant != tenant.Default || !m.From.Equal(time.Now().UTC().Truncate(24*time.Hour).Add(-90*24*time.Hour)) {
		t.Errorf("the bundle covers %s from %s, want the last 90 days", m.Tenant, m.From)
	}
	if got := pageText(t, ctx, chromedp.ID("report-status")); !strings.Contains(got, name) {
		t.Errorf("after the download the page says %q", got)
	}
	screenshot(t, ctx, "reports-done")

	// Elevated to audit.export, the officer exports the trail as an
	// evidence bundle that verifies offline.
	reportsElevate(t, ctx, ts, c, p, approver, `["audit.export"]`)
	if err := within(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("export-trail"))); err != nil {
		t.Fatal(err)
	}
	name, trail := reportsDownload(t, ctx, dir, "#export-trail", "export-status")
	if !strings.HasPrefix(name, "attest-trail-"+tenant.Default+"-") || !strings.HasSuffix(name, ".zip") {
		t.Errorf("the trail export is saved as %q", name)
	}
	if _, err := evidence.Verify(bytes.NewReader(trail), int64(len(trail)), vk, nil); err != nil {
		t.Errorf("the exported trail does not verify: %v", err)
	}

	// A period of over a year: the API refuses it and the page says why.
	err = within(ctx, chromedp.SetValue(chromedp.ID("report-from"), "2020-01-01"),
		chromedp.Click(chromedp.ID("report-json")),
		chromedp.WaitVisible(chromedp.CSS("#report-status.error")))
	if err != nil {
		t.Fatal(err)
	}
	if got := pageText(t, ctx, chromedp.ID("report-status")); !strings.Contains(got, "366 days") {
		t.Errorf("for a long period the page says %q, want the API's reason", got)
	}
}

// reportsWaitText waits until the element id names reads text.
func reportsWaitText(id, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](fmt.Sprintf("document.getElementById(%q)?.textContent === %q", id, text),
		chromedp.WithPollingInterval(50*time.Millisecond))
}

// reportsCount counts the elements sel matches on the page.
func reportsCount(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// reportsFetch runs a request in the page, with its session cookie, and
// decodes the JSON answer into out, failing unless the status is want.
func reportsFetch(t *testing.T, ctx context.Context, method, path, body string, want int, out any) {
	t.Helper()
	js := fmt.Sprintf(`fetch(%q, {method: %q, headers: {"Attest-CSRF": "1", "Content-Type": "application/json"}, body: %q})
		.then(async (r) => ({status: r.status, body: await r.text()}))`, path, method, body)
	v, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Status int
		Body   string
	}](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != want {
		t.Fatalf("%s %s in the page: %d %s, want %d", method, path, v.Status, v.Body, want)
	}
	if err := json.Unmarshal([]byte(v.Body), out); err != nil {
		t.Fatal(err)
	}
}

// reportsElevate elevates p in the browser's session to perms: p asks in
// the page, approver approves, and p activates it in the page with a fresh
// code, which rotates the session cookie.
func reportsElevate(t *testing.T, ctx context.Context, ts *testServer, c *clock, p, approver *person, perms string) {
	t.Helper()
	var el struct{ ID string }
	reportsFetch(t, ctx, "POST", "/api/v1/elevations", `{"reason":"console test","permissions":`+perms+`}`,
		http.StatusCreated, &el)
	ts.do("POST", "/api/v1/elevations/"+el.ID+"/approve", approver.session, nil, "", http.StatusOK, nil)
	c.Add(30 * time.Second)
	var act any
	reportsFetch(t, ctx, "POST", "/api/v1/elevations/"+el.ID+"/activate",
		fmt.Sprintf(`{"code":%q}`, code(t, p.secret, c.Now())), http.StatusOK, &act)
}

// TestConsoleSettingsEdit has an owner change the session policy in the
// page: without an elevation the page offers no Save; elevated, a value
// out of bounds gets the API's reason next to its field, and a good one
// is what the API then answers. The owner also creates an API key, whose
// secret the page shows once and which works until revoked in the page,
// and is told why a webhook is refused.
func TestConsoleSettingsEdit(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	owner := ts.enrol(c, tenant.Default, "olga@example.com", "owner")
	approver := ts.enrol(c, tenant.Default, "adam@example.com", "admin")
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#settings", c, owner),
		chromedp.WaitVisible(chromedp.ID("sessions-idle_minutes")),
		chromedp.WaitVisible(chromedp.CSS("#settings[data-ready]")))...)
	if err != nil {
		screenshot(t, ctx, "settings-failed")
		t.Fatal(err)
	}
	if n := reportsCount(t, ctx, "#sessions-save, #keys-create, #retention-save"); n != 0 {
		t.Errorf("before an elevation the page offers %d buttons that change settings", n)
	}

	// The owner elevates in this browser session: requested, approved by
	// another, activated with a fresh code.
	reportsElevate(t, ctx, ts, c, owner, approver, `["tenant.settings.manage","apikeys.manage"]`)
	err = within(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("sessions-save")),
		chromedp.SetValue(chromedp.ID("sessions-idle_minutes"), "0"),
		chromedp.Click(chromedp.ID("sessions-save")),
		chromedp.WaitVisible(chromedp.CSS(`#sessions-idle_minutes[aria-invalid="true"]`)))
	if err != nil {
		screenshot(t, ctx, "settings-failed")
		t.Fatal(err)
	}
	if got := pageText(t, ctx, chromedp.ID("sessions-idle_minutes-error")); !strings.Contains(got, "between 1 and 1440") {
		t.Errorf("next to the idle timeout the page says %q, want the API's reason", got)
	}

	err = within(ctx, chromedp.SetValue(chromedp.ID("sessions-idle_minutes"), "45"),
		chromedp.Click(chromedp.ID("sessions-save")),
		reportsWaitText("sessions-status", "Session policy saved."))
	if err != nil {
		t.Fatal(err)
	}
	var pol struct {
		IdleMinutes int `json:"idle_minutes"`
	}
	ts.do("GET", "/api/v1/settings/sessions", ts.operator, hdr, "", http.StatusOK, &pol)
	if pol.IdleMinutes != 45 {
		t.Errorf("after saving 45 the API answers an idle timeout of %d minutes", pol.IdleMinutes)
	}

	// An owner holds no audit.events.write, so may hand out no ingest key:
	// the form does not offer one.
	offered, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.getElementById("keys-role").options].map((o) => o.value)`))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(offered, "ingest") || !slices.Contains(offered, "reader") {
		t.Errorf("the key form offers roles %v, want reader and not ingest", offered)
	}
	err = within(ctx, chromedp.SendKeys(chromedp.ID("keys-name"), "log shipper"),
		chromedp.SetValue(chromedp.ID("keys-role"), "reader"),
		chromedp.Click(chromedp.ID("keys-create")),
		chromedp.WaitVisible(chromedp.ID("key-secret")),
		chromedp.WaitVisible(chromedp.CSS(`#key-list button[aria-label="Revoke log shipper"]`)))
	if err != nil {
		screenshot(t, ctx, "settings-failed")
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("keys-status")))
	}
	secret, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("key-secret")))
	ts.do("GET", "/api/v1/audit/checkpoint", secret, nil, "", http.StatusOK, nil)

	// A webhook that is not https is refused, the reason next to its field.
	err = within(ctx, chromedp.SendKeys(chromedp.ID("compliance-webhook_url"), "http://hooks.example.com/x"),
		chromedp.Click(chromedp.ID("compliance-save")),
		chromedp.WaitVisible(chromedp.CSS(`#compliance-webhook_url[aria-invalid="true"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if got := pageText(t, ctx, chromedp.ID("compliance-webhook_url-error")); !strings.Contains(got, "https") {
		t.Errorf("next to the webhook URL the page says %q", got)
	}
	screenshot(t, ctx, "settings")

	// Revoking asks once more, then the key no longer works.
	revoke := `#key-list button[aria-label="Revoke log shipper"]`
	err = within(ctx, chromedp.Click(chromedp.CSS(revoke)), chromedp.Click(chromedp.CSS(revoke)),
		chromedp.WaitNotPresent(chromedp.CSS(revoke)))
	if err != nil {
		t.Fatal(err)
	}
	ts.do("GET", "/api/v1/audit/checkpoint", secret, nil, "", http.StatusUnauthorized, nil)
}

// TestConsoleSettingsReadOnly checks that a security analyst and an
// auditor see the settings with nothing to change: no button at all, the
// values read-only; and that the auditor's report period is their audit
// period.
func TestConsoleSettingsReadOnly(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	ts.do("POST", "/api/v1/apikeys", ts.operator, hdr, `{"role":"ingest","name":"producer"}`, http.StatusCreated, nil)
	sam := ts.enrol(c, tenant.Default, "sam@example.com", "security_analyst")
	aud := ts.enrol(c, tenant.Default, "aud@example.com", "")
	start := c.Now().Add(-60 * 24 * time.Hour).Truncate(24 * time.Hour)
	end := start.Add(30 * 24 * time.Hour)
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, hdr,
		fmt.Sprintf(`{"period_start":%q,"period_end":%q}`, start.Format(time.RFC3339), end.Format(time.RFC3339)),
		http.StatusOK, nil)

	for i, p := range []*person{sam, aud} {
		c.Add(30 * time.Second)
		steps := signIn(t, ts.url+"/#settings", c, p)
		if i > 0 {
			steps = append([]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.ID("signout")),
				chromedp.WaitVisible(chromedp.ID("tenant"))}, steps...)
		}
		err := within(ctx, append(steps,
			chromedp.WaitVisible(chromedp.CSS("#settings[data-ready]")),
			chromedp.WaitVisible(chromedp.CSS("#key-list tbody tr")))...)
		if err != nil {
			screenshot(t, ctx, "settings-failed")
			t.Fatalf("%s: %v", p.email, err)
		}
		if n := reportsCount(t, ctx, "#settings button"); n != 0 {
			t.Errorf("%s is offered %d buttons on the settings page", p.email, n)
		}
		if n := reportsCount(t, ctx, "#settings input:not([readonly]):not([disabled])"); n != 0 {
			t.Errorf("%s can edit %d fields of the settings", p.email, n)
		}
		for _, part := range []string{"sessions", "retention", "keys", "compliance"} {
			if reportsCount(t, ctx, "#"+part) != 1 {
				t.Errorf("%s does not see the %s settings", p.email, part)
			}
		}
		if got := pageText(t, ctx, chromedp.ID("settings")); strings.Contains(got, "null") {
			t.Errorf("the settings page reads %q", got)
		}
		if got := pageText(t, ctx, chromedp.CSS("#key-list tbody")); !strings.Contains(got, "producer") {
			t.Errorf("%s sees the keys %q, without the producer's", p.email, got)
		}
		if i == 0 {
			screenshot(t, ctx, "settings-readonly")
		}
	}

	// The auditor's report period is the audit period, the pickers bounded
	// to it.
	err := within(ctx, chromedp.Navigate(ts.url+"/#reports"), chromedp.WaitVisible(chromedp.ID("report-pdf")))
	if err != nil {
		t.Fatal(err)
	}
	from, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("report-from")))
	to, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("report-to")))
	if want := start.Format("2006-01-02"); from != want {
		t.Errorf("the auditor's period starts %q, want %s", from, want)
	}
	if want := end.Add(-24 * time.Hour).Format("2006-01-02"); to != want {
		t.Errorf("the auditor's period ends %q, want %s", to, want)
	}
}
