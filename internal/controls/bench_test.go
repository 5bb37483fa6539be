package controls_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// BenchmarkValidate10k runs every control against a tenant of 10,000
// accounts, a tenth of them without a second factor, recording the
// results as serve does. ATTEST_BENCH_ENGINE=postgres runs it on the
// database of ATTEST_TEST_DATABASE_URL.
func BenchmarkValidate10k(b *testing.B) {
	ctx := context.Background()
	_, opts := storetest.OpenSQLite(b)
	if os.Getenv("ATTEST_BENCH_ENGINE") == "postgres" {
		_, opts = storetest.OpenPostgres(b)
	}
	in, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL, Name: "bench.example/attest"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close() })
	op, _ := in.Tenants.ByName(ctx, tenant.Operator)
	err = in.DB.InTx(ctx, func(tx *sql.Tx) error {
		for i := range 10000 {
			u := &identity.User{ID: identity.NewUserID(), TenantID: op.ID, Email: fmt.Sprintf("u%d@example.com", i), Name: "U"}
			u.Display = u.Email
			if err := in.Identity.Users.Create(ctx, tx, u); err != nil {
				return err
			}
			if i%10 == 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, in.DB.Rebind(`INSERT INTO totp_factors (user_id, secret, last_step, confirmed_at,
				created_at) VALUES (?, ?, 0, 0, 0)`), u.ID, []byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		res, err := controls.Validate(ctx, in, op, nil, instance.SystemActor(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Status != controls.Fail || len(res[0].Findings) != 1000 {
			b.Fatalf("IAM-01: %s with %d findings", res[0].Status, len(res[0].Findings))
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/validation")
}

// BenchmarkScore90Days scores the 90 days the dashboard shows, of a
// tenant whose every control ran hourly: about 60 controls × 24 × 90
// results. ATTEST_BENCH_ENGINE=postgres runs it on
// ATTEST_TEST_DATABASE_URL.
func BenchmarkScore90Days(b *testing.B) { benchmarkScore(b, 90) }

// BenchmarkScore365Days scores the twelve months of a SOC 2 Type II
// report, as BenchmarkScore90Days: about 60 × 24 × 365 results.
func BenchmarkScore365Days(b *testing.B) { benchmarkScore(b, 365) }

// benchmarkScore scores the last days of a tenant whose every control of
// the catalog ran hourly. With fewer than 60 controls in the catalog, it
// stores results for as many made-up ids besides them, which the score
// passes over as a full catalog's would be.
func benchmarkScore(b *testing.B, days int) {
	ctx := context.Background()
	_, opts := storetest.OpenSQLite(b)
	if os.Getenv("ATTEST_BENCH_ENGINE") == "postgres" {
		_, opts = storetest.OpenPostgres(b)
	}
	end := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	in, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL, Name: "bench.example/attest",
		Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close() })
	op, _ := in.Tenants.ByName(ctx, tenant.Operator)
	var ids []string
	for _, c := range controls.For(op) {
		ids = append(ids, c.ID)
	}
	for i := len(ids); i < 60; i++ {
		ids = append(ids, fmt.Sprintf("BENCH-%02d", i))
	}
	n, err := seedHourly(ctx, in, op, ids, end, days)
	if err != nil {
		b.Fatal(err)
	}
	// PostgreSQL's autovacuum would have marked the seeded pages visible
	// by the time anyone scores them; index-only scans need that.
	if in.DB.Dialect == store.Postgres {
		if _, err := in.DB.Write.ExecContext(ctx, `VACUUM ANALYZE control_results`); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		sc, err := controls.Score(ctx, in, op, end.Add(-time.Duration(days)*24*time.Hour), end)
		if err != nil {
			b.Fatal(err)
		}
		if len(sc.Trend) != days || sc.Controls[0].Runs != 24*days {
			b.Fatalf("%d trend points, %d runs of %s", len(sc.Trend), sc.Controls[0].Runs, sc.Controls[0].Control)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/score")
	b.ReportMetric(float64(n), "results")
}

// seedHourly stores a result of each of ids every hour of the days before
// end, a failure now and then, in statements of many rows, and returns
// how many it stored.
func seedHourly(ctx context.Context, in *instance.Instance, op *tenant.Tenant, ids []string, end time.Time,
	days int) (int, error) {
	const batch = 500
	row := "(?, ?, ?, ?, ?, ?, ?)"
	n := 0
	err := in.DB.InTx(ctx, func(tx *sql.Tx) error {
		var args []any
		flush := func() error {
			if len(args) == 0 {
				return nil
			}
			q := "INSERT INTO control_results (id, tenant_id, control_id, status, result, sha256, checked_at) VALUES " +
				strings.TrimSuffix(strings.Repeat(row+", ", len(args)/7), ", ")
			_, err := tx.ExecContext(ctx, in.DB.Rebind(q), args...)
			args = args[:0]
			return err
		}
		for hour := range 24 * days {
			at := end.Add(-time.Duration(hour)*time.Hour - time.Minute)
			for i, id := range ids {
				status := controls.Pass
				if (hour+i)%17 == 0 {
					status = controls.Fail
				}
				r := &controls.Result{Control: id, Status: status, Findings: []controls.Finding{},
					Evidence: map[string]any{"examined": 10}, CheckedAt: at}
				blob, _ := json.Marshal(r)
				sum := sha256.Sum256(blob)
				args = append(args, fmt.Sprintf("res_%d", n), op.ID, id, string(status), blob, sum[:], at.UnixMicro())
				n++
				if len(args) == 7*batch {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		return flush()
	})
	return n, err
}
