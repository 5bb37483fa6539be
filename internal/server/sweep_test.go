package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// fill puts ids into a route pattern.
func fill(pattern string, ids map[string]string) string {
	for k, v := range ids {
		pattern = strings.ReplaceAll(pattern, "{"+k+"}", v)
		pattern = strings.ReplaceAll(pattern, "{"+k+"...}", v)
	}
	return pattern
}

// TestNoSessionWithoutSecondFactor sends every route of the API a request
// carrying only what a right password yields, the pending login token, as
// a bearer token and in the body: none answers a session.
func TestNoSessionWithoutSecondFactor(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "gate@example.com", "owner")
	c.Add(30 * time.Second)
	var step struct {
		LoginToken string `json:"login_token"`
	}
	ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":"default","email":%q,"password":%q}`, p.email,
		p.password), http.StatusOK, &step)
	srv, err := server.New(ts.in, server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"id": p.id, "sid": "ses_x", "role": "admin", "name": "admin", "sequence": "0",
		"tenant": tenant.Default, "path": "Users"}
	body := fmt.Sprintf(`{"login_token":%q,"token":%q,"code":"000000","session":"bearer"}`, step.LoginToken, step.LoginToken)
	for _, r := range srv.Routes() {
		method, pattern, _ := strings.Cut(r, " ")
		for _, auth := range []string{step.LoginToken, ""} {
			req, _ := http.NewRequest(method, ts.url+fill(pattern, ids), strings.NewReader(body))
			if auth != "" {
				req.Header.Set("Authorization", "Bearer "+auth)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "ats_") || strings.Contains(resp.Header.Get("Set-Cookie"), server.SessionCookie+"=ats_") {
				t.Errorf("%s %s answered a session with only a password behind it: %d %s", method, pattern, resp.StatusCode, b)
			}
			if auth != "" && resp.StatusCode < 300 && !strings.HasPrefix(pattern, "/api/v1/auth/") && pattern != "/api/v1/openapi.json" {
				t.Errorf("%s %s accepted a pending login token as a credential: %d", method, pattern, resp.StatusCode)
			}
		}
	}
}

// TestCrossTenantProbes asks every route with an id in its path for the
// objects of another tenant, with an admin key and an elevated owner's
// session of this one: each answers 404 (or 403 before looking), never
// the object.
func TestCrossTenantProbes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		ts.do("POST", "/api/v1/tenants", ts.operator, nil, `{"name":"acme"}`, http.StatusCreated, nil)
		ts.do("POST", "/api/v1/tenants", ts.operator, nil, `{"name":"globex"}`, http.StatusCreated, nil)
		victim := ts.enrol(c, "acme", "victim@acme.example", "owner")
		var sess struct{ Sessions []struct{ ID string } }
		ts.do("GET", "/api/v1/me/sessions", victim.session, nil, "", http.StatusOK, &sess)
		ts.do("POST", "/api/v1/roles", ts.operator, map[string]string{"Attest-Tenant": "acme"},
			`{"name":"acme-role","permissions":["recording.read"]}`, http.StatusCreated, nil)
		var el struct{ ID string }
		ts.do("POST", "/api/v1/elevations", victim.session, nil, `{"reason":"x"}`, http.StatusCreated, &el)
		var key struct{ ID string }
		ts.do("POST", "/api/v1/apikeys", ts.operator, map[string]string{"Attest-Tenant": "acme"}, `{"role":"reader","name":"k"}`,
			http.StatusCreated, &key)

		attackerKey := ts.key("globex", "admin")
		a1 := ts.enrol(c, "globex", "o1@globex.example", "owner")
		a2 := ts.enrol(c, "globex", "o2@globex.example", "owner")
		ts.elevate(c, a1, a2, `["users.manage","roles.manage","apikeys.manage","tenant.settings.manage","audit.export",`+
			`"privacy.erase","audit.retention.manage"]`)
		srv, _ := server.New(ts.in, server.Config{})
		secrets := []string{victim.id, victim.email, sess.Sessions[0].ID, el.ID, key.ID, "acme-role"}
		for _, r := range srv.Routes() {
			method, pattern, _ := strings.Cut(r, " ")
			if !strings.Contains(pattern, "{") || strings.HasPrefix(pattern, "/logs/") || strings.Contains(pattern, "{sequence}") {
				continue
			}
			ids := map[string]string{"id": victim.id, "sid": sess.Sessions[0].ID, "role": "acme-role", "name": "acme-role",
				"path": "Users/" + victim.id}
			if strings.HasPrefix(pattern, "/api/v1/elevations/") {
				ids["id"] = el.ID
			}
			if strings.HasPrefix(pattern, "/api/v1/apikeys/") {
				ids["id"] = key.ID
			}
			path := fill(pattern, ids)
			for name, cred := range map[string]string{"key": attackerKey, "session": a1.session} {
				req, _ := http.NewRequest(method, ts.url+path, strings.NewReader(`{}`))
				req.Header.Set("Authorization", "Bearer "+cred)
				req.Header.Set("Content-Type", "application/json")
				resp, err := ts.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusMethodNotAllowed &&
					resp.StatusCode != http.StatusBadRequest {
					t.Errorf("%s %s with globex's %s: %d %s", method, path, name, resp.StatusCode, b)
				}
				for _, s := range secrets[1:] {
					if strings.Contains(string(b), s) {
						t.Errorf("%s %s with globex's %s leaks %q: %s", method, path, name, s, b)
					}
				}
			}
		}
		// The victim's session and objects are untouched.
		ts.do("GET", "/api/v1/me", victim.session, nil, "", http.StatusOK, nil)
		// The operator tenant's header is not the caller's to name.
		ts.do("GET", "/api/v1/users", a1.session, map[string]string{"Attest-Tenant": "acme"}, "", http.StatusNotFound, nil)
		ts.do("GET", "/api/v1/users", attackerKey, map[string]string{"Attest-Tenant": "acme"}, "", http.StatusNotFound, nil)
	})
}
