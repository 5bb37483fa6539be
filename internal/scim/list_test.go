package scim_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/attest/attest/internal/scim"
)

// q escapes a query parameter.
func q(s string) string { return url.QueryEscape(s) }

// ids returns the ids of a list response's resources.
func ids(res response) []string {
	list, _ := at(res.body, "Resources").([]any)
	out := []string{}
	for _, r := range list {
		out = append(out, str(r, "id"))
	}
	return out
}

func TestListPaging(t *testing.T) {
	m := withUsers(t, 7)
	for _, tc := range []struct {
		query     string
		ids       []string
		start     int
		backCount int // the count the Backend was asked for
	}{
		{"", []string{"user-1", "user-2", "user-3", "user-4", "user-5", "user-6", "user-7"}, 1, scim.DefaultCount},
		{"?startIndex=3&count=2", []string{"user-3", "user-4"}, 3, 2},
		{"?startIndex=6&count=5", []string{"user-6", "user-7"}, 6, 5},
		{"?startIndex=100", []string{}, 100, scim.DefaultCount},
		{"?count=0", []string{}, 1, 0},
		{"?count=-5", []string{}, 1, 0},
		{"?startIndex=0&count=1", []string{"user-1"}, 1, 1},
		{"?startIndex=-3&count=1", []string{"user-1"}, 1, 1},
		{"?count=100000", []string{"user-1", "user-2", "user-3", "user-4", "user-5", "user-6", "user-7"}, 1, scim.MaxCount},
	} {
		t.Run(tc.query, func(t *testing.T) {
			res := send(t, m, "GET", "/Users"+tc.query, "")
			wantStatus(t, res, http.StatusOK)
			if diff := cmp.Diff(tc.ids, ids(res)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			for name, want := range map[string]float64{
				"totalResults": 7, "startIndex": float64(tc.start), "itemsPerPage": float64(len(tc.ids)),
			} {
				if got := at(res.body, name); got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			if got := str(res.body, "schemas.0"); got != "urn:ietf:params:scim:api:messages:2.0:ListResponse" {
				t.Errorf("schemas = %v", at(res.body, "schemas"))
			}
			if got := m.counts[len(m.counts)-1]; got != tc.backCount {
				t.Errorf("the Backend was asked for %d, want %d", got, tc.backCount)
			}
		})
	}
	for _, query := range []string{"?startIndex=two", "?count=1.5", "?count=99999999999999999999"} {
		wantError(t, send(t, m, "GET", "/Users"+query, ""), http.StatusBadRequest, "invalidValue")
	}
}

func TestListFilter(t *testing.T) {
	m := newMemory()
	for _, body := range []string{oktaUser, entraUser, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"quote\"d","externalId":"Ext-3"}`} {
		wantStatus(t, send(t, m, "POST", "/Users", body), http.StatusCreated)
	}
	for _, tc := range []struct {
		filter string
		ids    []string
	}{
		{`userName eq "ada@example.com"`, []string{"user-1"}},
		{`USERNAME Eq "ADA@example.com"`, []string{"user-1"}},
		{`userName eq "nobody@example.com"`, []string{}},
		{`externalId eq "grace"`, []string{"user-2"}},
		{`externalId eq "ext-3"`, []string{}},
		{`externalId eq "Ext-3"`, []string{"user-3"}},
		{`emails.value eq "grace@contoso.example"`, []string{"user-2"}},
		{`displayName eq "ada lovelace"`, []string{"user-1"}},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ada@example.com"`, []string{"user-1"}},
		{`userName eq "quote\"d"`, []string{"user-3"}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			res := send(t, m, "GET", "/Users?filter="+q(tc.filter), "")
			wantStatus(t, res, http.StatusOK)
			if diff := cmp.Diff(tc.ids, ids(res)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if got := at(res.body, "totalResults"); got != float64(len(tc.ids)) {
				t.Errorf("totalResults = %v, want %d", got, len(tc.ids))
			}
		})
	}
}

func TestListFilterRefused(t *testing.T) {
	for _, tc := range []struct{ path, filter string }{
		{"/Users", `userName sw "ada"`},
		{"/Users", `userName ne "ada"`},
		{"/Users", `userName pr`},
		{"/Users", `userName eq "a" and active eq true`},
		{"/Users", `userName eq "a" or userName eq "b"`},
		{"/Users", `not (userName eq "a")`},
		{"/Users", `emails[value eq "a@b"]`},
		{"/Users", `title eq "Analyst"`},
		{"/Users", `name.givenName eq "Ada"`},
		{"/Users", `active eq true`},
		{"/Users", `userName eq 5`},
		{"/Users", `urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "a"`},
		{"/Users", `userName eq`},
		{"/Users", `"ada"`},
		{"/Users", `userName eq "` + string(make([]byte, 2000)) + `"`},
		{"/Groups", `userName eq "ada"`},
		{"/Groups", `members.value eq "user-1"`},
	} {
		t.Run(tc.path+" "+tc.filter, func(t *testing.T) {
			res := send(t, newMemory(), "GET", tc.path+"?filter="+q(tc.filter), "")
			wantError(t, res, http.StatusBadRequest, "invalidFilter")
		})
	}
	res := send(t, newMemory(), "GET", "/Users?filter="+q(`title eq "x"`), "")
	want := `the filter must have the form ATTR eq "VALUE", with ATTR one of userName, externalId, displayName, emails.value`
	if got := str(res.body, "detail"); got != want {
		t.Errorf("detail = %q, want %q", got, want)
	}
}

func TestListGroups(t *testing.T) {
	m := withUsers(t, 1)
	for _, name := range []string{"Engineering", "Finance", "Legal"} {
		if _, err := m.CreateGroup(t.Context(), &scim.Group{DisplayName: name, ExternalID: "x-" + name,
			Members: []scim.Member{{Value: "user-1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	res := send(t, m, "GET", "/Groups?startIndex=2&count=1", "")
	wantStatus(t, res, http.StatusOK)
	if diff := cmp.Diff([]string{"group-3"}, ids(res)); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if at(res.body, "totalResults") != float64(3) || str(res.body, "Resources.0.members.0.value") != "user-1" {
		t.Errorf("list: %s", res.raw)
	}
	res = send(t, m, "GET", "/Groups?filter="+q(`externalId eq "x-Legal"`), "")
	if diff := cmp.Diff([]string{"group-4"}, ids(res)); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}
