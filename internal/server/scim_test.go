package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/access"
	attestevent "github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// TestSCIMDeprovisioning deprovisions an enrolled person through each
// shape Okta and Entra ID send, and checks that their session and API key
// stop working within the same request.
func TestSCIMDeprovisioning(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		scimKey := ts.key(tenant.Default, "scim")
		hdr := map[string]string{"Content-Type": "application/scim+json"}
		shapes := []struct {
			name, method, body string
		}{
			{"okta put", "PUT", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"%s","userName":"%s",` +
				`"name":{"givenName":"Test","familyName":"Person"},"emails":[{"primary":true,"value":"%s","type":"work"}],"active":false}`},
			{"okta patch", "PATCH", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],` +
				`"Operations":[{"op":"replace","value":{"active":false}}]}`},
			{"entra patch", "PATCH", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],` +
				`"Operations":[{"op":"Replace","path":"active","value":"False"}]}`},
			{"delete", "DELETE", ``},
		}
		for i, sh := range shapes {
			t.Run(sh.name, func(t *testing.T) {
				email := fmt.Sprintf("leaver%d@example.com", i)
				p := ts.enrol(c, tenant.Default, email, "")
				def, _ := ts.in.Tenants.ByName(context.Background(), tenant.Default)
				tok, _, err := ts.in.CreateKey(context.Background(), def, access.RoleReader, "personal", time.Time{},
					attestevent.Actor{Type: "user", ID: p.id}, nil)
				if err != nil {
					t.Fatal(err)
				}
				ts.do("GET", "/api/v1/me", p.session, nil, "", http.StatusOK, nil)
				ts.do("GET", "/api/v1/audit/checkpoint", tok.Reveal(), nil, "", 0, nil)
				ts.do("GET", "/api/v1/compliance/audit-trail", tok.Reveal(), nil, "", http.StatusOK, nil)

				body := sh.body
				if strings.Contains(body, "%s") {
					body = fmt.Sprintf(body, p.id, email, email)
				}
				want := http.StatusOK
				if sh.method == "DELETE" {
					want = http.StatusNoContent
				}
				ts.do(sh.method, "/scim/v2/Users/"+p.id, scimKey, hdr, body, want, nil)
				ts.do("GET", "/api/v1/me", p.session, nil, "", http.StatusUnauthorized, nil)
				ts.do("GET", "/api/v1/compliance/audit-trail", tok.Reveal(), nil, "", http.StatusUnauthorized, nil)
				ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":"default","email":%q,"password":%q}`,
					email, p.password), http.StatusUnauthorized, nil)
				var got struct{ Active bool }
				wantGet := http.StatusOK
				if sh.method == "DELETE" {
					wantGet = http.StatusNotFound
				}
				ts.do("GET", "/scim/v2/Users/"+p.id, scimKey, nil, "", wantGet, &got)
				if got.Active {
					t.Error("the user still reads as active")
				}
			})
		}

		// The SCIM token provisions only its own tenant, and only SCIM.
		other := ts.key(tenant.Default, "reader")
		ts.do("GET", "/scim/v2/Users", other, nil, "", http.StatusForbidden, nil)
		ts.do("GET", "/api/v1/compliance/audit-trail", scimKey, nil, "", http.StatusForbidden, nil)
		ts.do("POST", "/api/v1/tenants", ts.operator, nil, `{"name":"acme"}`, http.StatusCreated, nil)
		acme := ts.enrol(c, "acme", "someone@acme.example", "")
		ts.do("GET", "/scim/v2/Users/"+acme.id, scimKey, nil, "", http.StatusNotFound, nil)
		ts.do("PATCH", "/scim/v2/Users/"+acme.id, scimKey, hdr, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],`+
			`"Operations":[{"op":"replace","value":{"active":false}}]}`, http.StatusNotFound, nil)
		ts.do("GET", "/api/v1/me", acme.session, nil, "", http.StatusOK, nil)
	})
}
