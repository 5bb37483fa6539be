package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/tenant"
)

// errNeedsSession answers a route of a person's own account called with
// an API key.
var errNeedsSession = &apiError{status: http.StatusForbidden, title: "Forbidden",
	detail: "this route is a signed-in person's own: call it with a session, not an API key"}

// me describes the signed-in person: account, roles, what they hold now
// and what they could elevate to.
func (s *Server) me(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	ctx := rq.r.Context()
	u, err := s.in.Identity.Users.ByID(ctx, s.in.DB.Read, rq.tenant.ID, rq.pr.User.ID)
	if err != nil {
		return err
	}
	v, err := s.viewUser(ctx, u)
	if err != nil {
		return err
	}
	now := s.in.Now()
	held, eligible := []access.Permission{}, []access.Permission{}
	for _, p := range rq.subject.Eligible(now) {
		switch {
		case rq.subject.Check(p, now).Allow:
			held = append(held, p)
		case p.Privileged() && !p.OperatorTenantOnly() && (p != access.PermTenants || rq.tenant.Name == tenant.Operator):
			eligible = append(eligible, p)
		}
	}
	out := map[string]any{"user": v, "tenant": rq.tenant.Name, "session": viewSession(rq.pr.Session),
		"permissions": held, "elevatable": eligible}
	if !rq.subject.ElevatedUntil.IsZero() && now.Before(rq.subject.ElevatedUntil) {
		out["elevated_until"] = fmtTime(rq.subject.ElevatedUntil)
	}
	return writeJSON(rq.w, http.StatusOK, out)
}

func (s *Server) mySessions(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	return s.writeSessions(rq, rq.pr.User.ID)
}

// changePassword replaces the caller's password, which ends all their
// sessions and API keys, this one too: they sign in again.
func (s *Server) changePassword(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	var body struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	ctx := rq.r.Context()
	u, err := s.in.Identity.Users.ByID(ctx, s.in.DB.Read, rq.tenant.ID, rq.pr.User.ID)
	if err != nil {
		return err
	}
	rq.target = event.Target{Type: "user", ID: u.ID}
	pc, err := s.in.Identity.PreparePasswordChange(ctx, u, body.Current, body.New, rq.tenant.Name)
	if errors.Is(err, identity.ErrInvalidCredentials) {
		return &apiError{status: http.StatusForbidden, title: "Forbidden", detail: "the current password is wrong",
			field: "current_password"}
	}
	var pe *identity.PasswordError
	if errors.As(err, &pe) {
		return badRequest("new_password", pe.Error())
	}
	if err != nil {
		return err
	}
	if err := s.commit(rq, rq.tenant, http.StatusOK, pc.Apply); err != nil {
		return err
	}
	clearSessionCookie(rq.w)
	return writeJSON(rq.w, http.StatusOK, map[string]string{"status": "password_changed",
		"detail": "every session and API key of yours has ended: sign in again"})
}

// freshFactor checks a TOTP code of the caller's, for actions that need a
// second factor verified now rather than at sign-in.
func (s *Server) freshFactor(rq *request, code string) error {
	ctx := rq.r.Context()
	res, err := s.in.Identity.Counters.Reserve(ctx, identity.SecondFactorCounter(rq.pr.User.ID), identity.SecondFactorBudget)
	if err != nil {
		return loginError(rq, err)
	}
	at := &identity.Attempt{User: rq.pr.User, AccountLocked: res.LockedNow, Failures: res.Failures}
	if err := s.in.Identity.Factors.VerifyTOTP(ctx, s.in.DB.Write, rq.pr.User.ID, code); err != nil {
		s.noteAttempt(rq, at, "step_up", err)
		if errors.Is(err, identity.ErrBadCode) || errors.Is(err, identity.ErrNoFactor) {
			return &apiError{status: http.StatusForbidden, title: "Forbidden", field: "code",
				detail: "a fresh TOTP code is required: the code is wrong, expired or already used"}
		}
		return err
	}
	_, err = s.in.Identity.Counters.Clear(ctx, s.in.DB.Write, identity.SecondFactorCounter(rq.pr.User.ID))
	return err
}

// newRecoveryCodes replaces the caller's recovery codes: the old set stops
// working. It needs a fresh TOTP code.
func (s *Server) newRecoveryCodes(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	var body struct {
		Code string `json:"code"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	if err := s.freshFactor(rq, body.Code); err != nil {
		return err
	}
	rq.target = event.Target{Type: "user", ID: rq.pr.User.ID}
	var codes []string
	err := s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		codes, err = s.in.Identity.Factors.NewRecoveryCodes(ctx, tx, rq.pr.User.ID)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

// authzCheck answers whether a user of the caller's tenant may do an
// action: allow or deny with the reason, recorded in the trail. A subject
// or resource of another tenant denies as if it did not exist.
func (s *Server) authzCheck(rq *request) error {
	var q authzQuestion
	if err := decodeJSON(rq, &q); err != nil {
		return err
	}
	if err := q.check(""); err != nil {
		return err
	}
	rq.target = event.Target{Type: "user", ID: q.Subject}
	d := s.decide(rq, q.Subject, access.Permission(q.Action), q.Resource.Tenant, nil)
	rq.details = q.details(d)
	return writeJSON(rq.w, http.StatusOK, answerOf(d))
}

// authzQuestion is one question to the authorization API.
type authzQuestion struct {
	Subject  string `json:"subject"`
	Action   string `json:"action"`
	Resource struct {
		Type   string `json:"type"`
		ID     string `json:"id"`
		Tenant string `json:"tenant"`
	} `json:"resource"`
}

// check refuses a malformed question; prefix names it within a batch.
func (q *authzQuestion) check(prefix string) error {
	switch {
	case q.Subject == "":
		return badRequest(prefix+"subject", prefix+"subject is required: a user id")
	case q.Action == "" || len(q.Action) > 128 || access.UnsafeText(q.Action):
		return badRequest(prefix+"action", prefix+"action is required: a permission such as recording.read")
	case len(q.Resource.Type) > 128 || len(q.Resource.ID) > 512 || access.UnsafeText(q.Resource.ID+q.Resource.Type):
		return badRequest(prefix+"resource", prefix+"resource type and id must be short text")
	}
	return nil
}

func (q *authzQuestion) details(d access.Decision) map[string]any {
	return map[string]any{"action": q.Action, "resource_type": q.Resource.Type, "resource_id": q.Resource.ID,
		"decision": map[bool]string{true: "allow", false: "deny"}[d.Allow], "reason": d.Reason}
}

func answerOf(d access.Decision) map[string]any {
	out := map[string]any{"allow": d.Allow, "reason": d.Reason}
	if d.Period != nil {
		out["period"] = map[string]string{"start": fmtTime(d.Period.PeriodStart), "end": fmtTime(d.Period.PeriodEnd)}
	}
	return out
}

// maxAuthzBatch bounds the questions of one batch.
const maxAuthzBatch = 100

// authzCheckBatch answers up to 100 questions in one request, such as
// whether a user may read each recording of a list. Each answer is its
// own authz.check event in the trail, as if asked alone.
func (s *Server) authzCheckBatch(rq *request) error {
	var body struct {
		Checks []authzQuestion `json:"checks"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	if len(body.Checks) == 0 || len(body.Checks) > maxAuthzBatch {
		return badRequest("checks", fmt.Sprintf("checks must hold 1 to %d questions", maxAuthzBatch))
	}
	for i := range body.Checks {
		if err := body.Checks[i].check(fmt.Sprintf("checks.%d.", i)); err != nil {
			return err
		}
	}
	holders := map[string]*access.Holder{}
	results := make([]map[string]any, len(body.Checks))
	evs := make([]*event.Event, len(body.Checks))
	for i := range body.Checks {
		q := &body.Checks[i]
		d := s.decide(rq, q.Subject, access.Permission(q.Action), q.Resource.Tenant, holders)
		results[i] = answerOf(d)
		ev := s.in.ChangeEvent("authz.check", "authorization", rq.actor(), event.Target{Type: "user", ID: q.Subject})
		ev.Details = detailsValue(q.details(d))
		rq.changeDecorator(http.StatusOK)(ev)
		evs[i] = ev
	}
	if !s.cfg.WithoutSelfAudit {
		ps, err := s.in.Log.PrepareAll(rq.r.Context(), rq.tenant, evs)
		if err != nil {
			return err
		}
		if err := s.in.Log.Enqueue(rq.r.Context(), rq.tenant, ps); err != nil {
			return err
		}
	}
	rq.audited = true
	rq.details = map[string]any{"checks": len(body.Checks)}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"results": results})
}

// decide evaluates one authorization question in the caller's tenant.
// Anything it cannot establish denies.
// Holders already read, by user id, are taken from seen when it is given.
func (s *Server) decide(rq *request, userID string, p access.Permission, resourceTenant string,
	seen map[string]*access.Holder) access.Decision {
	ctx := rq.r.Context()
	if resourceTenant != "" && resourceTenant != rq.tenant.Name {
		return access.Decision{Reason: "the resource belongs to another tenant"}
	}
	h, ok := seen[userID]
	var err error
	if !ok {
		if werr := s.in.DB.Warm(ctx, func() { h, err = s.in.Grants.Load(ctx, s.in.DB.Reads(), rq.tenant.ID, userID) }); werr != nil {
			err = werr
		}
		if err == nil && seen != nil {
			seen[userID] = h
		}
	}
	if err != nil {
		s.log.Error("authz check: grants unreadable", "request_id", rq.id, "error", err)
		return access.Decision{Reason: "the user's roles could not be read"}
	}
	if !h.Found {
		return access.Decision{Reason: "no such user in this tenant"}
	}
	sub := &access.Subject{UserID: userID, OperatorTenant: rq.tenant.Name == tenant.Operator, Active: h.Active,
		Grants: h.Grants, Custom: h.Custom}
	if p.Privileged() {
		return access.Decision{Reason: fmt.Sprintf("%s is privileged: attest grants it only to a person's own elevated "+
			"session, never through this API", p)}
	}
	return sub.Check(p, s.in.Now())
}
