package controls_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// testClock is a clock the instance reads and the test moves.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// openInstance opens an instance on opts whose clock the test controls.
func openInstance(t *testing.T, opts storetest.Options) (*instance.Instance, *tenant.Tenant, *testClock) {
	t.Helper()
	c := &testClock{}
	c.ns.Store(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).UnixNano())
	in, err := instance.Open(context.Background(), instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL,
		Name: "test.example/attest", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	op, err := in.Tenants.ByName(context.Background(), tenant.Operator)
	if err != nil {
		t.Fatal(err)
	}
	return in, op, c
}

var (
	alice  = event.Actor{Type: "user", ID: "usr_alice", Name: "Alice"}
	bob    = event.Actor{Type: "user", ID: "usr_bob", Name: "Bob"}
	robot  = event.Actor{Type: "service", ID: "apikey:key_robot", Name: "ci"}
	oneDay = 24 * time.Hour
)

// judge runs one control's test and returns its result.
func judge(t *testing.T, in *instance.Instance, op *tenant.Tenant, id string) *controls.Result {
	t.Helper()
	res, err := controls.Validate(context.Background(), in, op, []string{id}, instance.SystemActor(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Result
}

// TestEvidenceCountsWhileApprovedAndCurrent takes a file through submission,
// approval and expiry, and the control with it from no evidence to fail,
// pass and fail again; only a second person approves, and never a key.
func TestEvidenceCountsWhileApprovedAndCurrent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		in, op, c := openInstance(t, opts)
		if r := judge(t, in, op, "GOV-02"); r.Status != controls.NoEvidence || r.Remediation == "" {
			t.Fatalf("GOV-02 before any evidence: %s %q, want no_evidence with a remedy", r.Status, r.Remediation)
		}
		content := []byte("%PDF-1.7\nMinutes of the board meeting of 2 March 2026: security review.\n")
		now := c.Now()
		e, err := controls.SubmitEvidence(ctx, in, op, &controls.Submission{Control: "GOV-02", Title: "Board minutes Q1",
			Content: content, FileName: "../../minutes\x00 2026.pdf", DeclaredType: "application/pdf",
			EffectiveAt: now.Add(-oneDay), ExpiresAt: now.Add(30 * oneDay)}, alice, nil)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		if e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != int64(len(content)) || e.MediaType != "application/pdf" ||
			e.FileName != "minutes_ 2026.pdf" || e.SubmittedBy != alice.ID {
			t.Errorf("stored %+v", e)
		}
		// Evidence awaiting approval is not yet evidence: no evidence, not
		// a failure; once approved evidence lapses, the control fails.
		r := judge(t, in, op, "GOV-02")
		if r.Status != controls.NoEvidence || len(r.Findings) != 1 || r.Findings[0].Resource != "evidence:"+e.ID ||
			!strings.Contains(r.Findings[0].Problem, "not yet approved") || !strings.Contains(r.Remediation, "approve") {
			t.Fatalf("GOV-02 with evidence pending: %+v", r)
		}

		if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, alice, nil); !errors.Is(err, controls.ErrSelfApproval) {
			t.Errorf("the submitter approving: %v, want ErrSelfApproval", err)
		}
		if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, robot, nil); !errors.Is(err, controls.ErrNotAPerson) {
			t.Errorf("an API key approving: %v, want ErrNotAPerson", err)
		}
		if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, bob, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, bob, nil); !errors.Is(err, controls.ErrDecided) {
			t.Errorf("approving twice: %v, want ErrDecided", err)
		}
		r = judge(t, in, op, "GOV-02")
		if r.Status != controls.Pass {
			t.Fatalf("GOV-02 with approved, current evidence: %+v", r)
		}
		b, _ := json.Marshal(r.Evidence["counting"])
		if !bytes.Contains(b, []byte(e.ID)) || !bytes.Contains(b, []byte(e.SHA256)) {
			t.Errorf("the pass lists %s, want the item's id and SHA-256", b)
		}

		c.Add(31 * oneDay)
		r = judge(t, in, op, "GOV-02")
		if r.Status != controls.Fail || len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Problem, "expired at") {
			t.Fatalf("GOV-02 after its evidence expired: %+v", r)
		}
		if _, err := controls.RevokeEvidence(ctx, in, op, e.ID, "", bob, nil); !isField(err, "reason") {
			t.Errorf("revoking without a reason: %v", err)
		}
		if _, err := controls.RevokeEvidence(ctx, in, op, e.ID, "superseded", bob, nil); err != nil {
			t.Fatal(err)
		}
		r = judge(t, in, op, "GOV-02")
		if !strings.Contains(r.Findings[0].Problem, "revoked at") {
			t.Errorf("finding after revocation: %q", r.Findings[0].Problem)
		}
	})
}

// TestEvidenceHashedIntoTheLog checks that the submission's audit event,
// committed with the row, carries the SHA-256 of the content stored.
func TestEvidenceHashedIntoTheLog(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		in, op, c := openInstance(t, opts)
		e, err := controls.SubmitEvidence(ctx, in, op, &controls.Submission{Control: "AUD-01", Title: "Pen test 2026",
			Content: []byte("findings: none critical"), FileName: "pentest.txt", EffectiveAt: c.Now(),
			ExpiresAt: c.Now().Add(300 * oneDay)}, alice, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, stored, err := controls.EvidenceContent(ctx, in, op, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(stored)
		page, err := in.Log.Query(ctx, op, auditlog.Filter{Action: controls.ActionEvidenceSubmit, TargetType: "evidence", TargetID: e.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 1 {
			t.Fatalf("%d submission events, want 1", len(page.Items))
		}
		var d struct{ Evidence, Control, SHA256 string }
		if err := json.Unmarshal(page.Items[0].Event.Details, &d); err != nil {
			t.Fatal(err)
		}
		if d.Evidence != e.ID || d.Control != "AUD-01" || d.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("event details %+v, want the evidence, its control and the stored content's SHA-256", d)
		}
		// Another tenant sees none of it.
		other, _ := in.Tenants.ByName(ctx, tenant.Default)
		if _, err := controls.EvidenceByID(ctx, in, other, e.ID); !errors.Is(err, controls.ErrNoEvidence) {
			t.Errorf("another tenant reading it: %v, want ErrNoEvidence", err)
		}
	})
}

func isField(err error, field string) bool {
	var ie *controls.InputError
	return errors.As(err, &ie) && ie.Field == field
}

// TestSubmissionRefusals checks each bad submission names its field.
func TestSubmissionRefusals(t *testing.T) {
	ctx := context.Background()
	_, opts := storetest.OpenSQLite(t)
	in, op, c := openInstance(t, opts)
	now := c.Now()
	file := func(s *controls.Submission) *controls.Submission {
		s.Title, s.Content, s.FileName = "t", []byte("x"), "x.txt"
		if s.Control == "" {
			s.Control = "COM-01"
		}
		if s.EffectiveAt.IsZero() {
			s.EffectiveAt = now.Add(-oneDay)
		}
		if s.ExpiresAt.IsZero() {
			s.ExpiresAt = now.Add(100 * oneDay)
		}
		return s
	}
	link := func(u string) *controls.Submission {
		return &controls.Submission{Control: "COM-01", Title: "policy", URL: u, EffectiveAt: now, ExpiresAt: now.Add(oneDay)}
	}
	for _, tc := range []struct {
		name  string
		sub   *controls.Submission
		field string
	}{
		{"unknown control", file(&controls.Submission{Control: "NOPE-1"}), "control"},
		{"automated control", file(&controls.Submission{Control: "IAM-01"}), "control"},
		{"future effective date", file(&controls.Submission{EffectiveAt: now.Add(time.Hour)}), "effective_at"},
		{"expiry before effective", file(&controls.Submission{EffectiveAt: now.Add(-oneDay), ExpiresAt: now.Add(-2 * oneDay)}),
			"expires_at"},
		{"expiry past", file(&controls.Submission{EffectiveAt: now.Add(-10 * oneDay), ExpiresAt: now.Add(-oneDay)}), "expires_at"},
		{"expiry beyond the control's maximum age", file(&controls.Submission{ExpiresAt: now.Add(400 * oneDay)}), "expires_at"},
		{"monthly evidence for two months", file(&controls.Submission{Control: "VUL-01", ExpiresAt: now.Add(60 * oneDay)}),
			"expires_at"},
		{"no title", &controls.Submission{Control: "COM-01", Content: []byte("x"), EffectiveAt: now, ExpiresAt: now.Add(oneDay)},
			"title"},
		{"empty file", &controls.Submission{Control: "COM-01", Title: "t", Content: []byte{}, EffectiveAt: now,
			ExpiresAt: now.Add(oneDay)}, "file"},
		{"oversize file", &controls.Submission{Control: "COM-01", Title: "t", Content: make([]byte, controls.MaxEvidenceBytes+1),
			EffectiveAt: now, ExpiresAt: now.Add(oneDay)}, "file"},
		{"http link", link("http://wiki.example.com/policies"), "url"},
		{"link with a password", link("https://ana:secret@wiki.example.com/policies"), "url"},
		{"link with a token", link("https://drive.example.com/file/1?access_token=abc"), "url"},
		{"link with a token in its fragment", link("https://drive.example.com/file/1#access_token=abc&type=bearer"), "url"},
		{"link without a host", link("https:///policies"), "url"},
		{"not a link", link("policies"), "url"},
		{"no link", link(""), "url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := controls.SubmitEvidence(ctx, in, op, tc.sub, alice, nil)
			if !isField(err, tc.field) {
				t.Errorf("got %v, want an InputError for %s", err, tc.field)
			}
		})
	}
	e, err := controls.SubmitEvidence(ctx, in, op, link("https://wiki.example.com/policies?version=7#approval"), alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(e.URL))
	if e.Kind != "link" || e.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("link stored as %+v", e)
	}
	if _, _, err := controls.EvidenceContent(ctx, in, op, e.ID); !errors.Is(err, controls.ErrNoEvidence) {
		t.Errorf("content of a link: %v, want ErrNoEvidence", err)
	}
}

// TestKeyOwnerCannotApprove checks that a person cannot approve what they
// submitted through their own API key.
func TestKeyOwnerCannotApprove(t *testing.T) {
	ctx := context.Background()
	_, opts := storetest.OpenSQLite(t)
	in, op, c := openInstance(t, opts)
	_, key, err := in.CreateKey(ctx, op, access.RoleAdmin, "alice's", time.Time{}, alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	viaKey := event.Actor{Type: "service", ID: "apikey:" + key.ID}
	e, err := controls.SubmitEvidence(ctx, in, op, &controls.Submission{Control: "CHG-01", Title: "Q1 change sample",
		URL: "https://ci.example.com/reports/q1", EffectiveAt: c.Now(), ExpiresAt: c.Now().Add(90 * oneDay)}, viaKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, alice, nil); !errors.Is(err, controls.ErrSelfApproval) {
		t.Errorf("the key's owner approving: %v, want ErrSelfApproval", err)
	}
	if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, bob, nil); err != nil {
		t.Errorf("another person approving: %v", err)
	}
}

func TestSanitizeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":                "report.pdf",
		`C:\Users\ana\pen test.pdf`: "pen test.pdf",
		"../../etc/passwd":          "passwd",
		".htaccess":                 "htaccess",
		"a\"b;c\r\nd.txt":           "a_b_c__d.txt",
		"\u202egpj.exe":             "_gpj.exe",
		"Prüfbericht 2026.pdf":      "Prüfbericht 2026.pdf",
		"":                          "evidence",
		"...":                       "evidence",
		strings.Repeat("a", 300):    strings.Repeat("a", 200),
	} {
		if got := controls.SanitizeFileName(in); got != want {
			t.Errorf("SanitizeFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSponsoredCannotApprove checks that someone who holds a role by the
// submitter's doing cannot approve the submitter's evidence or exception:
// an account made for the purpose would otherwise approve for its maker.
func TestSponsoredCannotApprove(t *testing.T) {
	ctx := context.Background()
	_, opts := storetest.OpenSQLite(t)
	in, op, c := openInstance(t, opts)
	now := c.Now().UnixMicro()
	for _, q := range []string{
		`INSERT INTO users (id, tenant_id, email, email_display, name, status, created_at, updated_at)
			VALUES ('usr_puppet', ?, 'puppet@example.com', 'puppet@example.com', 'Pat', 'active', ?, ?)`,
		`INSERT INTO role_grants (tenant_id, user_id, role, granted_by, granted_at)
			VALUES (?, 'usr_puppet', 'compliance_officer', 'usr_alice', ?)`,
	} {
		args := []any{op.ID, now, now}
		if strings.Contains(q, "role_grants") {
			args = []any{op.ID, now}
		}
		if _, err := in.DB.Write.ExecContext(ctx, in.DB.Rebind(q), args...); err != nil {
			t.Fatal(err)
		}
	}
	// A puppet's puppet owes its account to the submitter as surely.
	for _, q := range []string{
		`INSERT INTO users (id, tenant_id, email, email_display, name, status, created_at, updated_at)
			VALUES ('usr_puppet2', ?, 'puppet2@example.com', 'puppet2@example.com', 'Pip', 'active', ?, ?)`,
		`INSERT INTO enrolments (token_hash, tenant_id, user_id, role, created_by, created_at, expires_at)
			VALUES (?, ?, 'usr_puppet2', 'compliance_officer', 'usr_puppet', ?, ?)`,
	} {
		args := []any{op.ID, now, now}
		if strings.Contains(q, "enrolments") {
			args = []any{[]byte("link-hash"), op.ID, now, now}
		}
		if _, err := in.DB.Write.ExecContext(ctx, in.DB.Rebind(q), args...); err != nil {
			t.Fatal(err)
		}
	}
	puppet2 := event.Actor{Type: "user", ID: "usr_puppet2", Name: "Pip"}
	puppet := event.Actor{Type: "user", ID: "usr_puppet", Name: "Pat"}
	e, err := controls.SubmitEvidence(ctx, in, op, &controls.Submission{Control: "GOV-03", Title: "Org chart",
		URL: "https://wiki.example.com/org", EffectiveAt: c.Now(), ExpiresAt: c.Now().Add(90 * oneDay)}, alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, puppet, nil); !errors.Is(err, controls.ErrSponsored) {
		t.Errorf("approval by the submitter's grantee: %v, want ErrSponsored", err)
	}
	if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, puppet2, nil); !errors.Is(err, controls.ErrSponsored) {
		t.Errorf("approval by the grantee's own enrolee: %v, want ErrSponsored", err)
	}
	x, err := controls.RequestException(ctx, in, op, &controls.ExceptionRequest{Control: "IAM-05", Reason: "the review slipped",
		ExpiresAt: c.Now().Add(30 * oneDay)}, alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := controls.ApproveException(ctx, in, op, x.ID, puppet, nil); !errors.Is(err, controls.ErrSponsored) {
		t.Errorf("exception approval by the requester's grantee: %v, want ErrSponsored", err)
	}
	if _, err := controls.ApproveEvidence(ctx, in, op, e.ID, bob, nil); err != nil {
		t.Errorf("an independent person approving: %v", err)
	}
}
