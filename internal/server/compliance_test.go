package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

type controlRun struct {
	Results []struct {
		ID, SHA256, Control, Status string
		Findings                    []struct{ Resource, Problem string }
	}
}

func (cr controlRun) of(t *testing.T, id string) (status string, findings []string, sum string) {
	t.Helper()
	for _, r := range cr.Results {
		if r.Control == id {
			for _, f := range r.Findings {
				findings = append(findings, f.Resource)
			}
			return r.Status, findings, r.SHA256
		}
	}
	t.Fatalf("no result for %s", id)
	return "", nil, ""
}

// TestControlsReadTheRealState runs the controls against the operator's
// state as it changes: no evidence before there is anything to judge,
// then pass, then fail with the resource at fault, each result on record.
func TestControlsReadTheRealState(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		var run controlRun
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, "", http.StatusOK, &run)
		if st, _, _ := run.of(t, "IAM-01"); st != "no_evidence" {
			t.Errorf("IAM-01 with no accounts: %s, want no_evidence", st)
		}
		if st, _, _ := run.of(t, "IAM-05"); st != "no_evidence" {
			t.Errorf("IAM-05 with no reviews: %s, want no_evidence", st)
		}
		if st, _, _ := run.of(t, "RET-01"); st != "pass" {
			t.Errorf("RET-01 at the default retention: %s, want pass", st)
		}
		ts.enrol(c, tenant.Operator, "staff@example.com", "")
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, `{"controls":["IAM-01"]}`, http.StatusOK, &run)
		if st, _, _ := run.of(t, "IAM-01"); st != "pass" {
			t.Errorf("IAM-01 with one enrolled account: %s, want pass", st)
		}
		var u struct{ User struct{ ID string } }
		ts.do("POST", "/api/v1/users", ts.operator, nil, `{"email":"nofactor@example.com","name":"No Factor"}`, http.StatusCreated, &u)
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, `{"controls":["IAM-01","IAM-02"]}`,
			http.StatusOK, &run)
		st, findings, sum := run.of(t, "IAM-01")
		if st != "fail" || len(findings) != 1 || findings[0] != "user:"+u.User.ID {
			t.Errorf("IAM-01 with an account lacking a factor: %s %v", st, findings)
		}
		// The result is on record with its digest.
		trail := ts.waitTrail(tenant.Operator, "&action=control.result&target_type=control&target_id=IAM-01", 3)
		if !strings.Contains(string(trail), sum) {
			t.Errorf("the trail lacks the result's digest %s", sum)
		}
		var list struct {
			Controls []struct{ ID, Status string }
		}
		ts.do("GET", "/api/v1/compliance/controls", ts.operator, nil, "", http.StatusOK, &list)
		for _, ctl := range list.Controls {
			if ctl.ID == "IAM-01" && ctl.Status != "fail" {
				t.Errorf("the list shows IAM-01 %s, want its latest, fail", ctl.Status)
			}
		}
		var crit struct{ Criteria []struct{ ID string } }
		ts.do("GET", "/api/v1/compliance/criteria", ts.operator, nil, "", http.StatusOK, &crit)
		if len(crit.Criteria) != 61 {
			t.Errorf("%d criteria, want 61", len(crit.Criteria))
		}
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, `{"controls":["NOPE-1"]}`,
			http.StatusBadRequest, nil)
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.key(tenant.Default, "reader"), nil, "", http.StatusForbidden, nil)
		// A control named twice runs once, and a body naming more
		// controls than the catalog holds is refused before any runs.
		var twice struct{ Results []controls.Stored }
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, `{"controls":["IAM-02","IAM-02","IAM-02"]}`,
			http.StatusOK, &twice)
		if len(twice.Results) != 1 {
			t.Errorf("IAM-02 named thrice ran %d times, want once", len(twice.Results))
		}
		many := `{"controls":["IAM-02"` + strings.Repeat(`,"IAM-02"`, len(controls.Catalog)) + `]}`
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, many, http.StatusBadRequest, nil)
	})
}
