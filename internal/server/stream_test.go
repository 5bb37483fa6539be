package server_test

import (
	"bufio"
	"net/http"
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
	req, err := http.NewRequest("GET", ts.url+"/api/v1/stream", nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
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

// TestChangeStream checks the console's change stream: it needs a
// person's session, announces a change in the caller's tenant and neither
// reads nor another tenant's changes, ends when the session is revoked,
// and does not hold up a shutdown.
func TestChangeStream(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{StreamCheck: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second})
	hdr := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "ana@example.com", "compliance_officer")
	ts.do("GET", "/api/v1/stream", ts.operator, hdr, "", http.StatusForbidden, nil)
	ts.do("GET", "/api/v1/stream", "", nil, "", http.StatusUnauthorized, nil)
	member := ts.enrol(c, tenant.Default, "mo@example.com", "member")
	ts.do("GET", "/api/v1/stream", member.session, nil, "", http.StatusForbidden, nil)

	lines, resp := ts.openStream(p.session)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("stream answered %d %q", resp.StatusCode, ct)
	}
	// Reads are no change, nor is another tenant's change.
	ts.do("GET", "/api/v1/compliance/dashboard", p.session, nil, "", http.StatusOK, nil)
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
