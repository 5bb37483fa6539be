// Package browsertest drives headless Chromium for attest's tests of the
// web console: it starts the browser, bounds each step in time, reads the
// page and saves screenshots for a person to look at. It is imported by
// tests alone.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Start starts headless Chromium at 1280×800 for a test, or skips the test
// when the machine has none: ATTEST_CHROMIUM names the binary, else
// chromium on the PATH. The browser ends with the test.
func Start(t testing.TB) context.Context {
	t.Helper()
	bin := os.Getenv("ATTEST_CHROMIUM")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Skip("no Chromium on this machine (install Debian's chromium, or set ATTEST_CHROMIUM): browser tests skipped")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800),
		// The test server's certificate is made for the test, on loopback.
		chromedp.Flag("ignore-certificate-errors", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	// The first run starts the browser, and lives as long as its context:
	// it takes no timeout; the test's steps do.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	return bctx
}

// Within runs steps in the browser of ctx, giving them 20 seconds.
func Within(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Text reads the visible text of the element sel names, waiting up to ten
// seconds for it: "" when the element is on the page but hidden. A page
// that redraws the element between its finding and its reading is read
// again, rather than read as the empty text of a detached element.
func Text[S chromedp.Selectable](t testing.TB, ctx context.Context, sel S) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		v, err := chromedp.Run(tctx, liveText(sel))
		if err == nil && v != nil {
			return *v
		}
		if tctx.Err() != nil {
			if err == nil {
				err = errors.New("the element left the page each time it was read")
			}
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveText answers the innerText of the first element sel names while it
// is on show, "" while it is hidden, and nil once it has left the page.
func liveText[S chromedp.Selectable](sel S) chromedp.Action[*string] {
	return chromedp.QueryAfter(sel, func(ctx context.Context, tg *chromedp.Target, nodes []*chromedp.Node) (*string, error) {
		if len(nodes) == 0 {
			return nil, errors.New("no element matches")
		}
		r, err := cdp.Call(ctx, tg, dom.ResolveNode, dom.ResolveNodeParams{NodeID: nodes[0].NodeID})
		if err != nil {
			return nil, err
		}
		defer cdp.Call(ctx, tg, runtime.ReleaseObject, runtime.ReleaseObjectParams{ObjectID: r.Object.ObjectID})
		return chromedp.CallFunctionOn[*string](`function() {
			if (!this.isConnected) return null;
			return this.checkVisibility() ? this.innerText : "";
		}`, func(p *runtime.CallFunctionOnParams) { p.ObjectID = r.Object.ObjectID })(ctx, tg)
	})
}

// TextIs waits up to ten seconds for the text of the first element the
// CSS selector css names to read want, and answers the text it read last:
// want when it came, else what the page showed instead ("" for no such
// element). A page that redraws between two reads is read again.
func TextIs(t testing.TB, ctx context.Context, css, want string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	js := fmt.Sprintf(`document.querySelector(%s)?.textContent ?? ""`, strconv.Quote(css))
	var last string
	for {
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](js))
		if err == nil {
			last = v
			if v == want {
				return v
			}
		}
		if tctx.Err() != nil {
			if err != nil && last == "" {
				t.Fatal(err)
			}
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Screenshot saves the page as name.png in the screenshots folder at the
// root of the module, which git ignores, for a person to look at.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// moduleRoot is the nearest directory at or above the working directory
// that holds go.mod: a test runs in its package's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("browsertest: no go.mod above the working directory")
		}
		dir = parent
	}
}
