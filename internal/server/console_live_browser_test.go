package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/chromedp"
)

// TestConsoleOverviewIsLive keeps the overview open while an account
// without a second factor is created through the API: with no reload and
// no click, the page comes to list IAM-01 among the failing controls, by
// the change stream and the run after the watched change.
func TestConsoleOverviewIsLive(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, hdr, `{"controls":["IAM-01"]}`, http.StatusOK, nil)
	c.Add(30 * time.Second)
	err := within(ctx, append(signIn(t, ts.url+"/", c, p),
		chromedp.WaitVisible(chromedp.CSS("#categories tbody tr")),
		chromedp.WaitVisible(chromedp.CSS("#live")))...)
	if err != nil {
		t.Fatal(err)
	}
	failing := func() string { return pageText(t, ctx, chromedp.ID("failing")) }
	if strings.Contains(failing(), "IAM-01") {
		t.Fatalf("IAM-01 fails before the change: %q", failing())
	}
	// Let the stream connect before the change.
	for deadline := time.Now().Add(5 * time.Second); pageText(t, ctx, chromedp.ID("live")) != "live"; {
		if time.Now().After(deadline) {
			t.Fatal("the change stream never opened")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// From here the server's clock runs, as a real one does, so that the
	// run after the change is read as standing now.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for tick := time.NewTicker(10 * time.Millisecond); ; {
			select {
			case <-stop:
				tick.Stop()
				return
			case <-tick.C:
				c.Add(10 * time.Millisecond)
			}
		}
	}()
	start := time.Now()
	ts.do("POST", "/api/v1/users", ts.operator, hdr, `{"email":"nofactor@example.com","name":"No Factor"}`,
		http.StatusCreated, nil)
	for !strings.Contains(failing(), "IAM-01") {
		if time.Since(start) > 15*time.Second {
			screenshot(t, ctx, "overview-not-live")
			t.Fatalf("the overview never showed IAM-01 failing: %q", failing())
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("the overview showed the failing control %v after the change", time.Since(start).Round(10*time.Millisecond))
	// Its turn from pass to fail raised an alert, which the overview lists.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(pageText(t, ctx, chromedp.ID("alerts")), "IAM-01"); {
		if time.Now().After(deadline) {
			t.Fatalf("the open alerts read %q, want IAM-01's", pageText(t, ctx, chromedp.ID("alerts")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	screenshot(t, ctx, "overview-live")
}

// TestConsoleLiveReloadsLeaveTheSessionIdle keeps the controls page open
// with no input while changes come: the page reloads on each notice, and
// the session's last activity stays where the person left it, so that an
// open page does not keep an idle session alive.
func TestConsoleLiveReloadsLeaveTheSessionIdle(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	c.Add(30 * time.Second)
	if err := within(ctx, append(signIn(t, ts.url+"/#controls", c, p),
		chromedp.WaitVisible(chromedp.CSS("#control-list tbody tr")))...); err != nil {
		t.Fatal(err)
	}
	lastActive := func() string {
		var list struct {
			Sessions []struct {
				ID         string
				LastActive string `json:"last_active_at"`
			}
		}
		ts.do("GET", "/api/v1/users/"+p.id+"/sessions", ts.operator, hdr, "", http.StatusOK, &list)
		newest := ""
		for _, s := range list.Sessions {
			newest = max(newest, s.LastActive)
		}
		return newest
	}
	// Past the few seconds after the person's last input that count as
	// theirs, with the clock moved on so that a touch would show.
	time.Sleep(5500 * time.Millisecond)
	c.Add(time.Minute)
	before := lastActive()
	marker := `document.querySelector("#control-list tbody tr").dataset.seen = "1"`
	if err := within(ctx, chromedp.Evaluate[chromedp.Void](marker)); err != nil {
		t.Fatal(err)
	}
	ts.do("POST", "/api/v1/users", ts.operator, hdr, `{"email":"new@example.com","name":"New Person"}`, http.StatusCreated, nil)
	// The list is drawn anew on the notice: the marked row is gone.
	if err := within(ctx, chromedp.Poll[chromedp.Void](
		`!document.querySelector("#control-list tbody tr[data-seen]")`)); err != nil {
		t.Fatalf("the controls page did not reload on the change: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if after := lastActive(); after != before {
		t.Errorf("the page's own reloads moved the session's last activity from %s to %s", before, after)
	}
}
