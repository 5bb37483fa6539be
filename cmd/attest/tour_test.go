package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/browsertest"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// tourFiles are the records the README's tour imports: the shared
// datasets when they stand beside the repository, else the two files of
// testdata/tour, so that the tour is always walked.
func tourFiles(t *testing.T) (cloudtrail, kubernetes []string) {
	root := filepath.Join("..", "..", "..", "shared", "datasets")
	if _, err := os.Stat(root); err == nil {
		cloudtrail, _ = filepath.Glob(filepath.Join(root, "cloudtrail-stratus-red-team", "*.json"))
		kubernetes, _ = filepath.Glob(filepath.Join(root, "k8s-audit-falco", "*.json"))
		return cloudtrail, kubernetes
	}
	t.Logf("the shared datasets are not at %s: the tour imports testdata/tour instead", root)
	return []string{filepath.Join("testdata", "tour", "aws.credential-access.ec2-get-password-data.json")},
		[]string{filepath.Join("testdata", "tour", "attach_pod.json")}
}

// TestReadmeTour walks the README's tour of the console as a person
// would: serve, import the CloudTrail and Kubernetes samples, make the
// tenant's first owner with a link opened in the browser, watch the
// controls, search the trail, verify an event in the page, and download
// the SOC 2 report.
func TestReadmeTour(t *testing.T) {
	ctx := browsertest.Start(t)
	dir := t.TempDir()
	s := startServe(t, dir)

	// Step 2: the samples.
	cloudtrail, kubernetes := tourFiles(t)
	attestCmd(t, dir, "import", append([]string{"--format", "cloudtrail", "--tenant", "default"}, cloudtrail...)...).want(t, 0)
	r := attestCmd(t, dir, "import", append([]string{"--format", "kubernetes", "--tenant", "default"}, kubernetes...)...)
	if r.code != 0 && r.code != 1 {
		t.Fatalf("kubernetes import exited %d: %s", r.code, r.stderr)
	}

	// Step 3: the first owner of the default tenant, through the link.
	link := strings.TrimSpace(attestCmd(t, dir, "user enrol-link", "--tenant", "default", "--owner").want(t, 0).stdout)
	err := browsertest.Within(ctx,
		chromedp.Navigate(s.url+"/#enrol/"+link),
		chromedp.WaitVisible(chromedp.ID("enrol-password")),
		chromedp.SendKeys(chromedp.ID("enrol-password"), "a long tour passphrase 42"),
		chromedp.Click(chromedp.CSS("#enrol-step button")),
		// A link that makes a new account asks for its email and name.
		chromedp.WaitVisible(chromedp.ID("enrol-email")),
		chromedp.SendKeys(chromedp.ID("enrol-email"), "you@example.com"),
		chromedp.SendKeys(chromedp.ID("enrol-name"), "Tour Owner"),
		chromedp.Click(chromedp.CSS("#enrol-step button")),
		chromedp.WaitVisible(chromedp.ID("enrol-code")))
	if err != nil {
		browsertest.Screenshot(t, ctx, "tour-enrol-failed")
		t.Fatalf("%v; the page says %q", err, browsertest.Text(t, ctx, chromedp.ID("signin-error")))
	}
	secret := browsertest.Text(t, ctx, chromedp.ID("enrol-secret"))
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = browsertest.Within(ctx,
		chromedp.SendKeys(chromedp.ID("enrol-code"), code),
		chromedp.Click(chromedp.CSS("#enrol-confirm button")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-codes li")))
	if err != nil {
		t.Fatalf("%v; the page says %q", err, browsertest.Text(t, ctx, chromedp.ID("signin-error")))
	}
	browsertest.Screenshot(t, ctx, "tour-recovery-codes")
	if err := browsertest.Within(ctx, chromedp.Click(chromedp.ID("enrol-continue")),
		chromedp.WaitVisible(chromedp.CSS("#categories tbody tr"))); err != nil {
		t.Fatal(err)
	}
	// The factor's key and the codes, read once, have left the page.
	left, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`["enrol-secret", "enrol-uri", "enrol-codes"].map((id) => document.getElementById(id).textContent).join("")`))
	if err != nil || left != "" {
		t.Errorf("after enrolment the page still holds %q (%v)", left, err)
	}
	browsertest.Screenshot(t, ctx, "tour-overview")

	// Step 4: the controls, which serve runs within seconds of starting.
	status := `#control-list tr:has(button[data-control="IAM-01"]) td:nth-child(4)`
	if err := browsertest.Within(ctx, chromedp.Click(chromedp.ID("go-controls")), chromedp.WaitVisible(chromedp.CSS(status))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		got := browsertest.Text(t, ctx, chromedp.CSS(status))
		if got == "pass" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("IAM-01 reads %q, want pass: its only account has a second factor", got)
		}
		time.Sleep(200 * time.Millisecond)
		if err := browsertest.Within(ctx, chromedp.Click(chromedp.ID("refresh-controls"))); err != nil {
			t.Fatal(err)
		}
	}
	browsertest.Screenshot(t, ctx, "tour-controls")

	// Step 5: search the trail for the CloudTrail call the sample made,
	// open it and verify it in the page.
	err = browsertest.Within(ctx,
		chromedp.Click(chromedp.ID("go-trail")),
		chromedp.WaitVisible(chromedp.ID("trail-form")),
		chromedp.SendKeys(chromedp.ID("trail-action"), "ec2:GetPasswordData"),
		chromedp.Click(chromedp.ID("trail-submit")),
		chromedp.WaitVisible(chromedp.CSS("#trail-results a")))
	if err != nil {
		browsertest.Screenshot(t, ctx, "tour-trail-failed")
		t.Fatalf("%v; the page says %q", err, browsertest.Text(t, ctx, chromedp.ID("trail-error")))
	}
	browsertest.Screenshot(t, ctx, "tour-trail")
	if err := browsertest.Within(ctx, chromedp.Click(chromedp.CSS("#trail-results a")),
		chromedp.WaitVisible(chromedp.ID("trail-fields"))); err != nil {
		t.Fatal(err)
	}
	if got := browsertest.Text(t, ctx, chromedp.ID("trail-fields")); !strings.Contains(got, "ec2:GetPasswordData") {
		t.Errorf("the event's fields read %q", got)
	}
	// The newest events wait for serve's next checkpoint, within a second.
	var verdict string
	for deadline := time.Now().Add(20 * time.Second); ; {
		if err := browsertest.Within(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("trail-fields"))); err != nil {
			t.Fatal(err)
		}
		if err := browsertest.Within(ctx, chromedp.Click(chromedp.ID("trail-verify")),
			chromedp.WaitVisible(chromedp.ID("trail-verdict"))); err == nil {
			verdict = browsertest.Text(t, ctx, chromedp.ID("trail-verdict"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event never had a proof to verify")
		}
		time.Sleep(500 * time.Millisecond)
	}
	browsertest.Screenshot(t, ctx, "tour-verified")
	if !strings.HasPrefix(verdict, "Verified:") {
		t.Fatalf("the verdict reads %q", verdict)
	}

	// Step 6: the SOC 2 report, downloaded.
	downloads := t.TempDir()
	err = browsertest.Within(ctx, chromedp.Click(chromedp.ID("go-reports")), chromedp.WaitVisible(chromedp.ID("report-pdf")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
			return err
		}),
		chromedp.Click(chromedp.ID("report-pdf")))
	if err != nil {
		t.Fatal(err)
	}
	var pdf []byte
	for deadline := time.Now().Add(60 * time.Second); pdf == nil; {
		names, _ := filepath.Glob(filepath.Join(downloads, "*.pdf"))
		if len(names) == 1 {
			pdf, _ = os.ReadFile(names[0])
		}
		if time.Now().After(deadline) {
			browsertest.Screenshot(t, ctx, "tour-report-failed")
			t.Fatalf("no report was saved; the page says %q", browsertest.Text(t, ctx, chromedp.ID("report-status")))
		}
		time.Sleep(200 * time.Millisecond)
	}
	browsertest.Screenshot(t, ctx, "tour-report")
	if !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Errorf("the saved report starts %q", pdf[:min(len(pdf), 8)])
	}
}
