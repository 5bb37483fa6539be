package controls_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
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
