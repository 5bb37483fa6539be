package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

type retentionResp struct {
	Tenant        string
	RetentionDays int  `json:"retention_days"`
	HotDays       int  `json:"hot_days"`
	LegalHold     bool `json:"legal_hold"`
	HoldReason    string
	Default       bool
	Entries       int64
	ArchivedBelow int64 `json:"archived_below"`
	ExpiredBelow  int64 `json:"expired_below"`
	Segments      int
}

// settable is a clock the test moves.
type settable struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settable) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *settable) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// TestRetentionAPI sets a tenant's policy and legal hold through the API,
// and lets serve's retention job archive and then expire its entries.
func TestRetentionAPI(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		clock := &settable{t: time.Now().UTC()}
		ts := startWith(t, opts, server.Config{RetentionInterval: 50 * time.Millisecond, RetentionDelay: 10 * time.Millisecond},
			func(o *instance.Options) { o.Now = clock.now })
		ing, reader, admin := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader"), ts.key(tenant.Default, "admin")
		var r retentionResp
		ts.do("GET", "/api/v1/retention", reader, nil, "", http.StatusOK, &r)
		if !r.Default || r.RetentionDays != 2557 || r.HotDays != 400 || r.LegalHold {
			t.Fatalf("default policy = %+v", r)
		}
		// Readers and ingest keys cannot change it; bad values name their field.
		ts.do("PUT", "/api/v1/retention", reader, nil, `{"hot_days":30}`, http.StatusForbidden, nil)
		ts.do("PUT", "/api/v1/retention/legal-hold", ing, nil, `{"hold":true,"reason":"x"}`, http.StatusForbidden, nil)
		for body, field := range map[string]string{
			`{"retention_days":100}`:           "retention_days",
			`{"hot_days":0}`:                   "hot_days",
			`{"hot_days":3000}`:                "hot_days",
			`{"retention_days":"7y"}`:          "retention_days",
			`{"tenant":"other","hot_days":30}`: "tenant",
			`{}`:                               "body",
		} {
			var p struct{ Field string }
			ts.do("PUT", "/api/v1/retention", admin, nil, body, http.StatusBadRequest, &p)
			if p.Field != field {
				t.Errorf("PUT %s: field %q, want %q", body, p.Field, field)
			}
		}
		for body, field := range map[string]string{
			`{"reason":"matter 7"}`:             "hold",
			`{"hold":true}`:                     "reason",
			`{"hold":true,"reason":"a\u202eb"}`: "reason",
		} {
			var p struct{ Field string }
			ts.do("PUT", "/api/v1/retention/legal-hold", admin, nil, body, http.StatusBadRequest, &p)
			if p.Field != field {
				t.Errorf("PUT legal-hold %s: field %q, want %q", body, p.Field, field)
			}
		}
		ts.do("PUT", "/api/v1/retention", admin, nil, `{"hot_days":30}`, http.StatusOK, &r)
		if r.Default || r.HotDays != 30 || r.RetentionDays != 2557 {
			t.Fatalf("after PUT: %+v", r)
		}

		var lines []string
		for i := range 300 {
			lines = append(lines, personEvent(fmt.Sprintf("e-%d", i), "u-ana", "ana@example.com", "10.0.0.7"))
		}
		var ir ingestResp
		ts.do("POST", "/api/v1/audit/events", ing, map[string]string{"Content-Type": "application/x-ndjson"},
			strings.Join(lines, "\n"), http.StatusOK, &ir)
		if ir.Accepted != 300 {
			t.Fatalf("ingest: %+v", ir)
		}
		// Thirty-one days on, serve's job archives the whole blocks.
		clock.add(31 * 24 * time.Hour)
		waitUntil(t, func() bool {
			ts.do("GET", "/api/v1/retention", reader, nil, "", http.StatusOK, &r)
			return r.ArchivedBelow > 0
		})
		if r.ArchivedBelow%64 != 0 || r.ArchivedBelow < 256 || r.Segments != 1 {
			t.Fatalf("after the job: %+v", r)
		}
		// The archived events still read and query.
		var page pageResp
		ts.do("GET", "/api/v1/compliance/audit-trail?actor_id=u-ana&limit=1000", reader, nil, "", http.StatusOK, &page)
		if len(page.Items) != 300 {
			t.Fatalf("query over archived events found %d", len(page.Items))
		}
		ts.do("GET", "/api/v1/audit/events/3", reader, nil, "", http.StatusOK, nil)
		page = pageResp{}
		ts.do("GET", "/api/v1/compliance/audit-trail?action=audit.archive.create", reader, nil, "", http.StatusOK, &page)
		if len(page.Items) != 1 {
			t.Fatalf("archive events: %d", len(page.Items))
		}

		// Erasure reaches into the archive: the key is what is destroyed.
		ts.do("POST", "/api/v1/privacy/erasure", admin, nil, `{"subject":"u-ana","reason":"request 9"}`, http.StatusOK, nil)
		var ev struct{ Erased []string }
		ana := *ir.Results[5].Sequence
		if ana >= r.ArchivedBelow {
			t.Fatalf("event %d is not archived", ana)
		}
		ts.do("GET", fmt.Sprintf("/api/v1/audit/events/%d", ana), reader, nil, "", http.StatusOK, &ev)
		if len(ev.Erased) == 0 {
			t.Fatalf("an archived event of an erased subject still shows its personal values")
		}
		// A legal hold keeps everything past its retention, and refuses erasure.
		ts.do("PUT", "/api/v1/retention/legal-hold", admin, nil, `{"hold":true,"reason":"matter 7"}`, http.StatusOK, &r)
		if !r.LegalHold {
			t.Fatalf("hold not set: %+v", r)
		}
		ts.do("POST", "/api/v1/privacy/erasure", admin, nil, `{"subject":"u-ana","reason":"request 9"}`, http.StatusConflict, nil)
		// One hold at a time; releasing none is a mistake too.
		ts.do("PUT", "/api/v1/retention/legal-hold", admin, nil, `{"hold":true,"reason":"matter 8"}`, http.StatusConflict, nil)
		clock.add(2557 * 24 * time.Hour)
		time.Sleep(300 * time.Millisecond) // several rounds of the job
		ts.do("GET", "/api/v1/retention", reader, nil, "", http.StatusOK, &r)
		if r.ExpiredBelow != 0 {
			t.Fatalf("expired under legal hold: %+v", r)
		}
		ts.do("PUT", "/api/v1/retention/legal-hold", admin, nil, `{"hold":false,"reason":"matter 7 closed"}`, http.StatusOK, &r)
		ts.do("PUT", "/api/v1/retention/legal-hold", admin, nil, `{"hold":false,"reason":"again"}`, http.StatusConflict, nil)
		waitUntil(t, func() bool {
			ts.do("GET", "/api/v1/retention", reader, nil, "", http.StatusOK, &r)
			return r.ExpiredBelow > 0
		})
		ts.do("GET", "/api/v1/audit/events/3", reader, nil, "", http.StatusGone, nil)
		page = pageResp{}
		ts.do("GET", "/api/v1/compliance/audit-trail?action=audit.legal_hold.set", reader, nil, "", http.StatusOK, &page)
		if len(page.Items) != 1 {
			t.Fatalf("legal hold events: %d", len(page.Items))
		}
		rep, err := ts.in.Log.Verify(t.Context(), mustTenant(t, ts.in, tenant.Default), auditlog.VerifyOptions{Deep: true})
		if err != nil || rep.Problem != nil || rep.Expired == 0 {
			t.Fatalf("verify after expiry: %v, %+v", err, rep)
		}
	})
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
