package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// upload builds a multipart/form-data body of fields and, unless content
// is nil, a file part.
func upload(t *testing.T, fields map[string]string, name string, content []byte) (string, map[string]string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	if content != nil {
		fw, err := w.CreateFormFile("file", name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(content)
	}
	w.Close()
	return b.String(), map[string]string{"Content-Type": w.FormDataContentType()}
}

type evidenceOut struct {
	ID, Control, Kind, SHA256, Status string
	Counts                            bool
	FileName                          string `json:"file_name"`
	MediaType                         string `json:"media_type"`
}

type problemOut struct {
	Field, Detail string
	Status        int
}

// refused sends a request that must fail with status want, naming field.
func (ts *testServer) refused(method, path, key string, hdr map[string]string, body string, want int, field string) {
	ts.t.Helper()
	var p problemOut
	ts.do(method, path, key, hdr, body, want, &p)
	if p.Field != field {
		ts.t.Errorf("%s %s: refused naming %q (%s), want %q", method, path, p.Field, p.Detail, field)
	}
}

func (ts *testServer) judgeControl(id string) (status string, findings []string) {
	ts.t.Helper()
	var run controlRun
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, `{"controls":["`+id+`"]}`, http.StatusOK, &run)
	status, findings, _ = run.of(ts.t, id)
	return status, findings
}

// TestEvidenceThroughTheAPI uploads a file, has it approved by a second
// person, downloads it, and watches the control pass until the evidence
// expires; self-approval, API-key approval and other tenants are refused.
func TestEvidenceThroughTheAPI(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		co1 := ts.enrol(c, tenant.Operator, "co1@example.com", "compliance_officer")
		co2 := ts.enrol(c, tenant.Operator, "co2@example.com", "compliance_officer")
		if st, _ := ts.judgeControl("GOV-05"); st != "no_evidence" {
			t.Errorf("GOV-05 before evidence: %s, want no_evidence", st)
		}
		now := c.Now()
		content := []byte("Security awareness training 2026: 42 of 42 people completed the course.\n")
		body, hdr := upload(t, map[string]string{"control": "GOV-05", "title": "Training completion 2026",
			"effective_at": now.Add(-time.Hour).Format(time.RFC3339),
			"expires_at":   now.Add(30 * 24 * time.Hour).Format(time.RFC3339)}, `..\reports\completion.txt`, content)
		var e evidenceOut
		ts.do("POST", "/api/v1/compliance/evidence", co1.session, hdr, body, http.StatusCreated, &e)
		sum := sha256.Sum256(content)
		if e.SHA256 != hex.EncodeToString(sum[:]) || e.Status != "pending_approval" || e.Counts ||
			e.FileName != "completion.txt" || e.Kind != "file" || !strings.HasPrefix(e.MediaType, "text/plain") {
			t.Errorf("submitted %+v", e)
		}
		if st, f := ts.judgeControl("GOV-05"); st != "no_evidence" || len(f) != 1 || f[0] != "evidence:"+e.ID {
			t.Errorf("GOV-05 pending approval: %s %v, want no evidence, naming the evidence", st, f)
		}

		approve := "/api/v1/compliance/evidence/" + e.ID + "/approve"
		ts.do("POST", approve, co1.session, nil, "", http.StatusForbidden, nil)
		ts.do("POST", approve, ts.operator, nil, "", http.StatusForbidden, nil)
		ts.do("POST", approve, ts.key(tenant.Operator, "admin"), nil, "", http.StatusForbidden, nil)
		ts.do("POST", approve, co2.session, nil, "", http.StatusOK, &e)
		if e.Status != "counting" || !e.Counts {
			t.Errorf("approved %+v", e)
		}
		ts.do("POST", approve, co2.session, nil, "", http.StatusConflict, nil)
		if st, _ := ts.judgeControl("GOV-05"); st != "pass" {
			t.Errorf("GOV-05 with approved evidence: %s, want pass", st)
		}

		resp := ts.do("GET", "/api/v1/compliance/evidence/"+e.ID+"/content", co1.session, nil, "", http.StatusOK, nil)
		got, _ := io.ReadAll(resp.Body)
		h := resp.Header
		if !bytes.Equal(got, content) || h.Get("X-Evidence-SHA256") != e.SHA256 || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Content-Disposition") != `attachment; filename=completion.txt` || h.Get("Repr-Digest") == "" {
			t.Errorf("download: %q with headers %v", got, h)
		}
		// The submission is in the trail with the SHA-256 of what was stored.
		trail := ts.waitTrail(tenant.Operator, "&action=compliance.evidence.submit&target_type=evidence&target_id="+e.ID, 1)
		if !strings.Contains(string(trail), hex.EncodeToString(sum[:])) {
			t.Errorf("the submission's event lacks the SHA-256 %x: %s", sum, trail)
		}

		// Another tenant's people and keys find nothing.
		other := ts.enrol(c, tenant.Default, "co@other.example", "compliance_officer")
		for _, key := range []string{other.session, ts.key(tenant.Default, "admin")} {
			ts.do("GET", "/api/v1/compliance/evidence/"+e.ID, key, nil, "", http.StatusNotFound, nil)
			ts.do("GET", "/api/v1/compliance/evidence/"+e.ID+"/content", key, nil, "", http.StatusNotFound, nil)
			ts.do("POST", "/api/v1/compliance/evidence/"+e.ID+"/revoke", key, nil, `{"reason":"x"}`, http.StatusNotFound, nil)
		}
		ts.do("POST", approve, other.session, nil, "", http.StatusNotFound, nil)
		var list struct{ Evidence []evidenceOut }
		ts.do("GET", "/api/v1/compliance/evidence", other.session, nil, "", http.StatusOK, &list)
		if len(list.Evidence) != 0 {
			t.Errorf("another tenant lists %d pieces of evidence", len(list.Evidence))
		}
		ts.do("GET", "/api/v1/compliance/evidence?control=GOV-05", ts.operator, nil, "", http.StatusOK, &list)
		if len(list.Evidence) != 1 || list.Evidence[0].ID != e.ID {
			t.Errorf("the operator's GOV-05 evidence: %+v", list.Evidence)
		}

		// Past its expiry the evidence no longer counts.
		c.Add(31 * 24 * time.Hour)
		if st, _ := ts.judgeControl("GOV-05"); st != "fail" {
			t.Errorf("GOV-05 after its evidence expired: %s, want fail", st)
		}
		ts.do("GET", "/api/v1/compliance/evidence/"+e.ID, ts.operator, nil, "", http.StatusOK, &e)
		if e.Status != "expired" || e.Counts {
			t.Errorf("expired evidence reads %+v", e)
		}
		ts.refused("POST", "/api/v1/compliance/evidence/"+e.ID+"/revoke", ts.operator, nil, `{}`, http.StatusBadRequest, "reason")
		ts.do("POST", "/api/v1/compliance/evidence/"+e.ID+"/revoke", ts.operator, nil, `{"reason":"superseded"}`,
			http.StatusOK, &e)
		if e.Status != "revoked" {
			t.Errorf("revoked evidence reads %+v", e)
		}
	})
}

// TestEvidenceRefusals checks that each bad submission is refused naming
// its field.
func TestEvidenceRefusals(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		now := c.Now()
		at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
		form := func(control, eff, exp string, content []byte) (string, map[string]string) {
			return upload(t, map[string]string{"control": control, "title": "t", "effective_at": eff, "expires_at": exp},
				"f.pdf", content)
		}
		post := func(hdr map[string]string, body string, want int, field string) {
			t.Helper()
			ts.refused("POST", "/api/v1/compliance/evidence", ts.operator, hdr, body, want, field)
		}
		day := 24 * time.Hour
		b, h := form("COM-01", at(-day), at(-2*day), []byte("x"))
		post(h, b, http.StatusBadRequest, "expires_at")
		b, h = form("COM-01", at(time.Hour), at(day), []byte("x"))
		post(h, b, http.StatusBadRequest, "effective_at")
		b, h = form("COM-01", "yesterday", at(day), []byte("x"))
		post(h, b, http.StatusBadRequest, "effective_at")
		b, h = form("COM-01", at(-day), at(400*day), []byte("x"))
		post(h, b, http.StatusBadRequest, "expires_at")
		b, h = form("NOPE-1", at(-day), at(day), []byte("x"))
		post(h, b, http.StatusBadRequest, "control")
		b, h = form("IAM-01", at(-day), at(day), []byte("x"))
		post(h, b, http.StatusBadRequest, "control")
		b, h = form("COM-01", at(-day), at(day), nil)
		post(h, b, http.StatusBadRequest, "file")
		b, h = form("COM-01", at(-day), at(day), make([]byte, 10<<20+1))
		post(h, b, http.StatusRequestEntityTooLarge, "file")
		b, h = upload(t, map[string]string{"control": "COM-01", "color": "red"}, "f.pdf", []byte("x"))
		post(h, b, http.StatusBadRequest, "color")

		link := func(control, url, eff, exp string) string {
			return fmt.Sprintf(`{"control":%q,"title":"Policy set","url":%q,"effective_at":%q,"expires_at":%q}`, control, url,
				eff, exp)
		}
		post(nil, link("COM-01", "http://wiki.example.com/policies", at(-day), at(day)), http.StatusBadRequest, "url")
		post(nil, link("COM-01", "https://u:p@wiki.example.com/policies", at(-day), at(day)), http.StatusBadRequest, "url")
		post(nil, link("COM-01", "https://wiki.example.com/policies", at(day), at(2*day)), http.StatusBadRequest,
			"effective_at")
		post(nil, link("IAM-02", "https://wiki.example.com/policies", at(-day), at(day)), http.StatusBadRequest, "control")
		post(nil, `{"control":"COM-01","file":"x"}`, http.StatusBadRequest, "file")

		// A body over the server's limit is refused before it is read whole.
		_, sopts := storetest.OpenSQLite(t)
		small := startClocked(t, sopts, c, server.Config{MaxBodyBytes: 1 << 20})
		b, h = form("COM-01", at(-day), at(day), make([]byte, 2<<20))
		var p problemOut
		small.do("POST", "/api/v1/compliance/evidence", small.operator, h, b, http.StatusRequestEntityTooLarge, &p)

		var e evidenceOut
		ts.do("POST", "/api/v1/compliance/evidence", ts.operator, nil, link("COM-01", "https://wiki.example.com/policies",
			at(-day), at(300*day)), http.StatusCreated, &e)
		if e.Kind != "link" || e.Status != "pending_approval" {
			t.Errorf("link submitted as %+v", e)
		}
		ts.do("GET", "/api/v1/compliance/evidence/"+e.ID+"/content", ts.operator, nil, "", http.StatusNotFound, nil)
		ts.refused("GET", "/api/v1/compliance/evidence?control=NOPE-1", ts.operator, nil, "", http.StatusBadRequest, "control")
		ts.do("POST", "/api/v1/compliance/evidence", ts.key(tenant.Operator, "reader"), nil, link("COM-01",
			"https://wiki.example.com/policies", at(-day), at(day)), http.StatusForbidden, nil)
	})
}

type exceptionOut struct {
	ID, Control, Status string
}

// TestExceptionsThroughTheAPI requests an exception, has it approved by a
// second person, and watches it expire; another is revoked.
func TestExceptionsThroughTheAPI(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		co1 := ts.enrol(c, tenant.Operator, "co1@example.com", "compliance_officer")
		co2 := ts.enrol(c, tenant.Operator, "co2@example.com", "compliance_officer")
		now := c.Now()
		req := fmt.Sprintf(`{"control":"IAM-03","reason":"seasonal staff keep accounts between campaigns",`+
			`"compensating":"accounts disabled by SCIM at contract end","expires_at":%q}`, now.Add(10*24*time.Hour).Format(time.RFC3339))
		var x exceptionOut
		ts.do("POST", "/api/v1/compliance/exceptions", co1.session, nil, req, http.StatusCreated, &x)
		if x.Status != "pending_approval" || x.Control != "IAM-03" {
			t.Errorf("requested %+v", x)
		}
		approve := "/api/v1/compliance/exceptions/" + x.ID + "/approve"
		ts.do("POST", approve, co1.session, nil, "", http.StatusForbidden, nil)
		ts.do("POST", approve, ts.operator, nil, "", http.StatusForbidden, nil)
		other := ts.enrol(c, tenant.Default, "co@other.example", "compliance_officer")
		ts.do("POST", approve, other.session, nil, "", http.StatusNotFound, nil)
		ts.do("GET", "/api/v1/compliance/exceptions/"+x.ID, other.session, nil, "", http.StatusNotFound, nil)
		ts.do("POST", approve, co2.session, nil, "", http.StatusOK, &x)
		if x.Status != "active" {
			t.Errorf("approved %+v", x)
		}
		trail := ts.waitTrail(tenant.Operator, "&action=compliance.exception.approve&target_type=exception&target_id="+x.ID, 1)
		if !strings.Contains(string(trail), co2.id) {
			t.Errorf("the approval's event does not name its approver: %s", trail)
		}

		c.Add(11 * 24 * time.Hour)
		ts.do("GET", "/api/v1/compliance/exceptions/"+x.ID, ts.operator, nil, "", http.StatusOK, &x)
		if x.Status != "expired" {
			t.Errorf("after its expiry: %+v", x)
		}

		req = fmt.Sprintf(`{"control":"GOV-05","reason":"vendor change","expires_at":%q}`,
			c.Now().Add(30*24*time.Hour).Format(time.RFC3339))
		ts.do("POST", "/api/v1/compliance/exceptions", ts.operator, nil, req, http.StatusCreated, &x)
		ts.do("POST", "/api/v1/compliance/exceptions/"+x.ID+"/revoke", ts.operator, nil, `{"reason":"not needed"}`,
			http.StatusOK, &x)
		if x.Status != "revoked" {
			t.Errorf("after revocation: %+v", x)
		}
		var list struct{ Exceptions []exceptionOut }
		ts.do("GET", "/api/v1/compliance/exceptions?control=GOV-05", ts.operator, nil, "", http.StatusOK, &list)
		if len(list.Exceptions) != 1 || list.Exceptions[0].ID != x.ID {
			t.Errorf("GOV-05's exceptions: %+v", list.Exceptions)
		}
		far := fmt.Sprintf(`{"control":"GOV-05","reason":"r","expires_at":%q}`, c.Now().Add(400*24*time.Hour).Format(time.RFC3339))
		ts.refused("POST", "/api/v1/compliance/exceptions", ts.operator, nil, far, http.StatusBadRequest, "expires_at")
		ts.refused("POST", "/api/v1/compliance/exceptions", ts.operator, nil, `{"control":"NOPE-1","reason":"r",`+
			`"expires_at":"2099-01-01T00:00:00Z"}`, http.StatusBadRequest, "control")
	})
}
