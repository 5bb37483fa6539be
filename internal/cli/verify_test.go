package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

// TestVerifyRecordsVerifications checks that attest verify keeps, for
// each tenant it verified, a log_verifications row, committed with its
// audit.log.verify event, and still prints what it found.
func TestVerifyRecordsVerifications(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		in, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Log.PublishCheckpoints(ctx); err != nil {
			t.Fatal(err)
		}
		in.Close()
		args := []string{"verify", "--data-dir", opts.DataDir}
		if opts.URL != "" {
			args = append(args, "--database-url", opts.URL)
		}
		var out, errs bytes.Buffer
		if code := Main(args, &out, &errs); code != 0 {
			t.Fatalf("attest verify: exit %d\n%s%s", code, out.String(), errs.String())
		}
		if !strings.Contains(out.String(), "operator: intact") {
			t.Errorf("attest verify printed %q", out.String())
		}
		in, err = instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		var n, ok int
		if err := in.DB.Read.QueryRow(`SELECT COUNT(*), SUM(CASE WHEN ok THEN 1 ELSE 0 END) FROM log_verifications`).
			Scan(&n, &ok); err != nil {
			t.Fatal(err)
		}
		ts, _ := in.Tenants.List(ctx)
		if n != len(ts) || ok != n {
			t.Errorf("%d verifications, %d intact; want one intact for each of the %d tenants", n, ok, len(ts))
		}
	})
}
