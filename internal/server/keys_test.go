package server_test

import (
	"net/http"
	"testing"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

type keyList struct {
	APIKeys []struct {
		ID, Tenant, Role, Name string
		RevokedAt              string `json:"revoked_at"`
	} `json:"api_keys"`
}

// keyTenants lists the tenants of the keys a key may see.
func (ts *testServer) keyTenants(key string, hdr map[string]string) map[string]bool {
	ts.t.Helper()
	var l keyList
	ts.do("GET", "/api/v1/apikeys", key, hdr, "", http.StatusOK, &l)
	out := map[string]bool{}
	for _, k := range l.APIKeys {
		out[k.Tenant] = true
	}
	return out
}

// keyID returns the id of the first key of role in the operator's list.
func (ts *testServer) keyID(role, tenantName string) string {
	ts.t.Helper()
	var l keyList
	ts.do("GET", "/api/v1/apikeys", ts.operator, nil, "", http.StatusOK, &l)
	for _, k := range l.APIKeys {
		if k.Role == role && k.Tenant == tenantName && k.RevokedAt == "" {
			return k.ID
		}
	}
	ts.t.Fatalf("no %s key in %s", role, tenantName)
	return ""
}

func TestKeyScopeByRole(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	opAdmin := ts.key(tenant.Operator, "admin")
	ts.key(tenant.Default, "reader")
	readerID := ts.keyID("reader", tenant.Default)
	operatorID := ts.keyID("operator", tenant.Operator)

	if got := ts.keyTenants(ts.operator, nil); !got[tenant.Default] || !got[tenant.Operator] {
		t.Errorf("an operator key lists keys of %v, want every tenant", got)
	}
	if got := ts.keyTenants(ts.operator, map[string]string{"Attest-Tenant": tenant.Default}); len(got) != 1 || !got[tenant.Default] {
		t.Errorf("an operator key acting in default lists keys of %v, want only default", got)
	}
	if got := ts.keyTenants(opAdmin, nil); len(got) != 1 || !got[tenant.Operator] {
		t.Errorf("an admin key of the operator tenant lists keys of %v, want only operator", got)
	}
	ts.do("DELETE", "/api/v1/apikeys/"+readerID, opAdmin, nil, "", http.StatusNotFound, nil)
	ts.do("DELETE", "/api/v1/apikeys/"+operatorID, opAdmin, nil, "", http.StatusForbidden, nil)

	// An admin revokes an admin of its tenant, but not twice.
	admin := ts.key(tenant.Default, "admin")
	var other struct{ ID string }
	ts.do("POST", "/api/v1/apikeys", admin, nil, `{"role":"admin","name":"second"}`, http.StatusCreated, &other)
	var first, again struct {
		RevokedAt string `json:"revoked_at"`
	}
	ts.do("DELETE", "/api/v1/apikeys/"+other.ID, admin, nil, "", http.StatusOK, &first)
	ts.do("DELETE", "/api/v1/apikeys/"+other.ID, admin, nil, "", http.StatusConflict, nil)
	ts.do("DELETE", "/api/v1/apikeys/"+other.ID, ts.operator, nil, "", http.StatusConflict, nil)
	var l keyList
	ts.do("GET", "/api/v1/apikeys", admin, nil, "", http.StatusOK, &l)
	for _, k := range l.APIKeys {
		if k.ID == other.ID {
			again.RevokedAt = k.RevokedAt
		}
	}
	if first.RevokedAt == "" || again.RevokedAt != first.RevokedAt {
		t.Errorf("revoked_at was %q, is %q after a second revocation", first.RevokedAt, again.RevokedAt)
	}
}

// TestLookupsOfUnstorableText finds nothing by a key id or tenant name that
// no database text can hold, on either database, rather than failing.
func TestLookupsOfUnstorableText(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ts := start(t, opts, server.Config{})
		for _, id := range []string{"%ff", "%00", "%c3%28"} {
			ts.do("DELETE", "/api/v1/apikeys/"+id, ts.operator, nil, "", http.StatusNotFound, nil)
			ts.do("GET", "/logs/"+id+"/checkpoint", ts.operator, nil, "", http.StatusNotFound, nil)
		}
	})
}
