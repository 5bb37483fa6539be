package server_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// flowsFail stops a test whose step err failed, saving a screenshot as
// name and giving the text of the element id names.
func flowsFail(t *testing.T, ctx context.Context, name, id string, err error) {
	t.Helper()
	screenshot(t, ctx, name+"-failed")
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`document.getElementById(%q)?.innerText || ""`, id)))
	t.Fatalf("%v; the page says %q", err, v)
}

// flowsItem is a piece of evidence or an exception as the API answers it.
type flowsItem struct {
	ID, Status, Kind, URL, Title string
	ApprovedBy                   string `json:"approved_by"`
	RevokedBy                    string `json:"revoked_by"`
}

// flowsGet reads one piece of evidence or one exception (kind is
// "evidence" or "exceptions") through the API.
func (ts *testServer) flowsGet(kind, id string) flowsItem {
	ts.t.Helper()
	var x flowsItem
	ts.do("GET", "/api/v1/compliance/"+kind+"/"+id, ts.operator, map[string]string{"Attest-Tenant": tenant.Default}, "",
		http.StatusOK, &x)
	return x
}

// flowsLogin tries p's password at the first sign-in step and answers the
// status.
func (ts *testServer) flowsLogin(email, password string) int {
	ts.t.Helper()
	return ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":%q,"email":%q,"password":%q}`,
		tenant.Default, email, password), 0, nil).StatusCode
}

// flowsSessionID is the id of the session token is of.
func (ts *testServer) flowsSessionID(token string) string {
	ts.t.Helper()
	var d struct {
		Sessions []struct {
			ID      string
			Current bool
		}
	}
	ts.do("GET", "/api/v1/me/sessions", token, nil, "", http.StatusOK, &d)
	for _, s := range d.Sessions {
		if s.Current {
			return s.ID
		}
	}
	ts.t.Fatalf("no current session in %+v", d.Sessions)
	return ""
}

// TestConsoleFlowExceptionAndEvidence has a compliance officer submit a
// link as GOV-01's evidence in the page, and a second officer, in the same
// tab after the first signs out, approve the first's exception, then
// revoke it and the evidence, each with a reason: the API answers each
// state, and the trail holds the reasons.
func TestConsoleFlowExceptionAndEvidence(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ana := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	bo := ts.enrol(c, tenant.Default, "bo@example.com", "compliance_officer")
	var x flowsItem
	ts.do("POST", "/api/v1/compliance/exceptions", ana.session, nil, fmt.Sprintf(
		`{"control":"GOV-01","reason":"the register moves to the new HR system","expires_at":%q}`,
		c.Now().Add(20*24*time.Hour).Format(time.RFC3339)), http.StatusCreated, &x)
	link := "https://hr.example.com/registers/conduct-2026"

	// The first officer submits a link.
	evRow := `#evidence-list tbody tr`
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#controls/GOV-01", c, ana),
		chromedp.WaitVisible(chromedp.ID("evidence-form")),
		chromedp.SetValue(chromedp.ID("evidence-kind"), "link"),
		chromedp.WaitVisible(chromedp.ID("evidence-url")),
		chromedp.SendKeys(chromedp.ID("evidence-title"), "Conduct register in the HR system"),
		chromedp.SendKeys(chromedp.ID("evidence-url"), link),
		chromedp.Click(chromedp.ID("evidence-submit")),
		controlsShows(evRow, "awaiting approval"))...)
	if err != nil {
		flowsFail(t, ctx, "flow-evidence-link", "evidence-message", err)
	}
	if got := pageText(t, ctx, chromedp.CSS(evRow+" a")); got != link {
		t.Errorf("the evidence links to %q, want %s", got, link)
	}
	var evs struct{ Evidence []flowsItem }
	ts.do("GET", "/api/v1/compliance/evidence?control=GOV-01", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
		"", http.StatusOK, &evs)
	if len(evs.Evidence) != 1 || evs.Evidence[0].Kind != "link" || evs.Evidence[0].URL != link ||
		evs.Evidence[0].Status != "pending_approval" {
		t.Fatalf("after the submission the API lists %+v", evs.Evidence)
	}
	ev := evs.Evidence[0].ID

	// The second officer approves the exception.
	xRow := `#exception-list tr:has([data-revoke="` + x.ID + `"])`
	c.Add(30 * time.Second)
	err = within(ctx, append(append(controlsSignOut(), signIn(t, ts.url+"/#controls/GOV-01", c, bo)...),
		chromedp.WaitVisible(chromedp.CSS(`button[data-approve-exception="`+x.ID+`"]`)),
		chromedp.Click(chromedp.CSS(`button[data-approve-exception="`+x.ID+`"]`)),
		controlsShows(xRow, "approved by you"),
		controlsShows("#detail-message", "Exception approved."))...)
	if err != nil {
		flowsFail(t, ctx, "flow-exception-approve", "detail-message", err)
	}
	if got := ts.flowsGet("exceptions", x.ID); got.Status != "active" || got.ApprovedBy != bo.id {
		t.Errorf("after the approval the API answers %+v", got)
	}
	if got := pageText(t, ctx, chromedp.ID("detail-excepted")); !strings.Contains(got, "new HR system") {
		t.Errorf("the control's page says %q of its exception", got)
	}

	// And revokes it, with a reason.
	err = within(ctx, chromedp.Click(chromedp.CSS(`button[data-revoke="`+x.ID+`"]`)),
		chromedp.SendKeys(chromedp.CSS(`[id="exceptions-revoke-reason-`+x.ID+`"]`), "the migration was cancelled"),
		chromedp.Click(chromedp.CSS(`button[data-confirm-revoke="`+x.ID+`"]`)),
		controlsShows("#detail-message", "Exception revoked."),
		controlsShows("#exception-list tbody", "revoked by you"))
	if err != nil {
		flowsFail(t, ctx, "flow-exception-revoke", "detail-message", err)
	}
	if got := ts.flowsGet("exceptions", x.ID); got.Status != "revoked" || got.RevokedBy != bo.id {
		t.Errorf("after the revocation the API answers %+v", got)
	}
	if trail := ts.waitTrail(tenant.Default, "&action=compliance.exception.revoke", 1); !strings.Contains(string(trail),
		"the migration was cancelled") {
		t.Errorf("the revocation's reason is not in the trail: %s", trail)
	}

	// Then the evidence, with a reason.
	err = within(ctx, chromedp.Click(chromedp.CSS(`button[data-revoke="`+ev+`"]`)),
		chromedp.SendKeys(chromedp.CSS(`[id="evidence-revoke-reason-`+ev+`"]`), "the link points at last year's register"),
		chromedp.Click(chromedp.CSS(`button[data-confirm-revoke="`+ev+`"]`)),
		controlsShows("#detail-message", "Evidence revoked."),
		controlsShows(evRow, "revoked by you"))
	if err != nil {
		flowsFail(t, ctx, "flow-evidence-revoke", "detail-message", err)
	}
	screenshot(t, ctx, "flow-exception-evidence-revoked")
	if got := ts.flowsGet("evidence", ev); got.Status != "revoked" || got.RevokedBy != bo.id {
		t.Errorf("after the revocation the API answers %+v", got)
	}
	if trail := ts.waitTrail(tenant.Default, "&action=compliance.evidence.revoke", 1); !strings.Contains(string(trail),
		"last year's register") {
		t.Errorf("the evidence revocation's reason is not in the trail: %s", trail)
	}
	// Revoked, neither offers anything more to do.
	if n := controlsVisible(t, ctx, `#control-detail button[data-revoke], #control-detail button[data-approve]`); n != 0 {
		t.Errorf("after both revocations the page offers %d buttons on them", n)
	}
}

// TestConsoleFlowAccessAdmin has an owner deny an admin's elevation on
// the access page; the admin, in the same tab, then asks for users.manage
// again, activates it once approved, and on the user pages unlocks an
// account locked by wrong passwords, enables a disabled one and ends
// another person's session: the API answers each.
func TestConsoleFlowAccessAdmin(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}

	// Lena's account is locked by wrong passwords first: the delays it
	// meets on the way are waited out on the clock.
	lena := ts.enrol(c, tenant.Default, "lena@example.com", "member")
	locked := false
	for i := 0; i < 40 && !locked; i++ {
		resp := ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(
			`{"tenant":%q,"email":%q,"password":"not the password at all"}`, tenant.Default, lena.email), 0, nil)
		switch resp.StatusCode {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			b, _ := readAll(resp)
			locked = strings.Contains(b, "locked")
			c.Add(time.Minute)
		default:
			t.Fatalf("attempt %d: status %d", i, resp.StatusCode)
		}
	}
	if !locked {
		t.Fatal("lena's account never locked")
	}
	if got := ts.flowsLogin(lena.email, lena.password); got != http.StatusTooManyRequests {
		t.Fatalf("locked, lena's right password gets %d", got)
	}
	adam := ts.enrol(c, tenant.Default, "adam@example.com", "admin")
	olga := ts.enrol(c, tenant.Default, "olga@example.com", "owner")
	dan := ts.enrol(c, tenant.Default, "dan@example.com", "member")
	sam := ts.enrol(c, tenant.Default, "sam@example.com", "member")
	ts.do("POST", "/api/v1/users/"+dan.id+"/disable", ts.operator, hdr, `{"reason":"on parental leave"}`, http.StatusOK, nil)
	var asked struct{ ID string }
	ts.do("POST", "/api/v1/elevations", adam.session, nil, `{"reason":"tidy up accounts","permissions":["users.manage"]}`,
		http.StatusCreated, &asked)

	// The owner denies it.
	deny := `button[data-deny="` + asked.ID + `"]`
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#access/elevations", c, olga),
		chromedp.WaitVisible(chromedp.CSS(deny)),
		chromedp.Click(chromedp.CSS(deny)),
		accessShows("#access-elevations-status", "Denied."),
		accessShows(`#access-elevations tr:has([data-elevation="`+asked.ID+`"]) td:nth-child(7)`, "denied"))...)
	if err != nil {
		flowsFail(t, ctx, "flow-elevation-deny", "access", err)
	}
	screenshot(t, ctx, "flow-elevation-denied")
	if got := ts.accessElevation(adam.session, asked.ID); got.Status != "denied" {
		t.Errorf("after the denial the API answers %+v", got)
	}
	if n := accessCount(t, ctx, `#access-elevations tr:has([data-elevation="`+asked.ID+`"]) button`); n != 0 {
		t.Errorf("the denied request still offers %d buttons", n)
	}

	// The admin signs in in the same tab, asks again with a better reason,
	// and activates it once the owner approves.
	perm := `#access-elevate-perms input[value="users.manage"]`
	c.Add(30 * time.Second)
	err = within(ctx, append(append(controlsSignOut(), signIn(t, ts.url+"/#access/elevations", c, adam)...),
		chromedp.WaitVisible(chromedp.CSS(perm)),
		chromedp.Click(chromedp.CSS(perm)),
		chromedp.SendKeys(chromedp.ID("access-elevate-reason"), "unlock lena, re-enable dan, end sam's lost laptop session"),
		chromedp.Click(chromedp.ID("access-elevate-submit")),
		accessShows("#access-elevate-status", "Requested users.manage"))...)
	if err != nil {
		flowsFail(t, ctx, "flow-elevation-request", "access", err)
	}
	var list struct{ Elevations []accessElevation }
	ts.do("GET", "/api/v1/elevations", adam.session, nil, "", http.StatusOK, &list)
	i := slices.IndexFunc(list.Elevations, func(e accessElevation) bool { return e.Status == "pending" })
	if i < 0 {
		t.Fatalf("no pending request after the page's: %+v", list.Elevations)
	}
	id := list.Elevations[i].ID
	ts.do("POST", "/api/v1/elevations/"+id+"/approve", olga.session, nil, "", http.StatusOK, nil)
	c.Add(30 * time.Second)
	activate := `button[data-activate="` + id + `"]`
	err = within(ctx, chromedp.Click(chromedp.ID("access-elevations-refresh")),
		chromedp.WaitVisible(chromedp.CSS(activate)),
		chromedp.Click(chromedp.CSS(activate)),
		chromedp.SendKeys(chromedp.ID("access-activate-code"), code(t, adam.secret, c.Now())),
		chromedp.Click(chromedp.ID("access-activate-submit")),
		chromedp.WaitVisible(chromedp.ID("access-elevated")))
	if err != nil {
		flowsFail(t, ctx, "flow-elevation-activate", "access", err)
	}
	if err := within(ctx, accessShows("#who", "elevated until")); err != nil {
		t.Errorf("the header does not say the admin is elevated: %v", err)
	}

	// Unlock: the page says lena is locked, and once unlocked her right
	// password works again and the page offers no more unlocking.
	var lenaView struct {
		LockedUntil string `json:"locked_until"`
	}
	ts.do("GET", "/api/v1/users/"+lena.id, ts.operator, hdr, "", http.StatusOK, &lenaView)
	if lenaView.LockedUntil == "" {
		t.Errorf("the locked account's view names no lockout")
	}
	err = within(ctx, append(accessOpen("#access/user/"+lena.id, "#access-unlock"),
		accessShows("#access-user-facts", "locked after failed attempts"),
		chromedp.Click(chromedp.ID("access-unlock")),
		accessShows("#access-user-status", "Unlocked."))...)
	if err != nil {
		flowsFail(t, ctx, "flow-unlock", "access", err)
	}
	if got := ts.flowsLogin(lena.email, lena.password); got != http.StatusOK {
		t.Errorf("after the unlock lena's right password gets %d", got)
	}
	if err := within(ctx, chromedp.Poll[chromedp.Void](`!document.getElementById("access-unlock")`)); err != nil {
		t.Errorf("after the unlock the page still offers Unlock: %v", err)
	}

	// Enable: dan's account is active again.
	err = within(ctx, append(accessOpen("#access/user/"+dan.id, "#access-enable"),
		chromedp.Click(chromedp.ID("access-enable")),
		accessShows("#access-user-status", "Enabled."),
		chromedp.WaitVisible(chromedp.ID("access-disable")))...)
	if err != nil {
		flowsFail(t, ctx, "flow-enable", "access", err)
	}
	var u struct{ Status string }
	ts.do("GET", "/api/v1/users/"+dan.id, ts.operator, hdr, "", http.StatusOK, &u)
	if u.Status != "active" {
		t.Errorf("after the click dan's account is %s", u.Status)
	}

	// End a session of sam's: its token no longer works.
	sid := ts.flowsSessionID(sam.session)
	end := `#access-user-sessions button[data-end-session="` + sid + `"]`
	err = within(ctx, append(accessOpen("#access/user/"+sam.id, end),
		chromedp.Click(chromedp.CSS(end)),
		accessShows("#access-user-status", "Ended the session."),
		chromedp.WaitNotPresent(chromedp.CSS(end)))...)
	if err != nil {
		flowsFail(t, ctx, "flow-end-session", "access", err)
	}
	screenshot(t, ctx, "flow-user-session-ended")
	ts.do("GET", "/api/v1/me", sam.session, nil, "", http.StatusUnauthorized, nil)
	ts.do("GET", "/api/v1/me", adam.session, nil, "", http.StatusOK, nil)
}

// TestConsoleFlowMyAccount works on the signed-in person's own account:
// ends another session of theirs, adds and removes a passkey (which signs
// them out everywhere), then signs in again and changes the password,
// after which the old one fails and the new one works.
func TestConsoleFlowMyAccount(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "pia@example.com", "security_analyst")
	other := ts.login(c, tenant.Default, p)
	otherID := ts.flowsSessionID(other)
	// A passkey's relying party is a domain name: the page is opened at
	// localhost, the origin the server is told to expect.
	u, _ := url.Parse(ts.url)
	origin := "https://localhost:" + u.Port()
	if err := ts.in.Identity.Passkeys.Configure(identity.PasskeyConfig{RPID: "localhost", Origins: []string{origin}}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
			Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true},
	}); err != nil {
		t.Fatal(err)
	}

	// End the other session.
	end := `#access-my-sessions button[data-end-session="` + otherID + `"]`
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, origin+"/#access/me", c, p),
		chromedp.WaitVisible(chromedp.CSS(end)),
		chromedp.Click(chromedp.CSS(end)),
		accessShows("#access-my-sessions-status", "Ended the session."),
		chromedp.WaitNotPresent(chromedp.CSS(end)))...)
	if err != nil {
		flowsFail(t, ctx, "flow-me-session", "access", err)
	}
	screenshot(t, ctx, "flow-me-session-ended")
	ts.do("GET", "/api/v1/me", other, nil, "", http.StatusUnauthorized, nil)
	ts.do("GET", "/api/v1/me", p.session, nil, "", http.StatusOK, nil)

	// Add a passkey, then remove it: removing asks once more, and signs
	// the person out everywhere.
	c.Add(30 * time.Second)
	err = within(ctx, chromedp.SendKeys(chromedp.ID("access-passkey-name"), "old laptop"),
		chromedp.SendKeys(chromedp.ID("access-passkey-code"), code(t, p.secret, c.Now())),
		chromedp.Click(chromedp.ID("access-add-passkey-submit")),
		accessShows("#access-add-passkey-status", "Added the passkey"),
		chromedp.WaitVisible(chromedp.CSS("#access-passkeys button[data-remove-passkey]")))
	if err != nil {
		flowsFail(t, ctx, "flow-me-passkey-add", "access", err)
	}
	// Adding a factor ends the person's other sessions: the API is asked
	// as the operator.
	var got struct{ Factors []string }
	ts.do("GET", "/api/v1/users/"+p.id, ts.operator, hdr, "", http.StatusOK, &got)
	if !slices.Contains(got.Factors, "webauthn") {
		t.Fatalf("after the registration the account's factors are %v", got.Factors)
	}
	remove := `#access-passkeys button[data-remove-passkey]`
	err = within(ctx, chromedp.Click(chromedp.CSS(remove)),
		accessShows("#access-passkeys-status", "press again"),
		chromedp.Click(chromedp.CSS(remove)),
		accessShows("#access-passkeys-status", "Removed the passkey"),
		chromedp.WaitVisible(chromedp.ID("access-sign-in-again")))
	if err != nil {
		flowsFail(t, ctx, "flow-me-passkey-remove", "access", err)
	}
	screenshot(t, ctx, "flow-me-passkey-removed")
	ts.do("GET", "/api/v1/users/"+p.id, ts.operator, hdr, "", http.StatusOK, &got)
	if slices.Contains(got.Factors, "webauthn") {
		t.Errorf("after the removal the account's factors are %v", got.Factors)
	}
	if n := evalJS[int](t, ctx, `document.querySelectorAll("#access-passkeys button[data-remove-passkey]").length`); n != 0 {
		t.Errorf("after the removal the page lists %d passkeys", n)
	}

	// Signed in again through the page's button, the person changes the
	// password.
	const newPassword = "a longer passphrase nobody guesses 42"
	c.Add(30 * time.Second)
	err = within(ctx, chromedp.Click(chromedp.ID("access-sign-in-again")),
		chromedp.WaitVisible(chromedp.ID("tenant")),
		chromedp.SendKeys(chromedp.ID("tenant"), tenant.Default),
		chromedp.SendKeys(chromedp.ID("email"), p.email),
		chromedp.SendKeys(chromedp.ID("password"), p.password),
		chromedp.Click(chromedp.CSS("#password-step button")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), code(t, p.secret, c.Now())),
		chromedp.Click(chromedp.CSS("#totp-step button")),
		chromedp.Evaluate[chromedp.Void](`location.hash = "#access/me"`),
		chromedp.WaitVisible(chromedp.ID("access-password-current")),
		chromedp.SendKeys(chromedp.ID("access-password-current"), p.password),
		chromedp.SendKeys(chromedp.ID("access-password-new"), newPassword),
		chromedp.SendKeys(chromedp.ID("access-password-again"), newPassword),
		chromedp.Click(chromedp.ID("access-password-submit")),
		accessShows("#access-password-status", "Changed your password"))
	if err != nil {
		flowsFail(t, ctx, "flow-me-password", "main", err)
	}
	screenshot(t, ctx, "flow-me-password-changed")
	if got := ts.flowsLogin(p.email, p.password); got != http.StatusUnauthorized {
		t.Errorf("after the change the old password gets %d, want 401", got)
	}
	if got := ts.flowsLogin(p.email, newPassword); got != http.StatusOK {
		t.Errorf("after the change the new password gets %d, want 200", got)
	}
}

// flowsRetention is the retention policy as the API answers it.
type flowsRetention struct {
	RetentionDays int    `json:"retention_days"`
	HotDays       int    `json:"hot_days"`
	LegalHold     bool   `json:"legal_hold"`
	HoldReason    string `json:"hold_reason"`
	Default       bool
}

// TestConsoleFlowSettingsRetention has an owner, elevated to
// audit.retention.manage, save a retention policy on the settings page,
// then set a legal hold and release it, each with a reason: the API
// answers each change, and the trail holds the reasons.
func TestConsoleFlowSettingsRetention(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	owner := ts.enrol(c, tenant.Default, "olga@example.com", "owner")
	approver := ts.enrol(c, tenant.Default, "adam@example.com", "admin")
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#settings", c, owner),
		chromedp.WaitVisible(chromedp.CSS("#settings[data-ready]")),
		chromedp.WaitVisible(chromedp.ID("retention-retention_days")))...)
	if err != nil {
		flowsFail(t, ctx, "flow-retention", "settings", err)
	}
	if n := reportsCount(t, ctx, "#retention-save, #retention-hold-set"); n != 0 {
		t.Errorf("before an elevation the page offers %d retention buttons", n)
	}
	reportsElevate(t, ctx, ts, c, owner, approver, `["audit.retention.manage"]`)
	read := func() flowsRetention {
		var r flowsRetention
		ts.do("GET", "/api/v1/retention", ts.operator, hdr, "", http.StatusOK, &r)
		return r
	}

	err = within(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("retention-save")),
		chromedp.SetValue(chromedp.ID("retention-retention_days"), "800"),
		chromedp.SetValue(chromedp.ID("retention-hot_days"), "120"),
		chromedp.Click(chromedp.ID("retention-save")),
		reportsWaitText("retention-status", "Retention saved."))
	if err != nil {
		flowsFail(t, ctx, "flow-retention-save", "retention", err)
	}
	if r := read(); r.RetentionDays != 800 || r.HotDays != 120 || r.Default {
		t.Errorf("after saving 800 and 120 days the API answers %+v", r)
	}
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("retention-retention_days"))); v != "800" {
		t.Errorf("after the save the page shows %q days", v)
	}

	// A legal hold, with the matter it is for.
	err = within(ctx, chromedp.SendKeys(chromedp.ID("retention-reason"), "Matter 2026-17, Acme v. Example"),
		chromedp.Click(chromedp.ID("retention-hold-set")),
		reportsWaitText("retention-status", "Legal hold set."),
		controlsShows("#retention-hold", "Under legal hold: Matter 2026-17"))
	if err != nil {
		flowsFail(t, ctx, "flow-hold-set", "retention", err)
	}
	screenshot(t, ctx, "flow-legal-hold")
	if r := read(); !r.LegalHold || r.HoldReason != "Matter 2026-17, Acme v. Example" {
		t.Errorf("after setting the hold the API answers %+v", r)
	}
	if got := pageText(t, ctx, chromedp.ID("retention-hold-set")); got != "Release the legal hold" {
		t.Errorf("under a hold the button reads %q", got)
	}

	// Released without a reason the API refuses, and says why next to the
	// field; with one it is released.
	err = within(ctx, chromedp.Click(chromedp.ID("retention-hold-set")),
		chromedp.WaitVisible(chromedp.CSS(`#retention-reason[aria-invalid="true"]`)))
	if err != nil {
		flowsFail(t, ctx, "flow-hold-release", "retention", err)
	}
	if got := pageText(t, ctx, chromedp.ID("retention-reason-error")); !strings.Contains(got, "required") {
		t.Errorf("without a reason the page says %q", got)
	}
	if r := read(); !r.LegalHold {
		t.Fatalf("a release without a reason released the hold: %+v", r)
	}
	err = within(ctx, chromedp.SendKeys(chromedp.ID("retention-reason"), "Matter 2026-17 settled"),
		chromedp.Click(chromedp.ID("retention-hold-set")),
		reportsWaitText("retention-status", "Legal hold released."),
		reportsWaitText("retention-hold", "No legal hold."))
	if err != nil {
		flowsFail(t, ctx, "flow-hold-release", "retention", err)
	}
	screenshot(t, ctx, "flow-legal-hold-released")
	if r := read(); r.LegalHold || r.RetentionDays != 800 {
		t.Errorf("after the release the API answers %+v", r)
	}
	if trail := ts.waitTrail(tenant.Default, "&action=audit.legal_hold.release", 1); !strings.Contains(string(trail),
		"Matter 2026-17 settled") {
		t.Errorf("the release's reason is not in the trail: %s", trail)
	}
}

// flowsDownload has the browser save downloads into dir, then clicks the
// button sel names and waits for its download, as reportsDownload does.
func flowsDownload(t *testing.T, ctx context.Context, dir, sel, status string) (string, []byte) {
	t.Helper()
	if err := within(ctx, reportsSaveTo(dir)); err != nil {
		t.Fatal(err)
	}
	return reportsDownload(t, ctx, dir, sel, status)
}

// TestConsoleFlowReviewExport downloads an access review's CSV export
// from its page: the file is the campaign's CSV, its header row the
// export's columns and a row per item, the decision made through the API
// among them.
func TestConsoleFlowReviewExport(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	alice := ts.enrol(c, tenant.Default, "alice@example.com", "compliance_officer")
	bob := ts.enrol(c, tenant.Default, "bob@example.com", "member")
	var rv struct{ Campaign struct{ ID string } }
	ts.do("POST", "/api/v1/reviews", alice.session, nil, `{"name":"2026 Q2 access review","roles":["member"]}`,
		http.StatusCreated, &rv)
	id := rv.Campaign.ID
	ts.do("POST", "/api/v1/reviews/"+id+"/items/"+bob.id+"/member/decision", alice.session, nil,
		`{"decision":"keep","reason":"on the support rota"}`, http.StatusOK, nil)

	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#access/review/"+id, c, alice),
		chromedp.WaitVisible(chromedp.ID("access-review-export-csv")),
		chromedp.WaitVisible(chromedp.CSS("#access-review-items tbody tr")))...)
	if err != nil {
		flowsFail(t, ctx, "flow-review-export", "access", err)
	}
	screenshot(t, ctx, "flow-review-export")
	name, b := flowsDownload(t, ctx, t.TempDir(), "#access-review-export-csv", "access-review-status")
	if name != "access-review-"+id+".csv" {
		t.Errorf("the export is saved as %q", name)
	}
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatalf("the export is no CSV: %v\n%s", err, b)
	}
	want := []string{"campaign_id", "campaign_name", "campaign_status", "scope_roles", "created_by", "started_at",
		"deadline", "on_deadline", "escalate_to", "escalated_at", "completed_at", "user_id", "user_email", "user_name",
		"role", "reviewer_id", "decision", "reason", "decided_by", "decided_at"}
	if len(rows) == 0 || !slices.Equal(rows[0], want) {
		t.Fatalf("the export's header row is %q, want %q", rows[:min(len(rows), 1)], want)
	}
	var got reviewAnswer
	ts.do("GET", "/api/v1/reviews/"+id, alice.session, nil, "", http.StatusOK, &got)
	if len(rows)-1 != len(got.Items) {
		t.Errorf("the export has %d rows of items, the API %d", len(rows)-1, len(got.Items))
	}
	i := slices.IndexFunc(rows, func(r []string) bool { return len(r) == len(want) && r[11] == bob.id })
	if i < 0 || rows[i][0] != id || rows[i][14] != "member" || rows[i][16] != "keep" || rows[i][17] != "on the support rota" {
		t.Errorf("bob's row of the export: %q", rows[min(max(i, 0), len(rows)-1)])
	}
	if trail := ts.waitTrail(tenant.Default, "&action=review.campaign.export.start", 1); !strings.Contains(string(trail),
		`"csv"`) {
		t.Errorf("the export is not on record in the trail: %s", trail)
	}
}
