package scim

import (
	"slices"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// userJSON is a User as SCIM sends it.
type userJSON struct {
	Schemas     []string    `json:"schemas"`
	ID          string      `json:"id"`
	ExternalID  string      `json:"externalId,omitempty"`
	UserName    string      `json:"userName"`
	Name        *nameJSON   `json:"name,omitempty"`
	DisplayName string      `json:"displayName,omitempty"`
	Emails      []emailJSON `json:"emails,omitempty"`
	Active      bool        `json:"active"`
	Groups      []refJSON   `json:"groups,omitempty"`
	Meta        metaJSON    `json:"meta"`
}

type nameJSON struct {
	GivenName  string `json:"givenName,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
}

type emailJSON struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitzero"`
}

// refJSON is a reference to another resource: a user's group or a
// group's member.
type refJSON struct {
	Value   string `json:"value"`
	Ref     string `json:"$ref,omitempty"`
	Display string `json:"display,omitempty"`
}

type metaJSON struct {
	ResourceType string `json:"resourceType"`
	Created      string `json:"created,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
	Location     string `json:"location"`
}

func (rq *request) meta(kind, endpoint, id string, created, modified time.Time) metaJSON {
	return metaJSON{ResourceType: kind, Created: timestamp(created), LastModified: timestamp(modified),
		Location: rq.location(endpoint, id)}
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// userJSON converts u for an answer.
func (rq *request) userJSON(u *User) userJSON {
	out := userJSON{
		Schemas:     []string{userSchema},
		ID:          u.ID,
		ExternalID:  u.ExternalID,
		UserName:    u.UserName,
		DisplayName: u.DisplayName,
		Active:      u.Active,
		Meta:        rq.meta("User", "Users", u.ID, u.Created, u.LastModified),
	}
	if u.GivenName != "" || u.FamilyName != "" {
		out.Name = &nameJSON{GivenName: u.GivenName, FamilyName: u.FamilyName}
	}
	for _, e := range u.Emails {
		out.Emails = append(out.Emails, emailJSON(e))
	}
	for _, g := range u.Groups {
		ref := refJSON{Value: g.Value, Ref: rq.location("Groups", g.Value), Display: g.Display}
		out.Groups = append(out.Groups, ref)
	}
	return out
}

// decodeUser reads the User in the body of a POST or PUT. active reports
// whether the body set the active attribute.
func decodeUser(body []byte) (u *User, active bool, err error) {
	obj, err := decodeObject(body, "the request body")
	if err != nil {
		return nil, false, err
	}
	if err := checkSchemas(obj["schemas"], userSchema); err != nil {
		return nil, false, err
	}
	u = &User{}
	for _, n := range obj.names() {
		if n == "schemas" {
			continue
		}
		a, ok := userAttrs[n]
		switch {
		case !ok:
			return nil, false, badRequest(typeInvalidSyntax, "a User has no attribute %s", quote(n))
		case a.use == readOnly || a.use == drop:
			continue
		}
		if err := applyUser(u, "replace", target{attr: n}, obj[n]); err != nil {
			return nil, false, err
		}
	}
	active = obj["active"] != nil && obj["active"].Kind() != 'n'
	return u, active, checkUser(u)
}

// applyUser applies one PATCH operation to u. op is "add", "replace" or
// "remove"; v is nil for a remove without a value.
func applyUser(u *User, op string, t target, v jsontext.Value) error {
	a, ok := userAttrs[t.attr]
	switch {
	case !ok:
		return badRequest(typeNoTarget, "a User has no attribute %s", quote(t.attr))
	case a.use == drop:
		return nil
	case a.use == refuse:
		return errPassword
	case a.use == readOnly:
		return checkReadOnly(a.name, u.ID, op, t, v)
	case t.filter != nil && t.attr != "emails":
		return badRequest(typeInvalidPath, "%s is not multi-valued and takes no filter", a.name)
	case t.sub != "" && t.attr != "name" && t.attr != "emails":
		return badRequest(typeNoTarget, "%s has no sub-attributes", a.name)
	}
	switch t.attr {
	case "username":
		return setString(&u.UserName, op, v, a.name)
	case "displayname":
		return setString(&u.DisplayName, op, v, a.name)
	case "externalid":
		return setString(&u.ExternalID, op, v, a.name)
	case "active":
		return setActive(u, op, v)
	case "name":
		return applyName(u, op, t.sub, v)
	}
	return applyEmails(u, op, t, v)
}

// checkReadOnly refuses a change to a read-only attribute. Okta repeats
// the id in the value of a PATCH without a path, so an unchanged id passes.
func checkReadOnly(name, id, op string, t target, v jsontext.Value) error {
	if t.attr == "id" && t.sub == "" && op != "remove" {
		if s, err := decodeString(v, name); err == nil && s == id {
			return nil
		}
	}
	return badRequest(typeMutability, "%s is read-only", name)
}

// setString sets or, for remove, clears a string attribute.
func setString(dst *string, op string, v jsontext.Value, name string) error {
	if op == "remove" {
		*dst = ""
		return nil
	}
	s, err := decodeString(v, name)
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

// setActive sets active. Removing it, or setting it to null, deactivates
// the user: the absence of a value must never grant access.
func setActive(u *User, op string, v jsontext.Value) error {
	if op == "remove" || v.Kind() == 'n' {
		u.Active = false
		return nil
	}
	b, err := decodeBool(v, "active")
	if err != nil {
		return err
	}
	u.Active = b
	return nil
}

// applyName applies an operation to name or one of its sub-attributes.
// With no sub-attribute, the given sub-attributes are set and the others
// left alone, as RFC 7644 section 3.5.2.3 asks of complex attributes.
func applyName(u *User, op, sub string, v jsontext.Value) error {
	if sub == "" && op == "remove" {
		u.GivenName, u.FamilyName = "", ""
		return nil
	}
	if sub != "" {
		return applyNameSub(u, op, sub, v)
	}
	if v.Kind() == 'n' {
		u.GivenName, u.FamilyName = "", ""
		return nil
	}
	obj, err := decodeSub(v, "name", nameSubs...)
	if err != nil {
		return err
	}
	for _, n := range obj.names() {
		if err := applyNameSub(u, op, n, obj[n]); err != nil {
			return err
		}
	}
	return nil
}

func applyNameSub(u *User, op, sub string, v jsontext.Value) error {
	switch {
	case sub == "givenname":
		return setString(&u.GivenName, op, v, "name.givenName")
	case sub == "familyname":
		return setString(&u.FamilyName, op, v, "name.familyName")
	case slices.Contains(nameSubs, sub):
		return nil
	}
	return badRequest(typeNoTarget, "name has no sub-attribute %s", quote(sub))
}

// checkUser checks what every stored user must satisfy.
func checkUser(u *User) error {
	if strings.TrimSpace(u.UserName) == "" {
		return badRequest(typeInvalidValue, "userName is required")
	}
	primaries := 0
	for _, e := range u.Emails {
		if e.Value == "" {
			return badRequest(typeInvalidValue, "every email needs a value")
		}
		if e.Primary {
			primaries++
		}
	}
	if primaries > 1 {
		return badRequest(typeInvalidValue, "only one email may be primary")
	}
	return nil
}

// cloneUser returns a copy of u that shares no slices with it.
func cloneUser(u *User) *User {
	c := *u
	c.Emails = slices.Clone(u.Emails)
	c.Groups = slices.Clone(u.Groups)
	return &c
}
