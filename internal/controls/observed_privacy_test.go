package controls_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
)

// sentence is one labelled sentence of testdata/pii_sentences.json.
type sentence struct {
	Text  string
	Spans []struct{ Type, Value string }
}

func sentences(t *testing.T) []sentence {
	t.Helper()
	b, err := os.ReadFile("testdata/pii_sentences.json")
	if err != nil {
		t.Fatal(err)
	}
	var ss []sentence
	if err := json.Unmarshal(b, &ss); err != nil {
		t.Fatal(err)
	}
	return ss
}

func (s sentence) has(kind string) bool {
	for _, sp := range s.Spans {
		if sp.Type == kind {
			return true
		}
	}
	return false
}

// TestFindPersonalOnLabelledText measures the detector on presidio's
// labelled sentences: every email address found, and the phone numbers
// written with a country code, an area code or a trunk prefix, which are
// about 60% of presidio's; local numbers and bare digit runs are left, as
// ids and amounts look the same. At most 1% of the sentences with neither
// may be flagged.
func TestFindPersonalOnLabelledText(t *testing.T) {
	var emails, emailsFound, phones, phonesFound, clean, flagged int
	var missed, wrong []string
	for _, s := range sentences(t) {
		for _, sp := range s.Spans {
			switch sp.Type {
			case "EMAIL_ADDRESS":
				emails++
				if controls.FindPersonal(sp.Value) == "an email address" {
					emailsFound++
				}
			case "PHONE_NUMBER":
				phones++
				if controls.FindPersonal(sp.Value) == "a phone number" {
					phonesFound++
				} else {
					missed = append(missed, sp.Value)
				}
			}
		}
		if !s.has("EMAIL_ADDRESS") && !s.has("PHONE_NUMBER") {
			clean++
			if k := controls.FindPersonal(s.Text); k != "" {
				flagged++
				wrong = append(wrong, k+": "+s.Text)
			}
		}
	}
	t.Logf("emails %d/%d, phones %d/%d, clean sentences flagged %d/%d", emailsFound, emails, phonesFound, phones,
		flagged, clean)
	if emailsFound != emails {
		t.Errorf("found %d of %d email addresses", emailsFound, emails)
	}
	if float64(phonesFound) < 0.6*float64(phones) {
		t.Errorf("found %d of %d phone numbers, want 60%%; missed %q", phonesFound, phones, missed)
	}
	t.Logf("flagged: %q", wrong)
	if float64(flagged) > 0.01*float64(clean) {
		t.Errorf("flagged %d of %d sentences with neither: %q", flagged, clean, wrong)
	}
	// Attest's own identifiers and times are not personal data.
	for _, s := range []string{"usr_4huhfnaltkt3qcgi", "2026-12-04T02:42:12.123456Z", "01a23efc-2645-7f3b-8a2e-22fbbd7843c8",
		"arn:aws:iam::123456789012:role/admin", "host:root", "POST /api/v1/users/usr_x/roles/admin", "sequence 1234567"} {
		if k := controls.FindPersonal(s); k != "" {
			t.Errorf("FindPersonal(%q) = %q, want nothing", s, k)
		}
	}
}

func TestNoClearPersonalData(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("PRV-01", fx.def, controls.NoEvidence)
		var email, phone string
		for _, s := range sentences(t) {
			for _, sp := range s.Spans {
				switch {
				case sp.Type == "EMAIL_ADDRESS" && email == "":
					email = s.Text
				case sp.Type == "PHONE_NUMBER" && phone == "" && strings.HasPrefix(sp.Value, "+"):
					phone = s.Text
				}
			}
		}
		// Personal fields hold emails as commitments: nothing in clear.
		actor := event.Actor{Type: "user", ID: "usr_a", Email: "person@example.com", Name: "A Person"}
		for range 3 {
			fx.record(fx.def, fx.in.ChangeEvent("doc.read", "data_access", actor, event.Target{Type: "doc", ID: "1"}))
		}
		fx.check("PRV-01", fx.def, controls.Pass)
		leak := fx.in.ChangeEvent("doc.read", "data_access", actor, event.Target{Type: "doc", ID: "2"})
		leak.Outcome.Reason = email
		fx.record(fx.def, leak)
		leak = fx.in.ChangeEvent("doc.read", "data_access", actor, event.Target{Type: "doc", ID: "3"})
		leak.Details = mustJSON(t, map[string]any{"note": phone})
		fx.record(fx.def, leak)
		r := fx.failsOn("PRV-01", fx.def, "event:3")
		want := []controls.Finding{{Resource: "event:3", Problem: "an email address in clear in outcome.reason"},
			{Resource: "event:4", Problem: "a phone number in clear in details"}}
		if len(r.Findings) != 2 || r.Findings[0] != want[0] || r.Findings[1] != want[1] {
			t.Errorf("findings %v, want %v", r.Findings, want)
		}
		// Another tenant's trail is not this one's.
		fx.check("PRV-01", fx.op, controls.Pass)
		// Once 2,000 newer entries are clean, the leaks are out of the scan.
		var evs []*event.Event
		for range 2000 {
			evs = append(evs, fx.in.ChangeEvent("doc.read", "data_access", actor, event.Target{Type: "doc", ID: "4"}))
		}
		fx.record(fx.def, evs...)
		r = fx.check("PRV-01", fx.def, controls.Pass)
		if r.Evidence["examined"] != 2000 {
			t.Errorf("examined %v entries, want 2000", r.Evidence["examined"])
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
