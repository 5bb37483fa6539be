package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/ratelimit"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
	"github.com/prometheus/client_golang/prometheus"
	tlogproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// testRates are limits no functional test reaches.
var testRates = server.RateLimits{IP: lim(1e6), Key: lim(1e6), Account: lim(1e6), LoginIP: lim(1e6), LoginAccount: lim(1e6)}

func lim(n float64) ratelimit.Limit { return ratelimit.Limit{Rate: n, Burst: int(n)} }

// testServer is attest serving real HTTPS on a loopback port.
type testServer struct {
	t      *testing.T
	in     *instance.Instance
	url    string
	client *http.Client
	cert   *x509.Certificate
	// operator is an operator API key.
	operator string
	stop     func()
}

func start(t *testing.T, opts storetest.Options, cfg server.Config) *testServer {
	t.Helper()
	return startWith(t, opts, cfg, nil)
}

// startWith starts a server whose instance options edit may change.
func startWith(t *testing.T, opts storetest.Options, cfg server.Config, edit func(*instance.Options)) *testServer {
	t.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	io := instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL, Name: "test.example/attest",
		Log: auditlog.Config{Metrics: auditlog.NewMetrics(reg)}}
	if edit != nil {
		edit(&io)
	}
	in, err := instance.Open(ctx, io)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := server.LoadCertificate("", "", opts.DataDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 50 * time.Millisecond
	}
	cfg.Registry = reg
	if cfg.RateLimits == nil {
		// Tests make many requests from one address; the rate-limit tests
		// set their own limits.
		cfg.RateLimits = &testRates
	}
	srv, err := server.New(in, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx, ln, cert) }()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	ts := &testServer{t: t, in: in, url: "https://" + ln.Addr().String(), cert: leaf,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server stopped with %v", err)
			}
			in.DB.Close()
		})
	}
	t.Cleanup(ts.stop)
	op, _ := in.Operator(ctx)
	tok, _, err := in.CreateKey(ctx, op, access.RoleOperator, "test operator", time.Time{}, instance.SystemActor(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.operator = tok.Reveal()
	return ts
}

// key creates an API key through the API.
func (ts *testServer) key(tenantName, role string) string {
	ts.t.Helper()
	var out struct{ Key string }
	ts.do("POST", "/api/v1/apikeys", ts.operator, map[string]string{"Attest-Tenant": tenantName},
		fmt.Sprintf(`{"role":%q,"name":"test %s"}`, role, role), http.StatusCreated, &out)
	return out.Key
}

// do sends a request and checks its status; out, when set, receives the
// decoded JSON answer.
func (ts *testServer) do(method, path, key string, hdr map[string]string, body string, want int, out any) *http.Response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want != 0 && resp.StatusCode != want {
		ts.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			ts.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func event(id, action string) string {
	idPart := ""
	if id != "" {
		idPart = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{%s"occurred_at":"2026-11-30T10:00:00Z","source":"voice-api","actor":{"type":"user","id":"u-1",`+
		`"email":"ana@example.com","ip":"10.0.0.7"},"action":%q,"category":"data_access","outcome":{"result":"success"},`+
		`"target":{"type":"transcript","id":"t-9","name":"Call about 12 Elm Street"}}`, idPart, action)
}

type ingestResp struct {
	Accepted, Duplicate, Rejected int
	Results                       []struct {
		Index    int
		Status   string
		ID       string
		Sequence *int64
		LeafHash string `json:"leaf_hash"`
		Error    *struct{ Field, Reason string }
	}
}

func TestTLSAndHealth(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	pool := x509.NewCertPool()
	pool.AddCert(ts.cert)
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}}}
	if _, err := old.Get(ts.url + "/healthz"); err == nil {
		t.Fatal("a TLS 1.2 client was served")
	}
	resp := ts.do("GET", "/healthz", "", nil, "", http.StatusOK, nil)
	if resp.ProtoMajor != 2 || resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("served %s over TLS %x, want HTTP/2 over TLS 1.3", resp.Proto, resp.TLS.Version)
	}
	ts.do("GET", "/readyz", "", nil, "", http.StatusOK, nil)
	ts.do("POST", "/api/v1/audit/events", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
		event("", "a.b"), http.StatusOK, nil)
	// The checkpoint age appears once the first checkpoints are signed,
	// which the server does in the background as it starts.
	var m *http.Response
	var b []byte
	for range 100 {
		m = ts.do("GET", "/metrics", ts.operator, nil, "", http.StatusOK, nil)
		b, _ = io.ReadAll(m.Body)
		if bytes.Contains(b, []byte("attest_audit_checkpoint_age_seconds")) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range []string{"attest_audit_events_total", "attest_audit_batch_events", "attest_audit_commit_seconds",
		"attest_audit_log_size", "attest_audit_checkpoint_age_seconds", "attest_http_requests_total"} {
		if !bytes.Contains(b, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, h := range []string{"X-Content-Type-Options", "Strict-Transport-Security", "X-Request-Id"} {
		if m.Header.Get(h) == "" && h != "X-Request-Id" {
			t.Errorf("response lacks %s", h)
		}
	}
}

func TestIngest(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ts := start(t, opts, server.Config{MaxBodyBytes: 64 << 10})
		ing := ts.key(tenant.Default, "ingest")
		var r ingestResp
		ts.do("POST", "/api/v1/audit/events", ing, nil, event("e1", "transcript.read"), http.StatusOK, &r)
		if r.Accepted != 1 || r.Results[0].Sequence == nil || r.Results[0].LeafHash == "" {
			t.Fatalf("single event: %+v", r)
		}
		first := *r.Results[0].Sequence
		// An array with a duplicate, a new event and two bad ones.
		body := "[" + event("e1", "transcript.read") + "," + event("e2", "recording.play") + `,{"occurred_at":"2026-11-30T10:00:00Z","actr":{}}` +
			"," + strings.Replace(event("e3", "x.y"), `"10.0.0.7"`, `"10.0.0.300"`, 1) + "]"
		ts.do("POST", "/api/v1/audit/events", ing, nil, body, http.StatusOK, &r)
		if r.Accepted != 1 || r.Duplicate != 1 || r.Rejected != 2 {
			t.Fatalf("array: %+v", r)
		}
		if r.Results[0].Status != "duplicate" || *r.Results[0].Sequence != first {
			t.Errorf("duplicate answered %+v, want the original sequence %d", r.Results[0], first)
		}
		if e := r.Results[2].Error; e == nil || e.Field != "actr" {
			t.Errorf("unknown field answered %+v", r.Results[2])
		}
		if e := r.Results[3].Error; e == nil || e.Field != "actor.ip" {
			t.Errorf("bad IP answered %+v", r.Results[3])
		}
		// An id reused for another event is refused, in a batch and across
		// requests.
		ts.do("POST", "/api/v1/audit/events", ing, nil, "["+event("e1", "recording.delete")+","+event("e9", "a.b")+","+
			event("e9", "a.c")+"]", http.StatusOK, &r)
		for _, i := range []int{0, 2} {
			if e := r.Results[i].Error; e == nil || e.Field != "id" || !strings.Contains(e.Reason, "different event") {
				t.Errorf("reused id, result %d: %+v", i, r.Results[i])
			}
		}
		// NDJSON, gzip-compressed, with a blank line and a broken line.
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		fmt.Fprintf(zw, "%s\n\n{broken\n%s\n", event("e4", "a.b"), event("e5", "a.c"))
		zw.Close()
		ts.do("POST", "/api/v1/audit/events", ing, map[string]string{"Content-Type": "application/x-ndjson",
			"Content-Encoding": "gzip"}, buf.String(), http.StatusOK, &r)
		if r.Accepted != 2 || r.Rejected != 1 || r.Results[1].Index != 1 {
			t.Fatalf("ndjson: %+v", r)
		}
		// All rejected is a 400; too large is a 413 and stores nothing.
		ts.do("POST", "/api/v1/audit/events", ing, nil, `{"action":"x"}`, http.StatusBadRequest, &r)
		big := "[" + strings.Repeat(event("", "a.b")+",", 300) + event("", "a.b") + "]"
		ts.do("POST", "/api/v1/audit/events", ing, nil, big, http.StatusRequestEntityTooLarge, nil)
		// A tenant key cannot write into another tenant.
		ts.do("POST", "/api/v1/audit/events", ing, nil, strings.Replace(event("e6", "a.b"), `{"id"`, `{"tenant":"operator","id"`, 1),
			http.StatusBadRequest, &r)
		if r.Results[0].Error.Field != "tenant" {
			t.Errorf("cross-tenant event: %+v", r.Results[0])
		}
		var page struct {
			Items    []struct{ Sequence int64 }
			TreeSize int64 `json:"tree_size"`
		}
		reader := ts.key(tenant.Default, "reader")
		ts.do("GET", "/api/v1/compliance/audit-trail?source=voice-api", reader, nil, "", http.StatusOK, &page)
		if len(page.Items) != 5 {
			t.Errorf("default tenant log holds %d events from voice-api, want 5", len(page.Items))
		}
	})
}

func TestAuthorization(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{})
	ing := ts.key(tenant.Default, "ingest")
	reader := ts.key(tenant.Default, "reader")
	admin := ts.key(tenant.Default, "admin")
	for _, tc := range []struct {
		name, method, path, key string
		hdr                     map[string]string
		body                    string
		want                    int
	}{
		{"no key", "GET", "/api/v1/compliance/audit-trail", "", nil, "", 401},
		{"malformed key", "GET", "/api/v1/compliance/audit-trail", "atk_nope", nil, "", 401},
		{"unknown key", "GET", "/api/v1/compliance/audit-trail", "atk_aaaaaaaaaaaaaaaa_" + strings.Repeat("a", 52), nil, "", 401},
		{"ingest key cannot read", "GET", "/api/v1/compliance/audit-trail", ing, nil, "", 403},
		{"reader cannot ingest", "POST", "/api/v1/audit/events", reader, nil, event("", "a.b"), 403},
		{"reader cannot make keys", "POST", "/api/v1/apikeys", reader, nil, `{"role":"reader"}`, 403},
		{"admin cannot make operator keys", "POST", "/api/v1/apikeys", admin, nil, `{"role":"operator"}`, 403},
		{"admin cannot make tenants", "POST", "/api/v1/tenants", admin, nil, `{"name":"x"}`, 403},
		{"tenant key naming another tenant", "GET", "/api/v1/compliance/audit-trail", reader, map[string]string{"Attest-Tenant": "operator"}, "", 404},
		{"tenant key on another tenant's tiles", "GET", "/logs/operator/checkpoint", reader, nil, "", 404},
		{"operator naming a missing tenant", "GET", "/api/v1/compliance/audit-trail", ts.operator, map[string]string{"Attest-Tenant": "nobody"}, "", 404},
		{"unknown route", "GET", "/api/v1/nothing", reader, nil, "", 404},
		{"unknown query parameter", "GET", "/api/v1/compliance/audit-trail?colour=red", reader, nil, "", 400},
		{"reader reads", "GET", "/api/v1/compliance/audit-trail", reader, nil, "", 200},
		{"admin makes an ingest key", "POST", "/api/v1/apikeys", admin, nil, `{"role":"ingest","name":"svc"}`, 201},
		{"unknown field in a key request", "POST", "/api/v1/apikeys", admin, nil, `{"role":"ingest","colour":"red"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ts.do(tc.method, tc.path, tc.key, tc.hdr, tc.body, tc.want, nil)
			if tc.want >= 400 {
				var p struct {
					Status    int
					RequestID string `json:"request_id"`
				}
				b, _ := io.ReadAll(resp.Body)
				if err := json.Unmarshal(b, &p); err != nil || p.Status != tc.want || p.RequestID == "" {
					t.Errorf("answer is not a problem document with a request id: %s", b)
				}
				if tc.key != "" && bytes.Contains(b, []byte(tc.key)) {
					t.Errorf("the answer repeats the key")
				}
			}
		})
	}

	// A revoked or expired key fails on its next request.
	var k struct{ ID, Key string }
	ts.do("POST", "/api/v1/apikeys", admin, nil, `{"role":"reader","expires":"1h"}`, 201, &k)
	ts.do("GET", "/api/v1/compliance/audit-trail", k.Key, nil, "", 200, nil)
	ts.do("DELETE", "/api/v1/apikeys/"+k.ID, admin, nil, "", 200, nil)
	ts.do("GET", "/api/v1/compliance/audit-trail", k.Key, nil, "", 401, nil)
	ts.do("DELETE", "/api/v1/apikeys/"+k.ID, reader, nil, "", 403, nil)

	// Every request above is in the audit trail, denied ones included, and
	// no key's secret is.
	time.Sleep(200 * time.Millisecond)
	var page struct {
		Items []struct {
			Event struct {
				Action  string
				Actor   struct{ ID, Type string }
				Outcome struct{ Result string }
			}
		}
	}
	ts.do("GET", "/api/v1/compliance/audit-trail?limit=1000", ts.operator, nil, "", 200, &page)
	counts := map[string]int{}
	raw := ts.do("GET", "/api/v1/compliance/audit-trail?limit=1000", ts.operator, nil, "", 200, nil)
	body, _ := io.ReadAll(raw.Body)
	for _, it := range page.Items {
		counts[it.Event.Action+" "+it.Event.Outcome.Result]++
	}
	if counts["audit.trail.query denied"] < 2 {
		t.Errorf("operator log lacks the unauthenticated queries: %v", counts)
	}
	if counts["api.unknown failure"] != 0 {
		t.Errorf("a tenant key's request landed in the operator log: %v", counts)
	}
	for _, secret := range []string{ing, reader, admin, k.Key} {
		if bytes.Contains(body, []byte(secret[len(secret)-52:])) {
			t.Errorf("a key's secret is in the audit trail")
		}
	}
	ts.do("GET", "/api/v1/compliance/audit-trail?limit=1000&action=apikey.create", admin, nil, "", 200, &page)
	if len(page.Items) < 2 {
		t.Errorf("the default tenant's log has %d apikey.create events, want at least 2", len(page.Items))
	}
}

func TestProofsAndTiles(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ts := start(t, opts, server.Config{})
		ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
		var lines []string
		for i := 0; i < 700; i++ {
			lines = append(lines, event(fmt.Sprintf("p-%d", i), "transcript.read"))
		}
		var r ingestResp
		ts.do("POST", "/api/v1/audit/events", ing, map[string]string{"Content-Type": "application/x-ndjson"},
			strings.Join(lines, "\n"), http.StatusOK, &r)
		if r.Accepted != 700 {
			t.Fatalf("ingested %d of 700", r.Accepted)
		}
		vk := strings.TrimSpace(ts.get("/api/v1/audit/public-key", reader))
		var cp *checkpoint.Checkpoint
		for deadline := time.Now().Add(time.Second); cp == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			resp := ts.do("GET", "/api/v1/audit/checkpoint", reader, nil, "", 0, nil)
			if resp.StatusCode != http.StatusOK {
				continue
			}
			note, _ := io.ReadAll(resp.Body)
			c, err := checkpoint.Open(note, ts.in.Log.Origin(tenant.Default), vk)
			if err != nil {
				t.Fatal(err)
			}
			if c.Size >= 700 {
				cp = c
			}
		}
		if cp == nil {
			t.Fatal("no checkpoint covers the events within one second")
		}
		// An inclusion proof by leaf hash, checked by an independent
		// implementation against the signed root.
		lh := r.Results[123].LeafHash
		var inc struct {
			Sequence   int64
			TreeSize   int64 `json:"tree_size"`
			Hashes     []string
			Checkpoint string
		}
		ts.do("GET", "/api/v1/audit/proofs/inclusion?leaf_hash="+url.QueryEscape(lh), reader, nil, "", 200, &inc)
		leaf, _ := base64.StdEncoding.DecodeString(lh)
		icp, err := checkpoint.Open([]byte(inc.Checkpoint), ts.in.Log.Origin(tenant.Default), vk)
		if err != nil || icp.Size != inc.TreeSize || icp.Size < cp.Size {
			t.Fatalf("the proof's checkpoint: %+v, %v", icp, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(inc.Sequence), uint64(icp.Size), leaf, decodeAll(t, inc.Hashes), icp.Root[:]); err != nil || inc.Sequence != *r.Results[123].Sequence {
			t.Fatalf("inclusion proof of %d: %v", inc.Sequence, err)
		}
		// The same in C2SP tlog-proof form, checkpoint included.
		var tp tlogproof.TLogProof
		seq5 := *r.Results[5].Sequence
		if err := tp.Unmarshal([]byte(ts.get(fmt.Sprintf("/api/v1/audit/proofs/inclusion?sequence=%d&format=tlog-proof", seq5), reader))); err != nil {
			t.Fatal(err)
		}
		pc, err := checkpoint.Open(tp.Checkpoint, ts.in.Log.Origin(tenant.Default), vk)
		if err != nil {
			t.Fatal(err)
		}
		lh5, _ := base64.StdEncoding.DecodeString(r.Results[5].LeafHash)
		var hs [][]byte
		for _, h := range tp.Hashes {
			hs = append(hs, h[:])
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, tp.Index, uint64(pc.Size), lh5, hs, pc.Root[:]); err != nil {
			t.Fatalf("tlog-proof does not verify: %v", err)
		}
		var cons struct {
			From, To int64
			FromRoot string `json:"from_root"`
			ToRoot   string `json:"to_root"`
			Hashes   []string
		}
		ts.do("GET", "/api/v1/audit/proofs/consistency?from=100", reader, nil, "", 200, &cons)
		oldRoot := decodeAll(t, []string{cons.FromRoot})[0]
		newRoot := decodeAll(t, []string{cons.ToRoot})[0]
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 100, uint64(cons.To), decodeAll(t, cons.Hashes), oldRoot, newRoot); err != nil {
			t.Fatalf("consistency proof %d -> %d (%d hashes) does not verify: %v", cons.From, cons.To, len(cons.Hashes), err)
		}
		ccp := ts.checkpointAt(reader, vk, cons.To)
		if !bytes.Equal(newRoot, ccp.Root[:]) {
			t.Fatalf("consistency proof to the latest checkpoint ends at another root")
		}
		// The tiles, read through x/mod's verifying tile reader as a stock
		// client would, give the same tree; every entry bundle hashes to
		// its level-0 tile.
		tr := &tileClient{ts: ts, key: reader, tenant: tenant.Default}
		th := tlog.TileHashReader(tlog.Tree{N: cp.Size, Hash: tlog.Hash(cp.Root)}, tr)
		got, err := tlog.TreeHash(cp.Size, th)
		if err != nil || got != tlog.Hash(cp.Root) {
			t.Fatalf("tree hash through tiles: %x, %v", got, err)
		}
		for n := int64(0); n*256 < cp.Size; n++ {
			w := min(256, cp.Size-n*256)
			bundle := tr.fetch(tree.TilePath(-1, n, int(w%256)))
			level0 := tr.fetch(tree.TilePath(0, n, int(w%256)))
			for i := 0; len(bundle) > 0; i++ {
				l := int(bundle[0])<<8 | int(bundle[1])
				h := tree.LeafHash(bundle[2 : 2+l])
				if !bytes.Equal(h[:], level0[i*32:(i+1)*32]) {
					t.Fatalf("entry %d of bundle %d does not hash to its tile", i, n)
				}
				bundle = bundle[2+l:]
			}
		}
		// The event endpoint gives the event, its leaf and its proof.
		var ev struct {
			Sequence int64
			Leaf     string
			Event    map[string]any
			Proof    struct {
				TreeSize int64 `json:"tree_size"`
			}
		}
		ts.do("GET", fmt.Sprintf("/api/v1/audit/events/%d", *r.Results[42].Sequence), reader, nil, "", 200, &ev)
		lb, _ := base64.StdEncoding.DecodeString(ev.Leaf)
		if lh42 := tree.LeafHash(lb); b64(lh42[:]) != r.Results[42].LeafHash || ev.Proof.TreeSize < 700 {
			t.Fatalf("event 42: leaf hash or proof wrong: %+v", ev.Proof)
		}
		if actor, _ := ev.Event["actor"].(map[string]any); actor["email"] != "ana@example.com" {
			t.Errorf("event 42 does not show its personal values: %v", ev.Event["actor"])
		}
		if bytes.Contains(lb, []byte("ana@example.com")) || bytes.Contains(lb, []byte("10.0.0.7")) {
			t.Errorf("the leaf holds a personal value in clear")
		}
	})
}

// checkpointAt returns the signed checkpoint at exactly size, through the
// inclusion proof endpoint, which carries it.
func (ts *testServer) checkpointAt(key, vk string, size int64) *checkpoint.Checkpoint {
	ts.t.Helper()
	var inc struct{ Checkpoint string }
	ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?sequence=0&tree_size=%d", size), key, nil, "", 200, &inc)
	c, err := checkpoint.Open([]byte(inc.Checkpoint), ts.in.Log.Origin(tenant.Default), vk)
	if err != nil || c.Size != size {
		ts.t.Fatalf("checkpoint at %d: %+v %v", size, c, err)
	}
	return c
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func (ts *testServer) get(path, key string) string {
	resp := ts.do("GET", path, key, nil, "", http.StatusOK, nil)
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func decodeAll(t *testing.T, ss []string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// tileClient fetches C2SP tiles over HTTPS for x/mod's tlog.
type tileClient struct {
	ts     *testServer
	key    string
	tenant string
}

func (c *tileClient) fetch(p string) []byte {
	resp := c.ts.do("GET", "/logs/"+c.tenant+"/"+p, c.key, nil, "", http.StatusOK, nil)
	b, _ := io.ReadAll(resp.Body)
	return b
}

func (c *tileClient) Height() int { return 8 }

func (c *tileClient) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		w := t.W
		if w == 256 {
			w = 0
		}
		out[i] = c.fetch(tree.TilePath(t.L, t.N, w))
	}
	return out, nil
}

func (c *tileClient) SaveTiles([]tlog.Tile, [][]byte) {}

// TestKeyHistoryUnproven checks that a signing key written into the
// database directly is not listed as one of the log's keys.
func TestKeyHistoryUnproven(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ts := start(t, opts, server.Config{})
		reader := ts.key(tenant.Default, "reader")
		_, err := ts.in.DB.Write.Exec(ts.in.DB.Rebind(`INSERT INTO signing_keys (id, algorithm, public_key, created_at)
			VALUES ('0000000000000000', 'ed25519', ?, 1)`), make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		if opts.URL == "" {
			// SQLite takes a time written as text; the history still reads.
			if _, err := ts.in.DB.Write.Exec(`INSERT INTO signing_keys (id, algorithm, public_key, created_at, retired_at)
				VALUES ('1111111111111111', 'ed25519', x'01', 'yesterday', 'never')`); err != nil {
				t.Fatal(err)
			}
		}
		var out struct {
			KeyID    string `json:"key_id"`
			History  []struct{ ID string }
			Unproven []struct{ ID string }
		}
		ts.do("GET", "/api/v1/audit/public-key?format=json", reader, nil, "", http.StatusOK, &out)
		if len(out.History) != 1 || out.History[0].ID != out.KeyID {
			t.Errorf("history %+v, want only the server's key %s", out.History, out.KeyID)
		}
		injected := 1
		if opts.URL == "" {
			injected = 2
		}
		if len(out.Unproven) != injected || out.Unproven[0].ID != "0000000000000000" {
			t.Errorf("unproven %+v, want the injected keys", out.Unproven)
		}

		// A row that calls the server's key retired, or its loss, does not
		// take the key out of the history.
		if _, err := ts.in.DB.Write.Exec(ts.in.DB.Rebind(`UPDATE signing_keys SET retired_at = 2 WHERE id = ?`), out.KeyID); err != nil {
			t.Fatal(err)
		}
		ts.do("GET", "/api/v1/audit/public-key?format=json", reader, nil, "", http.StatusOK, &out)
		if len(out.History) != 1 || out.History[0].ID != out.KeyID || len(out.Unproven) != injected+1 {
			t.Errorf("with the key's row retired: history %+v, unproven %+v", out.History, out.Unproven)
		}
		if _, err := ts.in.DB.Write.Exec(ts.in.DB.Rebind(`DELETE FROM signing_keys WHERE id = ?`), out.KeyID); err != nil {
			t.Fatal(err)
		}
		ts.do("GET", "/api/v1/audit/public-key?format=json", reader, nil, "", http.StatusOK, &out)
		if len(out.History) != 1 || out.History[0].ID != out.KeyID || len(out.Unproven) != injected {
			t.Errorf("with the key's row deleted: history %+v, unproven %+v", out.History, out.Unproven)
		}
	})
}

// TestRequestTextIsCleaned sends paths and headers that hold control
// characters, invalid UTF-8 and long multi-byte text: the events attest
// records of them must be ones its own decoder reads back.
func TestRequestTextIsCleaned(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ts := start(t, opts, server.Config{})
		reader := ts.key(tenant.Default, "reader")
		long := "/api/v1/audit/events/" + strings.Repeat("é", 1100)
		for _, r := range []struct{ path, key string }{
			{"/api/v1/audit/events/%0a", ""},
			{"/api/v1/audit/events/%7f", reader},
			{"/logs/%09/checkpoint", reader},
			{"/api/v1/audit/events/%ff%fe", reader},
			{long, reader},
		} {
			ts.do("GET", r.path, r.key, map[string]string{"User-Agent": "agent\twith\ttabs", "X-Request-Id": "r\xffq"}, "", 0, nil)
		}
		ctx := context.Background()
		op, err := ts.in.Operator(ctx)
		if err != nil {
			t.Fatal(err)
		}
		def, err := ts.in.Tenants.ByName(ctx, tenant.Default)
		if err != nil {
			t.Fatal(err)
		}
		for _, ten := range []*tenant.Tenant{op, def} {
			if err := ts.in.Log.Sync(ctx, ten); err != nil {
				t.Fatal(err)
			}
			rep, err := ts.in.Log.Verify(ctx, ten, auditlog.VerifyOptions{Deep: true})
			if err != nil || rep.Problem != nil {
				t.Fatalf("%s: verify --deep: %v %v", ten.Name, err, rep.Problem)
			}
			page, err := ts.in.Log.Query(ctx, ten, auditlog.Filter{Limit: 1000})
			if err != nil {
				t.Fatalf("%s: query: %v", ten.Name, err)
			}
			for _, it := range page.Items {
				if p := it.Event.Request.Path; strings.ContainsAny(p, "\n\t\x7f") || !utf8.ValidString(p) || len(p) > 2048 {
					t.Errorf("%s: stored path %q", ten.Name, p)
				}
			}
		}
	})
}

// TestForwardedForZone records a client address named by a trusted proxy
// without the interface zone the proxy may have added.
func TestForwardedForZone(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	ts := start(t, opts, server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	reader := ts.key(tenant.Default, "reader")
	ts.do("GET", "/api/v1/audit/checkpoint", reader, map[string]string{"X-Forwarded-For": "fe80::1%eth0"}, "", 0, nil)
	ctx := context.Background()
	def, err := ts.in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.in.Log.Sync(ctx, def); err != nil {
		t.Fatal(err)
	}
	page, err := ts.in.Log.Query(ctx, def, auditlog.Filter{ClientIP: "fe80::1", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Event.Actor.IP != "fe80::1" {
		t.Fatalf("events from fe80::1: %d", len(page.Items))
	}
}
