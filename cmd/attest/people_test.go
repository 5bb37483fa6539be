package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

var enrolRE = regexp.MustCompile(`ate_[a-z2-7]{16}_[a-z2-7]{52}`)

// TestFirstOwnerAndHostCommands follows what serve prints on a fresh data
// directory to create the first owner, then disables the owner from the
// host and uses the break-glass account.
func TestFirstOwnerAndHostCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	// The link is printed alone and within the console's address.
	links := slices.Compact(enrolRE.FindAllString(s.stdout.String(), -1))
	if len(links) != 1 || !strings.Contains(s.stdout.String(), "/#enrol/"+links[0]) {
		t.Fatalf("serve printed %d enrolment links, want 1, also as a console address:\n%s", len(links), s.stdout)
	}
	start := s.call(t, "POST", "/api/v1/auth/enrol", "", nil, []byte(fmt.Sprintf(
		`{"token":%q,"email":"owner@example.com","name":"First Owner","password":"a long owner passphrase"}`, links[0])),
		http.StatusOK)
	var st struct {
		UserID string `json:"user_id"`
		TOTP   struct{ Secret string }
	}
	json.Unmarshal(start, &st)
	code, _ := totp.GenerateCode(st.TOTP.Secret, time.Now())
	done := s.call(t, "POST", "/api/v1/auth/enrol/totp", "", nil, []byte(fmt.Sprintf(`{"token":%q,"code":%q}`, links[0], code)),
		http.StatusOK)
	var sess struct{ Session struct{ Token string } }
	json.Unmarshal(done, &sess)
	me := s.call(t, "GET", "/api/v1/me", sess.Session.Token, nil, nil, http.StatusOK)
	if !strings.Contains(string(me), `"role":"owner"`) {
		t.Errorf("the first account is not an owner: %s", me)
	}
	// The trail names the account the link made.
	var enrolled struct {
		Items []struct {
			Event struct{ Target struct{ Type, ID string } }
		}
	}
	json.Unmarshal(s.call(t, "GET", "/api/v1/compliance/audit-trail?action=user.enrol.start", sess.Session.Token, nil, nil,
		http.StatusOK), &enrolled)
	if st.UserID == "" || len(enrolled.Items) != 1 || enrolled.Items[0].Event.Target != (struct{ Type, ID string }{"user", st.UserID}) {
		t.Errorf("the enrolment of %q is in the trail as %+v", st.UserID, enrolled.Items)
	}
	// The link is spent.
	s.call(t, "POST", "/api/v1/auth/enrol", "", nil, []byte(fmt.Sprintf(`{"token":%q,"email":"x@example.com",`+
		`"name":"X","password":"another long passphrase"}`, links[0])), http.StatusUnauthorized)

	attestCmd(t, dir, "user list", "--tenant", "operator").want(t, 0)
	attestCmd(t, dir, "user disable", "--tenant", "operator", "--email", "nobody@example.com").want(t, 1)
	out := attestCmd(t, dir, "user disable", "--tenant", "operator", "--email", "OWNER@example.com", "--reason", "left").want(t, 0)
	if !strings.Contains(out.stdout, "disabled") {
		t.Errorf("user disable printed %q", out.stdout)
	}
	s.call(t, "GET", "/api/v1/me", sess.Session.Token, nil, nil, http.StatusUnauthorized)
	attestCmd(t, dir, "user enrol-link", "--tenant", "operator", "--owner").want(t, 0)

	// Break glass: once per passphrase, every use on record.
	attestCmd(t, dir, "breakglass use", "--reason", "x").want(t, 1)
	pass := strings.TrimSpace(attestCmd(t, dir, "breakglass init").want(t, 0).stdout)
	attestCmd(t, dir, "breakglass init").want(t, 1)
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not-the-passphrase\n"), 0o600)
	right := filepath.Join(t.TempDir(), "right")
	os.WriteFile(right, []byte(pass+"\n"), 0o600)
	attestCmd(t, dir, "breakglass use", "--reason", "drill", "--passphrase-file", wrong).want(t, 1)
	attestCmd(t, dir, "breakglass use", "--passphrase-file", right).want(t, 2)
	used := attestCmd(t, dir, "breakglass use", "--reason", "owner locked out", "--passphrase-file", right).want(t, 0)
	key := strings.TrimSpace(used.stdout)
	if used.stdout == "" || strings.Contains(used.stderr, pass) {
		t.Fatalf("breakglass use: stdout %q stderr %q", used.stdout, used.stderr)
	}
	s.call(t, "GET", "/api/v1/tenants", key, nil, nil, http.StatusOK)
	again := attestCmd(t, dir, "breakglass use", "--reason", "again", "--passphrase-file", right).want(t, 1)
	if !strings.Contains(again.stderr, "rotated") {
		t.Errorf("a second use said %q", again.stderr)
	}
	if st := attestCmd(t, dir, "breakglass status").want(t, 0).stdout; !strings.Contains(st, "rotation required: true") {
		t.Errorf("status after use: %q", st)
	}
	pass2 := strings.TrimSpace(attestCmd(t, dir, "breakglass rotate").want(t, 0).stdout)
	if pass2 == pass {
		t.Fatal("rotation kept the passphrase")
	}
	// Rotating revokes the key the use minted.
	s.call(t, "GET", "/api/v1/tenants", key, nil, nil, http.StatusUnauthorized)
	trail := s.call(t, "GET", "/api/v1/compliance/audit-trail?action=security.breakglass.use", s.key, nil, nil, http.StatusOK)
	if n := strings.Count(string(trail), `"action":"security.breakglass.use"`); n != 3 {
		t.Errorf("%d break-glass events on record, want 3 (wrong, used, refused): %s", n, trail)
	}
	if strings.Contains(string(trail), pass) {
		t.Error("the trail holds the passphrase")
	}
}

// TestControlsValidateCommand runs the control tests from the host: the
// exit code says whether every control passed.
func TestControlsValidateCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	attestCmd(t, dir, "init").want(t, 0)
	out := attestCmd(t, dir, "controls validate").want(t, 1)
	if !strings.Contains(out.stdout, "IAM-01") || !strings.Contains(out.stdout, "no_evidence") {
		t.Errorf("controls validate printed:\n%s", out.stdout)
	}
	attestCmd(t, dir, "controls validate", "--control", "RET-01").want(t, 0)
	attestCmd(t, dir, "controls validate", "--control", "NOPE").want(t, 2)
}
