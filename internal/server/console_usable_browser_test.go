package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/chromedp"
)

// evalJS runs a script in the page and answers its value.
func evalJS[T any](t *testing.T, ctx context.Context, script string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](script))
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return v
}

// unlabelled lists the form fields of the page, hidden ones included,
// that no label names: each needs a <label for>, a wrapping label or an
// aria-label.
const unlabelled = `[...document.querySelectorAll("input:not([type=hidden]),select,textarea")]
  .filter((e) => e.labels.length === 0 && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby"))
  .map((e) => e.id || e.name || e.outerHTML.slice(0, 60))`

// TestConsoleByKeyboardAndOnAPhone signs in with the keyboard alone, moves
// between pages with Tab and Enter, checks that every field on every page
// has a label, then shows each page at phone width without the page
// growing wider than the screen, saving a screenshot of each.
func TestConsoleByKeyboardAndOnAPhone(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "kim@example.com", "compliance_officer")
	c.Add(30 * time.Second)
	// The keys: the page focuses the first field, Tab moves on, Enter
	// submits; the second step focuses the code.
	err := within(ctx,
		chromedp.Navigate(ts.url+"/"),
		chromedp.WaitVisible(chromedp.ID("tenant")),
		chromedp.KeyEvent(tenant.Default+"\t"+p.email+"\t"+p.password+"\r"),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.KeyEvent(code(t, p.secret, c.Now())+"\r"),
		chromedp.WaitVisible(chromedp.CSS("#categories tbody tr")))
	if err != nil {
		screenshot(t, ctx, "keyboard-failed")
		t.Fatal(err)
	}
	pages := evalJS[[]string](t, ctx, `[...document.querySelectorAll("#nav-links a")].map((a) => a.id)`)
	if len(pages) < 2 {
		t.Fatalf("the navigation shows %v", pages)
	}
	// Tab from the top of the page to the second page's link, then Enter.
	target := pages[1]
	for i := 0; evalJS[string](t, ctx, "document.activeElement.id") != target; i++ {
		if i > 30 {
			t.Fatalf("Tab never reached %s", target)
		}
		if err := within(ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
	}
	if err := within(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	section := strings.TrimPrefix(target, "go-")
	if err := within(ctx, chromedp.WaitVisible(chromedp.ID(section))); err != nil {
		t.Fatalf("Enter on %s did not open its page: %v", target, err)
	}

	// Every page at desktop and at phone width.
	for _, size := range []struct {
		name string
		w, h int64
	}{{"desktop", 1280, 800}, {"phone", 390, 844}} {
		if err := within(ctx, chromedp.EmulateViewport(size.w, size.h)); err != nil {
			t.Fatal(err)
		}
		for _, id := range pages {
			page := strings.TrimPrefix(id, "go-")
			if err := within(ctx, chromedp.Click(chromedp.ID("go-"+page)), chromedp.WaitVisible(chromedp.ID(page))); err != nil {
				t.Fatalf("%s at %s: %v", page, size.name, err)
			}
			time.Sleep(300 * time.Millisecond) // the page's requests
			screenshot(t, ctx, size.name+"-"+page)
			if size.name == "phone" {
				if wide := evalJS[bool](t, ctx, "document.documentElement.scrollWidth > window.innerWidth + 1"); wide {
					t.Errorf("at phone width the %s page is wider than the screen (%v > %v)", page,
						evalJS[float64](t, ctx, "document.documentElement.scrollWidth"), size.w)
				}
			}
		}
	}
	if bad := evalJS[[]string](t, ctx, unlabelled); len(bad) > 0 {
		t.Errorf("fields without a label: %v", bad)
	}
}
