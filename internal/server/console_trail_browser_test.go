package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/chromedp/chromedp"
)

// trailIngest sends events as NDJSON with an ingest key and returns the
// sequence numbers they were given.
func trailIngest(t *testing.T, ts *testServer, key string, events []string) []int64 {
	t.Helper()
	var r ingestResp
	ts.do("POST", "/api/v1/audit/events", key, map[string]string{"Content-Type": "application/x-ndjson"},
		strings.Join(events, "\n"), http.StatusOK, &r)
	if r.Accepted != len(events) {
		t.Fatalf("ingested %d of %d events: %+v", r.Accepted, len(events), r.Results)
	}
	seqs := make([]int64, len(r.Results))
	for i, res := range r.Results {
		seqs[i] = *res.Sequence
	}
	return seqs
}

// trailCheckpoint waits until a signed checkpoint covers entry seq.
func trailCheckpoint(t *testing.T, ts *testServer, key string, seq int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp := ts.do("GET", "/api/v1/audit/checkpoint", key, nil, "", 0, nil)
		note, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			continue
		}
		lines := strings.Split(string(note), "\n")
		if len(lines) > 1 {
			if size, err := strconv.ParseInt(lines[1], 10, 64); err == nil && size > seq {
				return
			}
		}
	}
	t.Fatalf("no checkpoint covers entry %d within 10 seconds", seq)
}

// trailEval evaluates a JavaScript expression in the page, awaiting it
// when it is a promise.
func trailEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ectx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// trailWait waits until the JavaScript predicate is true.
func trailWait(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second),
		chromedp.WithPollingInterval(50*time.Millisecond))
}

// trailRows is an expression giving the result table's rows as lists of
// cell texts.
const trailRows = `[...document.querySelectorAll("#trail-results tbody tr")]
	.map((r) => [...r.cells].map((c) => c.textContent))`

// trailSearch is the steps that search the trail for one action, after
// the extra steps, and wait for the first page of that search: the count
// line numbers each search.
func trailSearch(action string, extra ...chromedp.Action[chromedp.Void]) []chromedp.Action[chromedp.Void] {
	const count = `document.querySelector("#trail-count").dataset`
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(chromedp.ID("trail-form")),
		trailWait(count + `.pages >= 1`),
		chromedp.SendKeys(chromedp.ID("trail-action"), action),
	}
	steps = append(steps, extra...)
	return append(steps, trailWait(`(window.trailBefore = Number(`+count+`.search), true)`),
		chromedp.Click(chromedp.ID("trail-submit")),
		trailWait(`Number(`+count+`.search) > window.trailBefore && `+count+`.pages >= 1`),
		trailWait(`(() => { const rs = `+trailRows+`; return rs.length > 0 && rs.every((r) => r[3] === `+
			strconv.Quote(action)+`); })()`))
}

// trailNewest returns the sequences as strings, newest first.
func trailNewest(seqs []int64) []string {
	s := slices.Clone(seqs)
	slices.Sort(s)
	slices.Reverse(s)
	out := make([]string, len(s))
	for i, n := range s {
		out[i] = strconv.FormatInt(n, 10)
	}
	return out
}

func trailEvent(id, action, actor string) string {
	return fmt.Sprintf(`{"id":%q,"occurred_at":"2026-11-30T10:00:00Z","source":"voice-api","actor":{"type":"user",`+
		`"id":%q,"email":"ana@example.com","ip":"10.0.0.7"},"action":%q,"category":"data_access",`+
		`"outcome":{"result":"success"},"target":{"type":"transcript","id":"t-9","name":"Call about 12 Elm Street"}}`,
		id, actor, action)
}

// TestConsoleTrailSearchAndVerify searches the trail by action in
// Chromium, sees exactly the matching events, opens one and verifies its
// inclusion proof in the browser with the WebAssembly verifier; a key the
// log did not sign with, and a tampered leaf or proof, fail.
func TestConsoleTrailSearchAndVerify(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
	var evs []string
	for i := range 7 {
		action := "transcript.read"
		if i%2 == 1 {
			action = "transcript.delete"
		}
		evs = append(evs, trailEvent(fmt.Sprintf("e-%d", i), action, fmt.Sprintf("u-%d", i)))
	}
	seqs := trailIngest(t, ts, ing, evs)
	var odd []int64
	index := map[string]int{}
	for i, s := range seqs {
		index[strconv.FormatInt(s, 10)] = i
		if i%2 == 1 {
			odd = append(odd, s)
		}
	}
	deleted := trailNewest(odd) // as the page lists them
	trailCheckpoint(t, ts, reader, seqs[len(seqs)-1])
	p := ts.enrol(c, tenant.Default, "sam@example.com", "security_analyst")
	c.Add(30 * time.Second)

	err := within(ctx, append(signIn(t, ts.url+"/#trail", c, p), trailSearch("transcript.delete")...)...)
	if err != nil {
		screenshot(t, ctx, "trail-failed")
		t.Fatal(err)
	}
	rows := trailEval[[][]string](t, ctx, trailRows)
	var got []string
	for _, r := range rows {
		got = append(got, r[0])
	}
	if !slices.Equal(got, deleted) {
		t.Errorf("the search shows sequences %v, want the deletions %v", got, deleted)
	}
	if n := pageText(t, ctx, chromedp.ID("trail-count")); !strings.HasPrefix(n, "3 events shown") {
		t.Errorf("the count line reads %q", n)
	}
	screenshot(t, ctx, "trail-search")

	// The event's detail, then its proof checked in the browser.
	seq := deleted[0]
	err = within(ctx, chromedp.Click(chromedp.CSS(`#trail-results a[href="#trail/`+seq+`"]`)),
		chromedp.WaitVisible(chromedp.ID("trail-fields")),
		trailWait(`document.querySelector("#trail-vk") && document.querySelector("#trail-vk").value !== ""`))
	if err != nil {
		t.Fatal(err)
	}
	fields := pageText(t, ctx, chromedp.ID("trail-fields"))
	i := index[seq]
	for _, want := range []string{"transcript.delete", fmt.Sprintf("e-%d", i), fmt.Sprintf("u-%d", i), "ana@example.com",
		"Call about 12 Elm Street"} {
		if !strings.Contains(fields, want) {
			t.Errorf("the detail lacks %q: %s", want, fields)
		}
	}
	// Times read as recorded, in UTC, and in the reader's zone.
	occurred := trailEval[string](t, ctx, `[...document.querySelectorAll("#trail-fields dt")]
		.find((d) => d.textContent === "occurred_at").nextSibling.textContent`)
	if !strings.HasPrefix(occurred, "2026-11-30T10:00:00Z (") || !strings.HasSuffix(occurred, ")") {
		t.Errorf("occurred_at reads %q, want the recorded time and the local one", occurred)
	}
	screenshot(t, ctx, "trail-event")
	verdict := `document.querySelector("#trail-verdict")`
	err = within(ctx, chromedp.Click(chromedp.ID("trail-verify")), trailWait(verdict))
	if err != nil {
		t.Fatal(err)
	}
	result := pageText(t, ctx, chromedp.ID("trail-verify-result"))
	screenshot(t, ctx, "trail-verified")
	size := trailEval[string](t, ctx, `[...document.querySelectorAll("#trail-proof dt")]
		.find((d) => d.textContent === "tree size").nextSibling.textContent`)
	n, _ := strconv.ParseInt(size, 10, 64)
	vk := strings.TrimSpace(ts.get("/api/v1/audit/public-key", reader))
	cp := ts.checkpointAt(reader, vk, n)
	var key struct {
		KeyID string `json:"key_id"`
	}
	ts.do("GET", "/api/v1/audit/public-key?format=json", reader, nil, "", http.StatusOK, &key)
	if !strings.HasPrefix(result, "Verified: entry "+seq+" is in the tree of "+size+" entries") {
		t.Errorf("the verification reads %q, want entry %s verified in the tree of %s", result, seq, size)
	}
	for _, want := range []string{b64(cp.Root[:]), key.KeyID, "leaf bytes checked", "yes, they hash to it"} {
		if !strings.Contains(result, want) {
			t.Errorf("the verification does not name %q: %s", want, result)
		}
	}

	// A key the log did not sign with fails, naming who did sign.
	other, _, err := checkpoint.LoadOrCreateKey(filepath.Join(t.TempDir(), "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	otherVK, _ := checkpoint.VerifierKey(ts.in.Log.Origin(tenant.Default), other.Public)
	err = within(ctx, chromedp.SetValue(chromedp.ID("trail-vk"), otherVK), chromedp.Click(chromedp.ID("trail-verify")),
		trailWait(verdict+`.textContent.startsWith("Not verified")`))
	if err != nil {
		t.Fatal(err)
	}
	if got := pageText(t, ctx, chromedp.ID("trail-verdict")); !strings.Contains(got, "not signed by a trusted key") {
		t.Errorf("verifying against another key reads %q", got)
	}

	// The same verifier in the page refuses a leaf or a proof changed by
	// one character.
	reasons := trailEval[[]string](t, ctx, `(async () => {
		const r = await fetch("/api/v1/audit/events/`+seq+`", { headers: { "Attest-CSRF": "1" } }).then((x) => x.json());
		const vk = (await fetch("/api/v1/audit/public-key").then((x) => x.text())).trim();
		const input = { sequence: r.sequence, leaf: r.leaf, leaf_hash: r.leaf_hash, tree_size: r.proof.tree_size,
			hashes: r.proof.hashes, checkpoint: r.proof.checkpoint, verifier_key: vk };
		const swap = (s) => (s[0] === "A" ? "B" : "A") + s.slice(1);
		const run = (i) => JSON.parse(window.attestVerifyInclusion(JSON.stringify(i)));
		return [run(input), run({ ...input, leaf: btoa("[" + atob(r.leaf).slice(1)) }),
			run({ ...input, hashes: [swap(input.hashes[0]), ...input.hashes.slice(1)] }),
			run({ ...input, checkpoint: input.checkpoint.replace("\n" + input.tree_size + "\n",
				"\n" + (input.tree_size + 1) + "\n") })]
			.map((x) => (x.ok ? "ok" : "failed: ") + x.reason);
	})()`)
	for i, want := range []string{"ok", "failed: the leaf hashes to", "failed: entry " + seq + " is not in the signed tree",
		"failed: the checkpoint does not verify"} {
		if !strings.HasPrefix(reasons[i], want) {
			t.Errorf("case %d: the verifier says %q, want %q", i, reasons[i], want)
		}
	}

	// Back at the search, a filter the API refuses is named on the page.
	err = within(ctx, chromedp.Click(chromedp.ID("trail-back")), chromedp.WaitVisible(chromedp.ID("trail-form")),
		chromedp.SendKeys(chromedp.ID("trail-target-id"), "t-9"), chromedp.Click(chromedp.ID("trail-submit")),
		trailWait(`document.querySelector("#trail-error").textContent !== ""`))
	if err != nil {
		t.Fatal(err)
	}
	if got := pageText(t, ctx, chromedp.ID("trail-error")); !strings.Contains(got, "target_type") {
		t.Errorf("a target id without its type reads %q, want the API's reason", got)
	}
}

// TestConsoleTrailEscapes ingests an event whose every free text is
// markup: the search results and the detail show it as text, and no
// element it names comes into being.
func TestConsoleTrailEscapes(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
	const img, script = `<img src=x id=pwned>`, `<script>document.title="pwned"</script>`
	ev := map[string]any{
		"id": "m-1" + img, "occurred_at": "2026-11-30T10:00:00Z", "source": "markup-api", "action": "markup.test",
		"category": "data_change",
		"actor":    map[string]any{"type": "user", "id": img, "name": script + img, "email": "x@example.com"},
		"target":   map[string]any{"type": "doc" + img, "id": img, "name": `<b>bold</b>` + img},
		"outcome":  map[string]any{"result": "failure", "reason": img + script},
		"details":  map[string]any{"html": img, "script": script, img: []string{script}},
	}
	body, _ := json.Marshal(ev)
	seqs := trailIngest(t, ts, ing, []string{string(body)})
	trailCheckpoint(t, ts, reader, seqs[0])
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	c.Add(30 * time.Second)

	const noMarkup = `document.getElementById("pwned") === null && document.title !== "pwned" &&
		document.querySelectorAll("#trail img, #trail b, #trail script").length === 0`
	err := within(ctx, append(signIn(t, ts.url+"/#trail", c, p), trailSearch("markup.test")...)...)
	if err != nil {
		t.Fatal(err)
	}
	rows := trailEval[[][]string](t, ctx, trailRows)
	if len(rows) != 1 {
		t.Fatalf("the search shows %d rows, want 1", len(rows))
	}
	if r := rows[0]; r[2] != script+img+" ("+img+")" || r[4] != "doc"+img+" "+img+": <b>bold</b>"+img ||
		r[5] != "failure: "+img+script {
		t.Errorf("the row reads %q, want the markup as text", r)
	}
	if !trailEval[bool](t, ctx, noMarkup) {
		t.Errorf("the results made an element of the markup")
	}

	err = within(ctx, chromedp.Click(chromedp.CSS(`#trail-results a`)), chromedp.WaitVisible(chromedp.ID("trail-details")))
	if err != nil {
		t.Fatal(err)
	}
	fields, details := pageText(t, ctx, chromedp.ID("trail-fields")), pageText(t, ctx, chromedp.ID("trail-details"))
	for _, want := range []string{"m-1" + img, script + img, "<b>bold</b>" + img, "doc" + img} {
		if !strings.Contains(fields, want) {
			t.Errorf("the detail lacks %q as text: %s", want, fields)
		}
	}
	for _, want := range []string{`"html": "` + img + `"`, `"` + img + `": [`} {
		if !strings.Contains(details, want) {
			t.Errorf("the details lack %q as text: %s", want, details)
		}
	}
	if !trailEval[bool](t, ctx, noMarkup) {
		t.Errorf("the detail made an element of the markup")
	}
}

// TestConsoleTrailScrolls scrolls through 3000 events a thousand a page:
// each time the end of the results comes into view the next page loads,
// until the last; the page keeps 2000 rows, in order, and counts them all.
func TestConsoleTrailScrolls(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
	var evs []string
	for i := range 3000 {
		evs = append(evs, trailEvent(fmt.Sprintf("b-%d", i), "bulk.read", "u-bulk"))
	}
	seqs := trailIngest(t, ts, ing, evs)
	trailCheckpoint(t, ts, reader, seqs[len(seqs)-1])
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	c.Add(30 * time.Second)

	pages := `Number(document.querySelector("#trail-count").dataset.pages)`
	err := within(ctx, append(signIn(t, ts.url+"/#trail", c, p), trailSearch("bulk.read",
		chromedp.SetValue(chromedp.ID("trail-limit"), "1000"))...)...)
	if err != nil {
		t.Fatal(err)
	}
	if n := trailEval[int](t, ctx, pages); n != 1 {
		t.Fatalf("%d pages loaded before any scrolling, want 1", n)
	}
	for want := 2; want <= 3; want++ {
		err := within(ctx, chromedp.ScrollIntoView(chromedp.ID("trail-sentinel")),
			trailWait(pages+` >= `+strconv.Itoa(want)))
		if err != nil {
			t.Fatalf("scrolling to the end did not load page %d: %v", want, err)
		}
	}
	// Past the last page, scrolling loads nothing more.
	if err := within(ctx, chromedp.ScrollIntoView(chromedp.ID("trail-sentinel"))); err != nil {
		t.Fatal(err)
	}
	count := trailEval[map[string]string](t, ctx, `({ ...document.querySelector("#trail-count").dataset })`)
	if count["pages"] != "3" || count["loaded"] != "3000" || count["rows"] != "2000" || count["more"] != "no" {
		t.Errorf("after scrolling the count says %v, want 3 pages, 3000 loaded, 2000 on the page, no more", count)
	}
	if n := pageText(t, ctx, chromedp.ID("trail-count")); !strings.HasPrefix(n, "3000 events shown; the first 1000") ||
		!strings.Contains(n, "that is every match") {
		t.Errorf("the count line reads %q", n)
	}
	// The page keeps the last 2000 of the 3000, newest first.
	rows, want := trailEval[[][]string](t, ctx, trailRows), trailNewest(seqs)[1000:]
	if len(rows) != len(want) {
		t.Fatalf("%d rows on the page, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		if r[0] != want[i] {
			t.Fatalf("row %d is entry %s, want %s", i, r[0], want[i])
		}
	}
	if trailEval[bool](t, ctx, `document.getElementById("trail-more").hidden`) != true {
		t.Errorf("the Load more button shows after the last page")
	}
}

// TestConsoleTrailAuditor signs an auditor in: the search is bounded to
// their audit period, its occurred-time fields hold the period, and an
// event opens from the results with its proof, verified in the browser
// by its leaf hash, the single-event read being closed to an auditor. At
// phone width the page still fits.
func TestConsoleTrailAuditor(t *testing.T) {
	ctx := browser(t)
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ing, reader := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "reader")
	var evs []string
	for i, at := range []string{"2026-10-15T10:00:00Z", "2026-11-20T10:00:00Z", "2026-10-20T10:00:00Z"} {
		evs = append(evs, strings.Replace(trailEvent(fmt.Sprintf("a-%d", i), "transcript.read", "u-a"),
			"2026-11-30T10:00:00Z", at, 1))
	}
	seqs := trailIngest(t, ts, ing, evs)
	trailCheckpoint(t, ts, reader, seqs[len(seqs)-1])
	p := ts.enrol(c, tenant.Default, "aud@example.com", "")
	ts.do("PUT", "/api/v1/users/"+p.id+"/roles/auditor", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
		`{"period_start":"2026-10-01T00:00:00Z","period_end":"2026-11-01T00:00:00Z"}`, http.StatusOK, nil)
	c.Add(30 * time.Second)

	err := within(ctx, append(signIn(t, ts.url+"/#trail", c, p), trailSearch("transcript.read")...)...)
	if err != nil {
		screenshot(t, ctx, "trail-auditor-failed")
		t.Fatal(err)
	}
	var got []string
	for _, r := range trailEval[[][]string](t, ctx, trailRows) {
		got = append(got, r[0])
	}
	if want := trailNewest([]int64{seqs[0], seqs[2]}); !slices.Equal(got, want) {
		t.Errorf("the auditor's search shows %v, want the October events %v", got, want)
	}
	bounds := trailEval[[]string](t, ctx, `["trail-occurred-from", "trail-occurred-to"]
		.map((id) => new Date(document.getElementById(id).value).toISOString())`)
	if !slices.Equal(bounds, []string{"2026-10-01T00:00:00.000Z", "2026-11-01T00:00:00.000Z"}) {
		t.Errorf("the occurred-time fields hold %v, want the audit period", bounds)
	}
	if err := within(ctx, chromedp.EmulateViewport(390, 800)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "trail-auditor-phone")
	if w := trailEval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at phone width the page is %d pixels wide", w)
	}
	if err := within(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}

	seq := got[0]
	err = within(ctx, chromedp.Click(chromedp.CSS(`#trail-results a[href="#trail/`+seq+`"]`)),
		chromedp.WaitVisible(chromedp.ID("trail-fields")),
		trailWait(`document.querySelector("#trail-vk") && document.querySelector("#trail-vk").value !== ""`),
		chromedp.Click(chromedp.ID("trail-verify")),
		trailWait(`document.querySelector("#trail-verdict")`))
	if err != nil {
		t.Fatal(err)
	}
	result := pageText(t, ctx, chromedp.ID("trail-verify-result"))
	if !strings.HasPrefix(result, "Verified: entry "+seq+" is in the tree of") || !strings.Contains(result, "no: the search") {
		t.Errorf("the auditor's verification reads %q", result)
	}
	if n := trailEval[int](t, ctx, `document.querySelectorAll("#trail-detail-error:not(:empty)").length`); n != 0 {
		t.Errorf("the detail shows an error: %s", pageText(t, ctx, chromedp.ID("trail-detail-error")))
	}
}
