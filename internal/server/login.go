package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

// commit runs change in the audit log's transaction together with this
// request's success event, which records status: the change and its record
// commit together or not at all.
func (s *Server) commit(rq *request, t *tenant.Tenant, status int, change func(ctx context.Context, tx *sql.Tx) error) error {
	ctx := rq.r.Context()
	ev := s.in.ChangeEvent(rq.route.name, rq.route.category, rq.actor(), rq.target)
	if len(rq.details) > 0 {
		ev.Details = detailsValue(rq.details)
	}
	rq.changeDecorator(status)(ev)
	if rq.as != nil {
		ev.Actor = *rq.as
	}
	ev.Clean()
	p, err := s.in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return err
	}
	if _, err := s.in.Log.Do(ctx, t, change, p); err != nil {
		return err
	}
	rq.audited = true
	return nil
}

// userActor is the actor of a login step: the account it is for, when
// one is known, at the request's address.
func (rq *request) userActor(u *identity.User, method string) *event.Actor {
	a := rq.actor()
	if u != nil {
		a.Type, a.ID, a.Name, a.Email = "user", u.ID, u.Name, u.Email
		a.Auth = event.Auth{Method: method}
	}
	return &a
}

var (
	errBadCredentials = &apiError{status: http.StatusUnauthorized, title: "Unauthorized",
		detail: "the email or password is wrong"}
	errLoginExpired = &apiError{status: http.StatusUnauthorized, title: "Unauthorized",
		detail: "the login has expired or was abandoned: sign in with your password again"}
	errBadCode = &apiError{status: http.StatusUnauthorized, title: "Unauthorized",
		detail: "the code is wrong, expired or already used"}
	errEnrolInvalid = &apiError{status: http.StatusUnauthorized, title: "Unauthorized",
		detail: "the enrolment link is invalid, used or expired: ask an admin for a new one"}
)

// throttled answers a login step refused by its failure counter.
func throttled(rq *request, te *identity.ThrottledError) error {
	secs := int(math.Ceil(te.RetryAfter.Seconds()))
	rq.w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	detail := "too many failed attempts: wait before trying again"
	if te.Locked {
		detail = "too many failed attempts: sign-in is locked for a while, or until an admin unlocks it"
	}
	return &apiError{status: http.StatusTooManyRequests, title: "Too many requests", detail: detail}
}

// loginAnswerOf maps the identity errors of a login step.
func loginError(rq *request, err error) error {
	var te *identity.ThrottledError
	var fe *identity.FieldError
	var pe *identity.PasswordError
	switch {
	case errors.As(err, &te):
		rq.reason = te.Error()
		return throttled(rq, te)
	case errors.Is(err, identity.ErrInvalidCredentials):
		return errBadCredentials
	case errors.Is(err, identity.ErrLoginExpired):
		return errLoginExpired
	case errors.Is(err, identity.ErrBadCode), errors.Is(err, identity.ErrNoFactor):
		return errBadCode
	case errors.Is(err, identity.ErrEnrolmentInvalid):
		return errEnrolInvalid
	case errors.Is(err, identity.ErrEnrolmentRequired):
		return &apiError{status: http.StatusForbidden, title: "MFA required", detail: "a second factor is required " +
			"and this account has none: ask an admin for an enrolment link, which sets one up"}
	case errors.Is(err, identity.ErrSessionLimit):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "you have as many sessions as your " +
			"organisation allows: end one, from a signed-in device or through an admin, and sign in again"}
	case errors.Is(err, identity.ErrStaleProof), errors.Is(err, identity.ErrNotActive), errors.Is(err, identity.ErrMFARequired):
		return errLoginExpired
	case errors.As(err, &fe):
		return badRequest(fe.Field, fe.Error())
	case errors.As(err, &pe):
		return badRequest("password", pe.Error())
	}
	return err
}

type sessionView struct {
	ID         string `json:"id"`
	Factor     string `json:"factor"`
	IP         string `json:"ip"`
	UserAgent  string `json:"user_agent"`
	CreatedAt  string `json:"created_at"`
	LastActive string `json:"last_active_at"`
	ExpiresAt  string `json:"expires_at"`
	Elevated   bool   `json:"elevated,omitempty"`
	Current    bool   `json:"current,omitempty"`
	// Token is the bearer token, present only in the answer that begins
	// a session in bearer mode.
	Token string `json:"token,omitempty"`
}

func viewSession(s *identity.Session) sessionView {
	return sessionView{ID: s.ID, Factor: s.Factor, IP: s.IP, UserAgent: s.UserAgent,
		CreatedAt: s.CreatedAt.Format(time.RFC3339), LastActive: s.LastActive.Format(time.RFC3339),
		ExpiresAt: s.ExpiresAt.Format(time.RFC3339), Elevated: s.ElevationID != ""}
}

// handOver answers a new session: as a cookie for a browser, or as a
// bearer token in the body.
func handOver(rq *request, status int, tok identity.SessionToken, sess *identity.Session, mode string, extra map[string]any) error {
	v := viewSession(sess)
	if mode == "cookie" {
		setSessionCookie(rq.w, tok, sess.ExpiresAt)
	} else {
		v.Token = tok.Reveal()
	}
	out := map[string]any{"status": "signed_in", "session": v}
	for k, x := range extra {
		out[k] = x
	}
	return writeJSON(rq.w, status, out)
}

func checkMode(mode string) error {
	if mode != "" && mode != "cookie" && mode != "bearer" {
		return badRequest("session", `session must be "cookie" or "bearer"`)
	}
	return nil
}

// required refuses the first of the named fields (name, value pairs) left
// empty.
func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return badRequest(fields[i], fields[i]+" is required")
		}
	}
	return nil
}

func (rq *request) meta() identity.Meta {
	return identity.Meta{IP: rq.ip, UserAgent: event.CleanText(rq.r.UserAgent(), 512)}
}

// loginPassword is the first step of a login. A right password yields no
// session, only a pending login for the second factor.
func (s *Server) loginPassword(rq *request) error {
	var body struct {
		Tenant   string `json:"tenant"`
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"tenant", body.Tenant}, {"email", body.Email}, {"password", body.Password}} {
		if f.v == "" {
			return badRequest(f.name, f.name+" is required")
		}
	}
	ctx := rq.r.Context()
	canon, cerr := identity.CanonicalEmail(body.Email)
	if cerr != nil {
		canon = body.Email
	}
	if err := s.take(rq, "login_account", body.Tenant+"\x00"+canon, s.rates.LoginAccount); err != nil {
		return err
	}
	var tenantID int64 = -1 // an unknown tenant: the same work, the same answer
	if t, err := s.in.Tenants.ByName(ctx, body.Tenant); err == nil {
		rq.tenant, tenantID = t, t.ID
	}
	rq.details = map[string]any{"step": "password"}
	rq.loginAccount = fmt.Sprintf("%d\x00%s", tenantID, canon)
	rq.passwordTag = s.detector.passwordTag(body.Password)
	start, at, err := s.in.Identity.BeginLogin(ctx, tenantID, body.Tenant, body.Email, body.Password, rq.meta())
	s.noteAttempt(rq, at, "password", err)
	if err != nil {
		return loginError(rq, err)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"status": "mfa_required", "login_token": start.Token,
		"factors": start.Factors, "expires_in_seconds": 300})
}

// noteAttempt records what a login step's counters did: the account in
// the request's audit event, and each lockout as a security event.
func (s *Server) noteAttempt(rq *request, at *identity.Attempt, step string, err error) {
	result := "success"
	if err != nil {
		result = "failure"
		var te *identity.ThrottledError
		if errors.As(err, &te) {
			result = "throttled"
		}
	}
	s.logins.WithLabelValues(step, result).Inc()
	if at == nil {
		return
	}
	if at.User != nil {
		rq.as = rq.userActor(at.User, step)
		rq.target = event.Target{Type: "user", ID: at.User.ID}
		if rq.tenant == nil {
			if t, terr := s.in.Tenants.ByID(rq.r.Context(), at.User.TenantID); terr == nil {
				rq.tenant = t
			}
		}
	}
	if at.AccountLocked || at.IPLocked {
		kind := "account"
		if at.IPLocked && !at.AccountLocked {
			kind = "client_ip"
		}
		s.lockouts.WithLabelValues(step, kind).Inc()
		s.securityEvent(rq, "user.lockout", "high", map[string]any{"step": step, "locked": kind, "failures": at.Failures})
	}
	s.detector.observe(rq, step, at, result)
}

// securityEvent records a security event of this request in its tenant's
// trail, or the operator's.
func (s *Server) securityEvent(rq *request, action, severity string, details map[string]any) {
	ctx := context.WithoutCancel(rq.r.Context())
	t := rq.tenant
	if t == nil {
		var err error
		if t, err = s.in.Operator(ctx); err != nil {
			return
		}
	}
	a := rq.actor()
	if rq.as != nil {
		a = *rq.as
	}
	ev := s.in.ChangeEvent(action, "security", a, rq.target)
	details["severity"] = severity
	ev.Details = detailsValue(details)
	rq.decorate(ev)
	ev.Actor = a
	if err := s.in.Record(ctx, t, ev); err != nil {
		s.log.Error("security event not recorded", "request_id", rq.id, "action", action, "error", err)
	}
}

// loginFactor is the second step of a login: a TOTP or recovery code for
// the pending login, which the same gate as every session turns into one.
func (s *Server) loginFactor(kind string) func(*request) error {
	return func(rq *request) error {
		var body struct {
			LoginToken string `json:"login_token"`
			Code       string `json:"code"`
			Session    string `json:"session"`
		}
		if err := decodeJSON(rq, &body); err != nil {
			return err
		}
		if err := checkMode(body.Session); err != nil {
			return err
		}
		if err := required("login_token", body.LoginToken, "code", body.Code); err != nil {
			return err
		}
		ctx := rq.r.Context()
		rq.details = map[string]any{"step": kind}
		proof, at, err := s.in.Identity.SecondFactor(ctx, body.LoginToken, kind, body.Code)
		s.noteAttempt(rq, at, kind, err)
		if err != nil {
			return loginError(rq, err)
		}
		return s.beginSession(rq, proof, body.Session, nil)
	}
}

// beginSession passes a proof through the gate, in the same transaction as
// the event that records the new session, and hands the session over.
func (s *Server) beginSession(rq *request, proof *identity.Proof, mode string, extra map[string]any) error {
	t, err := s.in.Tenants.ByID(rq.r.Context(), proof.User().TenantID)
	if err != nil {
		return err
	}
	rq.tenant = t
	sid := identity.NewSessionID()
	rq.as = rq.userActor(proof.User(), "password+"+proof.Factor())
	rq.as.SessionID = sid
	mfa := true
	rq.as.Auth.MFA = &mfa
	rq.target = event.Target{Type: "session", ID: sid}
	var tok identity.SessionToken
	var sess *identity.Session
	err = s.commit(rq, t, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		tok, sess, err = s.in.Identity.Gate(ctx, tx, sid, proof, rq.meta())
		return err
	})
	if err != nil {
		return loginError(rq, err)
	}
	return handOver(rq, http.StatusOK, tok, sess, mode, extra)
}

// enrolStart is the first step of an enrolment link: it creates the
// account the link is for, when it is for a new one, sets the password, and
// begins a TOTP factor whose secret it shows once.
func (s *Server) enrolStart(rq *request) error {
	var body struct {
		Token    string `json:"token"`
		Email    string `json:"email"`
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	if err := required("token", body.Token); err != nil {
		return err
	}
	ctx := rq.r.Context()
	link, err := s.in.Identity.Enrolment(ctx, s.in.DB.Read, body.Token)
	if err != nil {
		return loginError(rq, err)
	}
	t, err := s.in.Tenants.ByID(ctx, link.TenantID)
	if err != nil {
		return err
	}
	rq.tenant = t
	es, err := s.in.Identity.PrepareEnrolment(ctx, body.Token, body.Email, body.Name, body.Password, t.Name)
	if err != nil {
		return loginError(rq, err)
	}
	var u *identity.User
	var te *identity.TOTPEnrolment
	rq.target = event.Target{Type: "user", ID: es.UserID}
	rq.details = map[string]any{"step": "enrol_start", "new_account": es.NewUser, "password_set": body.Password != ""}
	err = s.commit(rq, t, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		u, te, err = es.Apply(ctx, tx, func(u *identity.User) error {
			role := link.Role
			if role == "" {
				role = access.RoleMember
			}
			return s.in.Grants.Grant(ctx, tx, t.ID, u.ID, access.Grant{Role: role}, "enrolment")
		})
		return err
	})
	if err != nil && es.NewUser {
		// The account was not made: the refusal names none.
		rq.target = event.Target{}
	}
	if errors.Is(err, identity.ErrEmailTaken) {
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "an account with this email exists", field: "email"}
	}
	if err != nil {
		return loginError(rq, err)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"status": "confirm_totp", "user_id": u.ID,
		"totp": map[string]string{"secret": te.Secret, "uri": te.URI}})
}

// enrolFinish confirms the TOTP factor with a code, issues the recovery
// codes, and begins a session through the gate, all in one transaction.
func (s *Server) enrolFinish(rq *request) error {
	var body struct {
		Token   string `json:"token"`
		Code    string `json:"code"`
		Session string `json:"session"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	if err := checkMode(body.Session); err != nil {
		return err
	}
	if err := required("token", body.Token, "code", body.Code); err != nil {
		return err
	}
	ctx := rq.r.Context()
	link, err := s.in.Identity.Enrolment(ctx, s.in.DB.Read, body.Token)
	if err != nil {
		return loginError(rq, err)
	}
	if link.UserID == "" {
		return badRequest("token", "begin the enrolment first: POST /api/v1/auth/enrol with the link")
	}
	t, err := s.in.Tenants.ByID(ctx, link.TenantID)
	if err != nil {
		return err
	}
	rq.tenant = t
	u, err := s.in.Identity.Users.ByID(ctx, s.in.DB.Read, t.ID, link.UserID)
	if err != nil {
		return errEnrolInvalid
	}
	res, err := s.in.Identity.Counters.Reserve(ctx, identity.SecondFactorCounter(u.ID), identity.SecondFactorBudget)
	at := &identity.Attempt{User: u}
	if res != nil {
		at.AccountLocked, at.Failures = res.LockedNow, res.Failures
	}
	if err != nil {
		s.noteAttempt(rq, at, "enrol", err)
		return loginError(rq, err)
	}
	sid := identity.NewSessionID()
	rq.as = rq.userActor(u, "enrolment+totp")
	rq.as.SessionID = sid
	rq.target = event.Target{Type: "session", ID: sid}
	rq.details = map[string]any{"step": "enrol_finish", "factor": "totp"}
	var codes []string
	var tok identity.SessionToken
	var sess *identity.Session
	err = s.commit(rq, t, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		done, err := s.in.Identity.FinishEnrolment(ctx, tx, body.Token, body.Code)
		if err != nil {
			return err
		}
		codes = done.RecoveryCodes
		if _, err := s.in.Identity.Counters.Clear(ctx, tx, identity.SecondFactorCounter(u.ID)); err != nil {
			return err
		}
		tok, sess, err = s.in.Identity.Gate(ctx, tx, sid, done.Proof, rq.meta())
		return err
	})
	if err != nil {
		s.noteAttempt(rq, at, "enrol", err)
		return loginError(rq, err)
	}
	s.logins.WithLabelValues("enrol", "success").Inc()
	return handOver(rq, http.StatusOK, tok, sess, body.Session, map[string]any{"recovery_codes": codes})
}

// logout ends the caller's session.
func (s *Server) logout(rq *request) error {
	if rq.pr == nil {
		return badRequest("Authorization", "only a session signs out; revoke an API key instead")
	}
	rq.target = event.Target{Type: "session", ID: rq.pr.Session.ID}
	err := s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		return s.in.Identity.Sessions.Revoke(ctx, tx, rq.tenant.ID, rq.pr.Session.ID, "signed out")
	})
	if err != nil {
		return err
	}
	clearSessionCookie(rq.w)
	return writeJSON(rq.w, http.StatusOK, map[string]any{"status": "signed_out"})
}

func isNoSession(err error) bool {
	return errors.Is(err, identity.ErrNoSession) || errors.Is(err, store.ErrNotFound)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
