package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/attest/attest/internal/console"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// send sends a request with exactly the given header and returns its status.
func (ts *testServer) send(method, path string, h http.Header, body string) int {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header = h
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestContentType(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	ing, admin := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "admin")
	for _, tc := range []struct {
		path, ct string
		want     int
	}{
		{"/api/v1/audit/events", "", 200},
		{"/api/v1/audit/events", "application/json", 200},
		{"/api/v1/audit/events", "application/json; charset=utf-8", 200},
		{"/api/v1/audit/events", "Application/JSON; Charset=UTF-8", 200},
		{"/api/v1/audit/events", "application/x-ndjson", 200},
		{"/api/v1/audit/events", "application/ndjson", 200},
		{"/api/v1/audit/events", "application/jsonl", 200},
		{"/api/v1/audit/events", "application/json; charset=iso-8859-1", 415},
		{"/api/v1/audit/events", "application/json; boundary=x", 415},
		{"/api/v1/audit/events", "application/x-www-form-urlencoded", 415},
		{"/api/v1/audit/events", "text/plain", 415},
		{"/api/v1/audit/events", "application/gzip", 415},
		{"/api/v1/audit/events", "application/json;;", 415},
		{"/api/v1/audit/events?format=ndjson", "application/gzip", 200},
		{"/api/v1/audit/events?format=ndjson", "text/csv", 415},
		{"/api/v1/apikeys", "", 201},
		{"/api/v1/apikeys", "application/json; charset=utf-8", 201},
		{"/api/v1/apikeys", "application/x-ndjson", 415},
		{"/api/v1/apikeys", "text/plain", 415},
		{"/api/v1/apikeys", "application/x-www-form-urlencoded", 415},
	} {
		t.Run(tc.path+" "+tc.ct, func(t *testing.T) {
			key, body := ing, event("", "a.b")
			if tc.path == "/api/v1/apikeys" {
				key, body = admin, `{"role":"reader"}`
			}
			h := http.Header{"Authorization": {"Bearer " + key}}
			if tc.ct != "" {
				h.Set("Content-Type", tc.ct)
			}
			if got := ts.send("POST", tc.path, h, body); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
}

func TestAuthorizationHeader(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	reader := ts.key(tenant.Default, "reader")
	const path = "/api/v1/compliance/audit-trail"
	for _, tc := range []struct {
		name string
		h    http.Header
		want int
	}{
		{"Bearer", http.Header{"Authorization": {"Bearer " + reader}}, 200},
		{"bearer", http.Header{"Authorization": {"bearer " + reader}}, 200},
		{"BEARER", http.Header{"Authorization": {"BEARER " + reader}}, 200},
		{"two spaces", http.Header{"Authorization": {"Bearer  " + reader}}, 200},
		{"Basic", http.Header{"Authorization": {"Basic " + reader}}, 401},
		{"no space", http.Header{"Authorization": {"Bearer" + reader}}, 401},
		{"scheme alone", http.Header{"Authorization": {"Bearer "}}, 401},
		{"two Authorization", http.Header{"Authorization": {"Bearer " + reader, "Bearer " + reader}}, 400},
		{"two Attest-Tenant", http.Header{"Authorization": {"Bearer " + ts.operator},
			"Attest-Tenant": {tenant.Default, tenant.Default}}, 400},
		{"two different Attest-Tenant", http.Header{"Authorization": {"Bearer " + ts.operator},
			"Attest-Tenant": {tenant.Default, tenant.Operator}}, 400},
		{"one Attest-Tenant", http.Header{"Authorization": {"Bearer " + ts.operator},
			"Attest-Tenant": {tenant.Default}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ts.send("GET", path, tc.h, ""); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	if got := ts.send("GET", "/logs/default/checkpoint", http.Header{"Authorization": {"Bearer " + reader},
		"Attest-Tenant": {"a", "b"}}, ""); got != 400 {
		t.Errorf("two Attest-Tenant on the tiled log: status %d, want 400", got)
	}
}

// TestConsoleServed checks that serve answers the web console at / with
// its own strict policy, and that the API's paths stay the API's.
func TestConsoleServed(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	resp, err := ts.client.Get(ts.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		resp.Header.Get("Content-Security-Policy") != console.Policy || resp.Header.Get("X-Frame-Options") != "DENY" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = ts.client.Get(ts.url + "/api/v1/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Errorf("an unknown API path: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
