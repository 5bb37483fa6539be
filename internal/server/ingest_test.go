package server_test

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// stored counts the events from voice-api in the default tenant's log.
func (ts *testServer) stored(reader string) int {
	ts.t.Helper()
	var page struct{ Items []json.RawMessage }
	ts.do("GET", "/api/v1/compliance/audit-trail?source=voice-api&limit=1000", reader, nil, "", http.StatusOK, &page)
	return len(page.Items)
}

func events(n int, sep string) string {
	var evs []string
	for i := 0; i < n; i++ {
		evs = append(evs, event("", "a.b"))
	}
	return strings.Join(evs, sep)
}

func TestIngestLimits(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{MaxEvents: 5, MaxBodyBytes: 64 << 10})
	ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
	ndjson := map[string]string{"Content-Type": "application/x-ndjson"}
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		body       string
	}{
		{"array", "/api/v1/audit/events", nil, "[" + events(6, ",") + "]"},
		{"ndjson", "/api/v1/audit/events", ndjson, events(6, "\n\n")},
		{"import", "/api/v1/audit/events?format=ndjson", nil, events(6, "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ts.do("POST", tc.path, ing, tc.hdr, tc.body, http.StatusRequestEntityTooLarge, nil)
			b, _ := io.ReadAll(resp.Body)
			if !bytes.Contains(b, []byte("at most 5 events")) {
				t.Errorf("the answer does not name the limit: %s", b)
			}
			if n := ts.stored(reader); n != 0 {
				t.Errorf("%d events stored from a refused request", n)
			}
		})
	}
	var r ingestResp
	ts.do("POST", "/api/v1/audit/events", ing, ndjson, events(5, "\n")+"\n\n", http.StatusOK, &r)
	if r.Accepted != 5 {
		t.Errorf("accepted %d of 5 events at the limit", r.Accepted)
	}

	// An empty array is an empty answer, trailing data refuses the request.
	resp := ts.do("POST", "/api/v1/audit/events", ing, nil, " [ ] ", http.StatusOK, nil)
	if b, _ := io.ReadAll(resp.Body); !bytes.Contains(b, []byte(`"results":[]`)) {
		t.Errorf("an empty array answered %s, want empty results", b)
	}
	for _, trailer := range []string{"x", "[]", "{}", ","} {
		ts.do("POST", "/api/v1/audit/events", ing, nil, "["+event("", "a.b")+"]"+trailer, http.StatusBadRequest, nil)
	}
	if n := ts.stored(reader); n != 5 {
		t.Errorf("%d events stored, want the 5 accepted", n)
	}

	// A duplicate name or invalid UTF-8 inside one event rejects that event
	// alone.
	dup := strings.Replace(event("", "a.b"), `"action":`, `"action":"x.y","action":`, 1)
	badUTF8 := strings.Replace(event("", "a.b"), "Elm Street", "Elm \xff Street", 1)
	ts.do("POST", "/api/v1/audit/events", ing, nil, "["+dup+","+event("", "a.b")+","+badUTF8+"]", http.StatusOK, &r)
	if r.Accepted != 1 || r.Rejected != 2 || r.Results[1].Status != "accepted" {
		t.Errorf("array with a duplicate name and bad UTF-8: %+v", r)
	}
}

// TestGzipBomb sends gzip bodies that decompress past the body limit, over
// HTTP/1.1 and HTTP/2, as Content-Encoding and as an imported file.
func TestGzipBomb(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{MaxBodyBytes: 64 << 10})
	ing := ts.key(tenant.Default, "ingest")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("[" + event("", "a.b")))
	zw.Write(bytes.Repeat([]byte(" "), 1<<20))
	zw.Write([]byte("]"))
	zw.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.cert)
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	for _, tc := range []struct {
		name   string
		client *http.Client
		proto  int
	}{{"http1", h1, 1}, {"http2", ts.client, 2}} {
		for _, path := range []string{"/api/v1/audit/events", "/api/v1/audit/events?format=ndjson"} {
			t.Run(tc.name+path, func(t *testing.T) {
				req, _ := http.NewRequest("POST", ts.url+path, bytes.NewReader(buf.Bytes()))
				req.Header.Set("Authorization", "Bearer "+ing)
				if !strings.Contains(path, "format") {
					req.Header.Set("Content-Encoding", "gzip")
				}
				resp, err := tc.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.ProtoMajor != tc.proto {
					t.Errorf("status %d over HTTP/%d, want 413 over HTTP/%d: %s", resp.StatusCode, resp.ProtoMajor, tc.proto, b)
				}
				if tc.proto == 1 && !strings.Contains(string(b), `"field":"body"`) {
					t.Errorf("the 413 names no field: %s", b)
				}
			})
		}
	}
	// An encoding attest does not take is named as the field at fault.
	for _, enc := range []string{"deflate", "br", "gzip, gzip"} {
		resp := ts.do("POST", "/api/v1/audit/events", ing, map[string]string{"Content-Encoding": enc}, event("", "a.b"),
			http.StatusUnsupportedMediaType, nil)
		if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), `"field":"Content-Encoding"`) {
			t.Errorf("Content-Encoding %s: %s", enc, b)
		}
	}
}

// TestNoForgedSelfEvents checks that no producer sends events under
// attest's own source name, nor into the operator tenant, which holds
// attest's own audit trail, and that no ingest key is made for it.
func TestNoForgedSelfEvents(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	ing := ts.key(tenant.Default, "ingest")
	admin := ts.key(tenant.Operator, "admin")
	toDefault := map[string]string{"Attest-Tenant": tenant.Default}
	toOperator := map[string]string{"Attest-Tenant": tenant.Operator}
	named := func(ten string) string {
		return strings.Replace(event("", "a.b"), "{", fmt.Sprintf(`{"tenant":%q,`, ten), 1)
	}
	for _, tc := range []struct {
		name, key string
		hdr       map[string]string
		body      string
		field     string
	}{
		{"source attest", ing, nil, strings.Replace(event("", "a.b"), `"voice-api"`, `"attest"`, 1), "source.name"},
		{"source object Attest", ing, nil,
			strings.Replace(event("", "a.b"), `"voice-api"`, `{"name":"Attest","host":"h"}`, 1), "source.name"},
		{"source attest by an operator key", ts.operator, toDefault,
			strings.Replace(event("", "a.b"), `"voice-api"`, `"attest"`, 1), "source.name"},
		{"operator key, its own tenant", ts.operator, nil, event("", "a.b"), "tenant"},
		{"operator key, Attest-Tenant operator", ts.operator, toOperator, event("", "a.b"), "tenant"},
		{"operator key, event names operator", ts.operator, toDefault, named(tenant.Operator), "tenant"},
		{"admin key of the operator tenant", admin, nil, event("", "a.b"), "tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r ingestResp
			ts.do("POST", "/api/v1/audit/events", tc.key, tc.hdr, tc.body, http.StatusBadRequest, &r)
			if r.Rejected != 1 || r.Results[0].Error == nil || r.Results[0].Error.Field != tc.field {
				t.Errorf("answer %+v, want the event rejected on %s", r, tc.field)
			}
			// A tenant key cannot name a tenant; it is not told to.
			if tc.key == admin && r.Results[0].Error != nil && strings.Contains(r.Results[0].Error.Reason, "Attest-Tenant") {
				t.Errorf("a tenant key is told to name a tenant: %q", r.Results[0].Error.Reason)
			}
		})
	}

	var r ingestResp
	ts.do("POST", "/api/v1/audit/events", ts.operator, nil, named(tenant.Default), http.StatusOK, &r)
	if r.Accepted != 1 {
		t.Errorf("an operator key naming the default tenant in the event: %+v, want it accepted", r)
	}
	resp := ts.do("POST", "/api/v1/apikeys", ts.operator, toOperator, `{"role":"ingest","name":"i"}`,
		http.StatusBadRequest, nil)
	if b, _ := io.ReadAll(resp.Body); !bytes.Contains(b, []byte("no ingest keys")) {
		t.Errorf("an ingest key for the operator tenant was refused with %s", b)
	}
}
