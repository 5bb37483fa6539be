package main

import (
	"encoding/json"
	"os/user"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hostEvent is the part of a command's own audit event that the test checks.
type hostEvent struct {
	Action   string `json:"action"`
	Category string `json:"category"`
	Actor    struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Auth struct {
			Method string `json:"method"`
		} `json:"auth"`
	} `json:"actor"`
	Target struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"target"`
	Outcome struct {
		Result string `json:"result"`
		Reason string `json:"reason"`
	} `json:"outcome"`
	Request struct {
		Method string `json:"method"`
		Path   string `json:"path"`
	} `json:"request"`
	Source struct {
		Name string `json:"name"`
	} `json:"source"`
	Details map[string]any `json:"details"`
}

// hostEvents returns the events of action in tenant's log, oldest first,
// and the raw JSON of each.
func hostEvents(t *testing.T, dir, tenant, action string) ([]hostEvent, []string) {
	t.Helper()
	r := attestCmd(t, dir, "audit query", "--tenant", tenant, "--action", action, "--order", "asc",
		"--output", "json").want(t, 0)
	var page struct {
		Items []struct {
			Event json.RawMessage `json:"event"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil {
		t.Fatalf("audit query: %v; stdout: %s", err, r.stdout)
	}
	var evs []hostEvent
	var raw []string
	for _, it := range page.Items {
		var ev hostEvent
		if err := json.Unmarshal(it.Event, &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		raw = append(raw, string(it.Event))
	}
	return evs, raw
}

// TestHostCommandsAuditThemselves checks that import, audit query and
// verify leave an event of their own in the audit trail, as API requests
// do, with the host user as the actor and, for import, counts but not
// contents.
func TestHostCommandsAuditThemselves(t *testing.T) {
	t.Parallel()
	dir := initDir(t)
	attestCmd(t, dir, "tenant create", "acme").want(t, 0)
	wantActor := "host:cli"
	if u, err := user.Current(); err == nil && u.Username != "" {
		wantActor = "host:" + u.Username
	}
	check := func(t *testing.T, ev hostEvent, action, path, result string) {
		t.Helper()
		if ev.Action != action || ev.Actor.ID != wantActor || ev.Actor.Type != "user" ||
			ev.Actor.Auth.Method != "host_cli" || ev.Request.Method != "CLI" || ev.Request.Path != path ||
			ev.Source.Name != "attest" || ev.Outcome.Result != result {
			t.Errorf("event %+v, want %s by %s through %q, %s", ev, action, wantActor, path, result)
		}
	}

	body := string(ndjson(t, events(3, "billing", "invoice.secretive"))) + "not json\n"
	file := writeFile(t, "events.ndjson", body)
	attestCmd(t, dir, "import", "--format", "ndjson", "--tenant", "acme", file).want(t, 1)

	t.Run("import", func(t *testing.T) {
		evs, raw := hostEvents(t, dir, "acme", "audit.events.import")
		if len(evs) != 1 {
			t.Fatalf("%d import events in acme's log, want 1: %v", len(evs), raw)
		}
		check(t, evs[0], "audit.events.import", "attest import", "failure")
		want := map[string]any{"format": "ndjson", "files": 1.0, "records": 4.0, "accepted": 3.0,
			"duplicate": 0.0, "rejected": 1.0, "unread_files": 0.0}
		if diff := cmp.Diff(want, evs[0].Details); diff != "" {
			t.Errorf("import event details (-want +got):\n%s", diff)
		}
		for _, s := range []string{"invoice.secretive", "billing", "not json", "events.ndjson"} {
			if strings.Contains(raw[0], s) {
				t.Errorf("the import event holds %q from the imported file: %s", s, raw[0])
			}
		}
	})

	t.Run("audit query", func(t *testing.T) {
		// The queries above and in hostEvents are recorded after they run.
		evs, raw := hostEvents(t, dir, "acme", "audit.trail.query")
		if len(evs) != 1 {
			t.Fatalf("%d query events in acme's log, want 1 for the import subtest's query: %v", len(evs), raw)
		}
		check(t, evs[0], "audit.trail.query", "attest audit query", "success")
		if got := evs[0].Details["results"]; got != 1.0 {
			t.Errorf("query event details %v, want 1 result", evs[0].Details)
		}
	})

	t.Run("verify", func(t *testing.T) {
		attestCmd(t, dir, "verify", "--tenant", "acme").want(t, 0)
		attestCmd(t, dir, "verify").want(t, 0)
		evs, raw := hostEvents(t, dir, "operator", "audit.log.verify")
		if len(evs) != 2 {
			t.Fatalf("%d verify events in the operator's log, want 2: %v", len(evs), raw)
		}
		check(t, evs[0], "audit.log.verify", "attest verify", "success")
		if evs[0].Target.Type != "tenant" || evs[0].Target.ID != "acme" || evs[0].Details["tenants"] != 1.0 {
			t.Errorf("verify --tenant acme recorded %+v, want acme as its target", evs[0])
		}
		if evs[1].Target.Type != "instance" || evs[1].Details["tenants"] != 3.0 || evs[1].Details["failed"] != 0.0 {
			t.Errorf("verify of every tenant recorded %+v, want the instance as its target, 3 tenants", evs[1])
		}
	})
}
