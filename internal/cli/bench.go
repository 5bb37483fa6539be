package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/attest/attest/internal/bench"
)

func cmdBench(e *env, args []string) int {
	var o bench.Options
	var asJSON bool
	fs := newFlags(e, "bench")
	fs.IntVar(&o.Events, "events", 1_000_000, "events to ingest and query")
	fs.IntVar(&o.Clients, "clients", 4, "concurrent ingest connections")
	fs.IntVar(&o.Batch, "batch", 5000, "events per ingest request")
	fs.IntVar(&o.Queries, "queries", 100, "queries timed per filter")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "run on PostgreSQL, in a fresh schema of this database")
	fs.secret("database-url")
	fs.StringVar(&o.DataDir, "data-dir", "", "keep the run's data directory here; default a temporary one")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	var cpuProfile, memProfile, skip string
	fs.IntVar(&o.AckEvents, "ack-events", 20_000, "single-event requests sent at each level of concurrency (acks phase)")
	fs.StringVar(&o.CloudTrailDir, "cloudtrail-dir", "", "CloudTrail files whose records the cloudtrail phase copies "+
		"with varied values, such as ../shared/datasets/cloudtrail-stratus-red-team; empty skips that phase")
	fs.StringVar(&skip, "skip", "", "comma-separated phases to skip: "+strings.Join(bench.Phases, ", ")+
		" (skipping ingest measures the --data-dir of an earlier run)")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&memProfile, "memprofile", "", "write a profile of the whole run's allocations to this file")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	tuneGC()
	if o.DatabaseURL != "" {
		u, err := connURL(o.DatabaseURL)
		if err != nil {
			return usageErr(e, "%v", err)
		}
		o.DatabaseURL = u
	}
	o.Progress = e.stderr
	if skip != "" {
		o.Skip = strings.Split(skip, ",")
		for _, p := range o.Skip {
			if !slices.Contains(bench.Phases, p) {
				return usageErr(e, "--skip: unknown phase %q; the phases are %s", p, strings.Join(bench.Phases, ", "))
			}
		}
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return usageErr(e, "--cpuprofile: %v", err)
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return usageErr(e, "--memprofile: %v", err)
		}
		defer f.Close()
		defer pprof.Lookup("allocs").WriteTo(f, 0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return fail(e, "bench: %v", err)
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return exitOK
	}
	rep.Print(e.stdout)
	return exitOK
}
