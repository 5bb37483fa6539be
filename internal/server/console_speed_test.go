package server_test

import (
	"context"
	"net/http"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/attest/attest/internal/eventgen/seedlog"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/chromedp"
)

// TestConsoleOverviewSpeed measures, in real Chromium, how long the
// overview takes to load, from navigation to its last value on the page,
// with ATTEST_BENCH_CONSOLE_EVENTS events (such as 1000000) in the
// tenant's log and every control run. It logs the times and asserts
// nothing of them; without the variable it is skipped.
func TestConsoleOverviewSpeed(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ATTEST_BENCH_CONSOLE_EVENTS"))
	if n <= 0 {
		t.Skip("set ATTEST_BENCH_CONSOLE_EVENTS (such as 1000000) to measure the console's overview over that many events")
	}
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	tn, err := ts.in.Tenants.ByName(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	seedEvents(t, ts, tn.Name, n)
	t.Logf("seeded %d events in %s", n, time.Since(start).Round(time.Second))
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, `{}`, http.StatusOK, nil)
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	c.Add(30 * time.Second)
	loaded := chromedp.WaitVisible(chromedp.CSS("#overview-updated:not(:empty)"))
	if err := within(ctx, append(signIn(t, ts.url+"/", c, p), loaded)...); err != nil {
		t.Fatal(err)
	}
	var times []time.Duration
	for i := range 10 {
		begin := time.Now()
		if err := within(ctx, chromedp.Navigate(ts.url+"/?load="+strconv.Itoa(i)+"#overview"), loaded); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(begin))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	t.Logf("overview with %d events: median %s, fastest %s, slowest %s of %d loads", n,
		times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond),
		times[len(times)-1].Round(time.Millisecond), len(times))
	screenshot(t, ctx, "overview-million")

	// The audit trail opens on the newest events; scrolling to its end
	// loads the next page.
	rows := chromedp.WaitVisible(chromedp.CSS("#trail-results tbody tr"))
	times = times[:0]
	var scrolls []time.Duration
	for i := range 10 {
		begin := time.Now()
		if err := within(ctx, chromedp.Navigate(ts.url+"/?load="+strconv.Itoa(i)+"#trail"), rows); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(begin))
		shown := evalJS[int](t, ctx, `document.querySelectorAll("#trail-results tbody tr").length`)
		begin = time.Now()
		if err := within(ctx, chromedp.ScrollIntoView(chromedp.ID("trail-sentinel")),
			chromedp.Poll[chromedp.Void](`document.querySelectorAll("#trail-results tbody tr").length > `+strconv.Itoa(shown))); err != nil {
			t.Fatal(err)
		}
		scrolls = append(scrolls, time.Since(begin))
	}
	median := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2].Round(time.Millisecond)
	}
	t.Logf("audit trail with %d events: first page median %s (slowest %s), next page on scrolling median %s (slowest %s)",
		n, median(times), times[len(times)-1].Round(time.Millisecond), median(scrolls),
		scrolls[len(scrolls)-1].Round(time.Millisecond))
	screenshot(t, ctx, "trail-million")
}

// seedEvents appends n events of eventgen's mix to a tenant's log, past
// the API, as a platform's long history would stand.
func seedEvents(t *testing.T, ts *testServer, tenantName string, n int) {
	ctx := context.Background()
	tn, err := ts.in.Tenants.ByName(ctx, tenantName)
	if err != nil {
		t.Fatal(err)
	}
	if err := seedlog.Fill(ctx, ts.in.Log, tn, n, 11, nil); err != nil {
		t.Fatal(err)
	}
}
