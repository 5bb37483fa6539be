package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// syncBuffer is a buffer that a server's logger and a test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// trail returns a tenant's audit trail as the query API answers it.
func (ts *testServer) trail(tenantName, query string) []byte {
	ts.t.Helper()
	resp := ts.do("GET", "/api/v1/compliance/audit-trail?limit=1000"+query, ts.operator,
		map[string]string{"Attest-Tenant": tenantName}, "", http.StatusOK, nil)
	b, _ := io.ReadAll(resp.Body)
	return b
}

// waitTrail waits until a tenant's trail holds at least n events that
// match query, and returns it.
func (ts *testServer) waitTrail(tenantName, query string, n int) []byte {
	ts.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b := ts.trail(tenantName, query)
		if bytes.Count(b, []byte(`"sequence"`)) >= 2*n || time.Now().After(deadline) {
			return b
		}
	}
}

func TestSecretsRedacted(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := start(t, opts, server.Config{Logger: log})
	admin, reader := ts.key(tenant.Default, "admin"), ts.key(tenant.Default, "reader")
	secret := admin[len(admin)-52:]
	ua := map[string]string{"User-Agent": "curl " + admin}
	for _, tc := range []struct {
		method, path, key string
		body              string
		want              int
	}{
		{"GET", "/api/v1/audit/events/" + admin, reader, "", 400},
		{"DELETE", "/api/v1/apikeys/" + admin, admin, "", 404},
		{"GET", "/api/v1/nothing/" + admin, reader, "", 404},
		{"GET", "/api/v1/compliance/audit-trail?cursor=" + admin, reader, "", 400},
		{"GET", "/api/v1/compliance/audit-trail?" + admin + "=1", reader, "", 400},
		{"GET", "/logs/default/tile/0/" + admin, reader, "", 0},
		{"GET", "/api/v1/compliance/audit-trail", "", "", 401},
		{"POST", "/api/v1/apikeys", admin, `{"role":"reader","name":"` + admin + `"}`, 201},
	} {
		resp := ts.do(tc.method, tc.path, tc.key, ua, tc.body, tc.want, nil)
		if b, _ := io.ReadAll(resp.Body); tc.want != 201 && strings.Contains(string(b), secret) {
			t.Errorf("%s %s: the answer repeats the key: %s", tc.method, tc.path, b)
		}
	}
	def := ts.waitTrail(tenant.Default, "", 7)
	op := ts.waitTrail(tenant.Operator, "&action=audit.trail.query&outcome=denied", 1)
	for name, b := range map[string][]byte{"default": def, "operator": op, "log": []byte(logs.String())} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the %s trail holds the key's secret", name)
		}
	}
	if n := bytes.Count(def, []byte("atk_REDACTED")); n < 7 {
		t.Errorf("the default trail shows %d redaction markers, want at least 7:\n%s", n, def)
	}
}

// TestUnauthorizedHint checks that the 401 answer shows how to send a key in
// words the secret redactor leaves alone, both to the client and in the
// operator's trail.
func TestUnauthorizedHint(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	const hint = "send it as Authorization: Bearer <API key>"
	resp := ts.do("GET", "/api/v1/compliance/audit-trail", "", nil, "", http.StatusUnauthorized, nil)
	var p struct{ Detail string }
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || !strings.HasSuffix(p.Detail, hint) {
		t.Errorf("401 detail %q (%v), want it to end %q", p.Detail, err, hint)
	}
	op := ts.waitTrail(tenant.Operator, "&action=audit.trail.query&outcome=denied", 1)
	if !bytes.Contains(op, []byte("Bearer \\u003cAPI key\\u003e")) && !bytes.Contains(op, []byte("Bearer <API key>")) {
		t.Errorf("the operator trail does not hold the hint:\n%s", op)
	}
}
