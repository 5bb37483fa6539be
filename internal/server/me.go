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
	var body struct {
		Subject  string `json:"subject"`
		Action   string `json:"action"`
		Resource struct {
			Type   string `json:"type"`
			ID     string `json:"id"`
			Tenant string `json:"tenant"`
		} `json:"resource"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	switch {
	case body.Subject == "":
		return badRequest("subject", "subject is required: a user id")
	case body.Action == "" || len(body.Action) > 128 || access.UnsafeText(body.Action):
		return badRequest("action", "action is required: a permission such as recording.read")
	case len(body.Resource.Type) > 128 || len(body.Resource.ID) > 512 || access.UnsafeText(body.Resource.ID+body.Resource.Type):
		return badRequest("resource", "resource type and id must be short text")
	}
	rq.target = event.Target{Type: "user", ID: body.Subject}
	d := s.decide(rq, body.Subject, access.Permission(body.Action), body.Resource.Tenant)
	rq.details = map[string]any{"action": body.Action, "resource_type": body.Resource.Type,
		"resource_id": body.Resource.ID, "decision": map[bool]string{true: "allow", false: "deny"}[d.Allow],
		"reason": d.Reason}
	out := map[string]any{"allow": d.Allow, "reason": d.Reason}
	if d.Period != nil {
		out["period"] = map[string]string{"start": fmtTime(d.Period.PeriodStart), "end": fmtTime(d.Period.PeriodEnd)}
	}
	return writeJSON(rq.w, http.StatusOK, out)
}

// decide evaluates one authorization question in the caller's tenant.
// Anything it cannot establish denies.
func (s *Server) decide(rq *request, userID string, p access.Permission, resourceTenant string) access.Decision {
	ctx := rq.r.Context()
	if resourceTenant != "" && resourceTenant != rq.tenant.Name {
		return access.Decision{Reason: "the resource belongs to another tenant"}
	}
	var h *access.Holder
	var err error
	if werr := s.in.DB.Warm(ctx, func() { h, err = s.in.Grants.Load(ctx, s.in.DB.Reads(), rq.tenant.ID, userID) }); werr != nil {
		err = werr
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
