package server_test

import (
	"bufio"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// openStream opens the change stream with a session token and returns its
// lines as they come.
func (ts *testServer) openStream(token string) (lines <-chan string, resp *http.Response) {
	ts.t.Helper()
	return ts.openStreamAfter(token, "")
}

// openStreamAfter is openStream as a browser reconnecting sends it, with
// the id of the last notice it had, when lastID is not "".
func (ts *testServer) openStreamAfter(token, lastID string) (lines <-chan string, resp *http.Response) {
	ts.t.Helper()
	req, err := http.NewRequest("GET", ts.url+"/api/v1/stream", nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err = ts.client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { resp.Body.Close() })
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch, resp
}

// nextEvent waits up to d for the stream's next named event and returns
// its name and data, or "" when none came.
func nextEvent(lines <-chan string, d time.Duration) (name, data string) {
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return "closed", ""
			}
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(l, "data: "); ok && name != "" {
				return name, v
			}
		case <-timeout:
			return "", ""
		}
	}
}

// nextNotice waits up to d for the stream's next named event and returns
// the id it carries, its name and data, or "" for each when none came.
func nextNotice(lines <-chan string, d time.Duration) (id, name, data string) {
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return id, "closed", ""
			}
			if v, ok := strings.CutPrefix(l, "id: "); ok {
				id = v
			} else if v, ok := strings.CutPrefix(l, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(l, "data: "); ok && name != "" {
				return id, name, v
			}
		case <-timeout:
			return id, "", ""
		}
	}
}

// TestChangeStreamReconnects drops a stream, makes a change while it is
// gone, and reconnects as a browser does, naming the id of the last
// notice it had: the change is announced at once. A reconnection that
// missed nothing, or names an id that is no count of the log's, hears of
// nothing.
func TestChangeStreamReconnects(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{ControlsInterval: -1})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")

	// The stream opens naming the count of changes as its id.
	lines, resp := ts.openStream(p.session)
	last, _, _ := nextNotice(lines, 500*time.Millisecond)
	resp.Body.Close() // the connection drops
	first, err := strconv.ParseInt(last, 10, 64)
	if err != nil {
		t.Fatalf("the stream opened with the id %q, want the count of changes", last)
	}
	ts.do("POST", "/api/v1/users", ts.operator, hdr, `{"email":"gap@example.com","name":"Gap"}`, http.StatusCreated, nil)

	lines, resp = ts.openStreamAfter(p.session, last)
	id, name, data := nextNotice(lines, 2*time.Second)
	resp.Body.Close()
	if name != "change" || data != `{"changes":1}` || id != strconv.FormatInt(first+1, 10) {
		t.Fatalf("after the reconnection the stream sent %q %q %s, want the change made meanwhile", id, name, data)
	}
	// Reconnecting with that id, or with none, or with one that is no
	// count of the log's, misses nothing: no notice comes.
	for _, after := range []string{id, "", "abc", "-5", "99999999999"} {
		lines, resp := ts.openStreamAfter(p.session, after)
		if _, name, _ := nextNotice(lines, time.Second); name != "" {
			t.Errorf("a reconnection after %q was sent %q with nothing changed since", after, name)
		}
		resp.Body.Close()
	}

	// Signed out, the stream hears of no change made after, though it
	// ends only at its next check, 15 s on.
	lines, _ = ts.openStream(p.session)
	nextNotice(lines, 300*time.Millisecond)
	ts.do("POST", "/api/v1/auth/logout", p.session, nil, "", http.StatusOK, nil)
	ts.do("POST", "/api/v1/users", ts.operator, hdr, `{"email":"after@example.com","name":"After"}`, http.StatusCreated, nil)
	if _, name, data := nextNotice(lines, 2*time.Second); name != "" {
		t.Errorf("after the sign-out the stream sent %q %s, want nothing", name, data)
	}
}

// TestChangeStream checks the console's change stream: it needs a
// person's session and is no auditor's, announces a change in the
// caller's tenant and neither reads, failures, ingested events nor another
// tenant's changes, is bounded per session, ends when the session or the
// permission goes, and does not hold up a shutdown.
func TestChangeStream(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	// No control runs: their results are changes too, and would come at any
	// moment after the test's own.
	ts := startClocked(t, opts, c, server.Config{StreamCheck: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		ControlsInterval: -1})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	ts.do("GET", "/api/v1/stream", ts.operator, hdr, "", http.StatusForbidden, nil)
	ts.do("GET", "/api/v1/stream", "", nil, "", http.StatusUnauthorized, nil)
	member := ts.enrol(c, tenant.Default, "mo@example.com", "member")
	ts.do("GET", "/api/v1/stream", member.session, nil, "", http.StatusForbidden, nil)

	ingest, authz := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "authz")
	// Opening the stream, as a page does at each reconnection, is no sign
	// of the person: it leaves the session's last activity as it was.
	lastActive := func() string {
		var list struct {
			Sessions []struct {
				LastActive string `json:"last_active_at"`
			}
		}
		ts.do("GET", "/api/v1/users/"+p.id+"/sessions", ts.operator, hdr, "", http.StatusOK, &list)
		return list.Sessions[0].LastActive
	}
	before := lastActive()
	c.Add(time.Minute)
	lines, resp := ts.openStream(p.session)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("stream answered %d %q", resp.StatusCode, ct)
	}
	if after := lastActive(); after != before {
		t.Errorf("opening the stream moved the session's last activity from %s to %s", before, after)
	}
	// Reads are no change, whatever their category, nor is an
	// authorization question, a failure anyone can cause, an ingested
	// event, or another tenant's change.
	ts.do("GET", "/api/v1/compliance/dashboard", p.session, nil, "", http.StatusOK, nil)
	ts.do("GET", "/api/v1/users", p.session, nil, "", http.StatusOK, nil)
	ts.do("GET", "/api/v1/settings/sessions", p.session, nil, "", http.StatusOK, nil)
	ts.do("POST", "/api/v1/authz/check", authz, nil,
		`{"subject":"`+p.id+`","action":"recording.read","resource":{"type":"recording","id":"r-1"}}`, http.StatusOK, nil)
	ts.do("POST", "/api/v1/auth/login", "", nil, `{"tenant":"default","email":"nobody@example.com","password":"wrong wrong wrong"}`,
		http.StatusUnauthorized, nil)
	ts.do("POST", "/api/v1/audit/events", ingest, nil, `{"occurred_at":"`+
		c.Now().Format(time.RFC3339)+`","source":"svc","actor":{"type":"user","id":"u-1"},"action":"settings.update",`+
		`"category":"configuration","outcome":{"result":"success"},"target":{"type":"tenant","id":"t-1"}}`, http.StatusOK, nil)
	ts.do("POST", "/api/v1/tenants", ts.operator, nil, `{"name":"other"}`, http.StatusCreated, nil)
	ts.do("POST", "/api/v1/users", ts.operator, map[string]string{"Attest-Tenant": "other"},
		`{"email":"x@example.com","name":"X"}`, http.StatusCreated, nil)
	if name, data := nextEvent(lines, time.Second); name == "change" {
		t.Fatalf("a read or another tenant's change was announced: %s", data)
	}
	ts.do("POST", "/api/v1/users", ts.operator, hdr, `{"email":"nofactor@example.com","name":"No Factor"}`,
		http.StatusCreated, nil)
	if name, data := nextEvent(lines, 5*time.Second); name != "change" || !strings.Contains(data, `"changes":`) {
		t.Fatalf("after a change the stream sent %q %q, want a change notice", name, data)
	}

	// A session holds a few streams at most; an auditor's grant none.
	for range 3 {
		ts.openStream(p.session)
	}
	ts.do("GET", "/api/v1/stream", p.session, nil, "", http.StatusTooManyRequests, nil)
	aud := ts.enrol(c, tenant.Default, "aud@example.com", "")
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, hdr,
		`{"period_start":"2026-01-01T00:00:00Z","period_end":"2026-02-01T00:00:00Z"}`, http.StatusOK, nil)
	ts.do("GET", "/api/v1/stream", aud.session, nil, "", http.StatusForbidden, nil)

	// The role that gave the permission goes: so does the stream.
	ana := ts.enrol(c, tenant.Default, "analyst@example.com", "security_analyst")
	alines, _ := ts.openStream(ana.session)
	ts.do("DELETE", "/api/v1/users/"+ana.id+"/roles/security_analyst", ts.operator, hdr, "", http.StatusOK, nil)
	for {
		name, data := nextEvent(alines, 5*time.Second)
		if name == "change" {
			continue
		}
		if name != "end" || !strings.Contains(data, "permission withdrawn") {
			t.Fatalf("after the role went the stream sent %q %q, want end", name, data)
		}
		break
	}

	// The session ends: so does the stream, saying why.
	var list struct{ Sessions []struct{ ID string } }
	ts.do("GET", "/api/v1/me/sessions", p.session, nil, "", http.StatusOK, &list)
	second := ts.login(c, tenant.Default, p)
	ts.do("DELETE", "/api/v1/me/sessions/"+list.Sessions[0].ID, second, nil, "", http.StatusOK, nil)
	for {
		name, data := nextEvent(lines, 5*time.Second)
		if name == "change" {
			continue
		}
		if name != "end" || !strings.Contains(data, "session ended") {
			t.Fatalf("after the session ended the stream sent %q %q, want end", name, data)
		}
		break
	}

	// An open stream does not hold up the shutdown, which would fail at
	// its timeout otherwise.
	lines, _ = ts.openStream(second)
	if name, _ := nextEvent(lines, 300*time.Millisecond); name == "closed" {
		t.Fatal("the second stream closed at once")
	}
	ts.stop()
	if name, data := nextEvent(lines, 5*time.Second); name != "end" || !strings.Contains(data, "shutting down") {
		t.Fatalf("at shutdown the stream sent %q %q", name, data)
	}
}

// TestLoginRefusesOtherOrigins checks that a sign-in step a browser sends
// from a page of another origin, even of the same site, is refused, so that
// no page can sign a browser into its sender's account; clients that name
// no origin, and attest's own page, sign in.
func TestLoginRefusesOtherOrigins(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "ana@example.com", "")
	body := `{"tenant":"default","email":"ana@example.com","password":"` + p.password + `"}`
	own := strings.TrimPrefix(ts.url, "https://")
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no origin", nil, http.StatusOK},
		{"attest's own page", map[string]string{"Origin": "https://" + own, "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"a sibling host", map[string]string{"Origin": "https://evil.example.test"}, http.StatusForbidden},
		{"same site, other origin", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"another site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"an opaque origin", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"plain http", map[string]string{"Origin": "http://" + own}, http.StatusForbidden},
		// A browser's own judgement stands when a proxy changed the Host.
		{"attest's page behind a proxy", map[string]string{"Origin": "https://attest.example.com",
			"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		// An untrusted peer cannot vouch for an origin.
		{"a forwarded host from an untrusted peer", map[string]string{"Origin": "https://evil.example.test",
			"X-Forwarded-Host": "evil.example.test"}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.do("POST", "/api/v1/auth/login", "", tc.hdr, body, tc.want, nil)
			ts.do("POST", "/api/v1/auth/login/totp", "", tc.hdr, `{"login_token":"atl_x","code":"123456"}`,
				map[bool]int{true: http.StatusUnauthorized, false: http.StatusForbidden}[tc.want == http.StatusOK], nil)
		})
	}

	// Behind a trusted proxy, the host it forwards is attest's own.
	_, opts2 := storetest.OpenSQLite(t)
	proxied := startClocked(t, opts2, c, server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	q := proxied.enrol(c, tenant.Default, "ana@example.com", "")
	body = `{"tenant":"default","email":"ana@example.com","password":"` + q.password + `"}`
	proxied.do("POST", "/api/v1/auth/login", "", map[string]string{"Origin": "https://attest.example.com",
		"X-Forwarded-Host": "attest.example.com"}, body, http.StatusOK, nil)
	proxied.do("POST", "/api/v1/auth/login", "", map[string]string{"Origin": "https://evil.example.test",
		"X-Forwarded-Host": "attest.example.com"}, body, http.StatusForbidden, nil)
}
