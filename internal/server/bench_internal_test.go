package server

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/pquerna/otp/totp"
)

// benchFixture is an instance with a user holding a custom role and a live
// session, for the authorization and session benchmarks.
type benchFixture struct {
	s     *Server
	t     *tenant.Tenant
	user  string
	token identity.SessionToken
}

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	ctx := context.Background()
	var opts storetest.Options
	if os.Getenv(storetest.EnvURL) != "" && os.Getenv("ATTEST_BENCH_ENGINE") == "postgres" {
		_, opts = storetest.OpenPostgres(b)
	} else {
		_, opts = storetest.OpenSQLite(b)
	}
	in, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL, Name: "bench.example/attest"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close() })
	s, err := New(in, Config{WithoutRateLimits: true})
	if err != nil {
		b.Fatal(err)
	}
	t, _ := in.Tenants.ByName(ctx, tenant.Default)
	u := &identity.User{ID: identity.NewUserID(), TenantID: t.ID, Email: "bench@example.com", Display: "bench@example.com",
		Name: "Bench"}
	f := &benchFixture{s: s, t: t, user: u.ID}
	err = in.DB.InTx(ctx, func(tx *sql.Tx) error {
		if err := in.Identity.Users.Create(ctx, tx, u); err != nil {
			return err
		}
		r := &access.CustomRole{Name: "listener", Permissions: []access.Permission{"recording.read", "transcript.read"}}
		if err := in.Grants.CreateRole(ctx, tx, t.ID, r); err != nil {
			return err
		}
		for _, role := range []string{"listener", access.RoleMember, access.RoleSecurity} {
			if err := in.Grants.Grant(ctx, tx, t.ID, u.ID, access.Grant{Role: role}, "bench"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	f.token = enrolForBench(b, in, t, u)
	return f
}

// enrolForBench signs the user in the way a person would: an enrolment
// link, a password, a TOTP code, the gate.
func enrolForBench(b *testing.B, in *instance.Instance, t *tenant.Tenant, u *identity.User) identity.SessionToken {
	ctx := context.Background()
	var link string
	err := in.DB.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		link, err = in.Identity.IssueEnrolment(ctx, tx, &identity.Enrolment{TenantID: t.ID, UserID: u.ID}, "bench", 0)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	es, err := in.Identity.PrepareEnrolment(ctx, link, "", "", "a bench passphrase of length", t.Name)
	if err != nil {
		b.Fatal(err)
	}
	var te *identity.TOTPEnrolment
	if err := in.DB.InTx(ctx, func(tx *sql.Tx) error { _, te, err = es.Apply(ctx, tx, nil); return err }); err != nil {
		b.Fatal(err)
	}
	code, _ := totp.GenerateCode(te.Secret, time.Now())
	var tok identity.SessionToken
	err = in.DB.InTx(ctx, func(tx *sql.Tx) error {
		done, err := in.Identity.FinishEnrolment(ctx, tx, link, code)
		if err != nil {
			return err
		}
		tok, _, err = in.Identity.Gate(ctx, tx, identity.NewSessionID(), done.Proof, identity.Meta{IP: "127.0.0.1"})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// percentile reports the p-th percentile of ds in milliseconds.
func percentile(ds []time.Duration, p float64) float64 {
	slices.Sort(ds)
	return float64(ds[int(float64(len(ds)-1)*p)]) / 1e6
}

// BenchmarkAuthzDecision is one authorization question answered in
// process, as POST /api/v1/authz/check answers it: the user and their
// grants read from the store, then the policy.
func BenchmarkAuthzDecision(b *testing.B) {
	f := newBenchFixture(b)
	rq := &request{r: httptest.NewRequest("POST", "/api/v1/authz/check", nil), s: f.s, tenant: f.t}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		d := f.s.decide(rq, f.user, "recording.read", "", nil)
		lat = append(lat, time.Since(t0))
		if !d.Allow {
			b.Fatal(d.Reason)
		}
	}
	b.ReportMetric(percentile(lat, 0.50), "p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
}

// BenchmarkPolicyOnly is the policy evaluation alone, grants in hand.
func BenchmarkPolicyOnly(b *testing.B) {
	sub := &access.Subject{Active: true, Grants: []access.Grant{{Role: "listener"}, {Role: access.RoleMember},
		{Role: access.RoleSecurity}}, Custom: map[string][]access.Permission{"listener": {"recording.read", "transcript.read"}}}
	now := time.Now()
	for i := 0; i < b.N; i++ {
		if !sub.Check("transcript.read", now).Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkSessionValidation is what a person's request spends on its
// session before the handler: the token looked up with its user and
// policy, the grants read, and the route's permission decided.
func BenchmarkSessionValidation(b *testing.B) {
	f := newBenchFixture(b)
	rq := &request{r: httptest.NewRequest("GET", "/api/v1/me", nil), s: f.s, route: &route{perm: access.PermLogRead}}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := f.s.authorizeSession(rq, f.token.Reveal(), false); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(percentile(lat, 0.50), "p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
}
