package scim

import (
	"context"
	"errors"
	"time"
)

// User is a SCIM User as attest keeps it.
type User struct {
	// ID is assigned by the Backend when the user is created and never
	// changes.
	ID string
	// ExternalID is the identity provider's own identifier for the user.
	ExternalID string
	// UserName is the unique login name, usually an email address. It is
	// never empty.
	UserName    string
	DisplayName string
	GivenName   string
	FamilyName  string
	// Emails holds at most one address with Primary set.
	Emails []Email
	// Active is false for a deprovisioned user, who must not be able to
	// sign in.
	Active bool
	// Groups lists the groups the user belongs to. It is read-only here:
	// the Backend fills it in and ignores it on writes.
	Groups []GroupRef
	// Created and LastModified are set by the Backend.
	Created, LastModified time.Time
}

// Email is one email address of a User.
type Email struct {
	Value   string
	Type    string // "work", "home", "other" or empty
	Primary bool
}

// GroupRef names a group a User belongs to.
type GroupRef struct {
	Value   string // the group's ID
	Display string // the group's DisplayName
}

// Group is a SCIM Group as attest keeps it.
type Group struct {
	// ID is assigned by the Backend when the group is created.
	ID         string
	ExternalID string
	// DisplayName is never empty.
	DisplayName string
	Members     []Member
	// Created and LastModified are set by the Backend.
	Created, LastModified time.Time
}

// Member is one member of a Group.
type Member struct {
	Value   string // the member user's ID
	Display string // filled in by the Backend on reads; ignored on writes
}

// Filter restricts a list to the resources whose attribute Attr equals
// Value. The zero Filter matches every resource.
type Filter struct {
	// Attr is one of "username", "externalid", "displayname" and
	// "emails.value" for users, and "displayname" and "externalid" for
	// groups.
	Attr  string
	Value string
}

// Backend stores the users and groups of one tenant. Its methods return
// ErrNotFound for an ID that does not exist, ErrConflict when a write would
// duplicate a unique attribute, a *BadValue for a value the Backend refuses,
// and ErrModified when a replacement lost a race with another write. Any
// other error is answered with a generic 500 and handed back by [Serve].
type Backend interface {
	// CreateUser stores a new user and returns it with ID, Groups, Created
	// and LastModified set. u.ID, u.Groups and the times are zero. It
	// returns ErrConflict if another user of the tenant has the same
	// UserName, compared without regard to case.
	CreateUser(ctx context.Context, u *User) (*User, error)
	// GetUser returns the user with the given ID.
	GetUser(ctx context.Context, id string) (*User, error)
	// ListUsers returns at most count users matching f, starting at the
	// 1-based position startIndex of a stable order, and the number of
	// users matching f in all. startIndex is at least 1 and count is
	// between 0 and MaxCount. userName, displayName and emails.value
	// compare without regard to case, externalId exactly.
	ListUsers(ctx context.Context, f Filter, startIndex, count int) (users []*User, total int, err error)
	// ReplaceUser overwrites every field of the user u.ID except Groups and
	// Created, sets LastModified and returns the stored user. u carries the
	// LastModified it was read with, for a Backend that checks for
	// concurrent writes. When Active goes from true to false the Backend
	// must disable the account and end its sessions. It returns
	// ErrConflict as CreateUser does.
	ReplaceUser(ctx context.Context, u *User) (*User, error)
	// DeleteUser removes the user, ends its sessions and drops it from
	// every group; GetUser then returns ErrNotFound.
	DeleteUser(ctx context.Context, id string) error

	// CreateGroup stores a new group and returns it with ID, Created and
	// LastModified set and the members' Display filled in. It returns a
	// *BadValue with Attr "members" if a member is not a user of the
	// tenant, and ErrConflict if another group has the same DisplayName.
	CreateGroup(ctx context.Context, g *Group) (*Group, error)
	// GetGroup returns the group with the given ID.
	GetGroup(ctx context.Context, id string) (*Group, error)
	// ListGroups is ListUsers for groups; displayName compares without
	// regard to case, externalId exactly.
	ListGroups(ctx context.Context, f Filter, startIndex, count int) (groups []*Group, total int, err error)
	// ReplaceGroup overwrites every field of the group g.ID except
	// Created, sets LastModified and returns the stored group. Members
	// arrive without duplicates. It fails as CreateGroup does.
	ReplaceGroup(ctx context.Context, g *Group) (*Group, error)
	// DeleteGroup removes the group; its members stay.
	DeleteGroup(ctx context.Context, id string) error
}

// Errors a Backend returns, possibly wrapped.
var (
	// ErrNotFound reports that no resource has the given ID.
	ErrNotFound = errors.New("scim: resource not found")
	// ErrConflict reports that a unique attribute's value is taken: the
	// UserName of a user, the DisplayName of a group.
	ErrConflict = errors.New("scim: unique attribute taken")
	// ErrModified reports that the resource changed between the read and
	// the replacement. A PUT or PATCH that meets it is retried a few times
	// before the client is told to try again. A Backend that does not
	// detect concurrent writes never returns it.
	ErrModified = errors.New("scim: resource changed during the update")
)

// BadValue is an error a Backend returns for a value it will not store.
// Attr and Reason are shown to the client, so they must not carry the
// value itself or anything secret.
type BadValue struct {
	Attr   string // the SCIM attribute, such as "userName" or "members"
	Reason string // why, such as "is longer than 256 characters"
}

// Error reports the attribute and the reason.
func (e *BadValue) Error() string { return "scim: " + e.Attr + " " + e.Reason }
