package server_test

import (
	"context"
	"net/http"
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

// browser starts headless Chromium for a test, or skips the test when the
// machine has none.
func browser(t *testing.T) context.Context { return browsertest.Start(t) }

// within runs steps in the browser of ctx, giving them 20 seconds.
func within(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) error {
	return browsertest.Within(ctx, steps...)
}

// screenshot saves the page as name.png in the repository's screenshots
// folder, which git ignores, for a person to look at.
func screenshot(t *testing.T, ctx context.Context, name string) { browsertest.Screenshot(t, ctx, name) }

// signIn is the steps that open page and sign p in of the default tenant
// through the console's password and TOTP steps.
func signIn(t *testing.T, page string, c *clock, p *person) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("tenant")),
		chromedp.SendKeys(chromedp.ID("tenant"), tenant.Default),
		chromedp.SendKeys(chromedp.ID("email"), p.email),
		chromedp.SendKeys(chromedp.ID("password"), p.password),
		chromedp.Click(chromedp.CSS("#password-step button")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), code(t, p.secret, c.Now())),
		chromedp.Click(chromedp.CSS("#totp-step button")),
	}
}

// pageText reads the text of the element sel names.
func pageText[S chromedp.Selectable](t *testing.T, ctx context.Context, sel S) string {
	t.Helper()
	return browsertest.Text(t, ctx, sel)
}

// TestConsoleSignInInChromium signs a compliance officer in through the
// console's two steps in a real browser and reads the overview the
// dashboard API answers.
func TestConsoleSignInInChromium(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/", c, p),
		chromedp.WaitVisible(chromedp.ID("overview")),
		chromedp.WaitVisible(chromedp.CSS("#categories tbody tr")))...)
	text := func(id string) string { return pageText(t, ctx, chromedp.ID(id)) }
	if err != nil {
		screenshot(t, ctx, "signin-failed")
		t.Fatalf("%v; the page says %q", err, text("signin-error"))
	}
	who, score, errText := text("who"), text("readiness"), text("overview-error")
	screenshot(t, ctx, "overview")
	if who != p.email {
		t.Errorf("signed in as %q, want %s", who, p.email)
	}
	if _, err := strconv.ParseFloat(strings.TrimSpace(score), 64); err != nil || errText != "" {
		t.Errorf("the overview shows readiness %q and error %q", score, errText)
	}
}

// TestConsoleControlTurnsGreen watches a failing control in the console:
// IAM-01 fails while an account lacks a second factor, its detail names
// the account, and once the account is disabled and the control run again
// the page shows it passing.
func TestConsoleControlTurnsGreen(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	var u struct{ User struct{ ID string } }
	ts.do("POST", "/api/v1/users", ts.operator, hdr, `{"email":"nofactor@example.com","name":"No Factor"}`,
		http.StatusCreated, &u)
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, `{"controls":["IAM-01"]}`, http.StatusOK, nil)
	c.Add(30 * time.Second)
	status := `#control-list tr:has(button[data-control="IAM-01"]) td:nth-child(4)`
	err := within(ctx, append(signIn(t, ts.url+"/#controls", c, p),
		chromedp.WaitVisible(chromedp.CSS(status)),
		chromedp.Click(chromedp.CSS(`button[data-control="IAM-01"]`)),
		chromedp.WaitVisible(chromedp.CSS("#detail-findings li")))...)
	if err != nil {
		t.Fatal(err)
	}
	read := func(sel string) string { return pageText(t, ctx, chromedp.CSS(sel)) }
	screenshot(t, ctx, "control-failing")
	if got := read(status); got != "fail" {
		t.Errorf("IAM-01 shows %q, want fail", got)
	}
	if got := read("#detail-findings li"); !strings.Contains(got, "user:"+u.User.ID) {
		t.Errorf("the finding reads %q, want the account named", got)
	}

	// The fix: the account is disabled, and the control runs again.
	ts.do("POST", "/api/v1/users/"+u.User.ID+"/disable", ts.operator, hdr, "", http.StatusOK, nil)
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, `{"controls":["IAM-01"]}`, http.StatusOK, nil)
	if err := within(ctx, chromedp.Click(chromedp.ID("refresh-controls"))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); read(status) != "pass" && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	screenshot(t, ctx, "control-passing")
	if got := read(status); got != "pass" {
		t.Errorf("after the fix IAM-01 shows %q, want pass", got)
	}
}
