package scim_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/attest/attest/internal/scim"
)

// patchOp wraps operations in a PatchOp request.
func patchOp(ops ...string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + strings.Join(ops, ",") + `]}`
}

// ada is the user the PATCH tests start from.
func ada() *scim.User {
	return &scim.User{ExternalID: "ext-1", UserName: "ada@example.com", DisplayName: "Ada Lovelace",
		GivenName: "Ada", FamilyName: "Lovelace", Active: true,
		Emails: []scim.Email{{Value: "ada@example.com", Type: "work", Primary: true}}}
}

// with returns ada changed by f.
func with(f func(u *scim.User)) *scim.User {
	u := ada()
	f(u)
	return u
}

func TestPatchUser(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want *scim.User // nil: ada unchanged
	}{
		// Deactivation as Okta and Entra ID send it.
		{"okta deactivate", patchOp(`{"op":"replace","value":{"active":false}}`),
			with(func(u *scim.User) { u.Active = false })},
		{"entra deactivate", patchOp(`{"op":"Replace","path":"active","value":"False"}`),
			with(func(u *scim.User) { u.Active = false })},
		{"op in upper case", patchOp(`{"op":"REPLACE","path":"active","value":false}`),
			with(func(u *scim.User) { u.Active = false })},
		{"string true", patchOp(`{"op":"replace","path":"active","value":"true"}`), nil},
		{"remove active", patchOp(`{"op":"remove","path":"active"}`),
			with(func(u *scim.User) { u.Active = false })},
		{"add active", patchOp(`{"op":"Add","path":"active","value":"FALSE"}`),
			with(func(u *scim.User) { u.Active = false })},

		// Entra ID's attribute updates, one operation each or several
		// attributes, dotted, in one value.
		{"entra several attributes", patchOp(`{"op":"Replace","value":{"displayName":"Countess of Lovelace",
			"name.givenName":"Augusta","name.familyName":"King","active":"True"}}`),
			with(func(u *scim.User) {
				u.DisplayName, u.GivenName, u.FamilyName = "Countess of Lovelace", "Augusta", "King"
			})},
		{"name.givenName", patchOp(`{"op":"Replace","path":"name.givenName","value":"Augusta"}`),
			with(func(u *scim.User) { u.GivenName = "Augusta" })},
		{"name.familyName", patchOp(`{"op":"Add","path":"name.familyName","value":"King"}`),
			with(func(u *scim.User) { u.FamilyName = "King" })},
		{"name object keeps what it omits", patchOp(`{"op":"replace","path":"name","value":{"givenName":"Augusta","formatted":"x"}}`),
			with(func(u *scim.User) { u.GivenName = "Augusta" })},
		{"displayName", patchOp(`{"op":"Replace","path":"displayName","value":"A. L."}`),
			with(func(u *scim.User) { u.DisplayName = "A. L." })},
		{"externalId", patchOp(`{"op":"Replace","path":"externalId","value":"ext-2"}`),
			with(func(u *scim.User) { u.ExternalID = "ext-2" })},
		{"userName", patchOp(`{"op":"Replace","path":"userName","value":"ada@example.org"}`),
			with(func(u *scim.User) { u.UserName = "ada@example.org" })},
		{"path in other case", patchOp(`{"op":"replace","path":"DISPLAYNAME","value":"A"}`),
			with(func(u *scim.User) { u.DisplayName = "A" })},
		{"core schema path", patchOp(`{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName","value":"A"}`),
			with(func(u *scim.User) { u.GivenName = "A" })},
		{"remove externalId", patchOp(`{"op":"Remove","path":"externalId"}`),
			with(func(u *scim.User) { u.ExternalID = "" })},
		{"remove name", patchOp(`{"op":"remove","path":"name"}`),
			with(func(u *scim.User) { u.GivenName, u.FamilyName = "", "" })},
		{"okta id repeated in value", patchOp(`{"op":"replace","value":{"id":"user-1","displayName":"A"}}`),
			with(func(u *scim.User) { u.DisplayName = "A" })},

		// Emails.
		{"entra work email", patchOp(`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"ada@example.org"}`),
			with(func(u *scim.User) { u.Emails[0].Value = "ada@example.org" })},
		{"entra adds a home email", patchOp(`{"op":"Add","path":"emails[type eq \"home\"].value","value":"ada@home.example"}`),
			with(func(u *scim.User) { u.Emails = append(u.Emails, scim.Email{Value: "ada@home.example", Type: "home"}) })},
		{"filter type in other case", patchOp(`{"op":"replace","path":"emails[type eq \"Work\"].value","value":"a@b"}`),
			with(func(u *scim.User) { u.Emails[0].Value = "a@b" })},
		{"primary moves", patchOp(
			`{"op":"add","path":"emails","value":[{"value":"ada@home.example","type":"home","primary":true}]}`),
			with(func(u *scim.User) {
				u.Emails = []scim.Email{{Value: "ada@example.com", Type: "work"}, {Value: "ada@home.example", Type: "home", Primary: true}}
			})},
		{"primary by filter", patchOp(
			`{"op":"add","path":"emails","value":{"value":"ada@home.example","type":"home"}}`,
			`{"op":"replace","path":"emails[value eq \"ada@home.example\"].primary","value":"True"}`),
			with(func(u *scim.User) {
				u.Emails = []scim.Email{{Value: "ada@example.com", Type: "work"}, {Value: "ada@home.example", Type: "home", Primary: true}}
			})},
		{"replace emails", patchOp(`{"op":"replace","path":"emails","value":[{"value":"a@b","type":"other"}]}`),
			with(func(u *scim.User) { u.Emails = []scim.Email{{Value: "a@b", Type: "other"}} })},
		{"replace emails in value", patchOp(`{"op":"replace","value":{"emails":[{"value":"a@b","primary":true}]}}`),
			with(func(u *scim.User) { u.Emails = []scim.Email{{Value: "a@b", Primary: true}} })},
		{"remove work email", patchOp(`{"op":"remove","path":"emails[type eq \"work\"]"}`),
			with(func(u *scim.User) { u.Emails = nil })},
		{"remove missing email", patchOp(`{"op":"remove","path":"emails[type eq \"home\"]"}`), nil},
		{"remove emails", patchOp(`{"op":"remove","path":"emails"}`),
			with(func(u *scim.User) { u.Emails = nil })},
		{"remove emails by value", patchOp(`{"op":"Remove","path":"emails","value":[{"value":"ADA@example.com"}]}`),
			with(func(u *scim.User) { u.Emails = nil })},
		{"filter with and", patchOp(
			`{"op":"replace","path":"emails[type eq \"work\" and primary eq true]","value":{"value":"a@b","display":"A"}}`),
			with(func(u *scim.User) { u.Emails[0].Value = "a@b" })},
		{"filter with or", patchOp(`{"op":"remove","path":"emails[type eq \"home\" or value eq \"ada@example.com\"]"}`),
			with(func(u *scim.User) { u.Emails = nil })},
		{"filter with not", patchOp(`{"op":"remove","path":"emails[not (type eq \"home\")]"}`),
			with(func(u *scim.User) { u.Emails = nil })},
		{"remove an email's type", patchOp(`{"op":"remove","path":"emails[type eq \"work\"].type"}`),
			with(func(u *scim.User) { u.Emails[0].Type = "" })},
		{"primary as a string in a filter", patchOp(`{"op":"remove","path":"emails[primary eq \"True\"].primary"}`),
			with(func(u *scim.User) { u.Emails[0].Primary = false })},

		// Attributes accepted and not kept.
		{"enterprise attribute", patchOp(
			`{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"1815"}`,
			`{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"user-0"}`,
			`{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}`), nil},
		{"enterprise attribute in value", patchOp(`{"op":"Replace","value":{
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter":"R&D","displayName":"A"}}`),
			with(func(u *scim.User) { u.DisplayName = "A" })},
		{"enterprise extension object", patchOp(`{"op":"add","value":{
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Analytics"}}}`), nil},
		{"core attributes not kept", patchOp(
			`{"op":"Replace","path":"title","value":"Analyst"}`,
			`{"op":"Add","path":"phoneNumbers[type eq \"work\"].value","value":"+44 20 0000 0000"}`,
			`{"op":"Replace","path":"addresses[type eq \"work\"].formatted","value":"London"}`,
			`{"op":"Add","path":"roles","value":[{"value":"admin"}]}`,
			`{"op":"Replace","value":{"preferredLanguage":"en-GB","name.formatted":"Ada"}}`), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemory()
			if _, err := m.CreateUser(t.Context(), ada()); err != nil {
				t.Fatal(err)
			}
			res := send(t, m, "PATCH", "/Users/user-1", tc.body)
			wantStatus(t, res, http.StatusOK)
			want := tc.want
			if want == nil {
				want = ada()
			}
			want.ID = "user-1"
			if diff := cmp.Diff(want, m.users["user-1"], ignoreTimes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("stored user (-want +got):\n%s", diff)
			}
			if got := str(res.body, "userName"); got != want.UserName {
				t.Errorf("answered userName %q, want %q", got, want.UserName)
			}
		})
	}
}

func TestPatchUserRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		code     int
		scimType string
	}{
		{"unknown attribute", patchOp(`{"op":"replace","path":"favouriteColour","value":"blue"}`), 400, "noTarget"},
		{"unknown attribute in value", patchOp(`{"op":"replace","value":{"active":false,"favouriteColour":"blue"}}`), 400, "noTarget"},
		{"unknown name part", patchOp(`{"op":"replace","path":"name.nickname","value":"blue"}`), 400, "noTarget"},
		{"sub-attribute of a string", patchOp(`{"op":"replace","path":"userName.first","value":"blue"}`), 400, "noTarget"},
		{"unknown schema", patchOp(`{"op":"replace","path":"urn:example:ext:1.0:User:colour","value":"blue"}`), 400, "noTarget"},
		{"malformed path", patchOp(`{"op":"replace","path":"emails[type eq","value":"blue"}`), 400, "invalidPath"},
		{"filter on a string", patchOp(`{"op":"replace","path":"userName[value eq \"x\"]","value":"blue"}`), 400, "invalidPath"},
		{"emails.value without filter", patchOp(`{"op":"replace","path":"emails.value","value":"blue"}`), 400, "invalidPath"},
		{"unsupported filter", patchOp(`{"op":"replace","path":"emails[value co \"x\"].type","value":"blue"}`), 400, "invalidFilter"},
		{"filter matching nothing", patchOp(`{"op":"replace","path":"emails[value eq \"x\"].type","value":"blue"}`), 400, "noTarget"},
		{"password", patchOp(`{"op":"replace","path":"password","value":"blue"}`), 400, "invalidValue"},
		{"password in value", patchOp(`{"op":"replace","value":{"password":"blue"}}`), 400, "invalidValue"},
		{"groups", patchOp(`{"op":"add","path":"groups","value":[{"value":"group-1"}]}`), 400, "mutability"},
		{"another id", patchOp(`{"op":"replace","value":{"id":"user-2"}}`), 400, "mutability"},
		{"meta", patchOp(`{"op":"replace","path":"meta.created","value":"2001-01-01T00:00:00Z"}`), 400, "mutability"},
		{"active not a boolean", patchOp(`{"op":"replace","path":"active","value":"blue"}`), 400, "invalidValue"},
		{"displayName not a string", patchOp(`{"op":"replace","path":"displayName","value":["blue"]}`), 400, "invalidValue"},
		{"remove userName", patchOp(`{"op":"remove","path":"userName"}`), 400, "invalidValue"},
		{"remove without path", patchOp(`{"op":"remove","value":{"active":false}}`), 400, "noTarget"},
		{"replace without value", patchOp(`{"op":"replace","path":"active"}`), 400, "invalidValue"},
		{"value not an object", patchOp(`{"op":"replace","value":"blue"}`), 400, "invalidValue"},
		{"unknown op", patchOp(`{"op":"move","path":"active","value":false}`), 400, "invalidSyntax"},
		{"no op", patchOp(`{"path":"active","value":false}`), 400, "invalidSyntax"},
		{"unknown member of an operation", patchOp(`{"op":"replace","path":"active","value":false,"from":"x"}`), 400, "invalidSyntax"},
		{"no operations", patchOp(), 400, "invalidSyntax"},
		{"operations not a list", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":{}}`, 400, "invalidSyntax"},
		{"no schemas", `{"Operations":[{"op":"replace","path":"active","value":false}]}`, 400, "invalidSyntax"},
		{"user schema", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"Operations":[{"op":"replace","path":"active","value":false}]}`, 400, "invalidSyntax"},
		{"unknown top-level member", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"replace","path":"active","value":false}],"extra":true}`, 400, "invalidSyntax"},
		{"malformed", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`, 400, "invalidSyntax"},
		{"two primaries", patchOp(`{"op":"replace","path":"emails","value":[{"value":"a@b","primary":true},
			{"value":"c@d","primary":"true"}]}`), 400, "invalidValue"},
		{"too many emails", patchOp(`{"op":"replace","path":"emails","value":[` +
			strings.Repeat(`{"value":"a@b"},`, 50) + `{"value":"c@d"}]}`), 400, "invalidValue"},
		{"too many operations", patchOp(strings.Repeat(`{"op":"add","path":"title","value":"x"},`, 1000) +
			`{"op":"add","path":"title","value":"x"}`), 400, "invalidSyntax"},
		{"long path", patchOp(`{"op":"add","path":"` + strings.Repeat("a", 600) + `","value":"x"}`), 400, "invalidPath"},
		// The first operation is valid; the second fails, and neither
		// may be stored.
		{"all or nothing", patchOp(`{"op":"replace","path":"active","value":false}`,
			`{"op":"replace","path":"favouriteColour","value":"blue"}`), 400, "noTarget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemory()
			if _, err := m.CreateUser(t.Context(), ada()); err != nil {
				t.Fatal(err)
			}
			res := send(t, m, "PATCH", "/Users/user-1", tc.body)
			wantError(t, res, tc.code, tc.scimType)
			want := ada()
			want.ID = "user-1"
			if diff := cmp.Diff(want, m.users["user-1"], ignoreTimes); diff != "" {
				t.Errorf("a refused PATCH changed the user (-want +got):\n%s", diff)
			}
			if m.endedSessions("user-1") != 0 {
				t.Error("a refused PATCH ended the user's sessions")
			}
			if strings.Contains(res.raw, "blue") {
				t.Errorf("the error repeats a value the client sent: %s", res.raw)
			}
		})
	}
}

func TestPatchMissingUser(t *testing.T) {
	res := send(t, newMemory(), "PATCH", "/Users/nobody", patchOp(`{"op":"replace","path":"active","value":false}`))
	wantError(t, res, http.StatusNotFound, "")
}

func TestPatchErrorNamesOperation(t *testing.T) {
	m := newMemory()
	if _, err := m.CreateUser(t.Context(), ada()); err != nil {
		t.Fatal(err)
	}
	res := send(t, m, "PATCH", "/Users/user-1", patchOp(`{"op":"replace","path":"active","value":false}`,
		`{"op":"replace","path":"nickName2","value":"x"}`))
	want := `operation 2: a User has no attribute "nickname2"`
	if got := str(res.body, "detail"); got != want {
		t.Errorf("detail = %q, want %q", got, want)
	}
}
