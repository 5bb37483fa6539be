package scim_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/attest/attest/internal/scim"
)

var ignoreGroupTimes = cmpopts.IgnoreFields(scim.Group{}, "Created", "LastModified")

// withUsers returns a backend holding the users user-1 to user-n.
func withUsers(t *testing.T, n int) *memory {
	t.Helper()
	m := newMemory()
	for i := range n {
		u := &scim.User{UserName: string(rune('a'+i)) + "@example.com", Active: true}
		if _, err := m.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestGroupLifecycle(t *testing.T) {
	m := withUsers(t, 2)
	// Okta creates a group with its members; Entra ID creates it empty.
	res := send(t, m, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"displayName":"Engineering","externalId":"00g1","members":[{"value":"user-1","display":"a@example.com"}]}`)
	wantStatus(t, res, http.StatusCreated)
	loc := base + "/Groups/group-3"
	if got := res.header.Get("Location"); got != loc || str(res.body, "meta.location") != loc {
		t.Errorf("Location = %q, meta.location = %q, want %q", got, str(res.body, "meta.location"), loc)
	}
	for path, want := range map[string]string{
		"schemas.0":         "urn:ietf:params:scim:schemas:core:2.0:Group",
		"displayName":       "Engineering",
		"members.0.value":   "user-1",
		"members.0.display": "a@example.com",
		"members.0.$ref":    base + "/Users/user-1",
		"meta.resourceType": "Group",
	} {
		if got := str(res.body, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	entra := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"externalId":"5d1c",
		"displayName":"Finance","meta":{"resourceType":"Group"}}`
	wantStatus(t, send(t, m, "POST", "/Groups", entra), http.StatusCreated)
	wantError(t, send(t, m, "POST", "/Groups", strings.Replace(entra, "Finance", "FINANCE", 1)),
		http.StatusConflict, "uniqueness")

	res = send(t, m, "GET", "/Groups?filter="+q(`displayName eq "engineering"`)+"&excludedAttributes=members", "")
	wantStatus(t, res, http.StatusOK)
	if at(res.body, "totalResults") != float64(1) || str(res.body, "Resources.0.id") != "group-3" {
		t.Errorf("filtered list: %s", res.raw)
	}
	if at(res.body, "Resources.0.members") != nil {
		t.Errorf("excludedAttributes=members left members in: %s", res.raw)
	}

	res = send(t, m, "PUT", "/Groups/group-3", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"id":"group-3","displayName":"Platform","members":[{"value":"user-2"},{"value":"user-2"}]}`)
	wantStatus(t, res, http.StatusOK)
	want := &scim.Group{ID: "group-3", DisplayName: "Platform", Members: []scim.Member{{Value: "user-2", Display: "b@example.com"}}}
	if diff := cmp.Diff(want, m.groups["group-3"], ignoreGroupTimes); diff != "" {
		t.Errorf("after PUT (-want +got):\n%s", diff)
	}

	wantStatus(t, send(t, m, "DELETE", "/Groups/group-3", ""), http.StatusNoContent)
	wantError(t, send(t, m, "GET", "/Groups/group-3", ""), http.StatusNotFound, "")
	if _, err := m.GetUser(t.Context(), "user-2"); err != nil {
		t.Errorf("deleting a group deleted its member: %v", err)
	}
}

func TestCreateGroupRefused(t *testing.T) {
	const schemas = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]`
	for _, tc := range []struct {
		name, body string
		code       int
		scimType   string
	}{
		{"unknown attribute", `{` + schemas + `,"displayName":"G","owner":"x"}`, 400, "invalidSyntax"},
		{"no displayName", `{` + schemas + `,"members":[]}`, 400, "invalidValue"},
		{"member without value", `{` + schemas + `,"displayName":"G","members":[{"display":"x"}]}`, 400, "invalidValue"},
		{"member not a user", `{` + schemas + `,"displayName":"G","members":[{"value":"user-9"}]}`, 400, "invalidValue"},
		{"user schema", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"displayName":"G"}`, 400, "invalidSyntax"},
		{"enterprise extension", `{` + schemas + `,"displayName":"G",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{}}`, 400, "invalidSyntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := withUsers(t, 1)
			res := send(t, m, "POST", "/Groups", tc.body)
			wantError(t, res, tc.code, tc.scimType)
			if len(m.groups) != 0 {
				t.Errorf("a refused group was stored")
			}
		})
	}
}

func TestPatchGroup(t *testing.T) {
	members := func(ids ...string) []scim.Member {
		var ms []scim.Member
		for _, id := range ids {
			ms = append(ms, scim.Member{Value: id, Display: string(rune('a'+id[len(id)-1]-'1')) + "@example.com"})
		}
		return ms
	}
	for _, tc := range []struct {
		name    string
		body    string
		want    []scim.Member
		display string // "" for unchanged
	}{
		{"okta adds members", patchOp(`{"op":"add","path":"members","value":[{"value":"user-2","display":"b@example.com"},
			{"value":"user-3","display":"c@example.com"}]}`), members("user-1", "user-2", "user-3"), ""},
		{"entra adds a member", patchOp(`{"op":"Add","path":"members","value":[{"value":"user-3"}]}`),
			members("user-1", "user-3"), ""},
		{"add a member twice", patchOp(`{"op":"add","path":"members","value":[{"value":"user-1"}]}`),
			members("user-1"), ""},
		{"add one member object", patchOp(`{"op":"add","path":"members","value":{"value":"user-2"}}`),
			members("user-1", "user-2"), ""},
		{"add in value", patchOp(`{"op":"add","value":{"members":[{"value":"user-2"}]}}`),
			members("user-1", "user-2"), ""},
		{"okta removes a member", patchOp(`{"op":"remove","path":"members[value eq \"user-1\"]"}`), nil, ""},
		{"entra removes a member", patchOp(`{"op":"Remove","path":"members","value":[{"value":"user-1"}]}`), nil, ""},
		{"remove a member who is not in", patchOp(`{"op":"remove","path":"members[value eq \"user-3\"]"}`),
			members("user-1"), ""},
		{"remove every member", patchOp(`{"op":"remove","path":"members"}`), nil, ""},
		{"replace members", patchOp(`{"op":"replace","path":"members","value":[{"value":"user-2"},{"value":"user-3"}]}`),
			members("user-2", "user-3"), ""},
		{"add then remove", patchOp(`{"op":"add","path":"members","value":[{"value":"user-2"}]}`,
			`{"op":"remove","path":"members[value eq \"user-1\"]"}`), members("user-2"), ""},
		{"okta renames", patchOp(`{"op":"replace","value":{"id":"group-4","displayName":"Platform"}}`),
			members("user-1"), "Platform"},
		{"entra renames", patchOp(`{"op":"Replace","path":"displayName","value":"Platform"}`),
			members("user-1"), "Platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := withUsers(t, 3)
			g, err := m.CreateGroup(t.Context(), &scim.Group{DisplayName: "Engineering", Members: []scim.Member{{Value: "user-1"}}})
			if err != nil {
				t.Fatal(err)
			}
			res := send(t, m, "PATCH", "/Groups/"+g.ID, tc.body)
			wantStatus(t, res, http.StatusOK)
			want := &scim.Group{ID: g.ID, DisplayName: "Engineering", Members: tc.want}
			if tc.display != "" {
				want.DisplayName = tc.display
			}
			if diff := cmp.Diff(want, m.groups[g.ID], ignoreGroupTimes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("stored group (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPatchGroupRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		code     int
		scimType string
	}{
		{"member not a user", patchOp(`{"op":"add","path":"members","value":[{"value":"user-9"}]}`), 400, "invalidValue"},
		{"member without value", patchOp(`{"op":"add","path":"members","value":[{"display":"x"}]}`), 400, "invalidValue"},
		{"unknown member part", patchOp(`{"op":"add","path":"members","value":[{"value":"user-1","role":"x"}]}`), 400, "invalidValue"},
		{"replace by filter", patchOp(`{"op":"replace","path":"members[value eq \"user-1\"]","value":{"value":"user-2"}}`),
			400, "invalidPath"},
		{"members sub-attribute", patchOp(`{"op":"remove","path":"members.value"}`), 400, "invalidPath"},
		{"unsupported filter", patchOp(`{"op":"remove","path":"members[value sw \"user\"]"}`), 400, "invalidFilter"},
		{"unknown attribute", patchOp(`{"op":"replace","path":"owner","value":"x"}`), 400, "noTarget"},
		{"enterprise user attribute", patchOp(
			`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"x"}`),
			400, "noTarget"},
		{"remove displayName", patchOp(`{"op":"remove","path":"displayName"}`), 400, "invalidValue"},
		{"another id", patchOp(`{"op":"replace","value":{"id":"group-9","displayName":"x"}}`), 400, "mutability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := withUsers(t, 3)
			g, err := m.CreateGroup(t.Context(), &scim.Group{DisplayName: "Engineering", Members: []scim.Member{{Value: "user-1"}}})
			if err != nil {
				t.Fatal(err)
			}
			res := send(t, m, "PATCH", "/Groups/"+g.ID, tc.body)
			wantError(t, res, tc.code, tc.scimType)
			want := &scim.Group{ID: g.ID, DisplayName: "Engineering", Members: []scim.Member{{Value: "user-1", Display: "a@example.com"}}}
			if diff := cmp.Diff(want, m.groups[g.ID], ignoreGroupTimes); diff != "" {
				t.Errorf("a refused PATCH changed the group (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteUserLeavesGroups(t *testing.T) {
	m := withUsers(t, 2)
	g, err := m.CreateGroup(t.Context(), &scim.Group{DisplayName: "G", Members: []scim.Member{{Value: "user-1"}, {Value: "user-2"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, send(t, m, "DELETE", "/Users/user-1", ""), http.StatusNoContent)
	res := send(t, m, "GET", "/Groups/"+g.ID, "")
	if got := at(res.body, "members.1"); got != nil || str(res.body, "members.0.value") != "user-2" {
		t.Errorf("after deleting user-1 the group is %s", res.raw)
	}
	if m.endedSessions("user-1") != 1 {
		t.Error("deleting a user did not end its sessions")
	}
}

// racing is a Backend where another client adds a member to a group
// between each of the first races reads of it and the replacement.
type racing struct {
	*memory
	races, joined int
}

func (r *racing) GetGroup(ctx context.Context, id string) (*scim.Group, error) {
	g, err := r.memory.GetGroup(ctx, id)
	if err != nil || r.joined == r.races {
		return g, err
	}
	r.joined++
	other := *g
	other.Members = append(slices.Clone(g.Members), scim.Member{Value: fmt.Sprintf("user-%d", 1+r.joined)})
	if _, err := r.memory.ReplaceGroup(ctx, &other); err != nil {
		return nil, err
	}
	return g, nil
}

func TestPatchGroupRetriesAfterConcurrentChange(t *testing.T) {
	for _, tc := range []struct {
		races int
		code  int
	}{
		{2, http.StatusOK},
		{3, http.StatusPreconditionFailed},
	} {
		m := withUsers(t, 5)
		g, err := m.CreateGroup(t.Context(), &scim.Group{DisplayName: "G", Members: []scim.Member{{Value: "user-1"}}})
		if err != nil {
			t.Fatal(err)
		}
		b := &racing{memory: m, races: tc.races}
		res := send(t, b, "PATCH", "/Groups/"+g.ID, patchOp(`{"op":"add","path":"members","value":[{"value":"user-5"}]}`))
		if res.code != tc.code {
			t.Fatalf("with %d races: status %d, want %d\n%s", tc.races, res.code, tc.code, res.raw)
		}
		if tc.code != http.StatusOK {
			continue
		}
		var got []string
		for _, mb := range m.groups[g.ID].Members {
			got = append(got, mb.Value)
		}
		if diff := cmp.Diff([]string{"user-1", "user-2", "user-3", "user-5"}, got); diff != "" {
			t.Errorf("members lost a concurrent change (-want +got):\n%s", diff)
		}
	}
}
