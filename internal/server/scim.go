package server

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/scim"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

// serveSCIM answers SCIM 2.0 for the tenant of the caller's SCIM token.
func (s *Server) serveSCIM(rq *request) error {
	b := &scimBackend{s: s, rq: rq, t: rq.tenant}
	if err := scim.Serve(rq.w, rq.r, b); err != nil {
		s.log.Error("scim request failed", "request_id", rq.id, "error", err)
		rq.reason = "internal error"
	}
	return nil
}

// scimBackend keeps a tenant's SCIM users and groups in attest's accounts.
// Every change commits with its audit event; a deactivation or deletion
// ends the account's sessions and API keys in the same transaction.
type scimBackend struct {
	s  *Server
	rq *request
	t  *tenant.Tenant
}

// record commits fn with an event of action on target.
func (b *scimBackend) record(ctx context.Context, action string, target event.Target, details map[string]any,
	fn func(ctx context.Context, tx *sql.Tx) error) error {
	in := b.s.in
	ev := in.ChangeEvent(action, "admin", b.rq.actor(), target)
	if len(details) > 0 {
		ev.Details = detailsValue(details)
	}
	b.rq.decorate(ev)
	ev.Clean()
	p, err := in.Log.Prepare(ctx, b.t, ev)
	if err != nil {
		return err
	}
	if _, err := in.Log.Do(ctx, b.t, fn, p); err != nil {
		return err
	}
	b.rq.audited = true
	return nil
}

func scimErr(err error) error {
	switch {
	case errors.Is(err, identity.ErrEmailTaken), errors.Is(err, identity.ErrGroupNameTaken):
		return scim.ErrConflict
	case errors.Is(err, store.ErrNotFound), errors.Is(err, identity.ErrNoGroup):
		return scim.ErrNotFound
	case errors.Is(err, identity.ErrNoMember):
		return &scim.BadValue{Attr: "members", Reason: "names a user who is not in this tenant"}
	}
	return err
}

func (b *scimBackend) toSCIM(ctx context.Context, u *identity.User) (*scim.User, error) {
	out := &scim.User{ID: u.ID, ExternalID: u.ExternalID, UserName: u.Display, DisplayName: u.Name,
		Emails: []scim.Email{{Value: u.Display, Type: "work", Primary: true}}, Active: u.Status == identity.StatusActive,
		Created: u.CreatedAt, LastModified: u.UpdatedAt}
	gs, err := b.s.in.Identity.Groups.OfUser(ctx, b.s.in.DB.Read, u.ID)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		out.Groups = append(out.Groups, scim.GroupRef{Value: g[0], Display: g[1]})
	}
	return out, nil
}

// fromSCIM checks and maps what an identity provider sent.
func fromSCIM(su *scim.User) (email, display, name string, err error) {
	display = strings.TrimSpace(su.UserName)
	if email, err = identity.CanonicalEmail(display); err != nil {
		return "", "", "", &scim.BadValue{Attr: "userName", Reason: "must be an email address"}
	}
	name = strings.TrimSpace(su.DisplayName)
	if name == "" {
		name = strings.TrimSpace(su.GivenName + " " + su.FamilyName)
	}
	if name == "" {
		name = display
	}
	if len(name) > identity.MaxNameLen || access.UnsafeText(name) || !store.StorableText(name) {
		return "", "", "", &scim.BadValue{Attr: "displayName", Reason: "must be at most 200 bytes of text"}
	}
	if len(su.ExternalID) > 256 || !store.StorableText(su.ExternalID) {
		return "", "", "", &scim.BadValue{Attr: "externalId", Reason: "must be at most 256 bytes of text"}
	}
	return email, display, name, nil
}

func (b *scimBackend) CreateUser(ctx context.Context, su *scim.User) (*scim.User, error) {
	email, display, name, err := fromSCIM(su)
	if err != nil {
		return nil, err
	}
	u := &identity.User{ID: identity.NewUserID(), TenantID: b.t.ID, Email: email, Display: display, Name: name,
		ExternalID: su.ExternalID}
	err = b.record(ctx, "scim.user.create", event.Target{Type: "user", ID: u.ID}, map[string]any{"active": su.Active},
		func(ctx context.Context, tx *sql.Tx) error {
			if err := b.s.in.Identity.Users.Create(ctx, tx, u); err != nil {
				return err
			}
			if err := b.s.in.Grants.Grant(ctx, tx, b.t.ID, u.ID, access.Grant{Role: access.RoleMember}, "scim"); err != nil {
				return err
			}
			if !su.Active {
				return b.s.in.Identity.Users.SetStatus(ctx, tx, u, identity.StatusDisabled, "provisioned inactive by SCIM")
			}
			return nil
		})
	if err != nil {
		return nil, scimErr(err)
	}
	return b.toSCIM(ctx, u)
}

func (b *scimBackend) user(ctx context.Context, q store.Querier, id string) (*identity.User, error) {
	u, err := b.s.in.Identity.Users.ByID(ctx, q, b.t.ID, id)
	if err != nil {
		return nil, scimErr(err)
	}
	if u.Status == identity.StatusDeleted {
		return nil, scim.ErrNotFound
	}
	return u, nil
}

func (b *scimBackend) GetUser(ctx context.Context, id string) (*scim.User, error) {
	u, err := b.user(ctx, b.s.in.DB.Read, id)
	if err != nil {
		return nil, err
	}
	return b.toSCIM(ctx, u)
}

func (b *scimBackend) ListUsers(ctx context.Context, f scim.Filter, start, count int) ([]*scim.User, int, error) {
	where, args := "", []any(nil)
	switch f.Attr {
	case "username", "emails.value":
		canon, err := identity.CanonicalEmail(f.Value)
		if err != nil {
			return nil, 0, nil
		}
		where, args = `email = ?`, []any{canon}
	case "externalid":
		where, args = `external_id = ?`, []any{f.Value}
	case "displayname":
		where, args = `LOWER(name) = LOWER(?)`, []any{f.Value}
	}
	us, total, err := b.s.in.Identity.Users.Page(ctx, b.s.in.DB.Read, b.t.ID, where, args, start, count)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*scim.User, 0, len(us))
	for _, u := range us {
		su, err := b.toSCIM(ctx, u)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, su)
	}
	return out, total, nil
}

// ReplaceUser stores an identity provider's full view of a user. Active
// going false is a deprovisioning: the account is disabled and every
// session and API key of it ends in the same transaction.
func (b *scimBackend) ReplaceUser(ctx context.Context, su *scim.User) (*scim.User, error) {
	email, display, name, err := fromSCIM(su)
	if err != nil {
		return nil, err
	}
	var u *identity.User
	action := "scim.user.update"
	cur, err := b.user(ctx, b.s.in.DB.Read, su.ID)
	if err != nil {
		return nil, err
	}
	wasActive := cur.Status == identity.StatusActive
	switch {
	case wasActive && !su.Active:
		action = "user.deprovision"
	case !wasActive && su.Active:
		action = "user.enable"
	}
	err = b.record(ctx, action, event.Target{Type: "user", ID: su.ID}, map[string]any{"active": su.Active, "via": "scim"},
		func(ctx context.Context, tx *sql.Tx) error {
			var err error
			if u, err = b.user(ctx, tx, su.ID); err != nil {
				return err
			}
			if !su.LastModified.IsZero() && !u.UpdatedAt.Equal(su.LastModified.UTC().Truncate(time.Microsecond)) {
				return scim.ErrModified
			}
			u.Email, u.Display, u.Name, u.ExternalID = email, display, name, su.ExternalID
			if err := b.s.in.Identity.Users.Update(ctx, tx, u); err != nil {
				return err
			}
			switch {
			case u.Status == identity.StatusActive && !su.Active:
				if err := b.keepLastOwner(ctx, tx, u.ID); err != nil {
					return err
				}
				return b.s.in.Identity.Users.SetStatus(ctx, tx, u, identity.StatusDisabled, "deprovisioned by SCIM")
			case u.Status != identity.StatusActive && su.Active:
				return b.s.in.Identity.Users.SetStatus(ctx, tx, u, identity.StatusActive, "")
			}
			return nil
		})
	if err != nil {
		return nil, scimErr(err)
	}
	return b.toSCIM(ctx, u)
}

// DeleteUser deletes the account: sessions and API keys end, group
// memberships go, and the row stays for the audit trail.
func (b *scimBackend) DeleteUser(ctx context.Context, id string) error {
	err := b.record(ctx, "user.delete", event.Target{Type: "user", ID: id}, map[string]any{"via": "scim"},
		func(ctx context.Context, tx *sql.Tx) error {
			u, err := b.user(ctx, tx, id)
			if err != nil {
				return err
			}
			if err := b.keepLastOwner(ctx, tx, u.ID); err != nil {
				return err
			}
			return b.s.in.Identity.Users.SetStatus(ctx, tx, u, identity.StatusDeleted, "deleted by SCIM")
		})
	return scimErr(err)
}

// keepLastOwner refuses to deprovision the tenant's last active owner: an
// identity provider's mistake must not leave the tenant without one.
func (b *scimBackend) keepLastOwner(ctx context.Context, tx *sql.Tx, userID string) error {
	last, err := b.s.in.Grants.LastOwner(ctx, tx, b.t.ID, userID)
	if err != nil {
		return err
	}
	if last {
		return &scim.BadValue{Attr: "active", Reason: "cannot be false for the tenant's last owner: make another owner first"}
	}
	return nil
}

func (b *scimBackend) toGroup(ctx context.Context, g *identity.Group) (*scim.Group, error) {
	out := &scim.Group{ID: g.ID, ExternalID: g.ExternalID, DisplayName: g.DisplayName, Created: g.CreatedAt,
		LastModified: g.UpdatedAt}
	for _, m := range g.Members {
		u, err := b.s.in.Identity.Users.ByID(ctx, b.s.in.DB.Read, b.t.ID, m)
		if err != nil {
			continue
		}
		out.Members = append(out.Members, scim.Member{Value: m, Display: u.Display})
	}
	return out, nil
}

func groupOf(t *tenant.Tenant, sg *scim.Group) (*identity.Group, error) {
	name := strings.TrimSpace(sg.DisplayName)
	if name == "" || len(name) > 256 || access.UnsafeText(name) || !store.StorableText(name) {
		return nil, &scim.BadValue{Attr: "displayName", Reason: "must be 1 to 256 bytes of text"}
	}
	if len(sg.ExternalID) > 256 || !store.StorableText(sg.ExternalID) {
		return nil, &scim.BadValue{Attr: "externalId", Reason: "must be at most 256 bytes of text"}
	}
	g := &identity.Group{ID: sg.ID, TenantID: t.ID, DisplayName: name, ExternalID: sg.ExternalID}
	for _, m := range sg.Members {
		if !store.StorableText(m.Value) {
			return nil, &scim.BadValue{Attr: "members", Reason: "names a user who is not in this tenant"}
		}
		g.Members = append(g.Members, m.Value)
	}
	return g, nil
}

func (b *scimBackend) CreateGroup(ctx context.Context, sg *scim.Group) (*scim.Group, error) {
	g, err := groupOf(b.t, sg)
	if err != nil {
		return nil, err
	}
	g.ID = identity.NewGroupID()
	err = b.record(ctx, "scim.group.create", event.Target{Type: "group", ID: g.ID}, map[string]any{"members": len(g.Members)},
		func(ctx context.Context, tx *sql.Tx) error { return b.s.in.Identity.Groups.Put(ctx, tx, g, true) })
	if err != nil {
		return nil, scimErr(err)
	}
	return b.toGroup(ctx, g)
}

func (b *scimBackend) GetGroup(ctx context.Context, id string) (*scim.Group, error) {
	g, err := b.s.in.Identity.Groups.Get(ctx, b.s.in.DB.Read, b.t.ID, id)
	if err != nil {
		return nil, scimErr(err)
	}
	return b.toGroup(ctx, g)
}

func (b *scimBackend) ListGroups(ctx context.Context, f scim.Filter, start, count int) ([]*scim.Group, int, error) {
	where, args := "", []any(nil)
	switch f.Attr {
	case "displayname":
		where, args = `display_key = ?`, []any{strings.ToLower(f.Value)}
	case "externalid":
		where, args = `external_id = ?`, []any{f.Value}
	}
	gs, total, err := b.s.in.Identity.Groups.List(ctx, b.s.in.DB.Read, b.t.ID, where, args, start, count)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*scim.Group, 0, len(gs))
	for _, g := range gs {
		sg, err := b.toGroup(ctx, g)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, sg)
	}
	return out, total, nil
}

func (b *scimBackend) ReplaceGroup(ctx context.Context, sg *scim.Group) (*scim.Group, error) {
	g, err := groupOf(b.t, sg)
	if err != nil {
		return nil, err
	}
	err = b.record(ctx, "scim.group.update", event.Target{Type: "group", ID: g.ID}, map[string]any{"members": len(g.Members)},
		func(ctx context.Context, tx *sql.Tx) error {
			cur, err := b.s.in.Identity.Groups.Get(ctx, tx, b.t.ID, g.ID)
			if err != nil {
				return err
			}
			if !sg.LastModified.IsZero() && !cur.UpdatedAt.Equal(sg.LastModified.UTC().Truncate(time.Microsecond)) {
				return scim.ErrModified
			}
			g.CreatedAt = cur.CreatedAt
			return b.s.in.Identity.Groups.Put(ctx, tx, g, false)
		})
	if err != nil {
		return nil, scimErr(err)
	}
	return b.toGroup(ctx, g)
}

func (b *scimBackend) DeleteGroup(ctx context.Context, id string) error {
	err := b.record(ctx, "scim.group.delete", event.Target{Type: "group", ID: id}, nil,
		func(ctx context.Context, tx *sql.Tx) error { return b.s.in.Identity.Groups.Delete(ctx, tx, b.t.ID, id) })
	return scimErr(err)
}
