package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// receiver is a webhook endpoint over real HTTPS on loopback that keeps
// what it was sent and answers with status.
type receiver struct {
	*httptest.Server
	status int

	mu  sync.Mutex // guards got
	got []delivery
}

type delivery struct {
	at                   time.Time
	body                 []byte
	timestamp, signature string
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{status: status}
	rc.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{at: time.Now(), body: b, timestamp: r.Header.Get("Attest-Timestamp"),
			signature: r.Header.Get("Attest-Signature")})
		rc.mu.Unlock()
		w.WriteHeader(rc.status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// setWebhook stores a tenant's webhook settings, as the settings API does.
func (ts *testServer) setWebhook(tenantName, url, secret string) {
	ts.t.Helper()
	ctx := context.Background()
	t, err := ts.in.Tenants.ByName(ctx, tenantName)
	if err != nil {
		ts.t.Fatal(err)
	}
	s := controls.DefaultSettings()
	s.WebhookURL, s.WebhookSecret = url, secret
	if err := ts.in.DB.InTx(ctx, func(tx *sql.Tx) error {
		return controls.SaveSettings(ctx, ts.in.DB, tx, t.ID, s, ts.in.Now())
	}); err != nil {
		ts.t.Fatal(err)
	}
}

type alertJSON struct {
	ID, Control, Name, Previous, Status, Result string
	RaisedAt                                    time.Time `json:"raised_at"`
	AcknowledgedBy                              string    `json:"acknowledged_by"`
	Current                                     string    `json:"current_status"`
	Webhook                                     struct {
		State    string
		Attempts int
		Error    string
	}
}

// eventually polls until f holds or the deadline passes.
func eventually(t *testing.T, what string, within time.Duration, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !f(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}

func (ts *testServer) alerts(key, query string) []alertJSON {
	ts.t.Helper()
	var out struct{ Alerts []alertJSON }
	ts.do("GET", "/api/v1/compliance/alerts"+query, key, nil, "", http.StatusOK, &out)
	return out.Alerts
}

// TestWatchedChangeRaisesAlert creates an account without a second factor
// and, without anyone asking for a test, sees IAM-01 fail, an alert
// listed and its webhook arrive signed; then acknowledges it.
func TestWatchedChangeRaisesAlert(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		rc := newReceiver(t, http.StatusNoContent)
		ts := start(t, opts, server.Config{WebhookClient: rc.Client()})
		const secret = "whsec-test-0123456789"
		ts.setWebhook(tenant.Operator, rc.URL+"/attest", secret)

		var u struct{ User struct{ ID string } }
		ts.do("POST", "/api/v1/users", ts.operator, nil, `{"email":"nomfa@example.com","name":"No MFA"}`,
			http.StatusCreated, &u)
		changed := time.Now()
		var raised time.Time
		eventually(t, "an alert row for IAM-01", 20*time.Second, func() bool {
			var n int
			ts.in.DB.Read.QueryRow(`SELECT COUNT(*) FROM control_alerts WHERE control_id = 'IAM-01'`).Scan(&n)
			raised = time.Now()
			return n == 1
		})
		var as []alertJSON
		eventually(t, "the webhook", 20*time.Second, func() bool { return len(rc.deliveries()) > 0 })
		got := rc.deliveries()[0]
		t.Logf("measured: change answered -> alert row %s, -> webhook received %s",
			raised.Sub(changed).Round(time.Millisecond), got.at.Sub(changed).Round(time.Millisecond))

		as = ts.alerts(ts.operator, "")
		if len(as) != 1 || as[0].Control != "IAM-01" || as[0].Status != "fail" || as[0].Previous != "none" ||
			as[0].Current != "fail" {
			t.Fatalf("alerts = %+v, want IAM-01 failing after no run", as)
		}
		a := as[0]
		var ctl struct {
			Controls []struct {
				ID, Status string
				Latest     *struct{ ID string }
			}
		}
		ts.do("GET", "/api/v1/compliance/controls", ts.operator, nil, "", http.StatusOK, &ctl)
		for _, c := range ctl.Controls {
			if c.ID == "IAM-01" && (c.Status != "fail" || c.Latest == nil || c.Latest.ID != a.Result) {
				t.Errorf("IAM-01 reads %s with latest %+v, want fail with the alert's result %s", c.Status, c.Latest, a.Result)
			}
		}

		// The signature verifies with the secret alone.
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(got.timestamp + "." + string(got.body)))
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(got.signature), []byte(want)) || got.timestamp == "" {
			t.Errorf("Attest-Signature %q at %q does not verify (want %q)", got.signature, got.timestamp, want)
		}
		var body struct {
			ID, Tenant, Control, Name, Previous, Status, Result, Remediation string
			Findings                                                         []struct{ Resource, Problem string }
			RaisedAt                                                         time.Time `json:"raised_at"`
		}
		if err := json.Unmarshal(got.body, &body); err != nil {
			t.Fatal(err)
		}
		if body.ID != a.ID || body.Tenant != tenant.Operator || body.Control != "IAM-01" || body.Status != "fail" ||
			body.Result != a.Result || len(body.Findings) != 1 || body.Findings[0].Resource != "user:"+u.User.ID ||
			body.Remediation == "" || !body.RaisedAt.Equal(a.RaisedAt) {
			t.Errorf("webhook body = %s", got.body)
		}
		eventually(t, "the delivery on record", 10*time.Second, func() bool {
			var one struct{ Alert alertJSON }
			ts.do("GET", "/api/v1/compliance/alerts/"+a.ID, ts.operator, nil, "", http.StatusOK, &one)
			return one.Alert.Webhook.State == "delivered" && one.Alert.Webhook.Attempts == 1
		})
		trail := ts.waitTrail(tenant.Operator, "&action=control.alert.delivery", 1)
		if !strings.Contains(string(trail), a.ID) || !strings.Contains(string(trail), `"delivered"`) {
			t.Errorf("the delivery is not in the trail: %s", trail)
		}
		trail = ts.waitTrail(tenant.Operator, "&action=control.alert", 1)
		if !strings.Contains(string(trail), a.ID) || !strings.Contains(string(trail), `"high"`) ||
			!strings.Contains(string(trail), `"system"`) {
			t.Errorf("the alert is not in the trail as a high severity event of the system: %s", trail)
		}

		// Acknowledging it: audited, once, and never across tenants.
		other := ts.key(tenant.Default, "admin")
		ts.do("GET", "/api/v1/compliance/alerts/"+a.ID, other, nil, "", http.StatusNotFound, nil)
		ts.do("POST", "/api/v1/compliance/alerts/"+a.ID+"/acknowledge", other, nil, `{"note":"mine now"}`,
			http.StatusNotFound, nil)
		// Only a person acknowledges: a key cannot stand for someone on call.
		ts.do("POST", "/api/v1/compliance/alerts/"+a.ID+"/acknowledge", ts.operator, nil,
			`{"note":"enrolment link sent to the owner"}`, http.StatusForbidden, nil)
		oncall := ts.enrol(newClock(time.Now().UTC()), tenant.Operator, "oncall@example.com", "compliance_officer")
		ts.do("POST", "/api/v1/compliance/alerts/"+a.ID+"/acknowledge", oncall.session, nil, `{"note":" "}`,
			http.StatusBadRequest, nil)
		ts.do("POST", "/api/v1/compliance/alerts/"+a.ID+"/acknowledge", oncall.session, nil,
			`{"note":"enrolment link sent to the owner"}`, http.StatusOK, nil)
		ts.do("POST", "/api/v1/compliance/alerts/"+a.ID+"/acknowledge", oncall.session, nil, `{"note":"again"}`,
			http.StatusConflict, nil)
		if open := ts.alerts(ts.operator, "?status=open"); len(open) != 0 {
			t.Errorf("open alerts after acknowledging = %+v", open)
		}
		if acked := ts.alerts(ts.operator, "?status=acknowledged"); len(acked) != 1 || acked[0].AcknowledgedBy == "" {
			t.Errorf("acknowledged alerts = %+v", acked)
		}
		if n := len(ts.alerts(other, "")); n != 0 {
			t.Errorf("another tenant lists %d alerts", n)
		}
		ts.do("GET", "/api/v1/compliance/alerts?status=closed", ts.operator, nil, "", http.StatusBadRequest, nil)
		ts.do("GET", "/api/v1/compliance/alerts?cursor=nope", ts.operator, nil, "", http.StatusBadRequest, nil)
		trail = ts.waitTrail(tenant.Operator, "&action=control.alert.acknowledge", 1)
		if !strings.Contains(string(trail), "enrolment link sent to the owner") {
			t.Errorf("the acknowledgement is not in the trail: %s", trail)
		}

		// A control that passes and passes again raises nothing.
		for range 2 {
			var run controlRun
			ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, `{"controls":["RET-01"]}`,
				http.StatusOK, &run)
			if st, _, _ := run.of(t, "RET-01"); st != "pass" {
				t.Fatalf("RET-01: %s, want pass", st)
			}
		}
		if as := ts.alerts(ts.operator, ""); len(as) != 1 {
			t.Errorf("%d alerts after RET-01 passed twice, want the one of IAM-01", len(as))
		}
	})
}

// TestWebhookRetriesThenFails offers an alert to a receiver that always
// answers 500: five attempts, each on record, then failed.
func TestWebhookRetriesThenFails(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		rc := newReceiver(t, http.StatusInternalServerError)
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{WebhookClient: rc.Client(), ControlsInterval: -1})
		ts.setWebhook(tenant.Operator, rc.URL, "whsec-retry")
		ts.do("POST", "/api/v1/users", ts.operator, nil, `{"email":"nomfa@example.com","name":"No MFA"}`,
			http.StatusCreated, nil)
		var run controlRun
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil, `{"controls":["IAM-01"]}`,
			http.StatusOK, &run)
		var a alertJSON
		stepped := 0
		eventually(t, "the alert marked failed", 60*time.Second, func() bool {
			as := ts.alerts(ts.operator, "")
			if len(as) == 1 {
				a = as[0]
			}
			if a.Webhook.Attempts > stepped {
				// Past the backoff after each attempt recorded.
				stepped = a.Webhook.Attempts
				c.Add(5 * time.Minute)
			}
			return a.Webhook.State == "failed"
		})
		if n := len(rc.deliveries()); n != controls.MaxAttempts || a.Webhook.Attempts != controls.MaxAttempts {
			t.Errorf("%d deliveries, %d attempts recorded, want %d", n, a.Webhook.Attempts, controls.MaxAttempts)
		}
		if a.Webhook.Error != "the receiver answered 500" {
			t.Errorf("webhook error = %q", a.Webhook.Error)
		}
		trail := ts.waitTrail(tenant.Operator, "&action=control.alert.delivery", controls.MaxAttempts)
		if n := strings.Count(string(trail), `"retry"`); n != controls.MaxAttempts-1 {
			t.Errorf("%d retries on record, want %d: %s", n, controls.MaxAttempts-1, trail)
		}
		if !strings.Contains(string(trail), `"failed"`) {
			t.Errorf("the final attempt is not on record as failed: %s", trail)
		}
	})
}

// TestScheduleRunsControlsNeverRun waits for serve's schedule to run the
// operator's controls with nobody asking, then again once they are due.
func TestScheduleRunsControlsNeverRun(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{ControlsInterval: 50 * time.Millisecond})
		results := func(id string) int {
			var n int
			ts.in.DB.Read.QueryRow(ts.in.DB.Rebind(`SELECT COUNT(*) FROM control_results WHERE control_id = ?`), id).Scan(&n)
			return n
		}
		eventually(t, "every control run once", 20*time.Second, func() bool {
			for _, ctl := range controls.Catalog {
				if results(ctl.ID) == 0 {
					return false
				}
			}
			return true
		})
		trail := ts.waitTrail(tenant.Operator, "&action=control.result&target_type=control&target_id=RET-01", 1)
		if !strings.Contains(string(trail), `"system"`) {
			t.Errorf("the scheduled run is not the system's: %s", trail)
		}
		if n := results("RET-01"); n != 1 {
			t.Fatalf("RET-01 ran %d times before it was due", n)
		}
		c.Add(25 * time.Hour)
		eventually(t, "RET-01 run again once due", 20*time.Second, func() bool { return results("RET-01") >= 2 })
		for _, a := range ts.alerts(ts.operator, "") {
			if a.Control == "RET-01" || a.Control == "IAM-02" {
				t.Errorf("a control that passed and passed again raised %+v", a)
			}
		}
	})
}
