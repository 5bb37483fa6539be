package auditlog_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// BenchmarkAppend measures in-process appends through the Go API: events
// prepared by parallel goroutines, committed by the writer.
func BenchmarkAppend(b *testing.B) {
	_, opts := storetest.OpenSQLite(b)
	in := openInstanceB(b, opts)
	ctx := context.Background()
	ten, _ := in.Tenants.ByName(ctx, tenant.Default)
	g := eventgen.New(7, time.Now().Add(-time.Hour))
	evs := make([]*event.Event, b.N)
	for i := range evs {
		evs[i] = g.Next()
	}
	b.ResetTimer()
	const workers, chunk = 4, 1000
	var wg sync.WaitGroup
	next := make(chan int)
	go func() {
		for i := 0; i < b.N; i += chunk {
			next <- i
		}
		close(next)
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ps, err := in.Log.PrepareAll(ctx, ten, evs[i:min(i+chunk, b.N)])
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := in.Log.Append(ctx, ten, ps); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
