package server

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
)

type elevationView struct {
	ID              string              `json:"id"`
	User            string              `json:"user_id"`
	Permissions     []access.Permission `json:"permissions"`
	Reason          string              `json:"reason"`
	Minutes         int                 `json:"minutes"`
	ApprovalsNeeded int                 `json:"approvals_needed"`
	Approvers       []string            `json:"approvers"`
	Status          string              `json:"status"`
	RequestedAt     string              `json:"requested_at"`
	ActivatedAt     string              `json:"activated_at,omitempty"`
	ExpiresAt       string              `json:"expires_at,omitempty"`
}

func viewElevation(el *access.Elevation) elevationView {
	v := elevationView{ID: el.ID, User: el.UserID, Permissions: el.Permissions, Reason: el.Reason,
		Minutes: int(el.Duration / time.Minute), ApprovalsNeeded: el.ApprovalsNeeded, Approvers: el.Approvers,
		Status: el.Status, RequestedAt: fmtTime(el.RequestedAt), ActivatedAt: fmtTime(el.ActivatedAt),
		ExpiresAt: fmtTime(el.ExpiresAt)}
	if v.Approvers == nil {
		v.Approvers = []string{}
	}
	return v
}

func elevationError(err error) error {
	switch {
	case errors.Is(err, access.ErrNoElevation):
		return notFound("no such elevation")
	case errors.Is(err, access.ErrSelfApproval), errors.Is(err, access.ErrNotYourRequest):
		return forbidden(err.Error()[len("access: "):])
	case errors.Is(err, access.ErrAlreadyDecided), errors.Is(err, access.ErrElevationState):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: err.Error()[len("access: "):]}
	}
	return err
}

// requestElevation asks for privileged permissions for a while, with a
// reason; another authorised person approves.
func (s *Server) requestElevation(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	var body struct {
		Reason      string   `json:"reason"`
		Minutes     *int     `json:"minutes"`
		Permissions []string `json:"permissions"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	var d time.Duration
	if body.Minutes != nil {
		if *body.Minutes < 1 || *body.Minutes > int(access.MaxElevation/time.Minute) {
			return badRequest("minutes", "minutes must be between 1 and 240; leave it out for an hour")
		}
		d = time.Duration(*body.Minutes) * time.Minute
	}
	el := &access.Elevation{ID: access.NewElevationID(), TenantID: rq.tenant.ID, UserID: rq.pr.User.ID, Reason: body.Reason,
		Duration: d}
	for _, p := range body.Permissions {
		el.Permissions = append(el.Permissions, access.Permission(p))
	}
	if err := access.PlanElevation(el, rq.subject.Eligible(s.in.Now())); err != nil {
		if errors.Is(err, access.ErrNothingToElevate) {
			return forbidden("no role of yours carries a privileged permission")
		}
		return badRequest(fieldOf(err), err.Error())
	}
	rq.target = event.Target{Type: "elevation", ID: el.ID}
	rq.details = map[string]any{"permissions": access.JoinPermissions(el.Permissions), "reason": el.Reason,
		"minutes": int(el.Duration / time.Minute), "approvals_needed": el.ApprovalsNeeded}
	err := s.commit(rq, rq.tenant, http.StatusCreated, func(ctx context.Context, tx *sql.Tx) error {
		return s.in.Elevations.Request(ctx, tx, el)
	})
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusCreated, viewElevation(el))
}

// fieldOf is the field a "field: reason" error names.
func fieldOf(err error) string {
	if field, _, ok := strings.Cut(err.Error(), ":"); ok {
		return field
	}
	return "body"
}

// listElevations lists the tenant's elevations for approvers, and a
// person's own for everyone else.
func (s *Server) listElevations(rq *request) error {
	els, err := s.in.Elevations.List(rq.r.Context(), s.in.DB.Read, rq.tenant.ID)
	if err != nil {
		return err
	}
	all := rq.holds(access.PermElevationApprove)
	out := []elevationView{}
	for _, el := range els {
		if all || (rq.pr != nil && el.UserID == rq.pr.User.ID) {
			out = append(out, viewElevation(el))
		}
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"elevations": out})
}

// decideElevation approves or denies another person's request. The
// approver must be eligible for every permission asked: nobody grants
// what they could not hold.
func (s *Server) decideElevation(approve bool) func(*request) error {
	return func(rq *request) error {
		if rq.pr == nil {
			return errNeedsSession
		}
		var body struct {
			Reason string `json:"reason"`
		}
		if rq.r.ContentLength != 0 {
			if err := decodeJSON(rq, &body); err != nil {
				return err
			}
		}
		if len(body.Reason) > 500 || access.UnsafeText(body.Reason) {
			return badRequest("reason", "reason must be at most 500 bytes of text")
		}
		id := rq.r.PathValue("id")
		rq.target = event.Target{Type: "elevation", ID: id}
		ctx := rq.r.Context()
		el, err := s.in.Elevations.Get(ctx, s.in.DB.Read, rq.tenant.ID, id)
		if err != nil {
			return elevationError(err)
		}
		if approve {
			if err := rq.canGrantAll(el.Permissions); err != nil {
				return forbidden(err.Error())
			}
			// The second person must not owe their account or role to the
			// first.
			sponsored, err := s.in.Grants.Sponsored(ctx, s.in.DB.Read, rq.pr.User.ID, el.UserID)
			if err != nil {
				return err
			}
			if sponsored {
				return forbidden("you hold your account or a role by the requester's doing, so you cannot approve their elevation")
			}
		}
		rq.details = map[string]any{"decision": map[bool]string{true: "approve", false: "deny"}[approve],
			"requester": el.UserID, "reason": body.Reason}
		err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
			var err error
			el, err = s.in.Elevations.Decide(ctx, tx, rq.tenant.ID, id, rq.pr.User.ID, approve, body.Reason)
			return err
		})
		if err != nil {
			return elevationError(err)
		}
		return writeJSON(rq.w, http.StatusOK, viewElevation(el))
	}
}

// activateElevation starts an approved elevation in the caller's session,
// after a fresh TOTP code, and rotates the session's token: the old one
// stops working in the same commit.
func (s *Server) activateElevation(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	var body struct {
		Code string `json:"code"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "elevation", ID: id}
	ctx := rq.r.Context()
	el, err := s.in.Elevations.Get(ctx, s.in.DB.Read, rq.tenant.ID, id)
	if err != nil {
		return elevationError(err)
	}
	if el.UserID != rq.pr.User.ID {
		return notFound("no such elevation")
	}
	if el.Status != access.ElevationApproved {
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "the elevation is " + el.Status + ", not approved"}
	}
	if until := rq.subject.ElevatedUntil; !until.IsZero() && s.in.Now().Before(until) {
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "another elevation is active in this " +
			"session until " + fmtTime(until) + ": activate this one after it ends, or in a new session"}
	}
	if err := s.freshFactor(rq, body.Code); err != nil {
		return err
	}
	var tok identity.SessionToken
	rq.details = map[string]any{"permissions": access.JoinPermissions(el.Permissions), "session": rq.pr.Session.ID}
	err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if el, err = s.in.Elevations.Activate(ctx, tx, rq.tenant.ID, id, rq.pr.User.ID, rq.pr.Session.ID); err != nil {
			return err
		}
		tok, err = s.in.Identity.Sessions.Rotate(ctx, tx, rq.pr.Session.ID)
		return err
	})
	if err != nil {
		return elevationError(err)
	}
	out := map[string]any{"elevation": viewElevation(el)}
	if _, fromCookie, _ := credential(rq.r); fromCookie {
		setSessionCookie(rq.w, tok, rq.pr.Session.ExpiresAt)
	} else {
		out["token"] = tok.Reveal()
	}
	return writeJSON(rq.w, http.StatusOK, out)
}
