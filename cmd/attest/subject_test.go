package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSubjectErase erases a subject with the command line while the
// server runs and holds the subject's key: the server's next answer shows
// the values erased, and the log still verifies.
func TestSubjectErase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	var body strings.Builder
	for i := range 3 {
		fmt.Fprintf(&body, `{"id":"ev-%d","occurred_at":%q,"source":"voice-api","actor":{"type":"user","id":"u-cli",`+
			`"email":"cli-subject@example.com","ip":"192.0.2.44"},"action":"call.read","category":"data_access",`+
			`"outcome":{"result":"success"}}`+"\n", i, at)
	}
	s.ingest(t, s.key, "default", []byte(body.String()))
	read := func() []map[string]any {
		t.Helper()
		b := s.call(t, "GET", "/api/v1/compliance/audit-trail?actor_id=u-cli", s.key, map[string]string{"Attest-Tenant": "default"},
			nil, http.StatusOK)
		var p struct {
			Items []map[string]any
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		return p.Items
	}
	if items := read(); len(items) != 3 || !strings.Contains(fmt.Sprint(items[0]["event"]), "cli-subject@example.com") {
		t.Fatalf("before erasure: %v", items)
	}

	runUsageCases(t, dir, []usageCase{
		{"no subcommand", "subject", nil, 2, "usage: attest subject erase"},
		{"no tenant", "subject erase", fields("--subject u-cli --reason r"), 2, "--tenant is required"},
		{"no subject", "subject erase", fields("--tenant default --reason r"), 2, "--subject: an actor id is required"},
		{"no reason", "subject erase", fields("--tenant default --subject u-cli"), 2, "--reason: required"},
		{"blank reason", "subject erase", []string{"--tenant", "default", "--subject", "u-cli", "--reason", "  "}, 2, "--reason: required"},
		{"control character", "subject erase", []string{"--tenant", "default", "--subject", "u-\x01", "--reason", "r"}, 2,
			"--subject: holds a control character"},
		{"unknown tenant", "subject erase", fields("--tenant nope --subject u-cli --reason r"), 2, `no tenant named "nope"`},
		{"unknown subject", "subject erase", fields("--tenant default --subject u-nobody --reason r"), 1,
			"holds no personal values of subject"},
	})
	if items := read(); !strings.Contains(fmt.Sprint(items[0]["event"]), "cli-subject@example.com") {
		t.Fatalf("a refused erasure erased: %v", items[0])
	}

	r := attestCmd(t, dir, "subject erase", "--tenant", "default", "--subject", "u-cli", "--reason", "data subject request 7").want(t, 0)
	if !strings.Contains(r.stdout, `erased subject "u-cli" of tenant default: 1 key(s) destroyed`) {
		t.Errorf("erase printed %q", r.stdout)
	}
	for _, it := range read() {
		if ev := fmt.Sprint(it["event"]); strings.Contains(ev, "cli-subject@example.com") || strings.Contains(ev, "192.0.2.44") {
			t.Errorf("the server still shows an erased value: %s", ev)
		}
		if fmt.Sprint(it["erased"]) != "[actor.email actor.ip]" {
			t.Errorf("erased = %v, want [actor.email actor.ip]", it["erased"])
		}
	}
	r = attestCmd(t, dir, "subject erase", "--tenant", "default", "--subject", "u-cli", "--reason", "again", "--output", "json").want(t, 0)
	var again struct{ Generations int64 }
	if err := json.Unmarshal([]byte(r.stdout), &again); err != nil || again.Generations != 0 {
		t.Errorf("a second erasure: %s, %v", r.stdout, err)
	}
	r = attestCmd(t, dir, "verify", "--tenant", "default", "--deep").want(t, 0)
	if !strings.Contains(r.stdout, "erased") {
		t.Errorf("verify --deep does not count the erased entries: %s", r.stdout)
	}
	// The erasure is recorded with its reason and without the values.
	b := s.call(t, "GET", "/api/v1/compliance/audit-trail?action=privacy.subject.erase", s.key,
		map[string]string{"Attest-Tenant": "default"}, nil, http.StatusOK)
	if !strings.Contains(string(b), "data subject request 7") || strings.Contains(string(b), "cli-subject@example.com") {
		t.Errorf("the erasure's audit events: %s", b)
	}
}
