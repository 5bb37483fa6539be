package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// TestLoginThreats sends a burst of failed logins for many accounts with
// one password from one address: stuffing, spraying and enumeration are
// each raised once as a high-severity security event, without the
// password in the trail.
func TestLoginThreats(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	const pass = "Summer2026!spray"
	for i := range 22 {
		want := http.StatusUnauthorized
		if i >= 20 {
			want = 0 // the address's failure counter may now make it wait
		}
		ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":"default","email":"target%d@example.com","password":%q}`,
			i, pass), want, nil)
	}
	h := map[string]string{"Attest-Tenant": tenant.Default}
	for _, action := range []string{"security.credential_stuffing", "security.password_spraying", "security.account_enumeration"} {
		var page []byte
		for range 50 {
			resp := ts.do("GET", "/api/v1/compliance/audit-trail?action="+action, ts.operator, h, "", http.StatusOK, nil)
			b, _ := readAll(resp)
			if page = []byte(b); strings.Count(b, `"action":"`+action+`"`) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := strings.Count(string(page), `"action":"`+action+`"`); n != 1 {
			t.Errorf("%s raised %d times, want once: %s", action, n, page)
		}
		if !strings.Contains(string(page), `"severity":"high"`) {
			t.Errorf("%s is not high severity: %s", action, page)
		}
		if strings.Contains(string(page), pass) {
			t.Errorf("the trail holds the sprayed password")
		}
	}
}
