package auditlog_test

import (
	"context"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

func genEvents(n int) []*event.Event {
	g := eventgen.New(7, time.Now().Add(-time.Duration(n)*3*time.Millisecond-time.Hour))
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = g.Next()
	}
	return evs
}

// BenchmarkAppend measures in-process appends through the Go API: events
// prepared by parallel goroutines, committed by the writer.
func BenchmarkAppend(b *testing.B) {
	_, opts := storetest.OpenSQLite(b)
	in := openInstanceB(b, opts)
	ctx := context.Background()
	ten, _ := in.Tenants.ByName(ctx, tenant.Default)
	evs := genEvents(b.N)
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

// BenchmarkPrepare measures preparing events, once their subjects' keys
// exist, in one goroutine.
func BenchmarkPrepare(b *testing.B) {
	_, opts := storetest.OpenSQLite(b)
	in := openInstanceB(b, opts)
	ctx := context.Background()
	ten, _ := in.Tenants.ByName(ctx, tenant.Default)
	evs := genEvents(b.N)
	if _, err := in.Log.PrepareAll(ctx, ten, evs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, ev := range evs {
		if _, err := in.Log.Prepare(ctx, ten, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriter measures the writer alone: events already prepared,
// appended in chunks of 5000.
func BenchmarkWriter(b *testing.B) {
	_, opts := storetest.OpenSQLite(b)
	in := openInstanceB(b, opts)
	ctx := context.Background()
	ten, _ := in.Tenants.ByName(ctx, tenant.Default)
	ps, err := in.Log.PrepareAll(ctx, ten, genEvents(b.N))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 5000 {
		if _, err := in.Log.Append(ctx, ten, ps[i:min(i+5000, b.N)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkVerify measures attest verify over b.N events.
func BenchmarkVerify(b *testing.B) {
	_, opts := storetest.OpenSQLite(b)
	in := openInstanceB(b, opts)
	ctx := context.Background()
	ten, _ := in.Tenants.ByName(ctx, tenant.Default)
	ps, err := in.Log.PrepareAll(ctx, ten, genEvents(b.N))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i += 5000 {
		if _, err := in.Log.Append(ctx, ten, ps[i:min(i+5000, b.N)]); err != nil {
			b.Fatal(err)
		}
		if i%50000 == 0 {
			in.Log.PublishCheckpoints(ctx)
		}
	}
	in.Log.PublishCheckpoints(ctx)
	if _, err := in.DB.Write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	if f := os.Getenv("ATTEST_VERIFY_PROFILE"); f != "" {
		out, _ := os.Create(f)
		pprof.StartCPUProfile(out)
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	rep, err := in.Log.Verify(ctx, ten, auditlog.VerifyOptions{})
	if err != nil || rep.Problem != nil {
		b.Fatal(err, rep.Problem)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkIsChange is what the writer adds to each event to count a
// tenant's changes for the console's change streams.
func BenchmarkIsChange(b *testing.B) {
	evs := []*event.Event{
		{Source: event.Source{Name: "voice-api"}, Action: "transcript.read", Category: "data_access",
			Outcome: event.Outcome{Result: "success"}},
		{Source: event.Source{Name: event.SelfSource}, Action: "user.disable", Category: "admin",
			Outcome: event.Outcome{Result: "success"}, Request: event.Request{Method: "POST"}},
		{Source: event.Source{Name: event.SelfSource}, Action: "authz.check", Category: "authorization",
			Outcome: event.Outcome{Result: "success"}, Request: event.Request{Method: "POST"}},
	}
	n := 0
	for i := 0; b.Loop(); i++ {
		if auditlog.IsChange(evs[i%len(evs)]) {
			n++
		}
	}
	if n == 0 {
		b.Fatal("no change counted")
	}
}
