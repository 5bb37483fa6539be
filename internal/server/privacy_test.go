package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

type pageResp struct {
	Items []struct {
		Sequence int64
		LeafHash string `json:"leaf_hash"`
		Event    struct {
			Actor   struct{ ID, Email, IP string }
			Target  struct{ Type, ID string }
			Details map[string]any
		}
		Erased []string
	}
}

func personEvent(id, actor, email, ip string) string {
	return fmt.Sprintf(`{"id":%q,"occurred_at":"2026-11-30T10:00:00Z","source":"voice-api","actor":{"type":"user","id":%q,`+
		`"email":%q,"ip":%q},"action":"recording.read","category":"data_access","outcome":{"result":"success"},`+
		`"target":{"type":"recording","id":"r-1"}}`, id, actor, email, ip)
}

// TestErasure erases a subject through the API and through a second
// process on the same store, and checks that the values read as erased
// everywhere while every hash, proof and the verifier are unchanged.
func TestErasure(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		ts := start(t, opts, server.Config{})
		ing, reader, admin := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader"), ts.key(tenant.Default, "admin")
		var lines []string
		for i := 0; i < 3; i++ {
			lines = append(lines, personEvent(fmt.Sprintf("e-ana-%d", i), "u-ana", "ana@example.com", "10.0.0.7"))
		}
		lines = append(lines, personEvent("e-bo-0", "u-bo", "bo@example.com", "10.0.0.8"))
		var r ingestResp
		ts.do("POST", "/api/v1/audit/events", ing, map[string]string{"Content-Type": "application/x-ndjson"},
			strings.Join(lines, "\n"), http.StatusOK, &r)
		if r.Accepted != 4 {
			t.Fatalf("accepted %d of 4", r.Accepted)
		}
		query := func(params string) pageResp {
			t.Helper()
			var p pageResp
			ts.do("GET", "/api/v1/compliance/audit-trail?"+params, reader, nil, "", http.StatusOK, &p)
			return p
		}
		// Reading them caches the subjects' keys in the server.
		if p := query("actor_id=u-ana"); len(p.Items) != 3 || p.Items[0].Event.Actor.Email != "ana@example.com" {
			t.Fatalf("before erasure: %+v", p)
		}
		if p := query("actor_id=u-bo"); len(p.Items) != 1 || p.Items[0].Event.Actor.Email != "bo@example.com" {
			t.Fatalf("before erasure: %+v", p)
		}
		head := func() auditlog.State {
			t.Helper()
			st, err := ts.in.Log.Head(ctx, ts.in.DB.Read, mustTenant(t, ts.in, tenant.Default).ID)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		before := head()

		// Refusals: each names its field, and no key is destroyed.
		erase := func(key, body string, want int) string {
			t.Helper()
			resp := ts.do("POST", "/api/v1/privacy/erasure", key, nil, body, want, nil)
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			return b.String()
		}
		if got := erase(admin, `{"subject":"u-ana"}`, http.StatusBadRequest); !strings.Contains(got, "reason") {
			t.Errorf("no reason: %s", got)
		}
		if got := erase(admin, `{"reason":"r"}`, http.StatusBadRequest); !strings.Contains(got, "subject") {
			t.Errorf("no subject: %s", got)
		}
		erase(admin, `{"subject":"u-ana","reason":"r","tenant":"other"}`, http.StatusBadRequest)
		erase(reader, `{"subject":"u-ana","reason":"r"}`, http.StatusForbidden)
		erase(ing, `{"subject":"u-ana","reason":"r"}`, http.StatusForbidden)
		erase("", `{"subject":"u-ana","reason":"r"}`, http.StatusUnauthorized)
		if got := erase(admin, `{"subject":"u-nobody","reason":"r"}`, http.StatusNotFound); !strings.Contains(got, "no personal values") {
			t.Errorf("unknown subject: %s", got)
		}
		if got := erase(admin, `{"subject":"u-ana","reason":"r\u202eevil"}`, http.StatusBadRequest); !strings.Contains(got, "bidirectional") {
			t.Errorf("a reason with a bidirectional override: %s", got)
		}
		// attest's own actors: not by an admin, and never a key's own.
		adminActor := "apikey:" + strings.Split(admin, "_")[1]
		if got := erase(admin, fmt.Sprintf(`{"subject":%q,"reason":"r"}`, adminActor), http.StatusForbidden); !strings.Contains(got, "its own") {
			t.Errorf("an admin erasing its own trail: %s", got)
		}
		erase(admin, `{"subject":"apikey:someone","reason":"r"}`, http.StatusForbidden)
		erase(ts.operator, `{"subject":"apikey:`+strings.Split(ts.operator, "_")[1]+`","reason":"r"}`, http.StatusForbidden)
		if p := query("actor_id=u-ana"); p.Items[0].Event.Actor.Email != "ana@example.com" {
			t.Fatalf("a refused erasure erased: %+v", p.Items[0])
		}

		// The wrapped key, to look for on disk once it is destroyed.
		var wrapped []byte
		if err := ts.in.DB.Read.QueryRowContext(ctx, ts.in.DB.Rebind(`SELECT wrapped_key FROM subjects WHERE subject = ?`),
			"u-ana").Scan(&wrapped); err != nil || len(wrapped) < 32 {
			t.Fatalf("the subject's wrapped key: %x, %v", wrapped, err)
		}
		var done struct {
			Tenant, Subject string
			Generations     int64
			ErasedAt        string `json:"erased_at"`
		}
		ts.do("POST", "/api/v1/privacy/erasure", admin, nil, `{"subject":"u-ana","reason":"access request 42: erase me"}`,
			http.StatusOK, &done)
		if done.Tenant != tenant.Default || done.Subject != "u-ana" || done.Generations != 1 || done.ErasedAt == "" {
			t.Fatalf("erasure answer: %+v", done)
		}
		p := query("actor_id=u-ana")
		if len(p.Items) != 3 {
			t.Fatalf("after erasure the events are %d, want 3", len(p.Items))
		}
		for _, it := range p.Items {
			if it.Event.Actor.Email != "" || it.Event.Actor.IP != "" ||
				!slices.Equal(it.Erased, []string{"actor.email", "actor.ip"}) {
				t.Errorf("after erasure: %+v", it)
			}
		}
		if q := query("client_ip=10.0.0.7"); len(q.Items) != 0 {
			t.Errorf("an erased IP still matches: %+v", q.Items)
		}
		var one struct {
			Event  struct{ Actor struct{ Email string } }
			Erased []string
		}
		ts.do("GET", fmt.Sprintf("/api/v1/audit/events/%d", *r.Results[0].Sequence), reader, nil, "", http.StatusOK, &one)
		if one.Event.Actor.Email != "" || len(one.Erased) != 2 {
			t.Errorf("one event after erasure: %+v", one)
		}
		if q := query("actor_id=u-bo"); q.Items[0].Event.Actor.Email != "bo@example.com" {
			t.Errorf("another subject lost its values: %+v", q.Items[0])
		}
		// Every leaf hash is the one given at ingest, and its inclusion
		// proof verifies against the newest root.
		for i, it := range p.Items {
			want := r.Results[2-i]
			if it.Sequence != *want.Sequence || it.LeafHash != want.LeafHash {
				t.Errorf("item %d: sequence %d hash %s, ingest gave %d %s", i, it.Sequence, it.LeafHash, *want.Sequence, want.LeafHash)
			}
		}
		after := head()
		var inc struct {
			Sequence int64
			TreeSize int64 `json:"tree_size"`
			Hashes   []string
		}
		ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?leaf_hash=%s&tree_size=%d", url.QueryEscape(r.Results[1].LeafHash),
			after.Size), reader, nil, "", http.StatusOK, &inc)
		leaf, _ := base64.StdEncoding.DecodeString(r.Results[1].LeafHash)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(inc.Sequence), uint64(after.Size), leaf,
			decodeAll(t, inc.Hashes), after.Root[:]); err != nil {
			t.Errorf("inclusion proof after erasure: %v", err)
		}
		var cons struct{ Hashes []string }
		ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/consistency?from=%d&to=%d", before.Size, after.Size), reader, nil, "",
			http.StatusOK, &cons)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(before.Size), uint64(after.Size),
			decodeAll(t, cons.Hashes), before.Root[:], after.Root[:]); err != nil {
			t.Errorf("consistency proof across the erasure: %v", err)
		}

		// The erasure is in the trail, with its reason, without the values.
		rec := query("action=privacy.subject.erase&outcome=success")
		if len(rec.Items) != 1 || rec.Items[0].Event.Target.Type != "subject" || rec.Items[0].Event.Target.ID != "u-ana" ||
			rec.Items[0].Event.Details["reason"] != "access request 42: erase me" {
			t.Fatalf("the erasure's audit event: %+v", rec.Items)
		}
		// Erasing again destroys nothing more and says so.
		ts.do("POST", "/api/v1/privacy/erasure", admin, nil, `{"subject":"u-ana","reason":"again"}`, http.StatusOK, &done)
		if done.Generations != 0 {
			t.Errorf("a second erasure destroyed %d keys", done.Generations)
		}

		// Another process on the same store erases a subject whose key this
		// server holds in memory: the server stops using it.
		if q := query("actor_id=u-bo"); q.Items[0].Event.Actor.Email != "bo@example.com" {
			t.Fatalf("before the other process erases: %+v", q.Items[0])
		}
		other, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL, Name: "test.example/attest", MustExist: true})
		if err != nil {
			t.Fatal(err)
		}
		dt, err := other.Tenants.ByName(ctx, tenant.Default)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.EraseSubject(ctx, dt, "u-bo", "erased from the command line", instance.SystemActor(), nil); err != nil {
			t.Fatal(err)
		}
		other.Close()
		if q := query("actor_id=u-bo"); q.Items[0].Event.Actor.Email != "" || len(q.Items[0].Erased) != 2 {
			t.Errorf("the server still opens a key another process destroyed: %+v", q.Items[0])
		}

		// An event sent again after its subject's erasure is the duplicate
		// it was, though its values can no longer be compared.
		var again ingestResp
		ts.do("POST", "/api/v1/audit/events", ing, nil, lines[1], http.StatusOK, &again)
		if again.Duplicate != 1 || *again.Results[0].Sequence != *r.Results[1].Sequence {
			t.Errorf("an erased event sent again: %+v", again)
		}
		// With other content under the same id, it is still refused.
		ts.do("POST", "/api/v1/audit/events", ing, nil, strings.Replace(lines[1], "recording.read", "recording.delete", 1),
			http.StatusBadRequest, nil)

		// The subject's next event starts a new key, and reads in clear.
		ts.do("POST", "/api/v1/audit/events", ing, nil, personEvent("e-ana-new", "u-ana", "ana@example.net", "10.0.0.9"), http.StatusOK, nil)
		if q := query("actor_id=u-ana"); len(q.Items) != 4 || q.Items[0].Event.Actor.Email != "ana@example.net" || len(q.Items[0].Erased) != 0 {
			t.Errorf("the event after the erasure: %+v", q.Items[0])
		}

		// The whole log still verifies, deep checks included.
		rep, err := ts.in.Log.Verify(ctx, mustTenant(t, ts.in, tenant.Default), auditlog.VerifyOptions{Deep: true})
		if err != nil || rep.Problem != nil {
			t.Fatalf("verify after erasure: %+v, %v", rep.Problem, err)
		}
		if rep.Erased != 4 {
			t.Errorf("verify counts %d erased entries, want 4", rep.Erased)
		}
		// On SQLite: no erased value was ever stored in clear.
		if opts.URL == "" {
			ts.stop()
			files, _ := filepath.Glob(filepath.Join(opts.DataDir, "*"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err == nil && (bytes.Contains(b, []byte("ana@example.com")) || bytes.Contains(b, []byte("10.0.0.7"))) {
					t.Errorf("%s holds an erased value in clear", f)
				}
				if err == nil && bytes.Contains(b, wrapped) {
					t.Errorf("%s still holds the destroyed key", f)
				}
			}
		}
	})
}

func mustTenant(t *testing.T, in *instance.Instance, name string) *tenant.Tenant {
	t.Helper()
	tt, err := in.Tenants.ByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}
