package report_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen/seedlog"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/report"
	"github.com/attest/attest/internal/tenant"
)

// benchMix turns some of eventgen's traffic into the identity and access
// events a platform's trail holds alongside it: per 10,000 events about 20
// accounts created, 7 terminated, 5 elevations approved, and the
// configuration changes written as the writes they are.
func benchMix(i int, ev *event.Event) {
	switch {
	case i%500 == 0:
		ev.Action, ev.Category, ev.Target.Type = "user.create", "admin", "user"
	case i%1500 == 1:
		ev.Action, ev.Category, ev.Target.Type = "user.disable", "admin", "user"
	case i%2000 == 2:
		ev.Action, ev.Category, ev.Target.Type = "elevation.approve", "authorization", "elevation"
	}
	if ev.Category == "configuration" {
		ev.Request.Method = "PUT"
	}
	// What the populations count is attest's own record: the changes made
	// through it, and what it detected.
	switch ev.Action {
	case "user.create", "user.disable", "elevation.approve", "role.grant", "role.revoke":
		ev.Source.Name = event.SelfSource
	}
	if ev.Category == "configuration" || ev.Category == "security" {
		ev.Source.Name = event.SelfSource
	}
}

// BenchmarkSOC2Report seeds a tenant's trail with ATTEST_BENCH_EVENTS
// events (default 1,000,000) of eventgen's mix, then generates the
// twelve-month report over it: scores, system description, the six
// populations in one scan of the trail, the sample draws and the signed
// manifest. The trail is on SQLite, in a directory removed at the end,
// unless ATTEST_BENCH_DIR names a directory to keep it in: a trail seeded
// there is reused by later runs, so that profiles show the report alone.
func BenchmarkSOC2Report(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("ATTEST_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	in, t := benchTrail(b, n)
	to := in.Now().Add(time.Hour)
	from := to.AddDate(-1, 0, 0)
	b.ResetTimer()
	var rows int
	for range b.N {
		sc, err := controls.Score(ctx, in, t, from, to)
		if err != nil {
			b.Fatal(err)
		}
		bl, err := report.Build(ctx, in, t, sc, report.Options{From: from, To: to})
		if err != nil {
			b.Fatal(err)
		}
		rows = 0
		for _, p := range bl.Report.Populations {
			rows += p.Rows
		}
	}
	b.ReportMetric(float64(rows), "population_rows")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/report")
}

// benchTrails keeps the seeded trail between the runs of a benchmark: the
// testing package calls it with b.N of 1 first, then with the N asked for.
var benchTrails = map[int]struct {
	in  *instance.Instance
	t   *tenant.Tenant
	dir string
}{}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, tr := range benchTrails {
		tr.in.Close()
		if os.Getenv("ATTEST_BENCH_DIR") == "" {
			os.RemoveAll(tr.dir)
		}
	}
	os.Exit(code)
}

// benchTrail opens an instance whose default tenant's log holds n events
// of the benchmark's mix, covered by a signed checkpoint.
func benchTrail(b *testing.B, n int) (*instance.Instance, *tenant.Tenant) {
	if tr, ok := benchTrails[n]; ok {
		return tr.in, tr.t
	}
	ctx := context.Background()
	dir, kept, err := benchDir(n)
	if err != nil {
		b.Fatal(err)
	}
	in, err := instance.Open(ctx, instance.Options{DataDir: dir, Name: "bench.example/attest"})
	if err != nil {
		b.Fatal(err)
	}
	t, _ := in.Tenants.ByName(ctx, tenant.Default)
	if !kept {
		start := time.Now()
		seed(b, in, t, n)
		if _, err := in.Log.PublishCheckpoints(ctx); err != nil {
			b.Fatal(err)
		}
		b.Logf("seeded %d events in %s", n, time.Since(start).Round(time.Second))
		if os.Getenv("ATTEST_BENCH_DIR") != "" {
			if err := os.WriteFile(filepath.Join(dir, "seeded"), nil, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	benchTrails[n] = struct {
		in  *instance.Instance
		t   *tenant.Tenant
		dir string
	}{in, t, dir}
	return in, t
}

// benchDir returns the directory of a trail of n events, and whether it
// already holds one: a new temporary directory, or under ATTEST_BENCH_DIR
// the directory of n events, emptied when its seeding did not finish.
func benchDir(n int) (dir string, kept bool, err error) {
	root := os.Getenv("ATTEST_BENCH_DIR")
	if root == "" {
		dir, err = os.MkdirTemp("", "attest-report-bench")
		return dir, false, err
	}
	dir = filepath.Join(root, "events-"+strconv.Itoa(n))
	if _, err := os.Stat(filepath.Join(dir, "seeded")); err == nil {
		return dir, true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", false, err
	}
	return dir, false, os.MkdirAll(dir, 0o700)
}

// seed appends n events of the benchmark's mix to t's log.
func seed(b *testing.B, in *instance.Instance, t *tenant.Tenant, n int) {
	if err := seedlog.Fill(context.Background(), in.Log, t, n, 11, benchMix); err != nil {
		b.Fatal(err)
	}
}
