package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// storeResult records a result of control for the tenant named, checked at
// at, as Validate stores one; a failure has a finding and a remedy.
func storeResult(t *testing.T, in *instance.Instance, tenantName, control string, st controls.Status, at time.Time) {
	t.Helper()
	ctx := context.Background()
	tn, err := in.Tenants.ByName(ctx, tenantName)
	if err != nil {
		t.Fatal(err)
	}
	r := &controls.Result{Control: control, Status: st, Findings: []controls.Finding{}, Evidence: map[string]any{"examined": 1},
		CheckedAt: at.UTC().Truncate(time.Microsecond)}
	if st == controls.Fail {
		r.Findings = append(r.Findings, controls.Finding{Resource: "user:u1", Problem: "at fault"})
		r.Remediation = "mend " + control
	}
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	id := "res_" + control + "_" + tenantName + "_" + at.Format("20060102T150405.000000")
	if _, err := in.DB.Write.ExecContext(ctx, in.DB.Rebind(`INSERT INTO control_results (id, tenant_id, control_id, status,
		result, sha256, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)`), id, tn.ID, control, string(st), b, sum[:],
		r.CheckedAt.UnixMicro()); err != nil {
		t.Fatal(err)
	}
}

type itemJSON struct {
	ID, Name, Owner, Status, Remediation string
	Exception                            *struct{ ID string }
}

type dashboardJSON struct {
	Readiness  float64
	Formula    string
	Categories []struct {
		Category  string
		Readiness float64
		Status    string
	}
	Criteria []struct {
		Criterion string
		Status    string
	}
	Failing, Excepted []itemJSON
	NoEvidence        []itemJSON `json:"no_evidence"`
	Changes           []struct {
		Control, From, To string
		At                time.Time
	} `json:"recent_changes"`
	Trend []struct {
		At        time.Time
		Readiness float64
	}
}

func itemsByID(items []itemJSON) map[string]itemJSON {
	m := map[string]itemJSON{}
	for _, it := range items {
		m[it.ID] = it
	}
	return m
}

// TestComplianceDashboard reads the dashboard and a control's detail over
// HTTPS from results stored at known times: readiness as Score computes
// it, what fails with its owner and remedy, what lacks evidence, what is
// excepted, the changes and the trend.
func TestComplianceDashboard(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Date(2025, 4, 1, 6, 0, 0, 0, time.UTC))
		ts := startClocked(t, opts, c, server.Config{})
		end, h := c.Now(), time.Hour
		storeResult(t, ts.in, tenant.Operator, "IAM-01", controls.Pass, end.Add(-30*h))
		storeResult(t, ts.in, tenant.Operator, "IAM-01", controls.Fail, end.Add(-h/2))
		storeResult(t, ts.in, tenant.Operator, "IAM-02", controls.Pass, end.Add(-72*h)) // stale
		storeResult(t, ts.in, tenant.Operator, "IAM-03", controls.Fail, end.Add(-h))
		for _, ago := range []time.Duration{26 * h, 14 * h, 2 * h} {
			storeResult(t, ts.in, tenant.Operator, "RET-01", controls.Pass, end.Add(-ago))
		}
		storeResult(t, ts.in, tenant.Default, "RET-01", controls.Fail, end.Add(-h))
		op, _ := ts.in.Tenants.ByName(context.Background(), tenant.Operator)
		if _, err := ts.in.DB.Write.Exec(ts.in.DB.Rebind(`INSERT INTO control_exceptions (id, tenant_id, control_id, reason,
			requested_by, requested_at, starts_at, expires_at, approved_by, approved_at) VALUES ('exc_1', ?, 'IAM-03',
			'migration in progress', 'requester', ?, ?, ?, 'approver', ?)`), op.ID, end.Add(-3*h).UnixMicro(),
			end.Add(-3*h).UnixMicro(), end.Add(72*h).UnixMicro(), end.Add(-2*h).UnixMicro()); err != nil {
			t.Fatal(err)
		}

		var d dashboardJSON
		ts.do("GET", "/api/v1/compliance/dashboard", ts.operator, nil, "", http.StatusOK, &d)
		want, err := controls.Score(context.Background(), ts.in, op, end.Add(-90*24*h), end)
		if err != nil {
			t.Fatal(err)
		}
		if d.Readiness != want.Readiness || d.Formula == "" || len(d.Criteria) != 33 || len(d.Categories) != 1 {
			t.Errorf("dashboard readiness %v over %d criteria, %d categories; want %v over 33, 1", d.Readiness,
				len(d.Criteria), len(d.Categories), want.Readiness)
		}
		// 90 midnights after a 06:00 start, then the end itself.
		if len(d.Trend) != 91 || d.Trend[90].Readiness != d.Readiness || !d.Trend[90].At.Equal(end) ||
			!d.Trend[0].At.Equal(time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%d trend points, want 91 ending at %v with the readiness", len(d.Trend), end)
		}
		if f := itemsByID(d.Failing)["IAM-01"]; f.Owner != "security" || f.Remediation != "mend IAM-01" ||
			f.Status != "fail" {
			t.Errorf("failing IAM-01: %+v", f)
		}
		if _, ok := itemsByID(d.Failing)["IAM-03"]; ok {
			t.Error("IAM-03 is listed failing, though excepted")
		}
		if e := itemsByID(d.Excepted)["IAM-03"]; e.Exception == nil || e.Exception.ID != "exc_1" || e.Status != "fail" {
			t.Errorf("excepted IAM-03: %+v", e)
		}
		ne := itemsByID(d.NoEvidence)
		if !strings.Contains(ne["IAM-02"].Remediation, "older than twice its frequency") {
			t.Errorf("stale IAM-02: %+v", ne["IAM-02"])
		}
		if !strings.Contains(ne["IAM-05"].Remediation, "never run") {
			t.Errorf("unrun IAM-05: %+v", ne["IAM-05"])
		}
		if _, ok := itemsByID(d.Failing)["RET-01"]; ok {
			t.Error("another tenant's failure shows")
		}
		if len(d.Changes) == 0 || len(d.Changes) > 20 || d.Changes[0].Control != "IAM-01" || d.Changes[0].To != "fail" ||
			d.Changes[0].From != "pass" {
			t.Errorf("recent changes %+v, want IAM-01 pass to fail first", d.Changes)
		}

		// One control.
		var cd struct {
			ID, Owner, Status, Frequency string
			Criteria                     []string
			Runs, Passed                 int
			Effectiveness                *float64
			History                      []struct {
				ID, SHA256, Status string
				CheckedAt          time.Time `json:"checked_at"`
				Evidence           map[string]any
				Findings           []struct{ Resource string }
			}
			Evidence   []any
			Exceptions []struct{ ID string }
		}
		// RET-01 runs daily: its runs of 31 March, at 04:00 and 16:00,
		// count once, and that of 1 April once.
		ts.do("GET", "/api/v1/compliance/controls/RET-01?limit=2", ts.operator, nil, "", http.StatusOK, &cd)
		if cd.Status != "pass" || cd.Runs != 2 || cd.Passed != 2 || cd.Effectiveness == nil || *cd.Effectiveness != 1 ||
			cd.Owner != "compliance" {
			t.Errorf("RET-01: %s, %d runs, %d passed, effectiveness %v", cd.Status, cd.Runs, cd.Passed, cd.Effectiveness)
		}
		if len(cd.History) != 2 || !cd.History[0].CheckedAt.Equal(end.Add(-2*h)) ||
			!cd.History[1].CheckedAt.Equal(end.Add(-14*h)) || len(cd.History[0].SHA256) != 64 ||
			cd.History[0].Evidence["examined"] != 1.0 || cd.Evidence == nil {
			t.Errorf("RET-01 history: %+v", cd.History)
		}
		ts.do("GET", "/api/v1/compliance/controls/IAM-03", ts.operator, nil, "", http.StatusOK, &cd)
		if len(cd.Exceptions) != 1 || cd.Status != "fail" || len(cd.History) != 1 || len(cd.History[0].Findings) != 1 {
			t.Errorf("IAM-03: %s with %d exceptions, history %+v", cd.Status, len(cd.Exceptions), cd.History)
		}
		// The period bounds the history: IAM-01's pass of 30h ago is
		// outside the last day.
		from := url.QueryEscape(end.Add(-24 * h).Format(time.RFC3339))
		ts.do("GET", "/api/v1/compliance/controls/IAM-01?from="+from, ts.operator, nil, "", http.StatusOK, &cd)
		if len(cd.History) != 1 || cd.Runs != 1 || cd.Passed != 0 {
			t.Errorf("IAM-01 over the last day: %d results, %d runs, %d passed", len(cd.History), cd.Runs, cd.Passed)
		}
		// Another tenant sees its own results alone.
		reader := ts.key(tenant.Default, "reader")
		ts.do("GET", "/api/v1/compliance/controls/IAM-03", reader, nil, "", http.StatusOK, &cd)
		if len(cd.History) != 0 || len(cd.Exceptions) != 0 || cd.Status != "no_evidence" {
			t.Errorf("the default tenant sees IAM-03 %s, %d results, %d exceptions", cd.Status, len(cd.History),
				len(cd.Exceptions))
		}
		ts.do("GET", "/api/v1/compliance/controls/NOPE-9", ts.operator, nil, "", http.StatusNotFound, nil)
		if resp := ts.do("GET", "/api/v1/compliance/controls/validate", ts.operator, nil, "", http.StatusMethodNotAllowed,
			nil); resp.Header.Get("Allow") != "POST" {
			t.Errorf("GET validate: Allow %q, want POST", resp.Header.Get("Allow"))
		}

		for _, tc := range []struct{ query, field string }{
			{"from=yesterday", "from"},
			{"to=2025-04-01", "to"},
			{"from=2025-04-01T00:00:00Z&to=2025-04-01T00:00:00Z", "from"},
			{"from=2025-04-02T00:00:00Z&to=2025-04-01T00:00:00Z", "from"},
			{"since=2025-04-01T00:00:00Z", "since"},
			{"from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", "from"},
			{"from=2010-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", "from"},
		} {
			for _, p := range []string{"/api/v1/compliance/dashboard?", "/api/v1/compliance/controls/IAM-01?"} {
				resp := ts.do("GET", p+tc.query, ts.operator, nil, "", http.StatusBadRequest, nil)
				var pr struct{ Field string }
				jsonDecode(resp, &pr)
				if pr.Field != tc.field {
					t.Errorf("%s%s: field %q, want %q", p, tc.query, pr.Field, tc.field)
				}
			}
		}
		for _, l := range []string{"0", "1001", "ten", "01", "+1"} {
			ts.do("GET", "/api/v1/compliance/controls/IAM-01?limit="+l, ts.operator, nil, "", http.StatusBadRequest, nil)
		}
	})
}

// TestComplianceSettings changes the scope and the webhook: Security stays
// in, the secret is never answered nor recorded, a webhook that is not
// https or carries credentials is refused, and the change is in the trail.
func TestComplianceSettings(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ts := start(t, opts, server.Config{})
		type settings struct {
			Categories       []string
			WebhookURL       string `json:"webhook_url"`
			WebhookSecretSet bool   `json:"webhook_secret_set"`
		}
		var st settings
		ts.do("GET", "/api/v1/compliance/settings", ts.operator, nil, "", http.StatusOK, &st)
		if strings.Join(st.Categories, ",") != "security" || st.WebhookSecretSet || st.WebhookURL != "" {
			t.Errorf("default settings %+v", st)
		}
		for _, tc := range []struct{ body, field string }{
			{`{"categories":["security","integrity"]}`, "categories"},
			{`{"webhook_url":"http://hooks.example.com/x","webhook_secret":"0123456789abcdef"}`, "webhook_url"},
			{`{"webhook_url":"https://user:pw@hooks.example.com/x","webhook_secret":"0123456789abcdef"}`, "webhook_url"},
			{`{"webhook_url":"https:///x","webhook_secret":"0123456789abcdef"}`, "webhook_url"},
			{`{"webhook_url":"hooks.example.com/x","webhook_secret":"0123456789abcdef"}`, "webhook_url"},
			{`{"webhook_url":"https://hooks.example.com/x"}`, "webhook_secret"},
			{`{"webhook_url":"https://hooks.example.com/x","webhook_secret":"short"}`, "webhook_secret"},
			{`{"webhook_url":"https://hooks.example.com/x","webhook_secret":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}`,
				"webhook_secret"},
			{`{"webhook_url":"https://localhost/x","webhook_secret":"0123456789abcdef"}`, "webhook_url"},
			{`{"webhook_url":"https://[::1]/x","webhook_secret":"0123456789abcdef"}`, "webhook_url"},
			{`{"webhook_url":"https://169.254.169.254/latest","webhook_secret":"0123456789abcdef"}`, "webhook_url"},
			{`{"tenant":"default"}`, "tenant"},
		} {
			resp := ts.do("PUT", "/api/v1/compliance/settings", ts.operator, nil, tc.body, http.StatusBadRequest, nil)
			var pr struct{ Field string }
			jsonDecode(resp, &pr)
			if pr.Field != tc.field {
				t.Errorf("%s: field %q, want %q", tc.body, pr.Field, tc.field)
			}
		}
		const secret = "s3cr3t-webhook-key-0123456789"
		resp := ts.do("PUT", "/api/v1/compliance/settings", ts.operator, nil, `{"categories":["privacy","availability"],`+
			`"webhook_url":"https://hooks.example.com/T000/tokenpath","webhook_secret":"`+secret+`"}`, http.StatusOK, &st)
		if strings.Join(st.Categories, ",") != "security,availability,privacy" || !st.WebhookSecretSet {
			t.Errorf("settings as set: %+v", st)
		}
		set, _ := io.ReadAll(resp.Body)
		resp = ts.do("GET", "/api/v1/compliance/settings", ts.operator, nil, "", http.StatusOK, &st)
		got, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(set), secret) || strings.Contains(string(got), secret) {
			t.Error("the secret is answered")
		}
		if strings.Join(st.Categories, ",") != "security,availability,privacy" || !st.WebhookSecretSet ||
			st.WebhookURL != "https://hooks.example.com/T000/tokenpath" {
			t.Errorf("settings read back: %+v", st)
		}
		// Those who may not change the webhook see its host alone: its
		// path often carries a token.
		var ro settings
		ts.do("GET", "/api/v1/compliance/settings", ts.key(tenant.Operator, "reader"), nil, "", http.StatusOK, &ro)
		if ro.WebhookURL != "https://hooks.example.com/..." || !ro.WebhookSecretSet {
			t.Errorf("a reader sees the webhook as %q, want its host alone", ro.WebhookURL)
		}
		// Only the categories change: the webhook and its secret stay.
		ts.do("PUT", "/api/v1/compliance/settings", ts.operator, nil, `{"categories":[]}`, http.StatusOK, &st)
		if strings.Join(st.Categories, ",") != "security" || !st.WebhookSecretSet {
			t.Errorf("after narrowing the scope: %+v", st)
		}
		var d dashboardJSON
		ts.do("GET", "/api/v1/compliance/dashboard", ts.operator, nil, "", http.StatusOK, &d)
		if len(d.Criteria) != 33 {
			t.Errorf("the dashboard covers %d criteria, want Security's 33", len(d.Criteria))
		}
		// An empty URL removes the webhook and its secret.
		ts.do("PUT", "/api/v1/compliance/settings", ts.operator, nil, `{"webhook_url":""}`, http.StatusOK, &st)
		if st.WebhookURL != "" || st.WebhookSecretSet {
			t.Errorf("after removing the webhook: %+v", st)
		}
		ts.do("PUT", "/api/v1/compliance/settings", ts.key(tenant.Default, "reader"), nil, `{"categories":[]}`,
			http.StatusForbidden, nil)

		trail := string(ts.waitTrail(tenant.Operator, "&action=compliance.settings.update&outcome=success", 3))
		if strings.Count(trail, "webhook_secret_changed") != 3 || !strings.Contains(trail, "hooks.example.com") {
			t.Errorf("the trail lacks the settings changes: %s", trail)
		}
		if strings.Contains(trail, secret) || strings.Contains(trail, "tokenpath") {
			t.Error("the trail holds the webhook secret or path")
		}
		// A customer tenant's webhook may not name a private address, nor
		// a secret come without a webhook.
		for _, host := range []string{"10.0.0.5", "192.168.1.1.", "[fec0::1]", "[64:ff9b::a00:5]", "[2002:a00:5::]",
			"127.1", "0x7f000001", "2130706433", "017700000001", "[::127.0.0.1]", "0.1.2.3", "localhost."} {
			ts.do("PUT", "/api/v1/compliance/settings", ts.key(tenant.Default, "admin"), nil,
				`{"webhook_url":"https://`+host+`/h","webhook_secret":"0123456789abcdef"}`, http.StatusBadRequest, nil)
		}
		ts.do("PUT", "/api/v1/compliance/settings", ts.key(tenant.Default, "admin"), nil,
			`{"webhook_secret":"0123456789abcdef"}`, http.StatusBadRequest, nil)
		// The default tenant's settings are its own.
		ts.do("GET", "/api/v1/compliance/settings", ts.key(tenant.Default, "reader"), nil, "", http.StatusOK, &st)
		if strings.Join(st.Categories, ",") != "security" || st.WebhookSecretSet {
			t.Errorf("the default tenant's settings: %+v", st)
		}
	})
}
