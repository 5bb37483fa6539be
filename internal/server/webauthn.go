package server

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/go-webauthn/webauthn/protocol"
)

// passkeyTTL is how long, in seconds, a passkey registration's challenge
// stays good.
const passkeyTTL = 300

// passkeyError maps the identity errors of a passkey route of the caller's
// own account.
func passkeyError(rq *request, err error) error {
	switch {
	case errors.Is(err, identity.ErrRegistrationExpired):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "no passkey registration is in " +
			"progress, or it expired or was used: begin again with POST /api/v1/me/webauthn/begin"}
	case errors.Is(err, identity.ErrPasskeyRejected):
		return &apiError{status: http.StatusBadRequest, title: "Bad request", field: "credential", detail: "the passkey " +
			"did not verify against the registration (origin, relying party, challenge or attestation): begin again"}
	case errors.Is(err, identity.ErrPasskeyTaken):
		return &apiError{status: http.StatusConflict, title: "Conflict", field: "credential",
			detail: "this passkey is registered already"}
	case errors.Is(err, identity.ErrStaleProof):
		return &apiError{status: http.StatusConflict, title: "Conflict",
			detail: "your credentials changed since the registration began: begin again"}
	case errors.Is(err, identity.ErrNoFactor):
		return notFound("no such passkey")
	case errors.Is(err, identity.ErrSessionEnded):
		return errUnauthenticated
	}
	return loginError(rq, err)
}

type passkeyView struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	AAGUID       string `json:"aaguid"`
	CloneWarning bool   `json:"clone_warning"`
	CreatedAt    string `json:"created_at"`
	LastUsedAt   string `json:"last_used_at,omitempty"`
}

func viewPasskey(p *identity.Passkey) passkeyView {
	return passkeyView{ID: p.ID, Name: p.Name, AAGUID: p.AAGUID, CloneWarning: p.CloneWarning,
		CreatedAt: p.CreatedAt.Format(time.RFC3339), LastUsedAt: fmtTime(p.LastUsedAt)}
}

// beginPasskeyRegistration answers the options for
// navigator.credentials.create, for a passkey of the signed-in caller. It
// needs a fresh TOTP code.
func (s *Server) beginPasskeyRegistration(rq *request) error {
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
	var cc *protocol.CredentialCreation
	err := s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		cc, err = s.in.Identity.BeginPasskeyRegistration(ctx, tx, rq.tenant.ID, rq.pr.User.ID, rq.pr.Session.ID)
		return err
	})
	if err != nil {
		return passkeyError(rq, err)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"publicKey": cc.Response, "expires_in_seconds": passkeyTTL})
}

// addPasskey verifies the caller's new passkey and stores it. Adding a
// factor ends the caller's other sessions; this one goes on under a new
// token.
func (s *Server) addPasskey(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	var body struct {
		Name       string         `json:"name"`
		Credential jsontext.Value `json:"credential"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	if len(body.Credential) == 0 {
		return badRequest("credential", "credential is required: the PublicKeyCredential from navigator.credentials.create")
	}
	ctx := rq.r.Context()
	rq.target = event.Target{Type: "user", ID: rq.pr.User.ID}
	reg, err := s.in.Identity.PreparePasskey(ctx, rq.tenant.ID, rq.pr.User.ID, rq.pr.Session.ID, body.Name,
		body.Credential)
	if err != nil {
		return passkeyError(rq, err)
	}
	rq.target = event.Target{Type: "webauthn_credential", ID: reg.ID(), Name: reg.Name()}
	rq.details = map[string]any{"aaguid": reg.AAGUID(), "user_id": rq.pr.User.ID}
	var tok identity.SessionToken
	var pk *identity.Passkey
	err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		tok, pk, err = reg.Apply(ctx, tx)
		return err
	})
	if err != nil {
		return passkeyError(rq, err)
	}
	out := map[string]any{"status": "passkey_added", "passkey": viewPasskey(pk),
		"detail": "your other sessions have ended; this one continues under a new token"}
	if _, fromCookie, _ := credential(rq.r); fromCookie {
		setSessionCookie(rq.w, tok, rq.pr.Session.ExpiresAt)
	} else {
		out["token"] = tok.Reveal()
	}
	return writeJSON(rq.w, http.StatusOK, out)
}

// listPasskeys lists the caller's passkeys, without their keys.
func (s *Server) listPasskeys(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	ps, err := s.in.Identity.Passkeys.List(rq.r.Context(), s.in.DB.Read, rq.pr.User.ID)
	if err != nil {
		return err
	}
	out := make([]passkeyView, len(ps))
	for i, p := range ps {
		out[i] = viewPasskey(p)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"passkeys": out})
}

// removePasskey deletes one of the caller's passkeys. Removing a factor
// ends every session and API key of the caller, this one too.
func (s *Server) removePasskey(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "webauthn_credential", ID: id}
	rq.details = map[string]any{"user_id": rq.pr.User.ID}
	err := s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		return s.in.Identity.RemovePasskey(ctx, tx, rq.pr.User.ID, id)
	})
	if err != nil {
		return passkeyError(rq, err)
	}
	clearSessionCookie(rq.w)
	return writeJSON(rq.w, http.StatusOK, map[string]string{"status": "passkey_removed",
		"detail": "every session and API key of yours has ended: sign in again"})
}

// loginPasskeyBegin answers the options for navigator.credentials.get that
// the second step of a pending login signs.
func (s *Server) loginPasskeyBegin(rq *request) error {
	var body struct {
		LoginToken string `json:"login_token"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	ctx := rq.r.Context()
	rq.details = map[string]any{"step": "webauthn_begin"}
	u, err := s.in.Identity.PendingUser(ctx, body.LoginToken)
	if err != nil {
		return loginError(rq, err)
	}
	t, err := s.in.Tenants.ByID(ctx, u.TenantID)
	if err != nil {
		return err
	}
	rq.tenant = t
	rq.as = rq.userActor(u, "webauthn")
	rq.target = event.Target{Type: "user", ID: u.ID}
	var ca *protocol.CredentialAssertion
	err = s.commit(rq, t, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		ca, err = s.in.Identity.BeginPasskeyLogin(ctx, tx, body.LoginToken)
		return err
	})
	if errors.Is(err, identity.ErrNoFactor) {
		return badRequest("login_token", "this account has no passkey that can sign in: use another factor")
	}
	if err != nil {
		return loginError(rq, err)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"publicKey": ca.Response})
}

// loginPasskey is the second step of a login with a WebAuthn assertion,
// which the same gate as every session turns into one. A signature
// counter that went backwards is recorded as a security event.
func (s *Server) loginPasskey(rq *request) error {
	var body struct {
		LoginToken string         `json:"login_token"`
		Credential jsontext.Value `json:"credential"`
		Session    string         `json:"session"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	if err := checkMode(body.Session); err != nil {
		return err
	}
	ctx := rq.r.Context()
	rq.details = map[string]any{"step": "webauthn"}
	u, err := s.in.Identity.PendingUser(ctx, body.LoginToken)
	if err != nil {
		return loginError(rq, err)
	}
	proof, at, err := s.in.Identity.PasskeyLogin(ctx, body.LoginToken, body.Credential)
	if at.User == nil {
		at.User = u
	}
	s.noteAttempt(rq, at, "webauthn", err)
	var cre *identity.CounterRegressionError
	if errors.As(err, &cre) {
		s.securityEvent(rq, "security.webauthn.counter_regression", "high", map[string]any{
			"credential_id": cre.CredentialID, "stored_count": cre.Stored, "presented_count": cre.Presented,
			"action_taken": "login refused; credential flagged and no longer accepted"})
	}
	if err != nil {
		return loginError(rq, err)
	}
	return s.beginSession(rq, proof, body.Session, nil)
}
