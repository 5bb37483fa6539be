package auditlog

import (
	"testing"
	"time"

	"github.com/attest/attest/internal/event"
)

// TestCSVRowDefusesFormulas checks that no cell of the CSV export starts
// with what a spreadsheet would run as a formula.
func TestCSVRowDefusesFormulas(t *testing.T) {
	ev := event.New()
	ev.OccurredAt, ev.ReceivedAt = time.Unix(1, 0).UTC(), time.Unix(2, 0).UTC()
	ev.Actor = event.Actor{Type: "user", ID: "+1 555", Name: "@admin"}
	ev.Action, ev.Category = "a.b", "data_access"
	ev.Target = event.Target{Type: "doc", ID: "-2", Name: `=HYPERLINK("http://evil")`}
	ev.Outcome = event.Outcome{Result: "success", Reason: "\tx"}
	row := csvRow(&Record{Sequence: 7, Event: ev})
	if len(row) != len(csvColumns) {
		t.Fatalf("%d cells for %d columns", len(row), len(csvColumns))
	}
	for i, c := range row {
		if c != "" && (c[0] == '=' || c[0] == '+' || c[0] == '-' || c[0] == '@' || c[0] == '\t' || c[0] == '\r') {
			t.Errorf("column %s starts a formula: %q", csvColumns[i], c)
		}
	}
	if row[16] != `'=HYPERLINK("http://evil")` || row[7] != "'+1 555" {
		t.Errorf("target name %q, actor id %q", row[16], row[7])
	}
}

func TestOCSFClasses(t *testing.T) {
	for _, tc := range []struct {
		action, category string
		typeUID          int
	}{
		{"tenant.create", "admin", 600301},
		{"iam:CreateUser", "admin", 300101},
		{"iam:DeleteUser", "admin", 300106},
		{"iam:AttachUserPolicy", "admin", 300107},
		{"iam:DetachRolePolicy", "admin", 300108},
		{"iam:DeleteUserPolicy", "admin", 300108},
		{"iam:UpdateLoginProfile", "admin", 300103},
		{"iam:EnableMFADevice", "admin", 300110},
		{"iam:DeactivateMFADevice", "admin", 300111},
		{"iam:CreateGroup", "admin", 300101},
		{"iam:ListUsers", "data_access", 600302},
		{"apikey.create", "admin", 300101},
		{"apikey.revoke", "admin", 300105},
		{"role.grant", "admin", 300107},
		{"user.password.reset", "admin", 300104},
		{"audit.trail.query", "data_access", 600302},
		{"s3:PutBucketPolicy", "configuration", 600301},
		{"iam:UpdateAccessKey", "admin", 300199},
		{"privacy.subject.erase", "data_change", 600304},
		{"transcript.summarize", "data_access", 600399},
		{"user.login", "authentication", 300201},
		{"signin:ConsoleLogin", "authentication", 300201},
		{"user.logout", "authentication", 300202},
		{"sts:AssumeRole", "authentication", 300201},
		{"user.mfa.verify", "authentication", 300299},
	} {
		ev := event.New()
		ev.Action, ev.Category = tc.action, tc.category
		ev.Outcome.Result = "success"
		o := ocsfEvent(&Record{Event: ev})
		if o["type_uid"] != tc.typeUID {
			t.Errorf("%s (%s): type_uid %v, want %d", tc.action, tc.category, o["type_uid"], tc.typeUID)
		}
	}
}
