package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

func TestSessionTimeouts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		p := ts.enrol(c, tenant.Default, "idle@example.com", "")

		// Polling in the background does not keep a session alive.
		poll := map[string]string{server.BackgroundHeader: "1"}
		for range 3 {
			c.Add(4 * time.Minute)
			ts.do("GET", "/api/v1/me", p.session, poll, "", http.StatusOK, nil)
		}
		c.Add(4 * time.Minute)
		ts.do("GET", "/api/v1/me", p.session, nil, "", http.StatusUnauthorized, nil)

		// A person's requests do, up to the absolute lifetime.
		s := ts.login(c, tenant.Default, p)
		for elapsed := time.Duration(0); elapsed < 11*time.Hour+50*time.Minute; elapsed += 10 * time.Minute {
			c.Add(10 * time.Minute)
			ts.do("GET", "/api/v1/me", s, nil, "", http.StatusOK, nil)
		}
		c.Add(15 * time.Minute)
		ts.do("GET", "/api/v1/me", s, nil, "", http.StatusUnauthorized, nil)

		// A tenant may shorten the idle timeout.
		ts.do("PUT", "/api/v1/settings/sessions", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
			`{"idle_minutes":5}`, http.StatusOK, nil)
		s = ts.login(c, tenant.Default, p)
		c.Add(6 * time.Minute)
		ts.do("GET", "/api/v1/me", s, nil, "", http.StatusUnauthorized, nil)
		ts.do("PUT", "/api/v1/settings/sessions", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
			`{"idle_minutes":0}`, http.StatusBadRequest, nil)
	})
}

func TestConcurrentSessionLimit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		p := ts.enrol(c, tenant.Default, "many@example.com", "")
		sessions := []string{p.session}
		for range 3 {
			sessions = append(sessions, ts.login(c, tenant.Default, p))
		}
		// The default ends the oldest: the enrolment's session is gone.
		ts.do("GET", "/api/v1/me", sessions[0], nil, "", http.StatusUnauthorized, nil)
		for _, s := range sessions[1:] {
			ts.do("GET", "/api/v1/me", s, nil, "", http.StatusOK, nil)
		}
		var list struct{ Sessions []struct{ ID string } }
		ts.do("GET", "/api/v1/me/sessions", sessions[3], nil, "", http.StatusOK, &list)
		if len(list.Sessions) != 3 {
			t.Fatalf("%d live sessions, want 3", len(list.Sessions))
		}
		// A user ends one of their own.
		ts.do("DELETE", "/api/v1/me/sessions/"+list.Sessions[0].ID, sessions[3], nil, "", http.StatusOK, nil)
		ts.do("GET", "/api/v1/me", sessions[1], nil, "", http.StatusUnauthorized, nil)

		// Refusing instead: a fourth login is refused while three live.
		ts.do("PUT", "/api/v1/settings/sessions", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
			`{"on_limit":"refuse"}`, http.StatusOK, nil)
		ts.login(c, tenant.Default, p)
		c.Add(30 * time.Second)
		var step struct {
			LoginToken string `json:"login_token"`
		}
		ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":"default","email":%q,"password":%q}`, p.email,
			p.password), http.StatusOK, &step)
		ts.do("POST", "/api/v1/auth/login/totp", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q}`, step.LoginToken,
			code(t, p.secret, c.Now())), http.StatusConflict, nil)
	})
}

func TestPasswordChangeEndsEverything(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		p := ts.enrol(c, tenant.Default, "change@example.com", "")
		other := ts.login(c, tenant.Default, p)
		ts.do("POST", "/api/v1/me/password", p.session, nil, `{"current_password":"wrong one entirely","new_password":"x"}`,
			http.StatusForbidden, nil)
		ts.do("POST", "/api/v1/me/password", p.session, nil, fmt.Sprintf(`{"current_password":%q,"new_password":"password"}`,
			p.password), http.StatusBadRequest, nil)
		ts.do("POST", "/api/v1/me/password", p.session, nil, fmt.Sprintf(`{"current_password":%q,"new_password":%q}`,
			p.password, "an entirely new passphrase"), http.StatusOK, nil)
		ts.do("GET", "/api/v1/me", p.session, nil, "", http.StatusUnauthorized, nil)
		ts.do("GET", "/api/v1/me", other, nil, "", http.StatusUnauthorized, nil)
		ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":"default","email":%q,"password":%q}`, p.email,
			p.password), http.StatusUnauthorized, nil)
		p.password = "an entirely new passphrase"
		ts.login(c, tenant.Default, p)
	})
}

// TestCookieSessions checks the browser cookie's attributes and that a
// cookie-authenticated change needs the CSRF header.
func TestCookieSessions(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "browser@example.com", "")
	c.Add(30 * time.Second)
	var step struct {
		LoginToken string `json:"login_token"`
	}
	ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":"default","email":%q,"password":%q}`, p.email,
		p.password), http.StatusOK, &step)
	resp := ts.do("POST", "/api/v1/auth/login/totp", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q,"session":"cookie"}`,
		step.LoginToken, code(t, p.secret, c.Now())), http.StatusOK, nil)
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == server.SessionCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" {
		t.Fatalf("session cookie %+v, want Secure, HttpOnly, SameSite=Strict, Path=/", cookie)
	}
	b, _ := readAll(resp)
	if strings.Contains(b, cookie.Value) {
		t.Error("the cookie's token is also in the body")
	}
	send := func(method, path string, hdr map[string]string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.url+path, nil)
		req.AddCookie(cookie)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		r, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("%s %s with the cookie: %d, want %d", method, path, r.StatusCode, want)
		}
	}
	send("GET", "/api/v1/me", nil, http.StatusOK)
	send("POST", "/api/v1/auth/logout", nil, http.StatusForbidden)
	send("POST", "/api/v1/auth/logout", map[string]string{server.CSRFHeader: "1", "Authorization": "Bearer " + p.session},
		http.StatusBadRequest)
	send("POST", "/api/v1/auth/logout", map[string]string{server.CSRFHeader: "1"}, http.StatusOK)
	send("GET", "/api/v1/me", nil, http.StatusUnauthorized)
}

// TestElevation walks a privileged action through its elevation: refused
// standing, requested, not self-approved, approved by another admin,
// activated with a fresh code that rotates the token, and ending by itself.
func TestElevation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		alice := ts.enrol(c, tenant.Default, "alice@example.com", "admin")
		bob := ts.enrol(c, tenant.Default, "bob@example.com", "admin")
		member := ts.enrol(c, tenant.Default, "carol@example.com", "")

		newUser := `{"email":"dave@example.com","name":"Dave"}`
		ts.do("GET", "/api/v1/me", alice.session, nil, "", http.StatusOK, nil)
		ts.do("POST", "/api/v1/users", alice.session, nil, newUser, http.StatusForbidden, nil)
		ts.do("GET", "/api/v1/users", alice.session, nil, "", http.StatusOK, nil)
		ts.do("GET", "/api/v1/users", member.session, nil, "", http.StatusForbidden, nil)

		var el struct {
			ID, Status      string
			ApprovalsNeeded int `json:"approvals_needed"`
		}
		ts.do("POST", "/api/v1/elevations", alice.session, nil, `{"reason":"onboard Dave","minutes":30,`+
			`"permissions":["users.manage"]}`, http.StatusCreated, &el)
		if el.Status != "pending" || el.ApprovalsNeeded != 1 {
			t.Fatalf("elevation %+v", el)
		}
		ts.do("POST", "/api/v1/elevations", alice.session, nil, `{"reason":"x","minutes":600}`, http.StatusBadRequest, nil)
		ts.do("POST", "/api/v1/elevations", member.session, nil, `{"reason":"x"}`, http.StatusForbidden, nil)
		ts.do("POST", "/api/v1/elevations/"+el.ID+"/activate", alice.session, nil,
			fmt.Sprintf(`{"code":%q}`, code(t, alice.secret, c.Now())), http.StatusConflict, nil)
		ts.do("POST", "/api/v1/elevations/"+el.ID+"/approve", alice.session, nil, "", http.StatusForbidden, nil)
		ts.do("POST", "/api/v1/elevations/"+el.ID+"/approve", member.session, nil, "", http.StatusForbidden, nil)
		ts.do("POST", "/api/v1/elevations/"+el.ID+"/approve", bob.session, nil, `{"reason":"ticket 42"}`, http.StatusOK, &el)
		if el.Status != "approved" {
			t.Fatalf("after approval the elevation is %s", el.Status)
		}
		ts.do("POST", "/api/v1/elevations/"+el.ID+"/activate", alice.session, nil, `{"code":"000000"}`, http.StatusForbidden, nil)
		c.Add(30 * time.Second)
		var act struct{ Token string }
		ts.do("POST", "/api/v1/elevations/"+el.ID+"/activate", alice.session, nil,
			fmt.Sprintf(`{"code":%q}`, code(t, alice.secret, c.Now())), http.StatusOK, &act)
		if act.Token == "" || act.Token == alice.session {
			t.Fatal("activation did not rotate the session token")
		}
		ts.do("GET", "/api/v1/me", alice.session, nil, "", http.StatusUnauthorized, nil)
		ts.do("POST", "/api/v1/users", act.Token, nil, newUser, http.StatusCreated, nil)
		// Elevated for users.manage, not for roles.manage.
		ts.do("PUT", "/api/v1/users/"+member.id+"/roles/admin", act.Token, nil, "", http.StatusForbidden, nil)
		for range 4 {
			c.Add(8 * time.Minute)
			ts.do("GET", "/api/v1/me", act.Token, nil, "", http.StatusOK, nil)
		}
		ts.do("POST", "/api/v1/users", act.Token, nil, `{"email":"erin@example.com","name":"Erin"}`, http.StatusForbidden, nil)

		// Ownership needs two approvers.
		owner := ts.enrol(c, tenant.Default, "olga@example.com", "owner")
		var oe struct {
			ID              string
			Status          string
			ApprovalsNeeded int `json:"approvals_needed"`
		}
		ts.do("POST", "/api/v1/elevations", owner.session, nil, `{"reason":"hand over"}`, http.StatusCreated, &oe)
		if oe.ApprovalsNeeded != 2 {
			t.Fatalf("an owner-level elevation needs %d approvals, want 2", oe.ApprovalsNeeded)
		}
		owner2 := ts.enrol(c, tenant.Default, "oscar@example.com", "owner")
		owner3 := ts.enrol(c, tenant.Default, "otto@example.com", "owner")
		ts.do("POST", "/api/v1/elevations/"+oe.ID+"/approve", owner2.session, nil, "", http.StatusOK, &oe)
		if oe.Status != "pending" {
			t.Fatalf("after one of two approvals: %s", oe.Status)
		}
		ts.do("POST", "/api/v1/elevations/"+oe.ID+"/approve", owner2.session, nil, "", http.StatusConflict, nil)
		// The list names the approvals so far, as reading the one does.
		var listed struct {
			Elevations []struct {
				ID        string
				Approvers []string
			}
		}
		ts.do("GET", "/api/v1/elevations", owner3.session, nil, "", http.StatusOK, &listed)
		found := false
		for _, e := range listed.Elevations {
			if e.ID == oe.ID {
				found = true
				if len(e.Approvers) != 1 || e.Approvers[0] != owner2.id {
					t.Errorf("the list names approvers %v, want [%s]", e.Approvers, owner2.id)
				}
			}
		}
		if !found {
			t.Errorf("the list lacks elevation %s", oe.ID)
		}
		// An admin cannot approve what it is not eligible for.
		bob.session = ts.login(c, tenant.Default, bob)
		ts.do("POST", "/api/v1/elevations/"+oe.ID+"/approve", bob.session, nil, "", http.StatusForbidden, nil)
		ts.do("POST", "/api/v1/elevations/"+oe.ID+"/approve", owner3.session, nil, "", http.StatusOK, &oe)
		if oe.Status != "approved" {
			t.Fatalf("after two approvals: %s", oe.Status)
		}
	})
}

// TestNobodyGrantsWhatTheyLack checks that an elevated admin cannot hand
// out ownership or a custom role carrying what they do not hold.
func TestNobodyGrantsWhatTheyLack(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	admin := ts.enrol(c, tenant.Default, "adm@example.com", "admin")
	approver := ts.enrol(c, tenant.Default, "apr@example.com", "admin")
	member := ts.enrol(c, tenant.Default, "mem@example.com", "")
	tok := ts.elevate(c, admin, approver, `["roles.manage"]`)
	ts.do("PUT", "/api/v1/users/"+member.id+"/roles/owner", tok, nil, "", http.StatusForbidden, nil)
	ts.do("POST", "/api/v1/roles", tok, nil, `{"name":"ownerish","permissions":["tenant.ownership"]}`, http.StatusBadRequest, nil)
	ts.do("POST", "/api/v1/roles", tok, nil, `{"name":"listener","permissions":["recording.read","audit.log.read"]}`,
		http.StatusCreated, nil)
	ts.do("PUT", "/api/v1/users/"+member.id+"/roles/listener", tok, nil, "", http.StatusOK, nil)
	var d struct {
		Allow  bool
		Reason string
	}
	authz := ts.key(tenant.Default, "authz")
	ts.do("POST", "/api/v1/authz/check", authz, nil, fmt.Sprintf(`{"subject":%q,"action":"recording.read",`+
		`"resource":{"type":"recording","id":"r-1"}}`, member.id), http.StatusOK, &d)
	if !d.Allow {
		t.Errorf("the custom role's platform action was denied: %s", d.Reason)
	}
	ts.do("POST", "/api/v1/authz/check", authz, nil, fmt.Sprintf(`{"subject":%q,"action":"recording.delete"}`, member.id),
		http.StatusOK, &d)
	if d.Allow || d.Reason == "" {
		t.Errorf("an action no role grants: allow %v, reason %q", d.Allow, d.Reason)
	}
	ts.do("POST", "/api/v1/authz/check", authz, nil, fmt.Sprintf(`{"subject":%q,"action":"recording.read",`+
		`"resource":{"tenant":"operator"}}`, member.id), http.StatusOK, &d)
	if d.Allow {
		t.Error("a resource of another tenant was allowed")
	}
	ts.do("POST", "/api/v1/authz/check", authz, nil, `{"subject":"usr_nobody","action":"recording.read"}`, http.StatusOK, &d)
	if d.Allow {
		t.Error("an unknown subject was allowed")
	}
	ts.do("POST", "/api/v1/authz/check", authz, nil, `{"subject":1}`, http.StatusBadRequest, nil)
	// A role in use cannot be deleted; the grant goes first.
	ts.do("DELETE", "/api/v1/roles/listener", tok, nil, "", http.StatusConflict, nil)
	ts.do("DELETE", "/api/v1/users/"+member.id+"/roles/listener", tok, nil, "", http.StatusOK, nil)
	ts.do("DELETE", "/api/v1/roles/listener", tok, nil, "", http.StatusOK, nil)
}

// elevate has approver approve a fresh elevation of p's and activates it,
// answering the rotated session token.
func (ts *testServer) elevate(c *clock, p, approver *person, perms string) string {
	ts.t.Helper()
	var el struct{ ID string }
	ts.do("POST", "/api/v1/elevations", p.session, nil, `{"reason":"test","permissions":`+perms+`}`, http.StatusCreated, &el)
	ts.do("POST", "/api/v1/elevations/"+el.ID+"/approve", approver.session, nil, "", http.StatusOK, nil)
	c.Add(30 * time.Second)
	var act struct{ Token string }
	ts.do("POST", "/api/v1/elevations/"+el.ID+"/activate", p.session, nil,
		fmt.Sprintf(`{"code":%q}`, code(ts.t, p.secret, c.Now())), http.StatusOK, &act)
	p.session = act.Token
	return act.Token
}

// TestAuditorPeriod checks that an auditor's grant needs its period and
// lapses after it.
func TestAuditorPeriod(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	aud := ts.enrol(c, tenant.Default, "auditor@example.com", "")
	h := map[string]string{"Attest-Tenant": tenant.Default}
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, h, "", http.StatusBadRequest, nil)
	start := c.Now().Add(-30 * 24 * time.Hour).Format(time.RFC3339)
	end := c.Now().Add(-24 * time.Hour).Format(time.RFC3339)
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, h,
		fmt.Sprintf(`{"period_start":%q,"period_end":%q}`, start, end), http.StatusOK, nil)
	ts.do("GET", "/api/v1/compliance/audit-trail", aud.session, nil, "", http.StatusOK, nil)
	ts.do("GET", "/api/v1/users", aud.session, nil, "", http.StatusOK, nil)
	ts.do("POST", "/api/v1/users", aud.session, nil, `{"email":"x@example.com","name":"X"}`, http.StatusForbidden, nil)
	ts.do("GET", "/api/v1/compliance/audit-trail/export", aud.session, nil, "", http.StatusForbidden, nil)
	c.Add(access.AuditorFieldwork)
	ts.do("GET", "/api/v1/compliance/audit-trail", aud.session, nil, "", 0, nil)
	s := ts.login(c, tenant.Default, aud)
	ts.do("GET", "/api/v1/compliance/audit-trail", s, nil, "", http.StatusForbidden, nil)
}

func readAll(resp *http.Response) (string, error) {
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestInactiveAccountsDisabled checks the identity job's rule: an account
// unused for the tenant's inactive_days is disabled, one used is not.
func TestInactiveAccountsDisabled(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		idle := ts.enrol(c, tenant.Default, "idle90@example.com", "")
		busy := ts.enrol(c, tenant.Default, "busy@example.com", "")
		c.Add(60 * 24 * time.Hour)
		ts.login(c, tenant.Default, busy)
		c.Add(31 * 24 * time.Hour)
		n, err := ts.in.DisableInactive(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{"Attest-Tenant": tenant.Default}
		var u struct{ Status string }
		ts.do("GET", "/api/v1/users/"+idle.id, ts.operator, h, "", http.StatusOK, &u)
		if u.Status != "disabled" {
			t.Errorf("the account unused for 91 days is %s", u.Status)
		}
		ts.do("GET", "/api/v1/users/"+busy.id, ts.operator, h, "", http.StatusOK, &u)
		if u.Status != "active" {
			t.Errorf("the account used 31 days ago is %s", u.Status)
		}
		// The operator tenant's never-enrolled accounts count too; only
		// the idle one of default is certain.
		if n < 1 {
			t.Errorf("disabled %d accounts, want at least 1", n)
		}
		ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":"default","email":%q,"password":%q}`, idle.email,
			idle.password), http.StatusUnauthorized, nil)
	})
}

// TestLockoutAndUnlock locks an account with wrong passwords over HTTPS,
// checks that even the right password is then refused with Retry-After,
// and that an admin's unlock lets it in at once.
func TestLockoutAndUnlock(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		p := ts.enrol(c, tenant.Default, "locked@example.com", "")
		wrong := fmt.Sprintf(`{"tenant":"default","email":%q,"password":"not the password at all"}`, p.email)
		locked := false
		for i := 0; i < 40 && !locked; i++ {
			resp := ts.do("POST", "/api/v1/auth/login", "", nil, wrong, 0, nil)
			switch resp.StatusCode {
			case http.StatusUnauthorized:
			case http.StatusTooManyRequests:
				b, _ := readAll(resp)
				locked = strings.Contains(b, "locked")
				c.Add(time.Minute) // wait out a delay
			default:
				t.Fatalf("attempt %d: status %d", i, resp.StatusCode)
			}
		}
		if !locked {
			t.Fatal("the account never locked")
		}
		right := fmt.Sprintf(`{"tenant":"default","email":%q,"password":%q}`, p.email, p.password)
		resp := ts.do("POST", "/api/v1/auth/login", "", nil, right, http.StatusTooManyRequests, nil)
		if resp.Header.Get("Retry-After") == "" {
			t.Error("a locked account's answer has no Retry-After")
		}
		var un struct{ Unlocked bool }
		ts.do("POST", "/api/v1/users/"+p.id+"/unlock", ts.operator, map[string]string{"Attest-Tenant": tenant.Default}, "",
			http.StatusOK, &un)
		if !un.Unlocked {
			t.Error("unlock found nothing to clear")
		}
		ts.login(c, tenant.Default, p)
		// The lockout is in the trail as a security event.
		trail := ts.waitTrail(tenant.Default, "&action=user.lockout", 1)
		if !strings.Contains(string(trail), `"severity":"high"`) {
			t.Errorf("the lockout event: %s", trail)
		}
	})
}
