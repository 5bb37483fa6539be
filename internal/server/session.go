package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/tenant"
)

// SessionCookie names the browser session cookie. The __Host- prefix makes
// the browser accept it only Secure, from this host, for every path.
const SessionCookie = "__Host-attest_session"

// CSRFHeader must accompany every cookie-authenticated request that
// changes something. A page of another origin cannot send a custom header
// without a CORS preflight, which attest never grants.
const CSRFHeader = "Attest-CSRF"

// BackgroundHeader marks a request no person made, such as a dashboard's
// polling: it does not keep the session alive.
const BackgroundHeader = "Attest-Background"

// credential returns the request's bearer token or, without one, its
// session cookie. Both at once, or either given twice, is refused.
func credential(r *http.Request) (tok string, fromCookie bool, err error) {
	var cookies []*http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == SessionCookie {
			cookies = append(cookies, c)
		}
	}
	authz := r.Header.Get("Authorization")
	switch {
	case len(cookies) > 1:
		return "", false, badRequest(SessionCookie, "the session cookie may be given once")
	case authz != "" && len(cookies) == 1:
		return "", false, badRequest("Authorization", "send an Authorization header or a session cookie, not both")
	case authz != "":
		t, ok := bearerToken(authz)
		if !ok {
			return "", false, nil
		}
		return t, false, nil
	case len(cookies) == 1:
		return cookies[0].Value, true, nil
	}
	return "", false, nil
}

// authorizeSession authenticates a person's session, settles the tenant
// from it and checks the route's permission against the person's roles
// and active elevation.
func (s *Server) authorizeSession(rq *request, tok string, fromCookie bool) error {
	ctx := rq.r.Context()
	background := rq.r.Header.Get(BackgroundHeader) != "" || rq.route.background
	pr, err := s.in.Identity.Sessions.Validate(ctx, tok, !background)
	switch {
	case errors.Is(err, identity.ErrNoSession):
		rq.reason = "unknown or malformed session"
		return errUnauthenticated
	case errors.Is(err, identity.ErrSessionEnded):
		rq.pr, rq.reason = pr, "session ended or expired"
		return errUnauthenticated
	case errors.Is(err, identity.ErrNotActive):
		rq.pr, rq.reason = pr, "account not active"
		return errUnauthenticated
	case err != nil:
		return err
	}
	rq.pr = pr
	if fromCookie && unsafeMethod(rq.r.Method) && rq.r.Header.Get(CSRFHeader) == "" {
		return forbidden("a browser request that changes something must carry the " + CSRFHeader + " header")
	}
	if rq.route.keysOnly {
		return forbidden("this route takes an API key, not a person's session")
	}
	t, err := s.in.Tenants.ByID(ctx, pr.Session.TenantID)
	if err != nil {
		return err
	}
	rq.tenant = t
	named := rq.r.Header.Get("Attest-Tenant")
	if rq.route.pathTenant {
		named = rq.r.PathValue("tenant")
	}
	if named != "" && named != t.Name {
		return notFound("no such tenant")
	}
	sub, err := s.subjectOf(rq, pr, t)
	if err != nil {
		return err
	}
	rq.subject = sub
	rq.decision = sub.Check(rq.route.perm, s.in.Now())
	if !rq.decision.Allow {
		return forbidden(rq.decision.Reason)
	}
	if rq.decision.Period != nil && rq.route.unbounded {
		return forbidden("an auditor's grant is bounded to its audit period: read events through the audit-trail " +
			"query, which keeps to the period")
	}
	return nil
}

// subjectOf is what the authorizer needs to know of a signed-in person,
// all of it read with the session.
func (s *Server) subjectOf(rq *request, pr *identity.Principal, t *tenant.Tenant) (*access.Subject, error) {
	sub := &access.Subject{UserID: pr.User.ID, OperatorTenant: t.Name == tenant.Operator, Active: true,
		Custom: map[string][]access.Permission{}}
	for _, g := range pr.Grants {
		sub.Grants = append(sub.Grants, access.Grant{Role: g.Role, PeriodStart: g.PeriodStart, PeriodEnd: g.PeriodEnd})
		if g.Custom {
			sub.Custom[g.Role] = access.ParsePermissions(g.Permissions)
		}
	}
	if el := pr.Elevation; el != nil && el.Status == access.ElevationActive && el.SessionID == pr.Session.ID &&
		s.in.Now().Before(el.ExpiresAt) {
		sub.Elevated, sub.ElevatedUntil = access.ParsePermissions(el.Permissions), el.ExpiresAt
	}
	return sub, nil
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// setSessionCookie hands a browser its session.
func setSessionCookie(w http.ResponseWriter, tok identity.SessionToken, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: tok.Reveal(), Path: "/", Expires: expires, Secure: true,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
}

// holds reports whether the caller, key or person, may exercise p. For a
// person it is the same check as the route's.
func (rq *request) holds(p access.Permission) bool {
	switch {
	case rq.key != nil:
		return rq.key.Role.Allows(p)
	case rq.subject != nil:
		return rq.subject.Check(p, rq.s.in.Now()).Allow
	}
	return false
}

// canGrantAll reports, with the reason, whether the caller may hand out
// every permission of ps: nobody grants what they do not hold.
func (rq *request) canGrantAll(ps []access.Permission) error {
	for _, p := range ps {
		if !strings.Contains(string(p), ".") {
			continue
		}
		if !slices.Contains(access.AllPermissions, p) {
			continue // a platform action: anyone who manages roles grants it
		}
		if rq.key != nil && !rq.key.Role.Allows(p) {
			return fmt.Errorf("your API key does not hold %s, so it cannot grant it", p)
		}
		if rq.subject != nil && !slices.Contains(rq.subject.Eligible(rq.s.in.Now()), p) {
			return fmt.Errorf("you do not hold %s, so you cannot grant it", p)
		}
	}
	return nil
}

// operatorKey reports whether the caller is an operator API key.
func (rq *request) operatorKey() bool { return rq.key != nil && rq.key.Role == access.RoleOperator }
