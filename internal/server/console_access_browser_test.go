package server_test

import (
	"context"
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

// accessShows waits until the element sel names holds text. It polls on
// a timer: a tab of its own browser context may draw no frames.
func accessShows(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.PollFunction[bool](`(sel, want) => {
			const e = document.querySelector(sel);
			return !!e && e.textContent.includes(want);
		}`, chromedp.WithPollingArgs(sel, text), chromedp.WithPollingInterval(50*time.Millisecond))(ctx, t)
		if err != nil {
			return fmt.Errorf("waiting for %q in %s: %w", text, sel, err)
		}
		return nil
	})
}

// accessButtons lists the text of every button of the access page's
// current part.
func accessButtons(t *testing.T, ctx context.Context) []string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#access-view button")].map((b) => b.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// accessWords reads the text of the element id names, its words joined by
// single spaces.
func accessWords(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return strings.Join(strings.Fields(pageText(t, ctx, chromedp.ID(id))), " ")
}

// accessCount counts the elements sel names.
func accessCount(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := chromedp.Run(tctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// accessOpen shows a part of the access page and waits until it is
// rendered: its box is there and no list is still loading.
func accessOpen(hash, ready string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, hash)),
		chromedp.WaitVisible(chromedp.CSS(ready)),
	}
}

// accessTab gives a browser tab of its own cookies, for a second person.
func accessTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	return tctx
}

type accessElevation struct {
	ID, Status string
	User       string `json:"user_id"`
}

func (ts *testServer) accessElevation(session, id string) accessElevation {
	ts.t.Helper()
	var list struct{ Elevations []accessElevation }
	ts.do("GET", "/api/v1/elevations", session, nil, "", http.StatusOK, &list)
	for _, e := range list.Elevations {
		if e.ID == id {
			return e
		}
	}
	ts.t.Fatalf("no elevation %s in %+v", id, list.Elevations)
	return accessElevation{}
}

// TestConsoleAccessApproveElevation has an owner approve an admin's
// elevation on the access page: the request shows with an Approve button,
// her own request shows without one, and after the click the page and the
// API say approved.
func TestConsoleAccessApproveElevation(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	adam := ts.enrol(c, tenant.Default, "adam@example.com", "admin")
	olga := ts.enrol(c, tenant.Default, "olga@example.com", "owner")
	var asked, own struct{ ID string }
	ts.do("POST", "/api/v1/elevations", adam.session, nil,
		`{"reason":"onboarding a new engineer","permissions":["users.manage"],"minutes":30}`, http.StatusCreated, &asked)
	ts.do("POST", "/api/v1/elevations", olga.session, nil, `{"reason":"rotating keys","permissions":["apikeys.manage"]}`,
		http.StatusCreated, &own)
	c.Add(30 * time.Second)

	row := func(id string) string { return `#access-elevations tr:has([data-elevation="` + id + `"])` }
	approve := row(asked.ID) + ` button[data-approve="` + asked.ID + `"]`
	err := within(ctx, append(signIn(t, ts.url+"/#access/elevations", c, olga),
		chromedp.WaitVisible(chromedp.CSS(approve)),
		chromedp.WaitVisible(chromedp.CSS(row(own.ID))))...)
	if err != nil {
		screenshot(t, ctx, "access-elevations-failed")
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	if got := pageText(t, ctx, chromedp.CSS(row(asked.ID)+" td:nth-child(2)")); got != adam.email {
		t.Errorf("the request names %q, want %s", got, adam.email)
	}
	// Nobody approves their own elevation: the page offers no button for it.
	if n := accessCount(t, ctx, row(own.ID)+" button"); n != 0 {
		t.Errorf("olga's own request shows %d buttons", n)
	}
	if err := within(ctx, chromedp.Click(chromedp.CSS(approve)),
		accessShows(row(asked.ID)+" td:nth-child(7)", "approved")); err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access-elevations-status")))
	}
	screenshot(t, ctx, "access-elevations")
	// At a phone's width the table scrolls inside its section.
	if err := within(ctx, chromedp.EmulateViewport(390, 800)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "access-elevations-phone")
	if got := ts.accessElevation(adam.session, asked.ID); got.Status != "approved" {
		t.Errorf("after the click the API says %+v", got)
	}
	if got := ts.accessElevation(olga.session, own.ID); got.Status != "pending" {
		t.Errorf("olga's own request became %+v", got)
	}
}

// TestConsoleAccessRolesShapeTheView signs in a member and an auditor:
// neither sees a button the server would refuse them. The member sees
// only the parts that are everyone's; the auditor reads users, roles and
// reviews with no way to change them.
func TestConsoleAccessRolesShapeTheView(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	bob := ts.enrol(c, tenant.Default, "bob@example.com", "member")
	aud := ts.enrol(c, tenant.Default, "audrey@example.com", "")
	adam := ts.enrol(c, tenant.Default, "adam@example.com", "admin")
	start, end := c.Now().Add(-60*24*time.Hour).Format(time.RFC3339), c.Now().Add(-24*time.Hour).Format(time.RFC3339)
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, hdr,
		fmt.Sprintf(`{"period_start":%q,"period_end":%q}`, start, end), http.StatusOK, nil)
	ts.do("POST", "/api/v1/elevations", adam.session, nil, `{"reason":"maintenance"}`, http.StatusCreated, nil)
	var rv struct{ Campaign struct{ ID string } }
	ts.do("POST", "/api/v1/reviews", ts.operator, hdr, `{"name":"2026 Q1 access review"}`, http.StatusCreated, &rv)
	c.Add(30 * time.Second)

	// The member: elevations and their own account, nothing to approve.
	// With nothing to elevate to, a part they may not read opens their
	// own account instead.
	steps := append(signIn(t, ts.url+"/#access/users", c, bob), chromedp.WaitVisible(chromedp.ID("access-me-view")))
	if err := within(ctx, steps...); err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("main")))
	}
	if got := accessWords(t, ctx, "access-tabs"); got != "Elevations My account" {
		t.Errorf("the member's tabs read %q", got)
	}
	if err := within(ctx, accessOpen("#access/elevations", "#access-elevations tbody tr")...); err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	if got := accessButtons(t, ctx); !slices.Equal(got, []string{"Refresh"}) {
		t.Errorf("the member's elevations offer %q", got)
	}
	if n := accessCount(t, ctx, "#access-elevate"); n != 0 {
		t.Error("the member, who has nothing to elevate to, is offered a request form")
	}

	// The auditor reads users, roles and reviews, and changes nothing.
	actx := accessTab(t, ctx)
	c.Add(30 * time.Second)
	if err := within(actx, append(signIn(t, ts.url+"/#access/users", c, aud),
		chromedp.WaitVisible(chromedp.CSS(`#access-users a[data-user="`+adam.id+`"]`)))...); err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, actx, chromedp.ID("main")))
	}
	if got := accessWords(t, actx, "access-tabs"); got != "Users Roles Elevations Access reviews My account" {
		t.Errorf("the auditor's tabs read %q", got)
	}
	for _, part := range []struct{ hash, ready string }{
		{"#access/users", "#access-users tbody tr"},
		{"#access/user/" + adam.id, "#access-user-sessions tbody tr"},
		{"#access/roles", "#access-roles tbody tr"},
		{"#access/elevations", "#access-elevations tbody tr"},
		{"#access/reviews", "#access-reviews a[data-review]"},
		{"#access/review/" + rv.Campaign.ID, "#access-review-items tbody tr"},
	} {
		if err := within(actx, accessOpen(part.hash, part.ready)...); err != nil {
			t.Fatalf("%s: %v; the page says %q", part.hash, err, pageText(t, actx, chromedp.ID("access")))
		}
		for _, b := range accessButtons(t, actx) {
			if !slices.Contains([]string{"Refresh", "Export CSV", "Export JSON"}, b) {
				t.Errorf("%s offers the auditor %q", part.hash, b)
			}
		}
		if n := accessCount(t, actx, "#access-view form"); n != 0 {
			t.Errorf("%s offers the auditor %d forms", part.hash, n)
		}
	}
	if got := pageText(t, actx, chromedp.ID("period")); !strings.Contains(got, "Read-only") {
		t.Errorf("the auditor's banner reads %q", got)
	}
}

// TestConsoleAccessCreateUserEnrol walks an account's life on the page:
// an admin asks for users.manage, an owner approves, the admin activates
// it with a code, creates an account and reads its enrolment link; the
// link, opened in the browser, sets the account up and signs its person
// in.
func TestConsoleAccessCreateUserEnrol(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	adam := ts.enrol(c, tenant.Default, "adam@example.com", "admin")
	olga := ts.enrol(c, tenant.Default, "olga@example.com", "owner")
	c.Add(30 * time.Second)

	// Without an elevation the admin is pointed to one, and offered no form.
	perm := `#access-elevate-perms input[value="users.manage"]`
	err := within(ctx, append(signIn(t, ts.url+"/#access/users", c, adam),
		chromedp.WaitVisible(chromedp.CSS(`#access-users a[data-user="`+olga.id+`"]`)),
		accessShows("#access-users-view", "request an elevation"),
		chromedp.Evaluate[chromedp.Void](`location.hash = "#access/elevations"`),
		chromedp.WaitVisible(chromedp.CSS(perm)),
		chromedp.Click(chromedp.CSS(perm)),
		chromedp.Click(chromedp.CSS(`#access-elevate-perms input[value="roles.manage"]`)),
		chromedp.SendKeys(chromedp.ID("access-elevate-reason"), "onboarding Nina"),
		chromedp.Click(chromedp.ID("access-elevate-submit")),
		accessShows("#access-elevate-status", "Requested users.manage, roles.manage"))...)
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	var list struct{ Elevations []accessElevation }
	ts.do("GET", "/api/v1/elevations", adam.session, nil, "", http.StatusOK, &list)
	if len(list.Elevations) != 1 || list.Elevations[0].Status != "pending" {
		t.Fatalf("after the request: %+v", list.Elevations)
	}
	id := list.Elevations[0].ID
	ts.do("POST", "/api/v1/elevations/"+id+"/approve", olga.session, nil, "", http.StatusOK, nil)

	c.Add(30 * time.Second)
	activate := `button[data-activate="` + id + `"]`
	err = within(ctx, chromedp.Click(chromedp.ID("access-elevations-refresh")),
		chromedp.WaitVisible(chromedp.CSS(activate)),
		chromedp.Click(chromedp.CSS(activate)),
		chromedp.SendKeys(chromedp.ID("access-activate-code"), code(t, adam.secret, c.Now())),
		chromedp.Click(chromedp.ID("access-activate-submit")),
		// The page reloads holding the permission.
		chromedp.WaitVisible(chromedp.ID("access-elevated")))
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	if got := pageText(t, ctx, chromedp.ID("access-elevated")); !strings.Contains(got, "users.manage") {
		t.Errorf("the page says %q", got)
	}

	err = within(ctx, append(accessOpen("#access/users", "#access-create-user"),
		chromedp.SendKeys(chromedp.ID("access-new-email"), "nina@example.com"),
		chromedp.SendKeys(chromedp.ID("access-new-name"), "Nina Novak"),
		chromedp.Click(chromedp.ID("access-create-user-submit")),
		chromedp.WaitVisible(chromedp.ID("access-enrol-link")),
		accessShows("#access-users", "nina@example.com"))...)
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	link := pageText(t, ctx, chromedp.ID("access-enrol-link"))
	u, _ := url.Parse(ts.url)
	if !strings.HasPrefix(link, "https://"+u.Host+"/#enrol/ate_") {
		t.Fatalf("the enrolment link reads %q", link)
	}
	if got := pageText(t, ctx, chromedp.CSS(`#access-users tr:has(a[href*="usr_"]):last-child td:nth-child(5)`)); got == "" {
		t.Error("no second-factor cell")
	}
	screenshot(t, ctx, "access-users")
	var users struct{ Users []struct{ ID, Email string } }
	ts.do("GET", "/api/v1/users", ts.operator, hdr, "", http.StatusOK, &users)
	i := slices.IndexFunc(users.Users, func(u struct{ ID, Email string }) bool { return u.Email == "nina@example.com" })
	if i < 0 {
		t.Fatalf("no account made: %+v", users.Users)
	}
	nina := users.Users[i].ID
	if err := within(ctx, accessOpen("#access/user/"+nina, "#access-issue-enrolment")...); err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	if got := pageText(t, ctx, chromedp.ID("access-user-facts")); !strings.Contains(got, "none") {
		t.Errorf("the new account's facts read %q, want its missing factor named", got)
	}
	screenshot(t, ctx, "access-user")

	// Nina opens the link in a browser of her own.
	nctx := accessTab(t, ctx)
	err = within(nctx, chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("enrol-password")),
		chromedp.SendKeys(chromedp.ID("enrol-password"), goodPassword),
		chromedp.Click(chromedp.CSS("#enrol-step button")),
		chromedp.WaitVisible(chromedp.ID("enrol-code")))
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, nctx, chromedp.ID("signin-error")))
	}
	secret := pageText(t, nctx, chromedp.ID("enrol-secret"))
	c.Add(30 * time.Second)
	err = within(nctx, chromedp.SendKeys(chromedp.ID("enrol-code"), code(t, secret, c.Now())),
		chromedp.Click(chromedp.CSS("#enrol-confirm button")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-codes li")))
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, nctx, chromedp.ID("signin-error")))
	}
	screenshot(t, nctx, "enrol")
	if n := accessCount(t, nctx, "#enrol-codes li"); n < 8 {
		t.Errorf("%d recovery codes shown", n)
	}
	// A member, with nothing to elevate to, lands on their own account.
	if err := within(nctx, chromedp.Click(chromedp.ID("enrol-continue")),
		chromedp.WaitVisible(chromedp.ID("access-me-view"))); err != nil {
		t.Fatal(err)
	}
	if got := pageText(t, nctx, chromedp.ID("who")); got != "nina@example.com" {
		t.Errorf("signed in as %q", got)
	}
	var got struct {
		Status  string
		Factors []string
		Roles   []struct{ Role string }
	}
	ts.do("GET", "/api/v1/users/"+nina, ts.operator, hdr, "", http.StatusOK, &got)
	if got.Status != "active" || !slices.Contains(got.Factors, "totp") {
		t.Errorf("after enrolment the account is %+v", got)
	}

	// Still elevated, the admin grants Nina a role on her page.
	err = within(ctx, append(accessOpen("#access/user/"+nina, "#access-grant-role"),
		chromedp.SetValue(chromedp.ID("access-grant-role"), "security_analyst"),
		chromedp.Click(chromedp.ID("access-grant-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#access-user-roles button[data-revoke-role="security_analyst"]`)),
		accessShows("#access-user-status", "Granted security_analyst"))...)
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	ts.do("GET", "/api/v1/users/"+nina, ts.operator, hdr, "", http.StatusOK, &got)
	if !slices.ContainsFunc(got.Roles, func(g struct{ Role string }) bool { return g.Role == "security_analyst" }) {
		t.Errorf("after the grant nina holds %+v", got.Roles)
	}

	// And makes a custom role.
	err = within(ctx, append(accessOpen("#access/roles", "#access-create-role"),
		chromedp.SendKeys(chromedp.ID("access-role-name"), "support-reader"),
		chromedp.Click(chromedp.CSS(`#access-role-perms input[value="users.read"]`)),
		chromedp.SendKeys(chromedp.ID("access-role-actions"), "recording.read"),
		chromedp.Click(chromedp.ID("access-create-role-submit")),
		chromedp.WaitVisible(chromedp.CSS(`button[data-delete-role="support-reader"]`)))...)
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	type role struct {
		Name        string
		Permissions []string
	}
	var rl struct{ Roles []role }
	ts.do("GET", "/api/v1/roles", ts.operator, hdr, "", http.StatusOK, &rl)
	i = slices.IndexFunc(rl.Roles, func(r role) bool { return r.Name == "support-reader" })
	if i < 0 || !slices.Equal(rl.Roles[i].Permissions, []string{"users.read", "recording.read"}) {
		t.Errorf("roles after the creation: %+v", rl.Roles)
	}

	// Nina leaves: her account is disabled with a reason.
	err = within(ctx, append(accessOpen("#access/user/"+nina, "#access-disable"),
		chromedp.SendKeys(chromedp.ID("access-user-reason"), "left the company"),
		chromedp.Click(chromedp.ID("access-disable")),
		chromedp.WaitVisible(chromedp.ID("access-enable")),
		accessShows("#access-user-facts", "left the company"))...)
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	ts.do("GET", "/api/v1/users/"+nina, ts.operator, hdr, "", http.StatusOK, &got)
	if got.Status != "disabled" {
		t.Errorf("after the click nina's account is %s", got.Status)
	}
}

// TestConsoleAccessReviewDecision has a compliance officer start a review
// on the page, open it and keep a member's role with a reason; the API
// records the decision.
func TestConsoleAccessReviewDecision(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	alice := ts.enrol(c, tenant.Default, "alice@example.com", "compliance_officer")
	// A second manager of reviews reviews alice's own access.
	ts.enrol(c, tenant.Default, "bea@example.com", "compliance_officer")
	bob := ts.enrol(c, tenant.Default, "bob@example.com", "member")
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/#access/reviews", c, alice),
		chromedp.WaitVisible(chromedp.ID("access-review-name")),
		chromedp.SendKeys(chromedp.ID("access-review-name"), "2026 Q1 access review"),
		chromedp.Click(chromedp.ID("access-create-review-submit")),
		chromedp.WaitVisible(chromedp.CSS("#access-reviews a[data-review]")))...)
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	screenshot(t, ctx, "access-reviews")
	keep := `button[data-keep="` + bob.id + `/member"]`
	row := `#access-review-items tr:has(` + keep + `)`
	err = within(ctx, chromedp.Click(chromedp.CSS("#access-reviews a[data-review]")),
		chromedp.WaitVisible(chromedp.CSS(keep)),
		chromedp.SendKeys(chromedp.CSS(row+" input"), "still on the support rota"),
		chromedp.Click(chromedp.CSS(keep)),
		accessShows("#access-review-status", "Kept member of bob@example.com"))
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	// Alice reviews others' access, never her own.
	if n := accessCount(t, ctx, `button[data-keep="`+alice.id+`/compliance_officer"]`); n != 0 {
		t.Error("alice is offered to decide her own access")
	}
	screenshot(t, ctx, "access-review")
	var list struct{ Campaigns []struct{ ID string } }
	ts.do("GET", "/api/v1/reviews", alice.session, nil, "", http.StatusOK, &list)
	if len(list.Campaigns) != 1 {
		t.Fatalf("campaigns: %+v", list.Campaigns)
	}
	var got reviewAnswer
	ts.do("GET", "/api/v1/reviews/"+list.Campaigns[0].ID, alice.session, nil, "", http.StatusOK, &got)
	if it := got.item(t, bob.id, "member"); it.Decision != "keep" || it.Reason != "still on the support rota" ||
		it.DecidedBy != alice.id {
		t.Errorf("bob's item: %+v", it)
	}
}

// TestConsoleAccessPasskey registers a passkey on the account page with
// Chromium's virtual authenticator, then signs in with it through the
// sign-in page's passkey button.
func TestConsoleAccessPasskey(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "pia@example.com", "security_analyst")
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
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, origin+"/#access/me", c, p),
		chromedp.WaitVisible(chromedp.ID("access-passkey-name")))...)
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("main")))
	}
	c.Add(30 * time.Second)
	err = within(ctx, chromedp.SendKeys(chromedp.ID("access-passkey-name"), "work laptop"),
		chromedp.SendKeys(chromedp.ID("access-passkey-code"), code(t, p.secret, c.Now())),
		chromedp.Click(chromedp.ID("access-add-passkey-submit")),
		accessShows("#access-passkeys", "work laptop"),
		accessShows("#access-add-passkey-status", "Added the passkey"))
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	screenshot(t, ctx, "access-me")
	var got struct{ Factors []string }
	ts.do("GET", "/api/v1/users/"+p.id, ts.operator, hdr, "", http.StatusOK, &got)
	if !slices.Contains(got.Factors, "webauthn") {
		t.Fatalf("after the registration the account's factors are %v", got.Factors)
	}

	// Signed out, the person signs in with the password and the passkey.
	err = within(ctx, chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("tenant")),
		chromedp.SendKeys(chromedp.ID("tenant"), tenant.Default),
		chromedp.SendKeys(chromedp.ID("email"), p.email),
		chromedp.SendKeys(chromedp.ID("password"), p.password),
		chromedp.Click(chromedp.CSS("#password-step button")),
		chromedp.WaitVisible(chromedp.ID("passkey")),
		chromedp.Click(chromedp.ID("passkey")),
		chromedp.WaitVisible(chromedp.ID("nav")))
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("signin-error")))
	}
	if who := pageText(t, ctx, chromedp.ID("who")); who != p.email {
		t.Errorf("signed in as %q", who)
	}

	// New recovery codes are shown once; the old ones stop working.
	c.Add(30 * time.Second)
	err = within(ctx, append(accessOpen("#access/me", "#access-codes-code"),
		chromedp.SendKeys(chromedp.ID("access-codes-code"), code(t, p.secret, c.Now())),
		chromedp.Click(chromedp.ID("access-new-codes-submit")),
		chromedp.WaitVisible(chromedp.CSS("#access-recovery-codes li")))...)
	if err != nil {
		t.Fatalf("%v; the page says %q", err, pageText(t, ctx, chromedp.ID("access")))
	}
	if n := accessCount(t, ctx, "#access-recovery-codes li"); n < 8 {
		t.Errorf("%d recovery codes shown", n)
	}
	var step struct {
		LoginToken string `json:"login_token"`
	}
	ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":%q,"email":%q,"password":%q}`, tenant.Default,
		p.email, p.password), http.StatusOK, &step)
	ts.do("POST", "/api/v1/auth/login/recovery", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q}`, step.LoginToken,
		p.recovery[0]), http.StatusUnauthorized, nil)
}
