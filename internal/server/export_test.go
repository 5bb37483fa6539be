package server_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/evidence"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// TestExport fetches an evidence bundle over HTTPS and verifies it with
// the public key alone, on SQLite and PostgreSQL.
func TestExport(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ts := start(t, opts, server.Config{})
		ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
		from := time.Now().UTC()
		var lines []string
		for i := 0; i < 30; i++ {
			lines = append(lines, event(fmt.Sprintf("x-%d", i), "transcript.read"))
		}
		ts.do("POST", "/api/v1/audit/events", ing, map[string]string{"Content-Type": "application/x-ndjson"},
			strings.Join(lines, "\n"), http.StatusOK, nil)
		// The request's own audit event may follow its answer.
		time.Sleep(300 * time.Millisecond)
		to := time.Now().UTC()
		q := url.Values{"from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}}
		var body []byte
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			resp := ts.do("GET", "/api/v1/compliance/audit-trail/export?"+q.Encode(), reader, nil, "", 0, nil)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "application/zip" {
				body = b
				if rep, err := evidence.Verify(bytes.NewReader(b), int64(len(b)), ts.vkey(reader), nil); err == nil && rep.Events == 31 {
					break
				}
			}
		}
		rep, err := evidence.Verify(bytes.NewReader(body), int64(len(body)), ts.vkey(reader), &evidence.Expected{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		// The 30 events and the audit event of the request that sent them.
		if rep.Events != 31 || rep.Manifest.Tenant != tenant.Default {
			t.Errorf("the bundle proves %d events of %s, want 31 of default", rep.Events, rep.Manifest.Tenant)
		}
		// Each bad period is refused on its field; an ingest key may not read.
		for _, tc := range []struct {
			params string
			field  string
		}{{"to=" + url.QueryEscape(to.Format(time.RFC3339Nano)), "from"}, {"from=x&to=y", "from"},
			{"from=" + url.QueryEscape(to.Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(from.Format(time.RFC3339Nano)), "to"},
			{q.Encode() + "&format=xml", "format"}} {
			resp := ts.do("GET", "/api/v1/compliance/audit-trail/export?"+tc.params, reader, nil, "", http.StatusBadRequest, nil)
			if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), `"field":"`+tc.field+`"`) {
				t.Errorf("%s: %s", tc.params, b)
			}
		}
		ts.do("GET", "/api/v1/compliance/audit-trail/export?"+q.Encode(), ing, nil, "", http.StatusForbidden, nil)
		// Each export was on record before it was handed over.
		var started struct {
			Items []struct {
				Event struct{ Details map[string]any }
			}
		}
		ts.do("GET", "/api/v1/compliance/audit-trail?action=audit.trail.export.start", reader, nil, "", http.StatusOK, &started)
		if len(started.Items) == 0 || started.Items[0].Event.Details["format"] != "bundle" {
			t.Errorf("the exports' records: %+v", started.Items)
		}

		// The events themselves, with their personal values.
		resp := ts.do("GET", "/api/v1/compliance/audit-trail/export?"+q.Encode()+"&format=ndjson", reader, nil, "", http.StatusOK, nil)
		b, _ := io.ReadAll(resp.Body)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 31 || !strings.Contains(lines[0], `"email":"ana@example.com"`) || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Errorf("ndjson: %d lines, first %.300s", len(lines), lines[0])
		}
		resp = ts.do("GET", "/api/v1/compliance/audit-trail/export?"+q.Encode()+"&format=csv", reader, nil, "", http.StatusOK, nil)
		rows, err := csv.NewReader(resp.Body).ReadAll()
		if err != nil || len(rows) != 32 || rows[0][0] != "sequence" || rows[1][9] != "ana@example.com" {
			t.Errorf("csv: %d rows, %v: %v", len(rows), err, rows[:min(2, len(rows))])
		}
	})
}

// vkey returns the verifier key of the default tenant's log.
func (ts *testServer) vkey(key string) string {
	return strings.TrimSpace(ts.get("/api/v1/audit/public-key", key))
}

// TestExportLarge proves a bundle of more entries than a manifest listing
// each of them could hold.
func TestExportLarge(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
	from := time.Now().UTC()
	var b strings.Builder
	for i := 0; i < 25000; i++ {
		b.WriteString(event(fmt.Sprintf("l-%d", i), "transcript.read"))
		b.WriteByte('\n')
	}
	ts.do("POST", "/api/v1/audit/events", ing, map[string]string{"Content-Type": "application/x-ndjson"}, b.String(), http.StatusOK, nil)
	to := time.Now().UTC()
	dt := mustTenant(t, ts.in, tenant.Default)
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		head, err := ts.in.Log.Head(ctx, ts.in.DB.Read, dt.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cp, err := ts.in.Log.LatestCheckpoint(ctx, ts.in.DB.Read, dt.ID); err == nil && cp.Size == head.Size {
			break
		}
	}
	var buf bytes.Buffer
	if _, err := ts.in.Log.ExportBundle(ctx, dt, from, to, &buf, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(bytes.NewReader(buf.Bytes()), int64(buf.Len()), ts.vkey(reader), &evidence.Expected{From: from, To: to})
	// The 25,000 events, and the request's own audit event when it was
	// received before the period's end.
	if err != nil || rep.Events < 25000 || rep.Events > 25001 {
		t.Fatalf("a bundle of 25,000 entries and more: %+v, %v", rep, err)
	}
}

// TestExportWithheldUnrecorded checks that an export whose start cannot be
// recorded in the audit trail is not sent: here the log has stopped
// taking events.
func TestExportWithheldUnrecorded(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	reader := ts.key(tenant.Default, "reader")
	ts.in.Log.Close()
	q := url.Values{"from": {time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "to": {time.Now().UTC().Format(time.RFC3339)}}
	for _, format := range []string{"bundle", "ndjson"} {
		q.Set("format", format)
		var p struct{ Detail string }
		resp := ts.do("GET", "/api/v1/compliance/audit-trail/export?"+q.Encode(), reader, nil, "", http.StatusServiceUnavailable, &p)
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || !strings.Contains(p.Detail, "withheld") {
			t.Fatalf("%s: withheld export answered %q: %q", format, ct, p.Detail)
		}
	}
}
