package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/chromedp"
)

// changing names the buttons that would change something: none is for an
// auditor.
var changing = regexp.MustCompile(`(?i)^(approve|deny|revoke|create|save|submit|upload|request|grant|disable|enable|` +
	`unlock|delete|remove|run now|activate|issue|set |release|keep|start|change|regenerate|end |acknowledge)`)

// visibleButtons answers the text of every button on show.
const visibleButtons = `[...document.querySelectorAll("button")]
  .filter((b) => b.offsetParent !== null && !b.disabled)
  .map((b) => (b.getAttribute("aria-label") || b.textContent).trim())`

// TestConsoleAuditorSeesReadOnly signs an auditor in: a banner names the
// audit period, and no page the navigation offers shows a button that
// would change something, while a compliance officer's control page does.
func TestConsoleAuditorSeesReadOnly(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, `{}`, http.StatusOK, nil)
	aud := ts.enrol(c, tenant.Default, "aud@example.com", "")
	from, to := c.Now().AddDate(0, -3, 0).UTC().Truncate(time.Hour), c.Now().Add(-time.Hour).UTC().Truncate(time.Hour)
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, hdr,
		`{"period_start":"`+from.Format(time.RFC3339)+`","period_end":"`+to.Format(time.RFC3339)+`"}`, http.StatusOK, nil)
	c.Add(30 * time.Second)
	if err := within(ctx, append(signIn(t, ts.url+"/", c, aud), chromedp.WaitVisible(chromedp.ID("period")))...); err != nil {
		t.Fatal(err)
	}
	if banner := pageText(t, ctx, chromedp.ID("period")); !strings.Contains(banner, "Read-only") {
		t.Errorf("the banner reads %q", banner)
	}
	pages := evalJS[[]string](t, ctx, `[...document.querySelectorAll("#nav-links a")].map((a) => a.id.slice(3))`)
	for _, want := range []string{"overview", "controls", "trail"} {
		if !strings.Contains(strings.Join(pages, " "), want) {
			t.Errorf("the auditor's navigation lacks %s: %v", want, pages)
		}
	}
	visit := func(hash, section string) []string {
		t.Helper()
		if err := within(ctx, chromedp.Navigate(ts.url+"/"+hash), chromedp.WaitVisible(chromedp.ID(section))); err != nil {
			t.Fatalf("%s: %v", hash, err)
		}
		time.Sleep(500 * time.Millisecond) // the page's requests
		return evalJS[[]string](t, ctx, visibleButtons)
	}
	for _, p := range append(pages, "controls/IAM-01", "controls/GOV-01") {
		section, _, _ := strings.Cut(p, "/")
		buttons := visit("#"+p, section)
		screenshot(t, ctx, "auditor-"+strings.ReplaceAll(p, "/", "-"))
		for _, b := range buttons {
			if changing.MatchString(b) {
				t.Errorf("the auditor is shown %q on #%s", b, p)
			}
		}
	}

	// The same detail, for a compliance officer, offers what the auditor
	// was not shown: the check above can fail.
	off := ts.enrol(c, tenant.Default, "off@example.com", "compliance_officer")
	c.Add(30 * time.Second)
	if err := within(ctx, chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("tenant"))); err != nil {
		t.Fatal(err)
	}
	if err := within(ctx, append(signIn(t, ts.url+"/", c, off), chromedp.WaitVisible(chromedp.ID("overview")))...); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range visit("#controls/GOV-01", "controls") {
		found = found || changing.MatchString(b)
	}
	if !found {
		t.Error("a compliance officer is shown no action on GOV-01 either: the auditor's check proves nothing")
	}
}
