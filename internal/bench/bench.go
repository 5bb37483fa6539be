// Package bench measures attest on a fresh server: bulk ingest over HTTPS,
// the query filters, and verification. attest bench prints its report.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/attest/attest/capture"
	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json"
	"github.com/prometheus/client_golang/prometheus"
)

// Options say what to measure.
type Options struct {
	// Events is how many events to ingest; default 1,000,000.
	Events int
	// Clients is the number of concurrent ingest connections; default 4.
	Clients int
	// Batch is the number of events per ingest request; default 5000.
	Batch int
	// Queries is the number of queries timed per filter; default 100.
	Queries int
	// DatabaseURL selects PostgreSQL: the run uses a fresh schema in that
	// database and drops it afterwards. Empty means SQLite.
	DatabaseURL string
	// DataDir is kept after the run when set; empty means a temporary one.
	DataDir string
	// Progress receives progress lines; nil means none.
	Progress io.Writer
	// Skip names phases not to run (see Phases).
	Skip []string
	// AckEvents is how many single-event requests each level of
	// concurrency sends in the acks phase; default 20,000.
	AckEvents int
	// CloudTrailDir holds CloudTrail files (JSON arrays of records) whose
	// records the cloudtrail phase copies with varied values; empty skips
	// the phase.
	CloudTrailDir string
}

// Phases are the bench's phases in the order they run: "ingest" (skipped,
// the DataDir of an earlier run is measured again), "storage", "verify",
// "deep", "queries", and "acks", "append", "cloudtrail", "capture" and
// "selfaudit" and "authz", which add events and so run last.
var Phases = []string{"ingest", "storage", "verify", "deep", "queries", "acks", "append", "cloudtrail", "capture", "selfaudit",
	"authz"}

// Result is one measurement.
type Result struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// P50 and P95 are latencies in milliseconds, when the measure has them.
	P50 float64 `json:"p50_ms,omitempty"`
	P95 float64 `json:"p95_ms,omitempty"`
	P99 float64 `json:"p99_ms,omitempty"`
	N   int     `json:"n,omitempty"`
}

// Report is a bench run's results.
type Report struct {
	Engine  string    `json:"engine"`
	Events  int       `json:"events"`
	CPUs    int       `json:"cpus"`
	GoOS    string    `json:"goos"`
	CPU     string    `json:"cpu"`
	Started time.Time `json:"started"`
	Results []Result  `json:"results"`
}

func (o *Options) defaults() {
	if o.Events <= 0 {
		o.Events = 1_000_000
	}
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Batch <= 0 {
		o.Batch = 5000
	}
	if o.Queries <= 0 {
		o.Queries = 100
	}
	if o.AckEvents <= 0 {
		o.AckEvents = 20_000
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

type run struct {
	dir    string
	seen   int64
	rnd    *mrand.Rand
	opts   Options
	rep    *Report
	in     *instance.Instance
	url    string
	client *http.Client
	ingest string
	reader string
	events []*event.Event
	pool   *x509.CertPool
	cert   tls.Certificate
	dbURL  string
	// raw is the size of the ingested NDJSON.
	raw int64
}

// Run measures attest and returns the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	r := &run{opts: opts, rep: &Report{Engine: "sqlite", Events: opts.Events, CPUs: runtime.NumCPU(),
		GoOS: runtime.GOOS + "/" + runtime.GOARCH, CPU: cpuName(), Started: time.Now().UTC()}}
	dir := opts.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "attest-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	dbURL := opts.DatabaseURL
	if dbURL != "" {
		r.rep.Engine = "postgres"
		u, drop, err := freshSchema(ctx, dbURL)
		if err != nil {
			return nil, err
		}
		defer drop()
		dbURL = u
	}
	r.dir, r.dbURL = dir, dbURL
	r.rnd = mrand.New(mrand.NewPCG(5, 6))
	stop, err := r.start(ctx, dir, dbURL)
	if err != nil {
		return nil, err
	}
	defer stop()
	steps := []struct {
		name string
		run  func(context.Context) error
	}{{"ingest", r.bulkIngest}, {"storage", r.storage}, {"verify", r.verify}, {"deep", r.verifyDeep},
		{"queries", r.queries}, {"acks", r.acks}, {"append", r.appendInProcess}, {"cloudtrail", r.cloudTrailStorage},
		{"capture", r.captureCost}, {"selfaudit", r.selfAuditCost}, {"authz", r.authzChecks}}
	for _, step := range steps {
		if slices.Contains(opts.Skip, step.name) || step.name == "storage" && slices.Contains(opts.Skip, "ingest") {
			if step.name == "ingest" {
				if err := r.regenerate(ctx); err != nil {
					return r.rep, err
				}
			}
			continue
		}
		if err := step.run(ctx); err != nil {
			return r.rep, err
		}
	}
	return r.rep, nil
}

func (r *run) start(ctx context.Context, dir, dbURL string) (func(), error) {
	reg := prometheus.NewRegistry()
	in, err := instance.Open(ctx, instance.Options{DataDir: dir, DatabaseURL: dbURL, Name: "bench.attest.local",
		Log: auditlog.Config{Metrics: auditlog.NewMetrics(reg)}})
	if err != nil {
		return nil, err
	}
	r.in = in
	cert, _, err := server.LoadCertificate("", "", dir, time.Now())
	if err != nil {
		in.Close()
		return nil, err
	}
	srv, err := server.New(in, server.Config{Registry: reg, MaxBodyBytes: 64 << 20, WithoutRateLimits: true})
	if err != nil {
		in.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		in.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx, ln, cert) }()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	r.pool, r.cert = pool, cert
	r.url = "https://" + ln.Addr().String()
	r.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}}
	def, err := in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		cancel()
		return nil, err
	}
	tok, _, err := in.CreateKey(ctx, def, access.RoleIngest, "bench ingest", time.Time{}, instance.SystemActor(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	r.ingest = tok.Reveal()
	if tok, _, err = in.CreateKey(ctx, def, access.RoleReader, "bench reader", time.Time{}, instance.SystemActor(), nil); err != nil {
		cancel()
		return nil, err
	}
	r.reader = tok.Reveal()
	return func() {
		cancel()
		<-done
		in.DB.Close()
	}, nil
}

func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, format+"\n", args...)
}

// bulkIngest sends every event as NDJSON batches from several connections
// and times until the last answer, each sent only after its events commit.
// generator returns the run's event generator. Its start time is kept in
// the data directory, so that a later run with --skip ingest on the same
// directory regenerates the events it holds, for the queries.
func (r *run) generator() (*eventgen.Generator, error) {
	f := filepath.Join(r.dir, "bench-start")
	start := time.Now().Add(-time.Duration(r.opts.Events)*3*time.Millisecond - time.Hour).UTC()
	if b, err := os.ReadFile(f); err == nil {
		if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err == nil {
			start = t
		}
	} else if err := os.WriteFile(f, []byte(start.Format(time.RFC3339Nano)), 0o600); err != nil {
		return nil, err
	}
	return eventgen.New(42, start), nil
}

// sampleSize is how many of the generated events are kept to draw query
// values from. Keeping them all would hold a million pointer-rich values on
// the heap, and the garbage collector's work on them would slow down the
// server being measured in the same process.
const sampleSize = 20000

// keep adds ev to a uniform sample of the generated events.
func (r *run) keep(ev *event.Event) {
	r.seen++
	if len(r.events) < sampleSize {
		r.events = append(r.events, ev)
		return
	}
	if i := r.rnd.Int64N(r.seen); i < sampleSize {
		r.events[i] = ev
	}
}

// regenerate rebuilds the events of an earlier run without ingesting them.
func (r *run) regenerate(context.Context) error {
	g, err := r.generator()
	if err != nil {
		return err
	}
	for range r.opts.Events {
		r.keep(g.Next())
	}
	return nil
}

func (r *run) bulkIngest(ctx context.Context) error {
	n := r.opts.Events
	g, err := r.generator()
	if err != nil {
		return err
	}
	r.progress("generating %d events", n)
	var bodies [][]byte
	var raw int64
	for i := 0; i < n; i += r.opts.Batch {
		var b []byte
		for j := i; j < min(i+r.opts.Batch, n); j++ {
			ev := g.Next()
			r.keep(ev)
			b = event.AppendProducer(b, ev)
			b = append(b, '\n')
		}
		raw += int64(len(b))
		bodies = append(bodies, b)
	}
	r.raw = raw
	r.progress("ingesting %d events (%.0f MB of NDJSON) over HTTPS from %d connections", n, float64(raw)/1e6, r.opts.Clients)
	var next atomic.Int64
	var accepted atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < r.opts.Clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				var out ingestCounts
				if err := r.post(ctx, bodies[i], &out); err != nil || out.Rejected > 0 {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("ingest batch %d: %v (%d rejected)", i, err, out.Rejected)
					}
					mu.Unlock()
					return
				}
				accepted.Add(int64(out.Accepted))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	if int(accepted.Load()) != n {
		return fmt.Errorf("bulk ingest: %d of %d events accepted", accepted.Load(), n)
	}
	r.add(Result{Name: "bulk NDJSON ingest over HTTPS, durable", Value: float64(n) / el.Seconds(), Unit: "events/s", N: n})
	r.progress("ingested in %s", el.Round(time.Millisecond))
	// The index builds its segments behind the writer. Later phases are
	// timed on a quiet server, as an operator would run them.
	def, err := r.in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		return err
	}
	for !r.in.Log.IndexIdle(def) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.progress("the index caught up %s after the last answer", (time.Since(start) - el).Round(time.Millisecond))
	return nil
}

// storeSize is the store's size on disk: the SQLite files, or the
// PostgreSQL schema's tables with their indexes.
func (r *run) storeSize(ctx context.Context) (int64, error) {
	var size int64
	if r.dbURL == "" {
		for _, f := range []string{"attest.db", "attest.db-wal"} {
			if fi, err := os.Stat(filepath.Join(r.dir, f)); err == nil {
				size += fi.Size()
			}
		}
		return size, nil
	}
	err := r.in.DB.Read.QueryRowContext(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')`).Scan(&size)
	if err != nil {
		return 0, fmt.Errorf("storage: %w", err)
	}
	return size, nil
}

// storage measures the store's size on disk per event, indexes included,
// against the NDJSON the events came in.
func (r *run) storage(ctx context.Context) error {
	size, err := r.storeSize(ctx)
	if err != nil {
		return err
	}
	n := r.opts.Events
	r.add(Result{Name: "bytes on disk per event, indexes included", Value: float64(size) / float64(n), Unit: "bytes", N: n})
	r.add(Result{Name: "bytes on disk against the raw NDJSON", Value: float64(size) / float64(r.raw), Unit: "x", N: n})
	return nil
}

// acks times single-event requests from many concurrent clients, each
// with its own TLS connection, each answered once its event is committed.
func (r *run) acks(ctx context.Context) error {
	for _, clients := range []int{64, 256} {
		n := r.opts.AckEvents
		g := eventgen.New(uint64(1000+clients), time.Now().Add(-time.Hour).UTC())
		bodies := make([][]byte, n)
		for i := range bodies {
			bodies[i] = event.AppendProducer(nil, g.Next())
		}
		r.progress("sending %d single-event requests from %d clients", n, clients)
		var next atomic.Int64
		lat := make([]time.Duration, n)
		errs := make(chan error, clients)
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.pool},
					ForceAttemptHTTP2: true}}
				defer c.CloseIdleConnections()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					t := time.Now()
					var out ingestCounts
					if err := r.postWith(ctx, c, "application/json", bodies[i], &out); err != nil || out.Accepted != 1 {
						errs <- fmt.Errorf("single event %d: %v (%+v)", i, err, out)
						return
					}
					lat[i] = time.Since(t)
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		p50, p95, p99 := percentiles(lat)
		r.add(Result{Name: fmt.Sprintf("single-event durable acks, %d clients", clients), Value: float64(n) / el.Seconds(),
			Unit: "events/s", P50: p50, P95: p95, P99: p99, N: n})
	}
	return nil
}

// appendInProcess times appending through the Go API, without HTTP: four
// goroutines prepare and append batches of 1,000 into a tenant of their
// own, each batch committed before its call returns.
func (r *run) appendInProcess(ctx context.Context) error {
	n := min(r.opts.Events, 200_000)
	if err := r.in.CreateTenant(ctx, "bench-append", false, instance.SystemActor(), nil); err != nil {
		return err
	}
	t, err := r.in.Tenants.ByName(ctx, "bench-append")
	if err != nil {
		return err
	}
	g := eventgen.New(7, time.Now().Add(-time.Hour).UTC())
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = g.Next()
		evs[i].Tenant = ""
	}
	r.progress("appending %d events in process", n)
	const workers, chunk = 4, 1000
	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(chunk)) - chunk
				if i >= n {
					return
				}
				ps, err := r.in.Log.PrepareAll(ctx, t, evs[i:min(i+chunk, n)])
				var rs []auditlog.Result
				if err == nil {
					rs, err = r.in.Log.Append(ctx, t, ps)
				}
				for _, res := range rs {
					if err == nil && (res.Err != nil || res.Duplicate) {
						err = fmt.Errorf("in-process append: an event was not stored: %v", res.Err)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	r.add(Result{Name: "in-process append through the Go API, durable", Value: float64(n) / el.Seconds(), Unit: "events/s", N: n})
	return nil
}

// cloudTrailStorage imports CloudTrail records made from the records of
// the files in CloudTrailDir, each with its own event id, time, request
// id, caller and source address, into a tenant of their own, and measures
// what the store grew by against the NDJSON of the records.
func (r *run) cloudTrailStorage(ctx context.Context) error {
	if r.opts.CloudTrailDir == "" {
		r.progress("no --cloudtrail-dir: the CloudTrail storage phase is skipped")
		return nil
	}
	files, err := filepath.Glob(filepath.Join(r.opts.CloudTrailDir, "*.json"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("cloudtrail: no *.json files in %s", r.opts.CloudTrailDir)
	}
	var templates []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var recs []map[string]any
		if err := json.Unmarshal(b, &recs); err != nil {
			return fmt.Errorf("cloudtrail: %s: %v", f, err)
		}
		templates = append(templates, recs...)
	}
	if err := r.in.CreateTenant(ctx, "bench-cloudtrail", false, instance.SystemActor(), nil); err != nil {
		return err
	}
	t, err := r.in.Tenants.ByName(ctx, "bench-cloudtrail")
	if err != nil {
		return err
	}
	tok, _, err := r.in.CreateKey(ctx, t, access.RoleIngest, "bench cloudtrail", time.Time{}, instance.SystemActor(), nil)
	if err != nil {
		return err
	}
	n := min(r.opts.Events, 200_000)
	rnd := mrand.New(mrand.NewPCG(11, 12))
	start := time.Now().Add(-time.Duration(n) * time.Millisecond).UTC()
	var bodies [][]byte
	var raw int64
	var body []byte
	for i := range n {
		rec := maps.Clone(templates[i%len(templates)])
		user := fmt.Sprintf("user-%04d", rnd.IntN(500))
		rec["eventID"] = fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rnd.Uint32(), rnd.IntN(1<<16), rnd.IntN(1<<12), rnd.IntN(1<<12), rnd.Uint64()>>16)
		rec["eventTime"] = start.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339)
		rec["requestID"] = fmt.Sprintf("%016x", rnd.Uint64())
		rec["sourceIPAddress"] = fmt.Sprintf("203.0.%d.%d", rnd.IntN(12), rnd.IntN(250)+1)
		if id, ok := rec["userIdentity"].(map[string]any); ok {
			id = maps.Clone(id)
			id["userName"] = user
			id["arn"] = "arn:aws:iam::123456789012:user/" + user
			id["principalId"] = fmt.Sprintf("AIDA%016X", rnd.Uint64())
			rec["userIdentity"] = id
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		body = append(append(body, line...), '\n')
		raw += int64(len(line)) + 1
		if len(body) > 4<<20 || i == n-1 {
			bodies = append(bodies, body)
			body = nil
		}
	}
	before, err := r.storeSize(ctx)
	if err != nil {
		return err
	}
	r.progress("importing %d CloudTrail records (%.0f MB of NDJSON)", n, float64(raw)/1e6)
	stored := 0
	for _, b := range bodies {
		req, err := http.NewRequestWithContext(ctx, "POST", r.url+"/api/v1/audit/events?format=cloudtrail", bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok.Reveal())
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		var out ingestCounts
		err = json.UnmarshalRead(resp.Body, &out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || out.Rejected > 0 {
			return fmt.Errorf("cloudtrail import: status %d, %+v, %v", resp.StatusCode, out, err)
		}
		stored += out.Accepted
	}
	for !r.in.Log.IndexIdle(t) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	after, err := r.storeSize(ctx)
	if err != nil {
		return err
	}
	r.add(Result{Name: "CloudTrail records: bytes on disk per event, indexes included", Value: float64(after-before) / float64(stored),
		Unit: "bytes", N: stored})
	r.add(Result{Name: "CloudTrail records: bytes on disk against the raw NDJSON", Value: float64(after-before) / float64(raw),
		Unit: "x", N: stored})
	return nil
}

// captureCost serves a small handler over loopback HTTP, plain and then
// behind capture.Middleware sending to the bench's attest, and loads each
// with the same concurrent clients for the same time.
func (r *run) captureCost(ctx context.Context) error {
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	})
	dir, err := os.MkdirTemp("", "attest-bench-capture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := capture.New(capture.Config{URL: r.url, APIKey: r.ingest, Source: "bench-service", BufferDir: dir,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.pool}, ForceAttemptHTTP2: true}}})
	if err != nil {
		return err
	}
	captured := capture.Middleware(c, capture.Options{Actor: func(*http.Request) capture.Actor {
		return capture.Actor{Type: "user", ID: "bench-user"}
	}})(handler)
	const clients, span = 32, 5 * time.Second
	for _, v := range []struct {
		name string
		h    http.Handler
	}{{"plain", handler}, {"with capture", captured}} {
		r.progress("loading a service, %s, from %d clients for %s", v.name, clients, span)
		reqs, lat, err := loadService(ctx, v.h, clients, span)
		if err != nil {
			return err
		}
		p50, _, p99 := percentiles(lat)
		r.add(Result{Name: "a small service's requests, " + v.name, Value: float64(reqs) / span.Seconds(), Unit: "requests/s",
			P50: p50, P99: p99, N: reqs})
	}
	if err := c.Close(); err != nil {
		return err
	}
	if st := c.Stats(); st.Dropped != 0 || st.Rejected != 0 || st.Sent+st.Duplicates != st.Recorded {
		return fmt.Errorf("capture: not every request was recorded: %+v", st)
	}
	return nil
}

// loadService serves h on a loopback port and sends it requests from n
// clients for span; it returns how many were answered and their latencies.
func loadService(ctx context.Context, h http.Handler, n int, span time.Duration) (int, []time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	return load(ctx, "http://"+ln.Addr().String()+"/calls/42", nil, n, span, func() *http.Client {
		return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	}, nil)
}

// ingestCounts is the part of an ingest answer the bench reads; the
// per-event results are skipped.
type ingestCounts struct {
	Accepted int `json:"accepted"`
	Rejected int `json:"rejected"`
}

func (r *run) post(ctx context.Context, body []byte, out *ingestCounts) error {
	return r.postWith(ctx, r.client, "application/x-ndjson", body, out)
}

func (r *run) postWith(ctx context.Context, c *http.Client, contentType string, body []byte, out *ingestCounts) error {
	req, err := http.NewRequestWithContext(ctx, "POST", r.url+"/api/v1/audit/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.ingest)
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return json.UnmarshalRead(resp.Body, out)
}

func (r *run) verify(ctx context.Context) error {
	def, err := r.in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		return err
	}
	r.progress("verifying the log")
	rep, err := r.in.Log.Verify(ctx, def, auditlog.VerifyOptions{})
	if err != nil {
		return err
	}
	if rep.Problem != nil {
		return fmt.Errorf("verify: %v", rep.Problem)
	}
	r.add(Result{Name: "verify (re-hash, rebuild tree, checkpoints)", Value: float64(rep.Size) / rep.Elapsed.Seconds(),
		Unit: "events/s", N: int(rep.Size)})
	return nil
}

func (r *run) verifyDeep(ctx context.Context) error {
	def, err := r.in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		return err
	}
	r.progress("verifying the log deeply: personal values and the index")
	deep, err := r.in.Log.Verify(ctx, def, auditlog.VerifyOptions{Deep: true})
	if err != nil {
		return err
	}
	if deep.Problem != nil {
		return fmt.Errorf("verify --deep: %v", deep.Problem)
	}
	r.add(Result{Name: "verify --deep (also personal values and index)", Value: float64(deep.Size) / deep.Elapsed.Seconds(),
		Unit: "events/s", N: int(deep.Size)})
	return nil
}

// queries times each filter of the query API over HTTPS, with values
// drawn from the ingested events, newest first, 50 per page.
func (r *run) queries(ctx context.Context) error {
	rnd := mrand.New(mrand.NewPCG(7, 8))
	pick := func() *event.Event { return r.events[rnd.IntN(len(r.events))] }
	filters := []struct {
		name string
		q    func() url.Values
	}{
		{"no filter (latest page)", func() url.Values { return url.Values{} }},
		{"occurred_at range (one minute)", func() url.Values {
			t := pick().OccurredAt
			return url.Values{"occurred_from": {t.Format(time.RFC3339Nano)}, "occurred_to": {t.Add(time.Minute).Format(time.RFC3339Nano)}}
		}},
		{"received_at range (one second)", func() url.Values {
			t := time.Now().Add(-time.Duration(rnd.IntN(30)) * time.Second)
			return url.Values{"received_from": {t.Format(time.RFC3339Nano)}, "received_to": {t.Add(time.Second).Format(time.RFC3339Nano)}}
		}},
		{"actor_id", func() url.Values { return url.Values{"actor_id": {pick().Actor.ID}} }},
		{"action (exact)", func() url.Values { return url.Values{"action": {pick().Action}} }},
		{"action (prefix)", func() url.Values {
			a := pick().Action
			return url.Values{"action_prefix": {a[:strings.Index(a, ".")+1]}}
		}},
		{"category", func() url.Values { return url.Values{"category": {pick().Category}} }},
		{"target type and id", func() url.Values {
			e := pick()
			return url.Values{"target_type": {e.Target.Type}, "target_id": {e.Target.ID}}
		}},
		{"outcome", func() url.Values {
			return url.Values{"outcome": {[]string{"success", "denied", "failure", "error"}[rnd.IntN(4)]}}
		}},
		{"source", func() url.Values { return url.Values{"source": {pick().Source.Name}} }},
		{"client_ip", func() url.Values { return url.Values{"client_ip": {pick().Actor.IP}} }},
		{"text in target name", func() url.Values {
			f := strings.Fields(pick().Target.Name)
			return url.Values{"q": {" " + f[1] + " Maple"}}
		}},
		{"text in action", func() url.Values { return url.Values{"q": {"mfa.ver"}} }},
		{"actor and category", func() url.Values {
			e := pick()
			return url.Values{"actor_id": {e.Actor.ID}, "category": {e.Category}}
		}},
	}
	for _, f := range filters {
		var lat []time.Duration
		for i := 0; i < r.opts.Queries; i++ {
			q := f.q()
			q.Set("limit", "50")
			start := time.Now()
			if err := r.get(ctx, "/api/v1/compliance/audit-trail?"+q.Encode()); err != nil {
				return fmt.Errorf("query %s: %w", f.name, err)
			}
			lat = append(lat, time.Since(start))
		}
		p50, p95, p99 := percentiles(lat)
		r.add(Result{Name: "query: " + f.name, Unit: "ms", Value: p95, P50: p50, P95: p95, P99: p99, N: len(lat)})
	}
	return nil
}

func (r *run) get(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", r.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.reader)
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func percentiles(d []time.Duration) (p50, p95, p99 float64) {
	slices.Sort(d)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return float64(d[max(i, 0)].Microseconds()) / 1000
	}
	return at(0.50), at(0.95), at(0.99)
}

func (r *run) add(res Result) {
	r.rep.Results = append(r.rep.Results, res)
	r.progress("  %s: %s", res.Name, formatValue(res))
}

func formatValue(res Result) string {
	switch {
	case res.Unit == "ms":
		return fmt.Sprintf("p50 %.1f ms, p95 %.1f ms, p99 %.1f ms", res.P50, res.P95, res.P99)
	case res.Unit == "x":
		return fmt.Sprintf("%.2f x", res.Value)
	case res.P50 > 0:
		return fmt.Sprintf("%.0f %s (p50 %.1f ms, p99 %.1f ms)", res.Value, res.Unit, res.P50, res.P99)
	}
	return fmt.Sprintf("%.0f %s", res.Value, res.Unit)
}

// Print writes the report as a table.
func (rep *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "attest bench: %s, %d events, %d CPUs (%s), %s\n\n", rep.Engine, rep.Events, rep.CPUs, rep.CPU, rep.GoOS)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tRESULT")
	for _, res := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\n", res.Name, formatValue(res))
	}
	tw.Flush()
}

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// freshSchema creates an empty schema in the database at base and returns a
// URL that uses it, and a function that drops it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	b := make([]byte, 5)
	rand.Read(b)
	schema := "bench_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("bench: create schema in %s: %w", store.RedactURL(base), err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		if d, err := sql.Open("pgx", base); err == nil {
			d.Exec("DROP SCHEMA " + schema + " CASCADE")
			d.Close()
		}
	}, nil
}
