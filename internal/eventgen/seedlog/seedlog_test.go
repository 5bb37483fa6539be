package seedlog_test

import (
	"context"
	"testing"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen/seedlog"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// TestFill seeds a log with more than two batches and a mix that marks
// every tenth event: the log holds them all, each once.
func TestFill(t *testing.T) {
	ctx := context.Background()
	in, err := instance.Open(ctx, instance.Options{DataDir: t.TempDir(), Name: "seed.example/attest"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tn, err := in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	marked := 0
	err = seedlog.Fill(ctx, in.Log, tn, 2500, 7, func(i int, ev *event.Event) {
		if i%10 == 0 {
			ev.Action = "seed.marked"
			marked++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	head, err := in.Log.Head(ctx, in.DB.Read, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if head.Size != 2500 || marked != 250 {
		t.Errorf("the log holds %d events and the mix marked %d, want 2500 and 250", head.Size, marked)
	}
}
