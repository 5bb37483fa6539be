package report_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/report"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json/jsontext"
)

func TestSampleSize(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{0, 0}, {1, 1}, {25, 25}, {26, 25}, {250, 25}, {251, 40}, {1e6, 40}} {
		if got := report.SampleSize(tc.n); got != tc.want {
			t.Errorf("SampleSize(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestDrawReproducible(t *testing.T) {
	rows := make([]report.Row, 300)
	for i := range rows {
		rows[i] = report.Row{Sequence: int64(1000 + i*3)}
	}
	a, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	s1, s2, s3 := report.Draw(a, "changes", rows), report.Draw(a, "changes", rows), report.Draw(b, "changes", rows)
	if !slices.Equal(s1.Sequences, s2.Sequences) {
		t.Errorf("the same seed drew %v and %v", s1.Sequences, s2.Sequences)
	}
	if slices.Equal(s1.Sequences, s3.Sequences) {
		t.Errorf("different seeds drew the same sample %v", s1.Sequences)
	}
	if other := report.Draw(a, "incidents", rows); slices.Equal(other.Sequences, s1.Sequences) {
		t.Errorf("two populations drew the same items with one seed")
	}
	if len(s1.Sequences) != 40 || !slices.IsSorted(s1.Sequences) || len(slices.Compact(slices.Clone(s1.Sequences))) != 40 {
		t.Errorf("sample %v: want 40 distinct sequences in order", s1.Sequences)
	}
	for _, q := range s1.Sequences {
		if (q-1000)%3 != 0 || q < 1000 || q >= 1900 {
			t.Errorf("sequence %d is not in the population", q)
		}
	}
}

// fixture is an instance with a tenant whose trail holds n role grants,
// covered by a signed checkpoint.
func fixture(t *testing.T, n int) (*instance.Instance, *tenant.Tenant, *controls.Scorecard, time.Time, time.Time) {
	t.Helper()
	ctx := context.Background()
	in, err := instance.Open(ctx, instance.Options{DataDir: t.TempDir(), Name: "test.example/attest"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	tn, err := in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	from := in.Now().Add(-time.Hour)
	for i := range n {
		ev := in.ChangeEvent("role.grant", "admin", instance.SystemActor(), event.Target{Type: "user", ID: fmt.Sprint("u", i)})
		if err := in.Record(ctx, tn, ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.Log.PublishCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	to := in.Now().Add(time.Hour)
	sc, err := controls.Score(ctx, in, tn, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return in, tn, sc, from, to
}

func TestSameSeedSameSample(t *testing.T) {
	in, tn, sc, from, to := fixture(t, 60)
	ctx := context.Background()
	build := func(seed byte) *report.Sample {
		b, err := report.Build(ctx, in, tn, sc, report.Options{From: from, To: to, Seed: bytes.Repeat([]byte{seed}, 32)})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range b.Report.Populations {
			if p.Name == "access_changes" {
				if p.Rows != 60 {
					t.Fatalf("access_changes has %d rows, want 60", p.Rows)
				}
				return b.Report.Samples[i]
			}
		}
		t.Fatal("no access_changes population")
		return nil
	}
	a1, a2, b := build(7), build(7), build(8)
	if len(a1.Sequences) != 25 || !slices.Equal(a1.Sequences, a2.Sequences) {
		t.Errorf("the same seed drew %v and %v, want the same 25", a1.Sequences, a2.Sequences)
	}
	if slices.Equal(a1.Sequences, b.Sequences) {
		t.Errorf("another seed drew the same sample %v", b.Sequences)
	}
}

func TestManifestSignature(t *testing.T) {
	in, tn, sc, from, to := fixture(t, 3)
	b, err := report.Build(context.Background(), in, tn, sc, report.Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	vk, err := in.Log.VerifierKey(tn.Name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := report.VerifyManifest(b.Signature, vk)
	if err != nil {
		t.Fatalf("the manifest does not verify: %v", err)
	}
	files := b.Files()
	read := func(name string) ([]byte, error) { return files[name], nil }
	if err := m.Check(read); err != nil {
		t.Fatalf("the files do not match the manifest: %v", err)
	}
	if m.ReportSHA256 != report.SHA256(b.JSON) || m.Checkpoint.TreeSize == 0 {
		t.Errorf("manifest report hash %s or checkpoint %+v is wrong", m.ReportSHA256, m.Checkpoint)
	}

	// One byte of the report changed: its hash no longer matches.
	js := bytes.Clone(b.JSON)
	js[len(js)/2] ^= 1
	files[report.ReportFile] = js
	if err := m.Check(read); err == nil {
		t.Errorf("a report with one byte changed matches the manifest")
	}
	// One byte of the signed manifest changed: the signature fails.
	sig := bytes.Clone(b.Signature)
	i := bytes.Index(sig, []byte(m.ReportSHA256))
	sig[i] ^= 1
	if _, err := report.VerifyManifest(sig, vk); err == nil {
		t.Errorf("a manifest with one byte changed verifies")
	}
	// Another key does not verify it.
	other, _, err := checkpoint.LoadOrCreateKey(t.TempDir() + "/other.key")
	if err != nil {
		t.Fatal(err)
	}
	ovk, _ := checkpoint.VerifierKey(in.Log.Origin(tn.Name), other.Public)
	if _, err := report.VerifyManifest(b.Signature, ovk); err == nil {
		t.Errorf("the manifest verifies with another key")
	}
}

func TestOSCALValidation(t *testing.T) {
	in, tn, sc, from, to := fixture(t, 1)
	b, err := report.Build(context.Background(), in, tn, sc, report.Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := report.OSCAL(b.Report)
	if err != nil {
		t.Fatalf("OSCAL: %v", err)
	}
	if err := report.ValidateOSCAL(doc); err != nil {
		t.Errorf("the OSCAL document does not validate: %v", err)
	}
	broken := bytes.Replace(doc, []byte(`"state": "`), []byte(`"state": "maybe-`), 1)
	if err := report.ValidateOSCAL(broken); err == nil {
		t.Errorf("a document with an unknown finding state validates")
	}
}

// TestExceptionsShown checks that a failing control under an approved
// exception reads as a failure with its exception and remediation, never as
// a pass, and that an exception approved after the period is left out.
func TestExceptionsShown(t *testing.T) {
	in, tn, _, from, to := fixture(t, 1)
	ctx := context.Background()
	err := in.DB.InTx(ctx, func(tx *sql.Tx) error {
		u := &identity.User{ID: identity.NewUserID(), TenantID: tn.ID, Email: "nofactor@example.com", Name: "N"}
		u.Display = u.Email
		return in.Identity.Users.Create(ctx, tx, u)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := controls.Validate(ctx, in, tn, []string{"IAM-01"}, instance.SystemActor(), nil); err != nil {
		t.Fatal(err)
	}
	now := in.Now().UnixMicro()
	for _, ex := range []struct {
		id                 string
		approvedAt, starts int64
	}{{"exc_in", now, now - 1}, {"exc_after", to.Add(time.Hour).UnixMicro(), to.Add(time.Hour).UnixMicro()}} {
		if _, err := in.DB.Write.ExecContext(ctx, in.DB.Rebind(`INSERT INTO control_exceptions (id, tenant_id, control_id,
			reason, requested_by, requested_at, starts_at, expires_at, approved_by, approved_at)
			VALUES (?, ?, 'IAM-01', 'migration in progress', 'a', ?, ?, ?, 'b', ?)`), ex.id, tn.ID, now, ex.starts,
			to.Add(48*time.Hour).UnixMicro(), ex.approvedAt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.Log.PublishCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	sc, err := controls.Score(ctx, in, tn, from, to.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b, err := report.Build(ctx, in, tn, sc, report.Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	var got *report.Control
	for _, c := range b.Report.Criteria {
		for _, ctl := range c.Controls {
			if c.ID == "CC6.1" && ctl.ID == "IAM-01" {
				got = ctl
			}
		}
	}
	if got == nil {
		t.Fatal("CC6.1 lacks IAM-01")
	}
	if got.LatestStatus != controls.Fail || got.Failed != 1 || got.Remediation == "" {
		t.Errorf("IAM-01: %s, %d failed, remediation %q; want a failure with its remediation", got.LatestStatus,
			got.Failed, got.Remediation)
	}
	if len(got.Exceptions) != 1 || got.Exceptions[0].ID != "exc_in" {
		t.Errorf("IAM-01 exceptions %+v, want exc_in alone", got.Exceptions)
	}
	if !bytes.Contains(b.HTML, []byte("exc_in")) || !bytes.Contains(b.HTML, []byte("fail (excepted)")) {
		t.Errorf("the HTML does not show the excepted failure")
	}
}

// TestEvidenceShown checks that the report lists, under a manual control,
// the approved evidence that held in the period, with its SHA-256, and
// leaves out evidence that had lapsed before it or was never approved.
func TestEvidenceShown(t *testing.T) {
	in, tn, _, from, to := fixture(t, 1)
	ctx := context.Background()
	day := int64(24 * time.Hour / time.Microsecond)
	f, u := from.UnixMicro(), to.UnixMicro()
	for _, e := range []struct {
		id                  string
		effective, expires  int64
		approvedBy          any
		approvedAt, revoked any
	}{
		{"evd_in", f - day, u + day, "usr_b", f - day, nil},
		{"evd_lapsed", f - 3*day, f - day, "usr_b", f - 3*day, nil},
		{"evd_pending", f - day, u + day, nil, nil, nil},
		{"evd_revoked", f - 3*day, u + day, "usr_b", f - 3*day, f - day},
	} {
		if _, err := in.DB.Write.ExecContext(ctx, in.DB.Rebind(`INSERT INTO control_evidence (id, tenant_id, control_id,
			kind, title, url, sha256, effective_at, expires_at, submitted_by, submitted_at, approved_by, approved_at,
			revoked_by, revoked_at) VALUES (?, ?, 'GOV-03', 'link', 'Org chart', 'https://wiki.example.com/org', ?, ?, ?,
			'usr_a', ?, ?, ?, ?, ?)`), e.id, tn.ID, []byte{0xab, 0xcd}, e.effective, e.expires, e.effective, e.approvedBy,
			e.approvedAt, map[bool]any{true: "usr_b"}[e.revoked != nil], e.revoked); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := controls.Score(ctx, in, tn, from, to)
	if err != nil {
		t.Fatal(err)
	}
	b, err := report.Build(ctx, in, tn, sc, report.Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range b.Report.Criteria {
		for _, ctl := range c.Controls {
			if c.ID == "CC1.3" && ctl.ID == "GOV-03" {
				for _, e := range ctl.Evidence {
					ids = append(ids, e.ID)
				}
			}
		}
	}
	if len(ids) != 1 || ids[0] != "evd_in" {
		t.Errorf("GOV-03 evidence %v, want evd_in alone", ids)
	}
	if !bytes.Contains(b.HTML, []byte("evd_in")) || !bytes.Contains(b.HTML, []byte("SHA-256 abcd")) {
		t.Errorf("the HTML does not show the evidence with its digest")
	}
}

// TestFirstOwnerCounted checks that an account made by an enrolment link
// for a new account, as the first owner's is, counts as created, and that
// enrolling an existing account does not.
func TestFirstOwnerCounted(t *testing.T) {
	var def report.PopulationDef
	for _, d := range report.Populations {
		if d.Name == "users_created" {
			def = d
		}
	}
	if !slices.ContainsFunc(def.Filters, func(f auditlog.Filter) bool { return f.Action == "user.enrol.start" }) {
		t.Fatal("users_created does not read enrolments")
	}
	for _, tc := range []struct {
		details string
		want    bool
	}{
		{`{"new_account":true,"password_set":true,"step":"enrol_start"}`, true},
		{`{"new_account":false,"password_set":true,"step":"enrol_start"}`, false},
	} {
		ev := &event.Event{Action: "user.enrol.start", Details: jsontext.Value(tc.details)}
		if got := def.Keep(ev); got != tc.want {
			t.Errorf("enrolment with %s kept %v, want %v", tc.details, got, tc.want)
		}
	}
	if !def.Keep(&event.Event{Action: "user.create"}) {
		t.Error("user.create is not kept")
	}
}
