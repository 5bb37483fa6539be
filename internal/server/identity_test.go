package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/pquerna/otp/totp"
)

// clock is a test clock the server reads.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// startClocked starts a server whose clock the test controls.
func startClocked(t *testing.T, opts storetest.Options, c *clock, cfg server.Config) *testServer {
	return startWith(t, opts, cfg, func(o *instance.Options) { o.Now = c.Now })
}

// person is an enrolled account of a tenant and its credentials.
type person struct {
	id, email, password, secret string
	recovery                    []string
	session                     string
}

const goodPassword = "correct horse battery staple 7"

// enrol creates an account in tenant through the API with the operator
// key, then enrols it over its link as its person would.
func (ts *testServer) enrol(c *clock, tenantName, email, role string) *person {
	ts.t.Helper()
	var created struct {
		User      struct{ ID string }
		Enrolment struct{ Token string }
	}
	body := fmt.Sprintf(`{"email":%q,"name":"Test Person"`, email)
	if role != "" {
		body += fmt.Sprintf(`,"role":%q`, role)
	}
	ts.do("POST", "/api/v1/users", ts.operator, map[string]string{"Attest-Tenant": tenantName}, body+"}",
		http.StatusCreated, &created)
	p := &person{id: created.User.ID, email: email, password: goodPassword}
	var started struct {
		TOTP struct{ Secret, URI string }
	}
	ts.do("POST", "/api/v1/auth/enrol", "", nil, fmt.Sprintf(`{"token":%q,"password":%q}`, created.Enrolment.Token, p.password),
		http.StatusOK, &started)
	p.secret = started.TOTP.Secret
	var done struct {
		RecoveryCodes []string `json:"recovery_codes"`
		Session       struct{ Token string }
	}
	ts.do("POST", "/api/v1/auth/enrol/totp", "", nil, fmt.Sprintf(`{"token":%q,"code":%q}`, created.Enrolment.Token,
		code(ts.t, p.secret, c.Now())), http.StatusOK, &done)
	p.recovery, p.session = done.RecoveryCodes, done.Session.Token
	return p
}

func code(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// login signs a person in with password and TOTP, stepping the clock past
// the last code used so that a fresh one is accepted.
func (ts *testServer) login(c *clock, tenantName string, p *person) string {
	ts.t.Helper()
	c.Add(30 * time.Second)
	var step struct {
		Status     string
		LoginToken string `json:"login_token"`
	}
	ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":%q,"email":%q,"password":%q}`, tenantName, p.email,
		p.password), http.StatusOK, &step)
	var done struct{ Session struct{ Token string } }
	ts.do("POST", "/api/v1/auth/login/totp", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q}`, step.LoginToken,
		code(ts.t, p.secret, c.Now())), http.StatusOK, &done)
	return done.Session.Token
}

func TestLoginStateMachine(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		p := ts.enrol(c, "default", "Ana@Example.com", "")
		ts.do("GET", "/api/v1/me", p.session, nil, "", http.StatusOK, nil)

		// The password alone yields a pending login, which no API accepts.
		c.Add(30 * time.Second)
		var step struct {
			Status     string
			LoginToken string `json:"login_token"`
			Factors    []string
		}
		// Case and full-width variants of the email are one identity.
		ts.do("POST", "/api/v1/auth/login", "", nil, `{"tenant":"default","email":"ＡＮＡ@example.COM","password":"`+
			p.password+`"}`, http.StatusOK, &step)
		if step.Status != "mfa_required" || !strings.HasPrefix(step.LoginToken, "atl_") {
			t.Fatalf("password step answered %+v", step)
		}
		ts.do("GET", "/api/v1/me", step.LoginToken, nil, "", http.StatusUnauthorized, nil)
		ts.do("GET", "/api/v1/compliance/audit-trail", step.LoginToken, nil, "", http.StatusUnauthorized, nil)

		// A code is accepted once: a replay in another login fails.
		now := code(t, p.secret, c.Now())
		var done struct{ Session struct{ Token string } }
		ts.do("POST", "/api/v1/auth/login/totp", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q}`, step.LoginToken, now),
			http.StatusOK, &done)
		ts.do("POST", "/api/v1/auth/login/totp", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q}`, step.LoginToken, now),
			http.StatusUnauthorized, nil)
		var again struct {
			LoginToken string `json:"login_token"`
		}
		ts.do("POST", "/api/v1/auth/login", "", nil, `{"tenant":"default","email":"ana@example.com","password":"`+p.password+`"}`,
			http.StatusOK, &again)
		ts.do("POST", "/api/v1/auth/login/totp", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q}`, again.LoginToken, now),
			http.StatusUnauthorized, nil)

		// A recovery code works once.
		var rec struct{ Session struct{ Token string } }
		ts.do("POST", "/api/v1/auth/login/recovery", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q}`, again.LoginToken,
			p.recovery[0]), http.StatusOK, &rec)
		ts.do("GET", "/api/v1/me", rec.Session.Token, nil, "", http.StatusOK, nil)
		var third struct {
			LoginToken string `json:"login_token"`
		}
		ts.do("POST", "/api/v1/auth/login", "", nil, `{"tenant":"default","email":"ana@example.com","password":"`+p.password+`"}`,
			http.StatusOK, &third)
		ts.do("POST", "/api/v1/auth/login/recovery", "", nil, fmt.Sprintf(`{"login_token":%q,"code":%q}`, third.LoginToken,
			p.recovery[0]), http.StatusUnauthorized, nil)

		// A wrong password and an unknown account get the same answer.
		wrong := ts.do("POST", "/api/v1/auth/login", "", nil, `{"tenant":"default","email":"ana@example.com","password":"not it at all"}`,
			http.StatusUnauthorized, nil)
		unknown := ts.do("POST", "/api/v1/auth/login", "", nil, `{"tenant":"default","email":"nobody@example.com","password":"not it at all"}`,
			http.StatusUnauthorized, nil)
		noTenant := ts.do("POST", "/api/v1/auth/login", "", nil, `{"tenant":"nope","email":"ana@example.com","password":"not it at all"}`,
			http.StatusUnauthorized, nil)
		if a, b, c := detail(t, wrong), detail(t, unknown), detail(t, noTenant); a != b || b != c {
			t.Errorf("answers differ: %q, %q, %q", a, b, c)
		}

		// Logging out ends the session.
		ts.do("POST", "/api/v1/auth/logout", done.Session.Token, nil, "", http.StatusOK, nil)
		ts.do("GET", "/api/v1/me", done.Session.Token, nil, "", http.StatusUnauthorized, nil)
	})
}

func detail(t *testing.T, resp *http.Response) string {
	t.Helper()
	var p struct{ Detail string }
	if err := jsonDecode(resp, &p); err != nil {
		t.Fatal(err)
	}
	return p.Detail
}

var _ sync.Mutex

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
