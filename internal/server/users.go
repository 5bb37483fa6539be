package server

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/store"
)

type userView struct {
	ID          string      `json:"id"`
	Email       string      `json:"email"`
	Name        string      `json:"name"`
	ExternalID  string      `json:"external_id,omitempty"`
	Status      string      `json:"status"`
	Roles       []grantView `json:"roles"`
	Factors     []string    `json:"factors"`
	CreatedAt   string      `json:"created_at"`
	LastLoginAt string      `json:"last_login_at,omitempty"`
	DisabledAt  string      `json:"disabled_at,omitempty"`
	Reason      string      `json:"disabled_reason,omitempty"`
}

type grantView struct {
	Role        string `json:"role"`
	PeriodStart string `json:"period_start,omitempty"`
	PeriodEnd   string `json:"period_end,omitempty"`
}

func (s *Server) viewUser(ctx context.Context, u *identity.User) (userView, error) {
	v := userView{ID: u.ID, Email: u.Display, Name: u.Name, ExternalID: u.ExternalID, Status: string(u.Status),
		CreatedAt: fmtTime(u.CreatedAt), LastLoginAt: fmtTime(u.LastLoginAt), DisabledAt: fmtTime(u.DisabledAt),
		Reason: u.DisabledReason, Roles: []grantView{}}
	grants, _, err := s.in.Grants.ForUser(ctx, s.in.DB.Read, u.ID)
	if err != nil {
		return v, err
	}
	for _, g := range grants {
		v.Roles = append(v.Roles, grantView{Role: g.Role, PeriodStart: fmtTime(g.PeriodStart), PeriodEnd: fmtTime(g.PeriodEnd)})
	}
	if v.Factors, err = s.in.Identity.Factors.Kinds(ctx, s.in.DB.Read, u.ID); err != nil {
		return v, err
	}
	if v.Factors == nil {
		v.Factors = []string{}
	}
	return v, nil
}

// targetUser loads the user a path names, in the request's tenant alone:
// another tenant's user answers 404 like one that does not exist.
func (s *Server) targetUser(rq *request) (*identity.User, error) {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "user", ID: id}
	u, err := s.in.Identity.Users.ByID(rq.r.Context(), s.in.DB.Read, rq.tenant.ID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Status == identity.StatusDeleted) {
		return nil, notFound("no such user")
	}
	return u, err
}

// createUser creates an account, with the least role unless another is
// named, and issues its enrolment link: the account signs in only after
// its person sets a password and a second factor through it.
func (s *Server) createUser(rq *request) error {
	var body struct {
		Email          string `json:"email"`
		Name           string `json:"name"`
		Role           string `json:"role"`
		ExpiresInHours *int   `json:"expires_in_hours"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	ttl, err := linkTTL(body.ExpiresInHours)
	if err != nil {
		return err
	}
	canon, cerr := identity.CanonicalEmail(body.Email)
	if cerr != nil {
		return badRequest("email", cerr.Error())
	}
	if body.Name == "" || len(body.Name) > identity.MaxNameLen || access.UnsafeText(body.Name) || !store.StorableText(body.Name) {
		return badRequest("name", "name is required: at most 200 bytes of text")
	}
	role := body.Role
	if role == "" {
		role = access.RoleMember
	}
	ctx := rq.r.Context()
	perms, err := s.in.Grants.RolePermissions(ctx, s.in.DB.Read, rq.tenant.ID, role)
	if err != nil {
		return badRequest("role", "no such role")
	}
	if role == access.RoleAuditor {
		return badRequest("role", "grant the auditor role with its audit period: PUT /api/v1/users/{id}/roles/auditor")
	}
	// Creating an account with more than the least role is granting a
	// role, and needs what granting one needs.
	if role != access.RoleMember && !rq.holds(access.PermRolesManage) {
		return forbidden("creating an account with a role other than member needs roles.manage; create it as a " +
			"member and grant the role, or elevate for roles.manage too")
	}
	if err := rq.canGrantRole(role, perms); err != nil {
		return err
	}
	u := &identity.User{ID: identity.NewUserID(), TenantID: rq.tenant.ID, Email: canon, Display: strings.TrimSpace(body.Email),
		Name: body.Name}
	rq.target = event.Target{Type: "user", ID: u.ID}
	rq.details = map[string]any{"role": role}
	var tok string
	link := &identity.Enrolment{TenantID: rq.tenant.ID, UserID: u.ID}
	err = s.commit(rq, rq.tenant, http.StatusCreated, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.in.Identity.Users.Create(ctx, tx, u); err != nil {
			return err
		}
		if err := s.in.Grants.Grant(ctx, tx, rq.tenant.ID, u.ID, access.Grant{Role: role}, rq.actor().ID); err != nil {
			return err
		}
		var err error
		tok, err = s.in.Identity.IssueEnrolment(ctx, tx, link, rq.actor().ID, ttl)
		return err
	})
	if errors.Is(err, identity.ErrEmailTaken) {
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "an account with this email exists", field: "email"}
	}
	if err != nil {
		return loginError(rq, err)
	}
	v, err := s.viewUser(ctx, u)
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusCreated, map[string]any{"user": v,
		"enrolment": map[string]string{"token": tok, "expires_at": fmtTime(link.ExpiresAt)}})
}

// linkTTL is an enrolment link's lifetime: hours given, or the default.
func linkTTL(hours *int) (time.Duration, error) {
	if hours == nil {
		return identity.DefaultEnrolmentTTL, nil
	}
	if *hours < 1 || *hours > int(identity.MaxEnrolmentTTL/time.Hour) {
		return 0, badRequest("expires_in_hours", "expires_in_hours must be between 1 and 168; leave it out for 24")
	}
	return time.Duration(*hours) * time.Hour, nil
}

// canGrantRole refuses a role that carries a permission the caller does
// not hold, and the owner role to anyone but an owner.
func (rq *request) canGrantRole(role string, perms []access.Permission) error {
	if role == access.RoleOwner && !rq.holds(access.PermOwnership) && !rq.operatorKey() {
		return forbidden("only an owner, elevated, grants or revokes the owner role")
	}
	if err := rq.canGrantAll(perms); err != nil {
		return forbidden(err.Error())
	}
	return nil
}

func (s *Server) listUsers(rq *request) error {
	ctx := rq.r.Context()
	us, err := s.in.Identity.Users.List(ctx, s.in.DB.Read, rq.tenant.ID)
	if err != nil {
		return err
	}
	out := []userView{}
	for _, u := range us {
		v, err := s.viewUser(ctx, u)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"users": out})
}

func (s *Server) getUser(rq *request) error {
	u, err := s.targetUser(rq)
	if err != nil {
		return err
	}
	ctx := rq.r.Context()
	v, err := s.viewUser(ctx, u)
	if err != nil {
		return err
	}
	// Whether sign-in is locked after failed attempts, and until when: the
	// later of the password's and the second factor's lockouts.
	var lockedUntil time.Time
	for _, c := range []struct {
		counter identity.Counter
		budget  identity.Budget
	}{{identity.PasswordCounter(rq.tenant.Name, u.Email), identity.PasswordAccountBudget},
		{identity.SecondFactorCounter(u.ID), identity.SecondFactorBudget}} {
		until, locked, err := s.in.Identity.Counters.Locked(ctx, s.in.DB.Read, c.counter, c.budget)
		if err != nil {
			return err
		}
		if locked && until.After(lockedUntil) {
			lockedUntil = until
		}
	}
	out := struct {
		userView
		LockedUntil string `json:"locked_until,omitempty"`
	}{v, fmtTime(lockedUntil)}
	return writeJSON(rq.w, http.StatusOK, out)
}

// setUserStatus disables, enables or deletes an account. Leaving active
// ends its sessions and revokes its API keys in the same transaction.
func (s *Server) setUserStatus(st identity.Status) func(*request) error {
	return func(rq *request) error {
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
		u, err := s.targetUser(rq)
		if err != nil {
			return err
		}
		if rq.pr != nil && u.ID == rq.pr.User.ID && st != identity.StatusActive {
			return forbidden("you may not disable or delete your own account")
		}
		if err := s.guardOwner(rq, u); err != nil {
			return err
		}
		if st != identity.StatusActive {
			last, err := s.in.Grants.LastOwner(rq.r.Context(), s.in.DB.Read, rq.tenant.ID, u.ID)
			if err != nil {
				return err
			}
			if last {
				return &apiError{status: http.StatusConflict, title: "Conflict",
					detail: "this is the tenant's last owner: make another owner first"}
			}
		}
		if body.Reason == "" {
			body.Reason = "by " + rq.actor().ID
		}
		rq.details = map[string]any{"status": string(st), "reason": body.Reason}
		err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
			return s.in.Identity.Users.SetStatus(ctx, tx, u, st, body.Reason)
		})
		if err != nil {
			return err
		}
		v, err := s.viewUser(rq.r.Context(), u)
		if err != nil {
			return err
		}
		return writeJSON(rq.w, http.StatusOK, v)
	}
}

// canElevate reports whether a user's roles carry a privileged permission.
func (s *Server) canElevate(rq *request, userID string) (bool, error) {
	h, err := s.in.Grants.Load(rq.r.Context(), s.in.DB.Read, rq.tenant.ID, userID)
	if err != nil {
		return false, err
	}
	sub := &access.Subject{Active: true, Grants: h.Grants, Custom: h.Custom}
	for _, p := range sub.Eligible(s.in.Now()) {
		if p.Privileged() {
			return true, nil
		}
	}
	return false, nil
}

// guardOwner keeps owners out of reach of those who are not owners.
func (s *Server) guardOwner(rq *request, u *identity.User) error {
	holders, err := s.in.Grants.Holders(rq.r.Context(), s.in.DB.Read, rq.tenant.ID, access.RoleOwner)
	if err != nil {
		return err
	}
	if slices.Contains(holders, u.ID) && !rq.holds(access.PermOwnership) && !rq.operatorKey() {
		return forbidden("only an owner, elevated, changes another owner's account")
	}
	return nil
}

// issueEnrolment issues a new enrolment link for an account, replacing its
// unused ones: how a person who lost their factor or password gets back.
func (s *Server) issueEnrolment(rq *request) error {
	var body struct {
		ExpiresInHours *int `json:"expires_in_hours"`
	}
	if rq.r.ContentLength != 0 {
		if err := decodeJSON(rq, &body); err != nil {
			return err
		}
	}
	ttl, err := linkTTL(body.ExpiresInHours)
	if err != nil {
		return err
	}
	u, err := s.targetUser(rq)
	if err != nil {
		return err
	}
	if u.Status != identity.StatusActive {
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "the account is not active: enable it first"}
	}
	if err := s.guardOwner(rq, u); err != nil {
		return err
	}
	// A link takes over the account it is for: for one that can elevate,
	// only an owner issues it, so that users.manage alone cannot make a
	// second approver out of a peer.
	elevates, err := s.canElevate(rq, u.ID)
	if err != nil {
		return err
	}
	if elevates && !rq.holds(access.PermOwnership) && !rq.operatorKey() {
		return forbidden("this account can elevate to privileged permissions: only an owner, elevated, issues its enrolment link")
	}
	var tok string
	link := &identity.Enrolment{TenantID: rq.tenant.ID, UserID: u.ID}
	err = s.commit(rq, rq.tenant, http.StatusCreated, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		tok, err = s.in.Identity.IssueEnrolment(ctx, tx, link, rq.actor().ID, ttl)
		return err
	})
	if err != nil {
		return loginError(rq, err)
	}
	return writeJSON(rq.w, http.StatusCreated, map[string]string{"token": tok, "expires_at": fmtTime(link.ExpiresAt)})
}

// unlockUser clears an account's failed-attempt counters.
func (s *Server) unlockUser(rq *request) error {
	u, err := s.targetUser(rq)
	if err != nil {
		return err
	}
	if err := s.guardOwner(rq, u); err != nil {
		return err
	}
	var cleared bool
	err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		for _, c := range []identity.Counter{identity.PasswordCounter(rq.tenant.Name, u.Email), identity.SecondFactorCounter(u.ID)} {
			ok, err := s.in.Identity.Counters.Clear(ctx, tx, c)
			if err != nil {
				return err
			}
			cleared = cleared || ok
		}
		return nil
	})
	if err != nil {
		return err
	}
	if cleared {
		s.lockouts.WithLabelValues("unlock", "account").Inc()
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"unlocked": cleared})
}

// listUserSessions lists an account's live sessions.
func (s *Server) listUserSessions(rq *request) error {
	u, err := s.targetUser(rq)
	if err != nil {
		return err
	}
	return s.writeSessions(rq, u.ID)
}

func (s *Server) writeSessions(rq *request, userID string) error {
	ss, err := s.in.Identity.Sessions.List(rq.r.Context(), s.in.DB.Read, rq.tenant.ID, userID)
	if err != nil {
		return err
	}
	out := []sessionView{}
	for _, x := range ss {
		v := viewSession(x)
		v.Current = rq.pr != nil && rq.pr.Session.ID == x.ID
		out = append(out, v)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"sessions": out})
}

// revokeSession ends a session of the tenant (an admin's) or of the
// caller (their own).
func (s *Server) revokeSession(own bool) func(*request) error {
	return func(rq *request) error {
		id := rq.r.PathValue("sid")
		rq.target = event.Target{Type: "session", ID: id}
		ctx := rq.r.Context()
		sess, err := s.in.Identity.Sessions.Get(ctx, s.in.DB.Read, rq.tenant.ID, id)
		if isNoSession(err) {
			return notFound("no such session")
		}
		if err != nil {
			return err
		}
		if own && (rq.pr == nil || sess.UserID != rq.pr.User.ID) {
			return notFound("no such session")
		}
		if !own && sess.UserID != rq.r.PathValue("id") {
			return notFound("no such session")
		}
		if !own {
			if err := s.guardOwner(rq, &identity.User{ID: sess.UserID}); err != nil {
				return err
			}
		}
		reason := "ended by its user"
		if !own {
			reason = "ended by " + rq.actor().ID
		}
		err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
			return s.in.Identity.Sessions.Revoke(ctx, tx, rq.tenant.ID, id, reason)
		})
		if isNoSession(err) {
			return notFound("no such session, or it has ended")
		}
		if err != nil {
			return err
		}
		if rq.pr != nil && rq.pr.Session.ID == id {
			clearSessionCookie(rq.w)
		}
		return writeJSON(rq.w, http.StatusOK, map[string]any{"ended": id})
	}
}

// grantRole gives an account a role; an auditor's grant names its audit
// period.
func (s *Server) grantRole(rq *request) error {
	var body struct {
		PeriodStart string `json:"period_start"`
		PeriodEnd   string `json:"period_end"`
	}
	if rq.r.ContentLength != 0 {
		if err := decodeJSON(rq, &body); err != nil {
			return err
		}
	}
	role := rq.r.PathValue("role")
	g := access.Grant{Role: role}
	for _, f := range []struct {
		name, v string
		dst     *time.Time
	}{{"period_start", body.PeriodStart, &g.PeriodStart}, {"period_end", body.PeriodEnd, &g.PeriodEnd}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.v)
		if err != nil {
			return badRequest(f.name, f.name+" must be an RFC 3339 time")
		}
		*f.dst = t.UTC()
	}
	hasPeriod := body.PeriodStart != "" || body.PeriodEnd != ""
	switch {
	case role == access.RoleAuditor && (body.PeriodStart == "" || body.PeriodEnd == ""):
		return badRequest("period_start", "the auditor role is bounded to an audit period: give period_start and period_end")
	case role != access.RoleAuditor && hasPeriod:
		return badRequest("period_start", "only the auditor role takes period_start and period_end")
	}
	if g.Bounded() && !g.PeriodStart.Before(g.PeriodEnd) {
		return badRequest("period_end", "period_end must be after period_start")
	}
	u, err := s.targetUser(rq)
	if err != nil {
		return err
	}
	if rq.pr != nil && u.ID == rq.pr.User.ID {
		return forbidden("nobody grants themselves a role")
	}
	ctx := rq.r.Context()
	perms, err := s.in.Grants.RolePermissions(ctx, s.in.DB.Read, rq.tenant.ID, role)
	if err != nil {
		return notFound("no such role")
	}
	if err := rq.canGrantRole(role, perms); err != nil {
		return err
	}
	rq.details = map[string]any{"role": role}
	if g.Bounded() {
		rq.details["period_start"], rq.details["period_end"] = fmtTime(g.PeriodStart), fmtTime(g.PeriodEnd)
	}
	err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.in.Grants.Grant(ctx, tx, rq.tenant.ID, u.ID, g, rq.actor().ID); err != nil {
			return err
		}
		// A link issued before the grant was issued for a lesser account.
		return s.in.Identity.CancelEnrolments(ctx, tx, u.ID)
	})
	if err != nil {
		return err
	}
	v, err := s.viewUser(ctx, u)
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, v)
}

// revokeRole takes a role from an account; the last owner keeps theirs.
func (s *Server) revokeRole(rq *request) error {
	role := rq.r.PathValue("role")
	u, err := s.targetUser(rq)
	if err != nil {
		return err
	}
	ctx := rq.r.Context()
	perms, err := s.in.Grants.RolePermissions(ctx, s.in.DB.Read, rq.tenant.ID, role)
	if err != nil {
		return notFound("no such role")
	}
	if err := rq.canGrantRole(role, perms); err != nil {
		return err
	}
	rq.details = map[string]any{"role": role}
	err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		return s.in.Grants.Revoke(ctx, tx, rq.tenant.ID, u.ID, role)
	})
	switch {
	case errors.Is(err, access.ErrNotGranted):
		return notFound("the user does not hold this role")
	case errors.Is(err, access.ErrLastOwner):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "the tenant's last owner keeps the owner role"}
	case err != nil:
		return err
	}
	v, err := s.viewUser(ctx, u)
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, v)
}

type roleView struct {
	Name        string              `json:"name"`
	Builtin     bool                `json:"builtin"`
	Description string              `json:"description,omitempty"`
	Permissions []access.Permission `json:"permissions"`
	Privileged  []access.Permission `json:"privileged"`
}

func newRoleView(name, desc string, builtin bool, perms []access.Permission) roleView {
	v := roleView{Name: name, Builtin: builtin, Description: desc, Permissions: []access.Permission{},
		Privileged: []access.Permission{}}
	for _, p := range perms {
		v.Permissions = append(v.Permissions, p)
		if p.Privileged() {
			v.Privileged = append(v.Privileged, p)
		}
	}
	return v
}

func (s *Server) listRoles(rq *request) error {
	out := []roleView{}
	for _, r := range access.BuiltinRoles {
		ps, _ := access.BuiltinPermissions(r)
		out = append(out, newRoleView(r, "", true, ps))
	}
	custom, err := s.in.Grants.CustomRoles(rq.r.Context(), s.in.DB.Read, rq.tenant.ID)
	if err != nil {
		return err
	}
	for _, r := range custom {
		out = append(out, newRoleView(r.Name, r.Description, false, r.Permissions))
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"roles": out, "permissions": access.AllPermissions})
}

func (s *Server) createRole(rq *request) error {
	var body struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Permissions []string `json:"permissions"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	r := &access.CustomRole{Name: body.Name, Description: body.Description}
	for _, p := range body.Permissions {
		r.Permissions = append(r.Permissions, access.Permission(p))
	}
	if err := access.ValidateCustomRole(r); err != nil {
		field, reason, _ := strings.Cut(err.Error(), ": ")
		return badRequest(field, reason)
	}
	if err := rq.canGrantAll(r.Permissions); err != nil {
		return forbidden(err.Error())
	}
	rq.target = event.Target{Type: "role", ID: r.Name, Name: r.Name}
	rq.details = map[string]any{"permissions": access.JoinPermissions(r.Permissions)}
	err := s.commit(rq, rq.tenant, http.StatusCreated, func(ctx context.Context, tx *sql.Tx) error {
		return s.in.Grants.CreateRole(ctx, tx, rq.tenant.ID, r)
	})
	if errors.Is(err, access.ErrRoleExists) {
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "a role with this name exists", field: "name"}
	}
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusCreated, newRoleView(r.Name, r.Description, false, r.Permissions))
}

func (s *Server) deleteRole(rq *request) error {
	name := rq.r.PathValue("name")
	rq.target = event.Target{Type: "role", ID: name, Name: name}
	if _, ok := access.BuiltinPermissions(name); ok {
		return forbidden("built-in roles cannot be deleted")
	}
	ctx := rq.r.Context()
	r, err := s.in.Grants.CustomRole(ctx, s.in.DB.Read, rq.tenant.ID, name)
	if errors.Is(err, access.ErrNoRole) {
		return notFound("no such role")
	}
	if err != nil {
		return err
	}
	if err := rq.canGrantAll(r.Permissions); err != nil {
		return forbidden(err.Error())
	}
	err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		return s.in.Grants.DeleteRole(ctx, tx, rq.tenant.ID, name)
	})
	switch {
	case errors.Is(err, access.ErrNoRole):
		return notFound("no such role")
	case errors.Is(err, access.ErrRoleInUse):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "the role is granted to someone: revoke it first"}
	case err != nil:
		return err
	}
	return writeJSON(rq.w, http.StatusOK, map[string]string{"deleted": name})
}

type policyView struct {
	IdleMinutes   int    `json:"idle_minutes"`
	AbsoluteHours int    `json:"absolute_hours"`
	MaxSessions   int    `json:"max_sessions"`
	OnLimit       string `json:"on_limit"`
	InactiveDays  int    `json:"inactive_days"`
}

func viewPolicy(p identity.Policy) policyView {
	return policyView{IdleMinutes: int(p.Idle / time.Minute), AbsoluteHours: int(p.Absolute / time.Hour),
		MaxSessions: p.MaxSessions, OnLimit: p.OnLimit, InactiveDays: p.InactiveDays}
}

func (s *Server) sessionPolicy(rq *request) error {
	p, err := s.in.Identity.Sessions.Policy(rq.r.Context(), s.in.DB.Read, rq.tenant.ID)
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, viewPolicy(p))
}

// setSessionPolicy changes the tenant's session policy; fields left out
// keep their values.
func (s *Server) setSessionPolicy(rq *request) error {
	var body struct {
		IdleMinutes   *int    `json:"idle_minutes"`
		AbsoluteHours *int    `json:"absolute_hours"`
		MaxSessions   *int    `json:"max_sessions"`
		OnLimit       *string `json:"on_limit"`
		InactiveDays  *int    `json:"inactive_days"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	rq.target = event.Target{Type: "tenant", ID: rq.tenant.Name, Name: rq.tenant.Name}
	var p identity.Policy
	err := s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if p, err = s.in.Identity.Sessions.Policy(ctx, tx, rq.tenant.ID); err != nil {
			return err
		}
		if body.IdleMinutes != nil {
			p.Idle = time.Duration(*body.IdleMinutes) * time.Minute
		}
		if body.AbsoluteHours != nil {
			p.Absolute = time.Duration(*body.AbsoluteHours) * time.Hour
		}
		if body.MaxSessions != nil {
			p.MaxSessions = *body.MaxSessions
		}
		if body.OnLimit != nil {
			p.OnLimit = *body.OnLimit
		}
		if body.InactiveDays != nil {
			p.InactiveDays = *body.InactiveDays
		}
		return s.in.Identity.Sessions.SetPolicy(ctx, tx, rq.tenant.ID, p)
	})
	var fe *identity.FieldError
	if errors.As(err, &fe) {
		return badRequest(fe.Field, fe.Error())
	}
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, viewPolicy(p))
}
