// Package seedlog fills a tenant's audit log with eventgen's traffic, for
// benchmarks and speed checks that need a long history: the events go
// straight to the log, in batches of 1,000 from four goroutines.
package seedlog

import (
	"context"
	"sync"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/tenant"
)

// Fill appends n events of eventgen's mix, seeded with seed and starting an
// hour ago, to t's log. mix, when given, edits the i-th event before it is
// stored. It answers the first error any batch met.
func Fill(ctx context.Context, l *auditlog.Log, t *tenant.Tenant, n int, seed uint64, mix func(i int, ev *event.Event)) error {
	g := eventgen.New(seed, time.Now().Add(-time.Hour).UTC())
	var mu sync.Mutex
	next := 0
	batch := func() []*event.Event {
		mu.Lock()
		defer mu.Unlock()
		if next >= n {
			return nil
		}
		evs := make([]*event.Event, min(1000, n-next))
		for i := range evs {
			evs[i] = g.Next()
			if mix != nil {
				mix(next+i, evs[i])
			}
		}
		next += len(evs)
		return evs
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for evs := batch(); evs != nil; evs = batch() {
				ps, err := l.PrepareAll(ctx, t, evs)
				if err == nil {
					_, err = l.Append(ctx, t, ps)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
