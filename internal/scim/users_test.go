package scim_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/attest/attest/internal/scim"
)

// oktaUser is the body Okta sends to create a user, without the password
// it sends when password sync is on.
const oktaUser = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "userName": "ada@example.com",
  "name": {"givenName": "Ada", "familyName": "Lovelace"},
  "emails": [{"primary": true, "value": "ada@example.com", "type": "work"}],
  "displayName": "Ada Lovelace",
  "locale": "en-US",
  "externalId": "00u1b2c3d4",
  "groups": [],
  "active": true
}`

// entraUser is the body Microsoft Entra ID sends to create a user with its
// default attribute mappings.
const entraUser = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "grace",
  "userName": "grace@contoso.example",
  "active": true,
  "addresses": [{"primary": true, "type": "work", "streetAddress": "1 Harbour Rd",
    "locality": "Arlington", "region": "VA", "postalCode": "22201", "country": "US",
    "formatted": "1 Harbour Rd, Arlington"}],
  "displayName": "Grace Hopper",
  "emails": [{"primary": true, "type": "work", "value": "grace@contoso.example"}],
  "meta": {"resourceType": "User"},
  "name": {"formatted": "Grace Hopper", "familyName": "Hopper", "givenName": "Grace"},
  "phoneNumbers": [{"primary": true, "type": "work", "value": "+1 555 0100"},
    {"type": "mobile", "value": "+1 555 0101"}],
  "roles": [],
  "title": "Rear Admiral",
  "preferredLanguage": "en-US",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "1906", "department": "Navy", "manager": {"value": "user-0"}}
}`

// ignoreTimes leaves out what the Backend sets.
var ignoreTimes = cmpopts.IgnoreFields(scim.User{}, "Created", "LastModified")

func TestCreateUser(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       scim.User
	}{
		{"okta", oktaUser, scim.User{
			ID: "user-1", ExternalID: "00u1b2c3d4", UserName: "ada@example.com", DisplayName: "Ada Lovelace",
			GivenName: "Ada", FamilyName: "Lovelace", Active: true,
			Emails: []scim.Email{{Value: "ada@example.com", Type: "work", Primary: true}},
		}},
		{"entra", entraUser, scim.User{
			ID: "user-1", ExternalID: "grace", UserName: "grace@contoso.example", DisplayName: "Grace Hopper",
			GivenName: "Grace", FamilyName: "Hopper", Active: true,
			Emails: []scim.Email{{Value: "grace@contoso.example", Type: "work", Primary: true}},
		}},
		{"no active means active", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a"}`,
			scim.User{ID: "user-1", UserName: "a", Active: true}},
		{"created inactive", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a","active":"False"}`,
			scim.User{ID: "user-1", UserName: "a"}},
		{"names in any case", `{"SCHEMAS":["urn:ietf:params:scim:schemas:core:2.0:User"],"USERNAME":"a",
			"Name":{"GIVENNAME":"A"},"Emails":[{"Value":"a@example.com","PRIMARY":"true"}]}`,
			scim.User{ID: "user-1", UserName: "a", GivenName: "A", Active: true,
				Emails: []scim.Email{{Value: "a@example.com", Primary: true}}}},
		{"read-only attributes ignored", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"id":"chosen","userName":"a","groups":[{"value":"group-9"}],"meta":{"created":"2001-01-01T00:00:00Z"}}`,
			scim.User{ID: "user-1", UserName: "a", Active: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemory()
			res := send(t, m, "POST", "/Users", tc.body)
			wantStatus(t, res, http.StatusCreated)
			loc := base + "/Users/user-1"
			if got := res.header.Get("Location"); got != loc {
				t.Errorf("Location = %q, want %q", got, loc)
			}
			if got := str(res.body, "meta.location"); got != loc {
				t.Errorf("meta.location = %q, want %q", got, loc)
			}
			if got := str(res.body, "meta.created"); got != "2026-03-01T09:00:01Z" {
				t.Errorf("meta.created = %q", got)
			}
			if got := str(res.body, "meta.resourceType"); got != "User" {
				t.Errorf("meta.resourceType = %q", got)
			}
			if got := str(res.body, "id"); got != "user-1" {
				t.Errorf("id = %q, want user-1", got)
			}
			if diff := cmp.Diff(&tc.want, m.users["user-1"], ignoreTimes); diff != "" {
				t.Errorf("stored user (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreateUserRefused(t *testing.T) {
	const schemas = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`
	for _, tc := range []struct {
		name, body string
		code       int
		scimType   string
	}{
		{"okta password sync", strings.Replace(oktaUser, `"active": true`,
			`"active": true, "password": "Sup3r-s3cret!"`, 1), 400, "invalidValue"},
		{"unknown attribute", `{` + schemas + `,"userName":"a","favouriteColour":"blue"}`, 400, "invalidSyntax"},
		{"dotted name at top level", `{` + schemas + `,"userName":"a","name.givenName":"A"}`, 400, "invalidSyntax"},
		{"unknown extension", `{` + schemas + `,"userName":"a","urn:example:ext:1.0:User":{}}`, 400, "invalidSyntax"},
		{"unknown name part", `{` + schemas + `,"userName":"a","name":{"nickname":"A"}}`, 400, "invalidValue"},
		{"unknown email part", `{` + schemas + `,"userName":"a","emails":[{"value":"a@b","label":"x"}]}`, 400, "invalidValue"},
		{"no schemas", `{"userName":"a"}`, 400, "invalidSyntax"},
		{"group schema", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"userName":"a"}`, 400, "invalidSyntax"},
		{"no userName", `{` + schemas + `,"displayName":"A"}`, 400, "invalidValue"},
		{"blank userName", `{` + schemas + `,"userName":"  "}`, 400, "invalidValue"},
		{"userName a number", `{` + schemas + `,"userName":42}`, 400, "invalidValue"},
		{"active not a boolean", `{` + schemas + `,"userName":"a","active":"yes"}`, 400, "invalidValue"},
		{"two primary emails", `{` + schemas + `,"userName":"a","emails":[{"value":"a@b","primary":true},
			{"value":"c@d","primary":true}]}`, 400, "invalidValue"},
		{"email without value", `{` + schemas + `,"userName":"a","emails":[{"type":"work"}]}`, 400, "invalidValue"},
		{"malformed", `{` + schemas + `,"userName":"a"`, 400, "invalidSyntax"},
		{"trailing data", `{` + schemas + `,"userName":"a"} {}`, 400, "invalidSyntax"},
		{"duplicate name", `{` + schemas + `,"userName":"a","userName":"b"}`, 400, "invalidSyntax"},
		{"duplicate name in other case", `{` + schemas + `,"userName":"a","username":"b"}`, 400, "invalidSyntax"},
		{"invalid UTF-8", "{" + schemas + ",\"userName\":\"a\xff\"}", 400, "invalidSyntax"},
		{"array", `[` + oktaUser + `]`, 400, "invalidSyntax"},
		{"null", `null`, 400, "invalidSyntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemory()
			res := send(t, m, "POST", "/Users", tc.body)
			wantError(t, res, tc.code, tc.scimType)
			if len(m.users) != 0 {
				t.Errorf("a refused user was stored: %+v", m.users)
			}
			if strings.Contains(res.raw, "Sup3r") || strings.Contains(res.raw, "blue") {
				t.Errorf("the error repeats a value the client sent: %s", res.raw)
			}
		})
	}
}

func TestUserNameUnique(t *testing.T) {
	m := newMemory()
	wantStatus(t, send(t, m, "POST", "/Users", oktaUser), http.StatusCreated)
	again := strings.Replace(oktaUser, "ada@example.com", "ADA@example.com", 1)
	wantError(t, send(t, m, "POST", "/Users", again), http.StatusConflict, "uniqueness")

	other := strings.Replace(oktaUser, "ada@example.com", "eve@example.com", -1)
	wantStatus(t, send(t, m, "POST", "/Users", other), http.StatusCreated)
	rename := strings.Replace(oktaUser, `"userName": "ada@example.com"`, `"userName": "Eve@example.com"`, 1)
	wantError(t, send(t, m, "PUT", "/Users/user-1", rename), http.StatusConflict, "uniqueness")
}

func TestGetUser(t *testing.T) {
	m := newMemory()
	wantStatus(t, send(t, m, "POST", "/Users", oktaUser), http.StatusCreated)
	g, err := m.CreateGroup(t.Context(), &scim.Group{DisplayName: "Engineering", Members: []scim.Member{{Value: "user-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	res := send(t, m, "GET", "/Users/user-1", "")
	wantStatus(t, res, http.StatusOK)
	for path, want := range map[string]string{
		"schemas.0":        "urn:ietf:params:scim:schemas:core:2.0:User",
		"id":               "user-1",
		"externalId":       "00u1b2c3d4",
		"userName":         "ada@example.com",
		"name.givenName":   "Ada",
		"name.familyName":  "Lovelace",
		"displayName":      "Ada Lovelace",
		"emails.0.value":   "ada@example.com",
		"emails.0.type":    "work",
		"groups.0.value":   g.ID,
		"groups.0.display": "Engineering",
		"groups.0.$ref":    base + "/Groups/" + g.ID,
		"meta.location":    base + "/Users/user-1",
	} {
		if got := str(res.body, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if at(res.body, "active") != true || at(res.body, "emails.0.primary") != true {
		t.Errorf("active or emails.0.primary is not true: %s", res.raw)
	}
}

// TestOktaDeactivation follows Okta's lifecycle: create, deactivate with a
// PUT of the whole user with active false, reactivate, and deactivate with
// a PATCH.
func TestOktaDeactivation(t *testing.T) {
	m := newMemory()
	wantStatus(t, send(t, m, "POST", "/Users", oktaUser), http.StatusCreated)

	res := send(t, m, "PUT", "/Users/user-1", strings.Replace(oktaUser, `"active": true`, `"id": "user-1", "active": false`, 1))
	wantStatus(t, res, http.StatusOK)
	if at(res.body, "active") != false {
		t.Errorf("PUT answered active %v, want false", at(res.body, "active"))
	}
	if m.users["user-1"].Active || m.endedSessions("user-1") != 1 {
		t.Errorf("after PUT active false: active %v, sessions ended %d times; want false, 1",
			m.users["user-1"].Active, m.endedSessions("user-1"))
	}

	wantStatus(t, send(t, m, "PUT", "/Users/user-1", oktaUser), http.StatusOK)
	if !m.users["user-1"].Active {
		t.Error("PUT with active true did not reactivate the user")
	}

	patch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","value":{"active":false}}]}`
	wantStatus(t, send(t, m, "PATCH", "/Users/user-1", patch), http.StatusOK)
	if m.users["user-1"].Active || m.endedSessions("user-1") != 2 {
		t.Errorf("after PATCH active false: active %v, sessions ended %d times; want false, 2",
			m.users["user-1"].Active, m.endedSessions("user-1"))
	}
}

// TestEntraDeprovisioning follows Entra ID: a soft delete with a PATCH of
// active "False", then a DELETE.
func TestEntraDeprovisioning(t *testing.T) {
	m := newMemory()
	wantStatus(t, send(t, m, "POST", "/Users", entraUser), http.StatusCreated)
	patch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Replace","path":"active","value":"False"}]}`
	res := send(t, m, "PATCH", "/Users/user-1", patch)
	wantStatus(t, res, http.StatusOK)
	if at(res.body, "active") != false || m.endedSessions("user-1") != 1 {
		t.Errorf("after the soft delete: active %v, sessions ended %d times", at(res.body, "active"), m.endedSessions("user-1"))
	}

	res = send(t, m, "DELETE", "/Users/user-1", "")
	wantStatus(t, res, http.StatusNoContent)
	if res.raw != "" {
		t.Errorf("DELETE answered a body: %s", res.raw)
	}
	wantError(t, send(t, m, "GET", "/Users/user-1", ""), http.StatusNotFound, "")
	wantError(t, send(t, m, "DELETE", "/Users/user-1", ""), http.StatusNotFound, "")
}

func TestReplaceUser(t *testing.T) {
	m := newMemory()
	wantStatus(t, send(t, m, "POST", "/Users", oktaUser), http.StatusCreated)
	m.users["user-1"].Active = false
	created := m.users["user-1"].Created

	// A full replacement clears what the body leaves out, except active.
	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"user-7","userName":"ada@example.org"}`
	res := send(t, m, "PUT", "/Users/user-1", body)
	wantStatus(t, res, http.StatusOK)
	want := &scim.User{ID: "user-1", UserName: "ada@example.org", Created: created}
	if diff := cmp.Diff(want, m.users["user-1"], cmpopts.IgnoreFields(scim.User{}, "LastModified")); diff != "" {
		t.Errorf("stored user (-want +got):\n%s", diff)
	}
	if got := str(res.body, "meta.lastModified"); got == str(res.body, "meta.created") {
		t.Errorf("meta.lastModified = %q did not move", got)
	}
	wantError(t, send(t, m, "PUT", "/Users/user-9", body), http.StatusNotFound, "")
	wantError(t, send(t, m, "PUT", "/Users/user-1", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"a","password":"x"}`), http.StatusBadRequest, "invalidValue")
}
