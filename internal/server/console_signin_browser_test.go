package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/chromedp"
)

// TestConsoleLockoutAndRecoveryCode fails the password on the page until
// attest throttles the account, and reads the page telling the person to
// wait and for how long; once the wait is over the person signs in with a
// recovery code instead of the authenticator app.
func TestConsoleLockoutAndRecoveryCode(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "lee@example.com", "security_analyst")
	errText := func() string { return pageText(t, ctx, chromedp.ID("signin-error")) }
	if err := within(ctx, chromedp.Navigate(ts.url+"/"), chromedp.WaitVisible(chromedp.ID("tenant")),
		chromedp.SendKeys(chromedp.ID("tenant"), tenant.Default), chromedp.SendKeys(chromedp.ID("email"), p.email)); err != nil {
		t.Fatal(err)
	}
	var last string
	for i := 0; i < 6 && !strings.Contains(last, "too many"); i++ {
		if err := within(ctx,
			chromedp.Evaluate[chromedp.Void](`document.getElementById("signin-error").textContent = "";
				document.getElementById("password").value = ""`),
			chromedp.SendKeys(chromedp.ID("password"), "not the password at all "+string(rune('a'+i))),
			chromedp.Click(chromedp.CSS("#password-step button")),
			chromedp.Poll[chromedp.Void](`document.getElementById("signin-error").textContent !== ""`)); err != nil {
			t.Fatal(err)
		}
		last = errText()
		if !strings.Contains(last, "too many") && last != "the email or password is wrong" {
			t.Fatalf("attempt %d: the page says %q", i+1, last)
		}
	}
	screenshot(t, ctx, "signin-throttled")
	if !strings.Contains(last, "too many failed attempts") || !strings.Contains(last, "Try again in") {
		t.Fatalf("after repeated wrong passwords the page says %q, want the wait explained", last)
	}

	// The wait over, the recovery code signs in.
	c.Add(5 * time.Minute)
	err := within(ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("password").value = ""`),
		chromedp.SendKeys(chromedp.ID("password"), p.password),
		chromedp.Click(chromedp.CSS("#password-step button")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.Click(chromedp.CSS("#factor-step summary")),
		chromedp.WaitVisible(chromedp.ID("recovery")),
		chromedp.SendKeys(chromedp.ID("recovery"), p.recovery[0]),
		chromedp.Click(chromedp.CSS("#recovery-step button")),
		chromedp.WaitVisible(chromedp.ID("overview")))
	if err != nil {
		screenshot(t, ctx, "recovery-failed")
		t.Fatalf("%v; the page says %q", err, errText())
	}
	if who := pageText(t, ctx, chromedp.ID("who")); who != p.email {
		t.Errorf("signed in as %q", who)
	}
}
