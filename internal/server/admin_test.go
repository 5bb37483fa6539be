package server_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

func TestStrictAdminBodies(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	admin := ts.key(tenant.Default, "admin")
	for _, tc := range []struct {
		name, path, body string
		want             int
		field            string
	}{
		{"unknown member", "/api/v1/apikeys", `{"role":"ingest","colour":"red"}`, 400, "colour"},
		{"member in another case", "/api/v1/apikeys", `{"ROLE":"ingest"}`, 400, "ROLE"},
		{"duplicate member", "/api/v1/apikeys", `{"role":"ingest","role":"admin"}`, 400, "role"},
		{"trailing data", "/api/v1/apikeys", `{"role":"ingest"} {}`, 400, "body"},
		{"wrong type", "/api/v1/apikeys", `{"role":1}`, 400, "role"},
		{"not an object", "/api/v1/apikeys", `["ingest"]`, 400, "body"},
		{"empty", "/api/v1/apikeys", ``, 400, "body"},
		{"incomplete", "/api/v1/apikeys", `{"role":"ingest"`, 400, "body"},
		{"invalid UTF-8", "/api/v1/apikeys", "{\"role\":\"ingest\",\"name\":\"a\xffb\"}", 400, "body"},
		{"control character", "/api/v1/apikeys", `{"role":"ingest","name":"a\u0007b"}`, 400, "name"},
		{"newline", "/api/v1/apikeys", `{"role":"ingest","name":"a\nb"}`, 400, "name"},
		{"delete", "/api/v1/apikeys", `{"role":"ingest","name":"a` + "\x7f" + `b"}`, 400, "name"},
		{"C1 control", "/api/v1/apikeys", `{"role":"ingest","name":"a\u0085b"}`, 400, "name"},
		{"bidi override", "/api/v1/apikeys", `{"role":"ingest","name":"svc` + "\u202e" + `gpj"}`, 400, "name"},
		{"bidi override escaped", "/api/v1/apikeys", `{"role":"ingest","name":"svc\u202Agpj"}`, 400, "name"},
		{"bidi isolate", "/api/v1/apikeys", `{"role":"ingest","name":"\u2066svc\u2069"}`, 400, "name"},
		{"name too long", "/api/v1/apikeys", `{"role":"ingest","name":"` + strings.Repeat("x", 129) + `"}`, 400, "name"},
		{"unicode name", "/api/v1/apikeys", `{"role":"ingest","name":"Zoë's exporter"}`, 201, ""},
		{"tenant with bidi", "/api/v1/tenants", `{"name":"acme` + "\u202e" + `"}`, 400, "name"},
		{"tenant with control", "/api/v1/tenants", `{"name":"acme\u0000"}`, 400, "name"},
		{"tenant unknown member", "/api/v1/tenants", `{"name":"acme","system":true}`, 400, "system"},
		{"tenant null", "/api/v1/tenants", `null`, 400, "body"},
		{"tenant array", "/api/v1/tenants", `[{"name":"acme"}]`, 400, "body"},
		{"tenant", "/api/v1/tenants", `{"name":"acme"}`, 201, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := admin
			if tc.path == "/api/v1/tenants" {
				key = ts.operator
			}
			resp := ts.do("POST", tc.path, key, nil, tc.body, tc.want, nil)
			if tc.want != 400 {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			var p struct{ Field, Detail string }
			if err := json.Unmarshal(b, &p); err != nil || p.Field != tc.field {
				t.Errorf("problem %s names field %q, want %q", b, p.Field, tc.field)
			}
		})
	}
}
