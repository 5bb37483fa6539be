package server_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/chromedp"
)

// TestConsoleTrailSearchLink checks that a search of the trail stands in
// the location: a search made in the form puts its filters there, a link
// carrying filters opens with them filled in and their results shown,
// and going back from an event returns to that search.
func TestConsoleTrailSearchLink(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ing := ts.key(tenant.Default, "ingest")
	var evs []string
	for i := range 6 {
		action := []string{"transcript.read", "transcript.delete", "recording.play"}[i%3]
		evs = append(evs, trailEvent(fmt.Sprintf("e-%d", i), action, fmt.Sprintf("u-%d", i)))
	}
	trailIngest(t, ts, ing, evs)
	p := ts.enrol(c, tenant.Default, "sam@example.com", "security_analyst")
	c.Add(30 * time.Second)
	if err := within(ctx, append(signIn(t, ts.url+"/#trail", c, p), trailSearch("transcript.delete")...)...); err != nil {
		t.Fatal(err)
	}
	hash := trailEval[string](t, ctx, "location.hash")
	q, err := url.ParseQuery(strings.TrimPrefix(hash, "#trail/search?"))
	if !strings.HasPrefix(hash, "#trail/search?") || err != nil || q.Get("action") != "transcript.delete" {
		t.Fatalf("after the search the location reads %q", hash)
	}

	// The link opened afresh: the form holds the filter, the results
	// match it.
	link := ts.url + "/?again=1#trail/search?action=recording.play&order=asc"
	err = within(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#trail-results tbody tr")),
		trailWait(`[...document.querySelectorAll("#trail-results tbody tr")].every((r) => r.cells[3].textContent === "recording.play")`))
	if err != nil {
		t.Fatalf("the link to a search: %v", err)
	}
	if v := trailEval[string](t, ctx, `document.getElementById("trail-action").value`); v != "recording.play" {
		t.Errorf("the link filled in action %q", v)
	}
	if v := trailEval[string](t, ctx, `document.getElementById("trail-order").value`); v != "asc" {
		t.Errorf("the link filled in order %q", v)
	}
	if n := trailEval[int](t, ctx, `document.querySelectorAll("#trail-results tbody tr").length`); n != 2 {
		t.Errorf("the link's search shows %d events, want 2", n)
	}

	// An event, then back: the same search, not another.
	before := trailEval[string](t, ctx, `document.querySelector("#trail-count").dataset.search`)
	err = within(ctx, chromedp.Click(chromedp.CSS("#trail-results a")), chromedp.WaitVisible(chromedp.ID("trail-fields")),
		chromedp.Click(chromedp.ID("trail-back")), chromedp.WaitVisible(chromedp.CSS("#trail-results tbody tr")))
	if err != nil {
		t.Fatal(err)
	}
	if after := trailEval[string](t, ctx, `document.querySelector("#trail-count").dataset.search`); after != before {
		t.Errorf("going back ran search %s again as %s", before, after)
	}
	screenshot(t, ctx, "trail-link")
}
