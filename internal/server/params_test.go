package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
)

// frozenCheckpoint starts a server that signs checkpoints only when told,
// puts n events in the default tenant's log and signs one checkpoint. It
// returns the server, a reader key and the checkpoint's size, which later
// requests grow the log past.
func frozenCheckpoint(t *testing.T, n int) (*testServer, string, int64) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{CheckpointInterval: time.Hour})
	ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
	var r ingestResp
	ts.do("POST", "/api/v1/audit/events", ing, map[string]string{"Content-Type": "application/x-ndjson"},
		events(n, "\n"), http.StatusOK, &r)
	if r.Accepted != n {
		t.Fatalf("accepted %d of %d", r.Accepted, n)
	}
	if _, err := ts.in.Log.PublishCheckpoints(context.Background()); err != nil {
		t.Fatal(err)
	}
	note := ts.get("/api/v1/audit/checkpoint", reader)
	lines := strings.Split(note, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < int64(n) {
		t.Fatalf("checkpoint %q: size %d, %v", note, size, err)
	}
	return ts, reader, size
}

func TestParameters(t *testing.T) {
	ts, reader, n := frozenCheckpoint(t, 300)
	admin := ts.key(tenant.Default, "admin")
	ing := ts.key(tenant.Default, "ingest")
	for _, tc := range []struct {
		name, method, path string
		key                string
		want               int
		field              string
	}{
		{"consistency backwards", "GET", "/api/v1/audit/proofs/consistency?from=200&to=100", reader, 400, "from"},
		{"consistency past the checkpoint", "GET", fmt.Sprintf("/api/v1/audit/proofs/consistency?from=%d", n+1), reader, 400, "from"},
		{"consistency", "GET", "/api/v1/audit/proofs/consistency?from=100&to=200", reader, 200, ""},
		{"consistency beyond the log", "GET", "/api/v1/audit/proofs/consistency?from=3&to=999999", reader, 400, "to"},
		{"inclusion at the size", "GET", "/api/v1/audit/proofs/inclusion?sequence=5&tree_size=5", reader, 400, "sequence"},
		{"inclusion past the checkpoint", "GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?sequence=%d", n), reader, 400, "sequence"},
		{"inclusion", "GET", "/api/v1/audit/proofs/inclusion?sequence=4&tree_size=5", reader, 200, ""},
		{"signed sequence", "GET", "/api/v1/audit/proofs/inclusion?sequence=%2B1", reader, 400, "sequence"},
		{"leading zero", "GET", "/api/v1/audit/proofs/inclusion?sequence=01", reader, 400, "sequence"},
		{"limit with a leading zero", "GET", "/api/v1/compliance/audit-trail?limit=01", reader, 400, "limit"},
		{"limit with a sign", "GET", "/api/v1/compliance/audit-trail?limit=%2B1", reader, 400, "limit"},
		{"limit", "GET", "/api/v1/compliance/audit-trail?limit=1", reader, 200, ""},
		{"event with a sign", "GET", "/api/v1/audit/events/+1", reader, 400, "sequence"},
		{"event with a leading zero", "GET", "/api/v1/audit/events/01", reader, 400, "sequence"},
		{"event past its tree", "GET", "/api/v1/audit/events/5?tree_size=5", reader, 400, "tree_size"},
		{"event zero", "GET", "/api/v1/audit/events/0", reader, 200, ""},
		{"event", "GET", "/api/v1/audit/events/10", reader, 200, ""},
		{"unknown on checkpoint", "GET", "/api/v1/audit/checkpoint?x=1", reader, 400, "x"},
		{"unknown on tiles", "GET", "/logs/default/checkpoint?since=1", reader, 400, "since"},
		{"unknown on keys", "GET", "/api/v1/apikeys?tenant=operator", admin, 400, "tenant"},
		{"unknown on openapi", "GET", "/api/v1/openapi.json?v=2", "", 400, "v"},
		{"unknown on metrics", "GET", "/metrics?name=x", ts.operator, 400, "name"},
		{"repeated", "GET", "/api/v1/audit/public-key?format=json&format=json", reader, 400, "format"},
		{"repeated empty", "GET", "/api/v1/audit/proofs/consistency?from=1&from=", reader, 400, "from"},
		{"empty filter", "GET", "/api/v1/compliance/audit-trail?action=&limit=5", reader, 400, "action"},
		{"empty proof parameter", "GET", "/api/v1/audit/proofs/inclusion?sequence=", reader, 400, "sequence"},
		{"malformed query", "GET", "/api/v1/audit/checkpoint?a=%zz", reader, 400, "query"},
		{"bogus public key format", "GET", "/api/v1/audit/public-key?format=bogus", reader, 400, "format"},
		{"bogus proof format", "GET", "/api/v1/audit/proofs/inclusion?sequence=1&format=bogus", reader, 400, "format"},
		{"bogus ingest format", "POST", "/api/v1/audit/events?format=bogus", ing, 400, "format"},
		{"repeated ingest format", "POST", "/api/v1/audit/events?format=ndjson&format=ndjson", ing, 400, "format"},
		{"public key", "GET", "/api/v1/audit/public-key?format=json", reader, 200, ""},
		{"zero time bound", "GET", "/api/v1/compliance/audit-trail?occurred_to=0001-01-01T00:00:00Z", reader, 400, "occurred_to"},
		{"ancient time bound", "GET", "/api/v1/compliance/audit-trail?received_from=1989-12-31T23:59:59Z", reader, 400, "received_from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ts.do(tc.method, tc.path, tc.key, nil, "", tc.want, nil)
			if tc.want != 400 {
				return
			}
			var p struct{ Field string }
			b, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(b, &p); err != nil || p.Field != tc.field {
				t.Errorf("problem %s names %q, want %q", b, p.Field, tc.field)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	for _, tc := range []struct {
		method, path string
		want         int
		allow        string
	}{
		{"PUT", "/api/v1/tenants", 405, "GET, HEAD, POST"},
		{"DELETE", "/api/v1/audit/events", 405, "POST"},
		{"POST", "/api/v1/apikeys/abc", 405, "DELETE"},
		{"POST", "/logs/default/checkpoint", 405, "GET, HEAD"},
		{"POST", "/metrics", 405, "GET, HEAD"},
		{"GET", "/api/v1/nothing", 404, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp := ts.do(tc.method, tc.path, ts.operator, nil, "", tc.want, nil)
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow: %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestTilesWithinCheckpoint(t *testing.T) {
	ts, reader, n := frozenCheckpoint(t, 300)
	// Grow the log past the checkpoint.
	for i := 0; i < 3; i++ {
		ts.get("/api/v1/audit/checkpoint", reader)
	}
	full, part := n/256, int(n%256)
	for _, tc := range []struct {
		path string
		want int
	}{
		{tree.TilePath(0, 0, 0), 200},
		{tree.TilePath(-1, 0, 0), 200},
		{tree.TilePath(0, full, part), 200},
		{tree.TilePath(-1, full, part), 200},
		{tree.TilePath(1, 0, int(n/256)), 200},
		{tree.TilePath(0, full, part+1), 404},
		{tree.TilePath(-1, full, part+1), 404},
		{tree.TilePath(1, 0, int(n/256)+1), 404},
		{tree.TilePath(0, full, 0), 404},
		{tree.TilePath(0, 1<<40, 0), 404},
		{tree.TilePath(9, 0, 1), 404},
		{"tile/0/abc", 400},
		{"tile/0/1000", 400},
		{"tile/0/000.p/0", 400},
		{"tile/0/000.p/256", 400},
		{"tile/64/000", 400},
		{"tile/entries", 400},
		{"tile/0/x1/", 400},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := ts.do("GET", "/logs/default/"+tc.path, reader, nil, "", tc.want, nil)
			if tc.want == 400 {
				b, _ := io.ReadAll(resp.Body)
				if strings.Contains(string(b), "tree:") || !strings.Contains(string(b), "not a tile path") {
					t.Errorf("the problem is not clean: %s", b)
				}
			}
		})
	}
}
