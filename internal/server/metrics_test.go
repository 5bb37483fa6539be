package server_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

func TestMetricsNeedOperatorTenantKey(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"no key", "", http.StatusUnauthorized},
		{"malformed key", "atk_nope", http.StatusUnauthorized},
		{"tenant reader", ts.key(tenant.Default, "reader"), http.StatusForbidden},
		{"tenant admin", ts.key(tenant.Default, "admin"), http.StatusForbidden},
		{"tenant ingest", ts.key(tenant.Default, "ingest"), http.StatusForbidden},
		{"operator-tenant reader", ts.key(tenant.Operator, "reader"), http.StatusOK},
		{"operator", ts.operator, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ts.do("GET", "/metrics", tc.key, nil, "", tc.want, nil)
			b, _ := io.ReadAll(resp.Body)
			if got := bytes.Contains(b, []byte("attest_http_requests_total")); got != (tc.want == http.StatusOK) {
				t.Errorf("metrics shown: %v, want %v", got, tc.want == http.StatusOK)
			}
		})
	}
}
