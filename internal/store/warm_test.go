package store_test

import (
	"context"
	"testing"

	"github.com/attest/attest/internal/store/storetest"
)

func TestWarm(t *testing.T) {
	db, _ := storetest.OpenSQLite(t)
	ctx := context.Background()
	var n int
	if err := db.Warm(ctx, func() {
		db.Reads().QueryRowContext(ctx, `SELECT 41 + 1`).Scan(&n)
	}); err != nil || n != 42 {
		t.Fatalf("Warm ran a query to %d, %v", n, err)
	}
	// A panic comes back to the caller, and the goroutine goes on serving.
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the panic of f", p)
			}
		}()
		db.Warm(ctx, func() { panic("boom") })
		t.Fatal("a panic in f did not reach the caller")
	}()
	for range 20 {
		if err := db.Warm(ctx, func() {}); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ran := false
	// With every goroutine free, either may win; a cancelled context must
	// never make Warm report success without running f.
	if err := db.Warm(cctx, func() { ran = true }); err == nil && !ran {
		t.Fatal("Warm reported success without running f")
	}
	db.Close()
	if err := db.Warm(ctx, func() { t.Fatal("ran after Close") }); err == nil {
		t.Fatal("Warm after Close reported success")
	}
}
