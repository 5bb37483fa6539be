package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// enrolFirstOwner takes the first owner's link serve printed through both
// steps and answers the owner's session token.
func enrolFirstOwner(t *testing.T, s *serveProc) string {
	t.Helper()
	links := slices.Compact(enrolRE.FindAllString(s.stdout.String(), -1))
	if len(links) != 1 {
		t.Fatalf("serve printed %d enrolment links, want 1", len(links))
	}
	var st struct{ TOTP struct{ Secret string } }
	json.Unmarshal(s.call(t, "POST", "/api/v1/auth/enrol", "", nil, fmt.Appendf(nil,
		`{"token":%q,"email":"owner@example.com","name":"First Owner","password":"a long owner passphrase"}`, links[0]),
		http.StatusOK), &st)
	code, err := totp.GenerateCode(st.TOTP.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var done struct{ Session struct{ Token string } }
	json.Unmarshal(s.call(t, "POST", "/api/v1/auth/enrol/totp", "", nil, fmt.Appendf(nil, `{"token":%q,"code":%q}`,
		links[0], code), http.StatusOK), &done)
	if done.Session.Token == "" {
		t.Fatal("the enrolment answered no session")
	}
	return done.Session.Token
}

// TestStreamSeesHostCommands opens the console's change stream on a
// running serve and changes the tenant from the host, in another process:
// the stream announces the change, since every process's writer counts
// its changes in the log state that serve reads.
func TestStreamSeesHostCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	tok := enrolFirstOwner(t, s)

	req, err := http.NewRequestWithContext(t.Context(), "GET", s.url+"/api/v1/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the stream answered %d", resp.StatusCode)
	}
	notices := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				notices <- strings.TrimPrefix(sc.Text(), "event: ")
			}
		}
		close(notices)
	}()
	// The controls serve runs as it starts are changes too: wait until
	// the stream has been quiet for two seconds.
	for quiet, deadline := time.NewTimer(2*time.Second), time.Now().Add(60*time.Second); ; {
		select {
		case n, ok := <-notices:
			if !ok || time.Now().After(deadline) {
				t.Fatalf("the stream ended or never fell quiet (last %q)", n)
			}
			quiet.Reset(2 * time.Second)
			continue
		case <-quiet.C:
		}
		break
	}

	attestCmd(t, dir, "user enrol-link", "--tenant", "operator", "--owner").want(t, 0)
	select {
	case n := <-notices:
		if n != "change" {
			t.Fatalf("the stream sent %q, want a change notice", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change notice within 5 s of a change committed by a host command")
	}
}
