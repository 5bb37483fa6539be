package scim

import (
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// groupJSON is a Group as SCIM sends it.
type groupJSON struct {
	Schemas     []string  `json:"schemas"`
	ID          string    `json:"id"`
	ExternalID  string    `json:"externalId,omitempty"`
	DisplayName string    `json:"displayName"`
	Members     []refJSON `json:"members,omitempty"`
	Meta        metaJSON  `json:"meta"`
}

// memberSubs are the sub-attributes of a member, in lower case; only value
// is kept.
var memberSubs = []string{"value", "display", "$ref", "type"}

// groupJSON converts g for an answer; members are left out if the request
// excluded them.
func (rq *request) groupJSON(g *Group) groupJSON {
	out := groupJSON{
		Schemas:     []string{groupSchema},
		ID:          g.ID,
		ExternalID:  g.ExternalID,
		DisplayName: g.DisplayName,
		Meta:        rq.meta("Group", "Groups", g.ID, g.Created, g.LastModified),
	}
	if rq.excluded("members") {
		return out
	}
	for _, m := range g.Members {
		ref := refJSON{Value: m.Value, Ref: rq.location("Users", m.Value), Display: m.Display}
		out.Members = append(out.Members, ref)
	}
	return out
}

// excluded reports whether the excludedAttributes parameter names attr, as
// Entra ID does with members when it only needs to know a group exists.
// Only members can be left out; other names are ignored.
func (rq *request) excluded(attr string) bool {
	for _, a := range strings.Split(rq.r.URL.Query().Get("excludedAttributes"), ",") {
		if strings.EqualFold(strings.TrimSpace(a), attr) {
			return true
		}
	}
	return false
}

// decodeGroup reads the Group in the body of a POST or PUT.
func decodeGroup(body []byte) (*Group, error) {
	obj, err := decodeObject(body, "the request body")
	if err != nil {
		return nil, err
	}
	if err := checkSchemas(obj["schemas"], groupSchema); err != nil {
		return nil, err
	}
	g := &Group{}
	for _, n := range obj.names() {
		if n == "schemas" {
			continue
		}
		a, ok := groupAttrs[n]
		switch {
		case !ok:
			return nil, badRequest(typeInvalidSyntax, "a Group has no attribute %s", quote(n))
		case a.use == readOnly:
			continue
		}
		if err := applyGroup(g, "replace", target{attr: n}, obj[n]); err != nil {
			return nil, err
		}
	}
	return g, checkGroup(g)
}

// applyGroup applies one PATCH operation to g.
func applyGroup(g *Group, op string, t target, v jsontext.Value) error {
	a, ok := groupAttrs[t.attr]
	switch {
	case !ok:
		return badRequest(typeNoTarget, "a Group has no attribute %s", quote(t.attr))
	case a.use == readOnly:
		return checkReadOnly(a.name, g.ID, op, t, v)
	case t.attr == "members":
		return applyMembers(g, op, t, v)
	case t.filter != nil:
		return badRequest(typeInvalidPath, "%s is not multi-valued and takes no filter", a.name)
	case t.sub != "":
		return badRequest(typeNoTarget, "%s has no sub-attributes", a.name)
	case t.attr == "displayname":
		return setString(&g.DisplayName, op, v, a.name)
	}
	return setString(&g.ExternalID, op, v, a.name)
}

// applyMembers adds, replaces or removes members. Besides the forms of
// RFC 7644 it takes Entra ID's remove of path "members" with the members
// to remove in the value.
func applyMembers(g *Group, op string, t target, v jsontext.Value) error {
	if t.sub != "" {
		return badRequest(typeInvalidPath, "members are added, replaced and removed whole, not by sub-attribute")
	}
	if t.filter != nil {
		if op != "remove" {
			return badRequest(typeInvalidPath, "a filter on members is only for remove")
		}
		return removeFilteredMembers(g, t)
	}
	if op == "remove" && (v == nil || v.Kind() == 'n') {
		g.Members = nil
		return nil
	}
	list, err := decodeMembers(v)
	if err != nil {
		return err
	}
	if op == "remove" {
		gone := memberSet(list)
		g.Members = slices.DeleteFunc(g.Members, func(m Member) bool { return gone[m.Value] })
		return nil
	}
	if op == "replace" {
		g.Members = nil
	}
	have := memberSet(g.Members)
	for _, m := range list {
		if !have[m.Value] {
			have[m.Value] = true
			g.Members = append(g.Members, m)
		}
	}
	return nil
}

func memberSet(ms []Member) map[string]bool {
	set := make(map[string]bool, len(ms))
	for _, m := range ms {
		set[m.Value] = true
	}
	return set
}

func removeFilteredMembers(g *Group, t target) error {
	if _, err := matches(t.filter, memberGetter(Member{})); err != nil {
		return err
	}
	g.Members = slices.DeleteFunc(g.Members, func(m Member) bool {
		ok, _ := matches(t.filter, memberGetter(m))
		return ok
	})
	return nil
}

func memberGetter(m Member) getter {
	return func(sub string) (any, bool, bool) {
		switch sub {
		case "value":
			return m.Value, true, true
		case "display":
			return m.Display, false, true
		}
		return nil, false, false
	}
}

// decodeMembers reads a list of members, each of which needs a value.
func decodeMembers(v jsontext.Value) ([]Member, error) {
	list, err := decodeList(v, "members")
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, item := range list {
		obj, err := decodeSub(item, "members", memberSubs...)
		if err != nil {
			return nil, err
		}
		id, err := decodeString(obj["value"], "members.value")
		if err != nil {
			return nil, err
		}
		if id == "" {
			return nil, badRequest(typeInvalidValue, "every member needs a value")
		}
		out = append(out, Member{Value: id})
	}
	return out, nil
}

// checkGroup checks what every stored group must satisfy.
func checkGroup(g *Group) error {
	if strings.TrimSpace(g.DisplayName) == "" {
		return badRequest(typeInvalidValue, "displayName is required")
	}
	return nil
}

// cloneGroup returns a copy of g that shares no slices with it.
func cloneGroup(g *Group) *Group {
	c := *g
	c.Members = slices.Clone(g.Members)
	return &c
}
