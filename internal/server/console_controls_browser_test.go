package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/browsertest"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/chromedp"
)

// controlsShows waits until the text of the element sel names holds want.
func controlsShows(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(document.querySelector(%s)?.textContent || "").includes(%s)`,
		strconv.Quote(sel), strconv.Quote(want)), chromedp.WithPollingInterval(50*time.Millisecond))
}

// controlsVisible counts the elements sel names that are on show.
func controlsVisible(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := chromedp.Run(tctx, chromedp.Evaluate[int](fmt.Sprintf(
		`[...document.querySelectorAll(%s)].filter((e) => e.checkVisibility()).length`, strconv.Quote(sel))))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// controlsPhone shows the page at a phone's width, saves it as name and
// checks that the page itself does not scroll sideways: wide tables scroll
// within their section.
func controlsPhone(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := within(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	defer within(ctx, chromedp.ResetViewport())
	screenshot(t, ctx, name)
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if w > 390 {
		t.Errorf("%s: at 390 px the page is %d px wide", name, w)
	}
}

// controlsSignOut is the steps that sign the person out through the
// page and leave the browser on a blank page, ready for another.
func controlsSignOut() []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("tenant")),
		chromedp.Navigate("about:blank"),
	}
}

// TestConsoleEvidenceSecondPerson has a compliance officer upload a file
// as GOV-01's evidence through the control's page, where it awaits
// approval with no Approve button for its submitter; a second officer,
// enrolled by the operator and so not sponsored by the first, approves it
// in another browser, and after Run now the control passes. An auditor
// then reads it all with no action offered.
func TestConsoleEvidenceSecondPerson(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ana := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	bo := ts.enrol(c, tenant.Default, "bo@example.com", "compliance_officer")
	content := []byte("Code of conduct acknowledgements 2026: 12 of 12 people on the staff list signed.\n")
	file := filepath.Join(t.TempDir(), "acknowledgements-2026.txt")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	row := "#evidence-list tbody tr"

	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#controls/GOV-01", c, ana),
		chromedp.WaitVisible(chromedp.ID("evidence-form")),
		chromedp.SendKeys(chromedp.ID("evidence-title"), "Acknowledgement register 2026"),
		chromedp.SetUploadFiles(chromedp.ID("evidence-file"), []string{file}),
		chromedp.Click(chromedp.ID("evidence-submit")),
		controlsShows(row, "awaiting approval"))...)
	if err != nil {
		screenshot(t, ctx, "control-detail-manual-failed")
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("evidence-message")))
	}
	screenshot(t, ctx, "control-detail-manual")
	text := pageText(t, ctx, chromedp.CSS(row))
	for _, want := range []string{"Acknowledgement register 2026", hex.EncodeToString(sum[:]), "acknowledgements-2026.txt",
		"you,"} {
		if !strings.Contains(text, want) {
			t.Errorf("the evidence row reads %q, want %q in it", text, want)
		}
	}
	if got := pageText(t, ctx, chromedp.ID("detail-requirement")); !strings.Contains(got, "acknowledgement register") {
		t.Errorf("GOV-01's requirement reads %q", got)
	}
	if n := controlsVisible(t, ctx, row+" button[data-approve]"); n != 0 {
		t.Errorf("the submitter is offered %d Approve buttons on their own evidence", n)
	}
	if n := controlsVisible(t, ctx, row+" button[data-revoke]"); n != 1 {
		t.Errorf("the submitter is offered %d Revoke buttons, want 1", n)
	}
	if n := controlsVisible(t, ctx, `#detail-criteria a[href="#criteria/CC1.1"]`); n != 1 {
		t.Errorf("GOV-01 links to CC1.1 %d times, want once", n)
	}

	// The second officer signs in and approves it, then runs the control a
	// minute later: the clock stands still between its steps, and the run
	// the submission's watch asked for must not tie with this one.
	c.Add(30 * time.Second)
	err = within(ctx, append(append(controlsSignOut(), signIn(t, ts.url+"/#controls/GOV-01", c, bo)...),
		chromedp.WaitVisible(chromedp.CSS(row+" button[data-approve]")),
		chromedp.Click(chromedp.CSS(row+" button[data-approve]")),
		controlsShows(row, "approved by you"))...)
	if err == nil {
		c.Add(time.Minute)
		err = within(ctx, chromedp.Click(chromedp.ID("run-control")), controlsShows("#detail-message", "GOV-01 ran"))
	}
	if err != nil {
		screenshot(t, ctx, "evidence-approve-failed")
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("detail-message")))
	}
	// A second on, the run is in the history too: the period a detail
	// covers ends before now.
	c.Add(time.Second)
	if err := within(ctx, chromedp.Click(chromedp.ID("refresh-controls")),
		controlsShows("#detail-history tbody tr:first-child", "pass")); err != nil {
		t.Errorf("the run is not in GOV-01's history: %v", err)
	}
	screenshot(t, ctx, "evidence-approved")
	controlsPhone(t, ctx, "evidence-approved-phone")
	if got := pageText(t, ctx, chromedp.ID("detail-status")); got != "pass" {
		t.Errorf("after approval and a run GOV-01 shows %q, want pass", got)
	}
	if got := pageText(t, ctx, chromedp.CSS(row)); !strings.Contains(got, "ana@example.com") || !strings.Contains(got, "counts") {
		t.Errorf("the approver's row reads %q, want the submitter named and the evidence counting", got)
	}
	var detail struct{ Status string }
	ts.do("GET", "/api/v1/compliance/controls/GOV-01", ts.operator, map[string]string{"Attest-Tenant": tenant.Default}, "",
		http.StatusOK, &detail)
	if detail.Status != "pass" {
		t.Errorf("the API says GOV-01 is %s, want pass", detail.Status)
	}
	// The submitter, signed in again, sees who approved it.
	c.Add(30 * time.Second)
	err = within(ctx, append(append(controlsSignOut(), signIn(t, ts.url+"/#controls/GOV-01", c, ana)...),
		controlsShows(row, "approved by bo@example.com"))...)
	if err != nil {
		t.Errorf("the submitter's page does not show the approval: %v", err)
	}

	// An auditor reads the same, offered nothing to change.
	aud := ts.enrol(c, tenant.Default, "aud@example.com", "")
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
		fmt.Sprintf(`{"period_start":%q,"period_end":%q}`, c.Now().Add(-30*24*time.Hour).Format(time.RFC3339),
			c.Now().Add(24*time.Hour).Format(time.RFC3339)), http.StatusOK, nil)
	c.Add(30 * time.Second)
	err = within(ctx, append(append(controlsSignOut(), signIn(t, ts.url+"/#controls/GOV-01", c, aud)...),
		controlsShows(row, "approved by bo@example.com"))...)
	if err != nil {
		t.Fatalf("the auditor does not see the approved evidence: %v", err)
	}
	screenshot(t, ctx, "control-detail-auditor")
	for _, sel := range []string{"#control-detail button:not([data-download])", "#controls input", "#controls textarea", "#controls select"} {
		if n := controlsVisible(t, ctx, sel); n != 0 {
			t.Errorf("the auditor is offered %d of %s", n, sel)
		}
	}
	if n := controlsVisible(t, ctx, row+" button[data-download]"); n != 1 {
		t.Errorf("the auditor has %d Download buttons, want 1", n)
	}
}

// TestConsoleExceptionRequested asks, through the page, for an exception
// to IAM-01, which fails for an account without a second factor: without
// a reason the server's refusal is shown against the field; with one the
// exception is listed awaiting approval, with no Approve for its
// requester.
func TestConsoleExceptionRequested(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	ana := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	ts.do("POST", "/api/v1/users", ts.operator, hdr, `{"email":"nofactor@example.com","name":"No Factor"}`,
		http.StatusCreated, nil)
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, `{"controls":["IAM-01"]}`, http.StatusOK, nil)
	ends := c.Now().Add(30 * 24 * time.Hour).UTC().Format("2006-01-02")

	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#controls/IAM-01", c, ana),
		chromedp.WaitVisible(chromedp.ID("exception-form")),
		controlsShows("#detail-status", "fail"),
		chromedp.SetValue(chromedp.ID("exception-expires"), ends),
		chromedp.Click(chromedp.ID("exception-submit")),
		controlsShows("#exception-message", "reason"))...)
	if err != nil {
		t.Fatal(err)
	}
	if got := pageText(t, ctx, chromedp.ID("exception-message")); !strings.Contains(got, "required") {
		t.Errorf("without a reason the page says %q, want the server's refusal", got)
	}
	if n := controlsVisible(t, ctx, `#exception-reason[aria-invalid="true"]`); n != 1 {
		t.Errorf("the reason field is not marked as refused")
	}

	row := "#exception-list tbody tr"
	err = within(ctx,
		chromedp.SendKeys(chromedp.ID("exception-reason"), "The contractor's phone arrives next week"),
		chromedp.SendKeys(chromedp.ID("exception-compensating"), "Their account is limited to the member role"),
		chromedp.Click(chromedp.ID("exception-submit")),
		controlsShows(row, "awaiting approval"))
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("exception-message")))
	}
	screenshot(t, ctx, "exception-requested")
	text := pageText(t, ctx, chromedp.CSS(row))
	for _, want := range []string{"phone arrives next week", "limited to the member role", "you"} {
		if !strings.Contains(text, want) {
			t.Errorf("the exception row reads %q, want %q in it", text, want)
		}
	}
	if n := controlsVisible(t, ctx, row+" button[data-approve-exception]"); n != 0 {
		t.Errorf("the requester is offered %d Approve buttons on their own exception", n)
	}
	var list struct {
		Exceptions []struct{ Control, Status string }
	}
	ts.do("GET", "/api/v1/compliance/exceptions?control=IAM-01", ts.operator, hdr, "", http.StatusOK, &list)
	if len(list.Exceptions) != 1 || list.Exceptions[0].Status != "pending_approval" {
		t.Errorf("the API lists %+v, want one exception pending approval", list.Exceptions)
	}
}

// TestConsoleCriteria reads the criteria page: CC6.1 is listed under
// Security with the dashboard's status, opens to its text and controls,
// and links through to IAM-01.
func TestConsoleCriteria(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	ana := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, "", http.StatusOK, nil)
	var dash struct {
		Criteria []struct {
			Criterion, Status string
			Controls          []string
		}
		Inherited []string
	}
	ts.do("GET", "/api/v1/compliance/dashboard", ts.operator, hdr, "", http.StatusOK, &dash)
	var want string
	var controls []string
	for _, cr := range dash.Criteria {
		if cr.Criterion == "CC6.1" {
			want, controls = cr.Status, cr.Controls
		}
	}
	if want == "" || len(controls) == 0 {
		t.Fatalf("the dashboard scores no CC6.1 with controls: %+v", dash.Criteria)
	}

	link := `#criteria-security a[data-criterion="CC6.1"]`
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#criteria", c, ana),
		chromedp.WaitVisible(chromedp.CSS(link)))...)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "criteria")
	status := `#criteria-security tr:has(a[data-criterion="CC6.1"]) td:last-child`
	if got := browsertest.TextIs(t, ctx, status, want); got != want {
		t.Errorf("CC6.1 is listed as %q, want the dashboard's %q", got, want)
	}

	// The default tenant is a customer's: criteria only the operator's
	// instance-wide controls support are marked inherited.
	if len(dash.Inherited) == 0 {
		t.Fatal("the dashboard names no inherited criterion")
	}
	inherited := `#criteria-security tr:has(a[data-criterion="` + dash.Inherited[0] + `"]) td:last-child`
	if got := browsertest.TextIs(t, ctx, inherited, "inherited from the operator"); got != "inherited from the operator" {
		t.Errorf("%s, inherited, is listed as %q", dash.Inherited[0], got)
	}

	err = within(ctx, chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.ID("criterion-detail")),
		controlsShows("#criterion-title", "CC6.1"),
		chromedp.WaitVisible(chromedp.CSS(`#criterion-controls a[data-control="IAM-01"]`)))
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "criterion")
	controlsPhone(t, ctx, "criterion-phone")
	if got := pageText(t, ctx, chromedp.ID("criterion-summary")); got == "" {
		t.Errorf("CC6.1 shows no text")
	}
	if got := pageText(t, ctx, chromedp.ID("criterion-state")); got != want {
		t.Errorf("CC6.1's page says %q, want %q", got, want)
	}
	if n := controlsVisible(t, ctx, "#criterion-controls tbody tr"); n != len(controls) {
		t.Errorf("CC6.1 lists %d controls, want the dashboard's %d (%v)", n, len(controls), controls)
	}

	err = within(ctx, chromedp.Click(chromedp.CSS(`#criterion-controls a[data-control="IAM-01"]`)),
		chromedp.WaitVisible(chromedp.ID("control-detail")),
		controlsShows("#detail-title", "IAM-01"))
	if err != nil {
		t.Fatalf("the link to IAM-01 does not open it: %v", err)
	}
}
