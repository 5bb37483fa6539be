package scim_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/attest/attest/internal/scim"
)

// memory is a Backend that keeps one tenant's users and groups in maps. It
// enforces what attest's store must: unique userNames and group
// displayNames without regard to case, members that are users, and
// optimistic concurrency on LastModified. It records every user whose
// sessions a real backend would end.
type memory struct {
	mu sync.Mutex
	// Guarded by mu.
	users  map[string]*scim.User
	groups map[string]*scim.Group
	clock  int            // seconds after epoch of the last write, and the last id
	ended  map[string]int // user id -> times its sessions were ended
	counts []int          // the count of every list call
}

var epoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func newMemory() *memory {
	return &memory{users: map[string]*scim.User{}, groups: map[string]*scim.Group{}, ended: map[string]int{}}
}

func (m *memory) tickLocked() (int, time.Time) {
	m.clock++
	return m.clock, epoch.Add(time.Duration(m.clock) * time.Second)
}

func (m *memory) userNameTakenLocked(name, except string) bool {
	for id, u := range m.users {
		if id != except && strings.EqualFold(u.UserName, name) {
			return true
		}
	}
	return false
}

func (m *memory) CreateUser(_ context.Context, u *scim.User) (*scim.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.userNameTakenLocked(u.UserName, "") {
		return nil, fmt.Errorf("create user: %w", scim.ErrConflict)
	}
	n, now := m.tickLocked()
	c := *u
	c.ID, c.Groups, c.Created, c.LastModified = fmt.Sprintf("user-%d", n), nil, now, now
	c.Emails = slices.Clone(u.Emails)
	m.users[c.ID] = &c
	return m.userLocked(c.ID), nil
}

// userLocked returns a copy of a stored user with its groups filled in.
func (m *memory) userLocked(id string) *scim.User {
	c := *m.users[id]
	c.Emails = slices.Clone(c.Emails)
	c.Groups = nil
	for _, g := range m.groups {
		if slices.ContainsFunc(g.Members, func(mb scim.Member) bool { return mb.Value == id }) {
			c.Groups = append(c.Groups, scim.GroupRef{Value: g.ID, Display: g.DisplayName})
		}
	}
	slices.SortFunc(c.Groups, func(a, b scim.GroupRef) int { return cmp.Compare(a.Value, b.Value) })
	return &c
}

func (m *memory) GetUser(_ context.Context, id string) (*scim.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users[id] == nil {
		return nil, fmt.Errorf("get user %s: %w", id, scim.ErrNotFound)
	}
	return m.userLocked(id), nil
}

func (m *memory) ListUsers(_ context.Context, f scim.Filter, start, count int) ([]*scim.User, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts = append(m.counts, count)
	var all []*scim.User
	for id, u := range m.users {
		if userMatches(u, f) {
			all = append(all, m.userLocked(id))
		}
	}
	slices.SortFunc(all, func(a, b *scim.User) int { return a.Created.Compare(b.Created) })
	return page(all, start, count), len(all), nil
}

func userMatches(u *scim.User, f scim.Filter) bool {
	switch f.Attr {
	case "":
		return true
	case "username":
		return strings.EqualFold(u.UserName, f.Value)
	case "displayname":
		return strings.EqualFold(u.DisplayName, f.Value)
	case "externalid":
		return u.ExternalID == f.Value
	case "emails.value":
		return slices.ContainsFunc(u.Emails, func(e scim.Email) bool { return strings.EqualFold(e.Value, f.Value) })
	}
	panic("unexpected filter attribute " + f.Attr)
}

func page[T any](all []T, start, count int) []T {
	from := min(start-1, len(all))
	return all[from:min(from+count, len(all))]
}

func (m *memory) ReplaceUser(_ context.Context, u *scim.User) (*scim.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.users[u.ID]
	switch {
	case old == nil:
		return nil, fmt.Errorf("replace user %s: %w", u.ID, scim.ErrNotFound)
	case !old.LastModified.Equal(u.LastModified):
		return nil, fmt.Errorf("replace user %s: %w", u.ID, scim.ErrModified)
	case m.userNameTakenLocked(u.UserName, u.ID):
		return nil, fmt.Errorf("replace user %s: %w", u.ID, scim.ErrConflict)
	}
	if old.Active && !u.Active {
		m.ended[u.ID]++
	}
	_, now := m.tickLocked()
	c := *u
	c.Groups, c.Created, c.LastModified = nil, old.Created, now
	c.Emails = slices.Clone(u.Emails)
	m.users[u.ID] = &c
	return m.userLocked(u.ID), nil
}

func (m *memory) DeleteUser(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users[id] == nil {
		return fmt.Errorf("delete user %s: %w", id, scim.ErrNotFound)
	}
	delete(m.users, id)
	m.ended[id]++
	for _, g := range m.groups {
		g.Members = slices.DeleteFunc(g.Members, func(mb scim.Member) bool { return mb.Value == id })
	}
	return nil
}

// checkGroupLocked checks a group about to be stored, except g.ID, and
// fills in the members' Display.
func (m *memory) checkGroupLocked(g *scim.Group) error {
	for id, o := range m.groups {
		if id != g.ID && strings.EqualFold(o.DisplayName, g.DisplayName) {
			return scim.ErrConflict
		}
	}
	for i, mb := range g.Members {
		u := m.users[mb.Value]
		if u == nil {
			return &scim.BadValue{Attr: "members", Reason: "names a user that does not exist"}
		}
		g.Members[i].Display = u.UserName
	}
	return nil
}

func (m *memory) CreateGroup(_ context.Context, g *scim.Group) (*scim.Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *g
	c.Members = slices.Clone(g.Members)
	if err := m.checkGroupLocked(&c); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	n, now := m.tickLocked()
	c.ID, c.Created, c.LastModified = fmt.Sprintf("group-%d", n), now, now
	m.groups[c.ID] = &c
	return m.groupLocked(c.ID), nil
}

func (m *memory) groupLocked(id string) *scim.Group {
	c := *m.groups[id]
	c.Members = slices.Clone(c.Members)
	return &c
}

func (m *memory) GetGroup(_ context.Context, id string) (*scim.Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.groups[id] == nil {
		return nil, fmt.Errorf("get group %s: %w", id, scim.ErrNotFound)
	}
	return m.groupLocked(id), nil
}

func (m *memory) ListGroups(_ context.Context, f scim.Filter, start, count int) ([]*scim.Group, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts = append(m.counts, count)
	var all []*scim.Group
	for id, g := range m.groups {
		switch f.Attr {
		case "":
		case "displayname":
			if !strings.EqualFold(g.DisplayName, f.Value) {
				continue
			}
		case "externalid":
			if g.ExternalID != f.Value {
				continue
			}
		default:
			panic("unexpected filter attribute " + f.Attr)
		}
		all = append(all, m.groupLocked(id))
	}
	slices.SortFunc(all, func(a, b *scim.Group) int { return a.Created.Compare(b.Created) })
	return page(all, start, count), len(all), nil
}

func (m *memory) ReplaceGroup(_ context.Context, g *scim.Group) (*scim.Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.groups[g.ID]
	switch {
	case old == nil:
		return nil, fmt.Errorf("replace group %s: %w", g.ID, scim.ErrNotFound)
	case !old.LastModified.Equal(g.LastModified):
		return nil, fmt.Errorf("replace group %s: %w", g.ID, scim.ErrModified)
	}
	c := *g
	c.Members = slices.Clone(g.Members)
	if err := m.checkGroupLocked(&c); err != nil {
		return nil, fmt.Errorf("replace group %s: %w", g.ID, err)
	}
	_, now := m.tickLocked()
	c.Created, c.LastModified = old.Created, now
	m.groups[g.ID] = &c
	return m.groupLocked(g.ID), nil
}

func (m *memory) DeleteGroup(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.groups[id] == nil {
		return fmt.Errorf("delete group %s: %w", id, scim.ErrNotFound)
	}
	delete(m.groups, id)
	return nil
}

// endedSessions reports how many times the sessions of user id were ended.
func (m *memory) endedSessions(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ended[id]
}
