package event

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"
)

var fixedNow = func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }

const validEvent = `{"id":"e-1","occurred_at":"2026-11-30T10:00:00.123+01:00","source":{"name":"voice-api","host":"h1","version":"2"},
"actor":{"type":"user","id":"u1","name":"Ana Ruiz","email":"ana@example.com","ip":"::ffff:10.0.0.1","user_agent":"curl/8","session_id":"s1","auth":{"method":"password","mfa":true}},
"action":"transcript.read","category":"data_access","target":{"type":"transcript","id":"t9","name":"Call with \"Bob\""},
"outcome":{"result":"success","status":200},"request":{"id":"r1","method":"GET","path":"/t/9","status":200,"duration_ms":12.5},
"data":{"classification":"pii","fields":["body","phone"],"record_count":1},"details":{"z":1,"a":[true,null,"\u00e9"],"n":1.50}}`

func TestDecodeValid(t *testing.T) {
	ev, err := DecodeProducer([]byte(validEvent), &Limits{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ev.OccurredAt, time.Date(2026, 11, 30, 9, 0, 0, 123e6, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("occurred_at = %v, want %v in UTC", got, want)
	}
	if ev.Actor.IP != "10.0.0.1" {
		t.Errorf("actor.ip = %q, want the IPv4-mapped address unmapped", ev.Actor.IP)
	}
	if string(ev.Details) != `{"a":[true,null,"é"],"n":1.5,"z":1}` {
		t.Errorf("details = %s, want canonical form", ev.Details)
	}
	if ev.Request.DurationMicros != 12500 || *ev.Actor.Auth.MFA != true || ev.Data.RecordCount != 1 {
		t.Errorf("numbers decoded wrong: %+v %+v", ev.Request, ev.Data)
	}
}

func TestDecodeRejects(t *testing.T) {
	base := `"occurred_at":"2026-11-30T10:00:00Z","source":"s","actor":{"type":"user"},"action":"a.b","category":"system","outcome":{"result":"success"}`
	for _, tc := range []struct {
		name, body, field, reason string
	}{
		{"unknown top field", `{` + base + `,"actr":{}}`, "actr", "unknown field"},
		{"unknown nested field", `{` + base + `,"target":{"type":"x","colour":"red"}}`, "target.colour", "unknown field"},
		{"duplicate field", `{` + base + `,"action":"x.y"}`, "action", "duplicate member name"},
		{"wrong type", `{` + base + `,"target":{"type":7}}`, "target.type", "must be a string, not a number"},
		{"wrong type object", `{` + base + `,"request":"GET"}`, "request", "must be an object"},
		{"sequence sent", `{` + base + `,"sequence":4}`, "sequence", "set by attest"},
		{"received_at sent", `{` + base + `,"received_at":"2026-11-30T10:00:00Z"}`, "received_at", "set by attest"},
		{"personal sent", `{` + base + `,"personal":{}}`, "personal", "set by attest"},
		{"original sent", `{` + base + `,"original":{}}`, "original", "importers"},
		{"oversize id", `{` + base + `,"id":"` + strings.Repeat("x", 129) + `"}`, "id", "longer than 128"},
		{"control char", `{` + base + `,"id":"a\u0007b"}`, "id", "control character"},
		{"bad time", strings.Replace(`{`+base+`}`, "2026-11-30T10:00:00Z", "2026-02-30T10:00:00Z", 1), "occurred_at", "RFC 3339"},
		{"offset of 24 hours", strings.Replace(`{`+base+`}`, "2026-11-30T10:00:00Z", "2026-11-30T10:00:00+24:00", 1), "occurred_at", "RFC 3339"},
		{"ten digits of a second", strings.Replace(`{`+base+`}`, "2026-11-30T10:00:00Z", "2026-11-30T10:00:00.1234567891Z", 1), "occurred_at", "RFC 3339"},
		{"future time", strings.Replace(`{`+base+`}`, "2026-11-30T10:00:00Z", "2027-01-01T00:00:00Z", 1), "occurred_at", "future"},
		{"ancient time", strings.Replace(`{`+base+`}`, "2026-11-30T10:00:00Z", "1969-12-31T00:00:00Z", 1), "occurred_at", "1990"},
		{"missing action", strings.Replace(`{`+base+`}`, `"action":"a.b",`, ``, 1), "action", "required"},
		{"bad action", strings.Replace(`{`+base+`}`, `"a.b"`, `"a b"`, 1), "action", "letters, digits"},
		{"bad category", strings.Replace(`{`+base+`}`, `"system"`, `"misc"`, 1), "category", "one of"},
		{"bad result", strings.Replace(`{`+base+`}`, `"success"`, `"ok"`, 1), "outcome.result", "one of"},
		{"bad ip", strings.Replace(`{`+base+`}`, `"type":"user"`, `"type":"user","ip":"10.0.0.300"`, 1), "actor.ip", "IPv4 or IPv6"},
		{"big integer in details", `{` + base + `,"details":{"n":12345678901234567890}}`, "details.n", "cannot be represented exactly"},
		{"huge number in details", `{` + base + `,"details":{"x":[1e999]}}`, "details.x[0]", "cannot be represented exactly"},
		{"deep details", `{` + base + `,"details":` + strings.Repeat(`{"a":`, 9) + `1` + strings.Repeat(`}`, 9) + `}`, "details", "nested deeper"},
		{"details not object", `{` + base + `,"details":[1]}`, "details", "must be an object"},
		{"trailing data", `{` + base + `} {}`, "event", "after the event"},
		{"not an object", `[1]`, "event", "must be an object"},
		{"truncated", `{` + base, "event", "unexpected end"},
		{"invalid utf8", "{" + base + ",\"id\":\"\xff\"}", "id", "invalid"},
		{"status range", `{` + base + `,"request":{"status":99}}`, "request.status", "between 100 and 599"},
		{"fraction where integer", `{` + base + `,"data":{"record_count":1.5}}`, "data.record_count", "whole number"},
		{"target id without type", `{` + base + `,"target":{"id":"x"}}`, "target.type", "required when target.id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeProducer([]byte(tc.body), &Limits{Now: fixedNow})
			fe, ok := err.(*FieldError)
			if !ok {
				t.Fatalf("error = %v (%T), want a *FieldError", err, err)
			}
			if !strings.HasPrefix(fe.Field, tc.field) || !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("error = %q, want field %q and a reason containing %q", err, tc.field, tc.reason)
			}
		})
	}
}

// TestLeafIsCanonical checks the hand-written leaf encoder against an
// independent RFC 8785 canonicaliser, and that a leaf decodes back to the
// event it was made from.
func TestLeafIsCanonical(t *testing.T) {
	ev, err := DecodeProducer([]byte(validEvent), &Limits{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	ev.Tenant = "default"
	ev.Sequence = 42
	ev.ReceivedAt = time.Date(2026, 11, 30, 9, 0, 1, 500, time.UTC)
	for _, personal := range [][]Commitment{nil, {{PathActorEmail, "c1"}, {PathActorIP, "c2"}, {PathTargetName, "c3"}}} {
		leaf := AppendLeaf(nil, ev, personal)
		canon := jsontext.Value(bytes.Clone(leaf))
		if err := canon.Canonicalize(); err != nil {
			t.Fatalf("leaf is not valid JSON: %v\n%s", err, leaf)
		}
		if !bytes.Equal(canon, leaf) {
			t.Fatalf("leaf is not canonical:\n got %s\nwant %s", leaf, canon)
		}
		back, lf, err := DecodeLeaf(leaf)
		if err != nil {
			t.Fatalf("decode leaf: %v\n%s", err, leaf)
		}
		want := *ev
		for _, c := range personal {
			want.SetPersonalValue(c.Path, nil)
			if lf.Personal[c.Path] != c.Value {
				t.Errorf("commitment of %s = %q, want %q", c.Path, lf.Personal[c.Path], c.Value)
			}
		}
		if diff := cmp.Diff(&want, back); diff != "" {
			t.Errorf("leaf round trip (-want +got):\n%s", diff)
		}
	}
}

func TestJSONStringEscaping(t *testing.T) {
	for _, s := range []string{"plain", "quote\"back\\slash", "\b\f\n\r\t\x01\x1f", "é\u2028\u2029 😀", "\x7f"} {
		got := appendJSONString(nil, s)
		v := jsontext.Value(bytes.Clone(got))
		if err := v.Canonicalize(); err != nil || !bytes.Equal(v, got) {
			t.Errorf("appendJSONString(%q) = %s, canonical %s (%v)", s, got, v, err)
		}
	}
}

func TestProducerRoundTrip(t *testing.T) {
	ev, err := DecodeProducer([]byte(validEvent), &Limits{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	b := AppendProducer(nil, ev)
	back, err := DecodeProducer(b, &Limits{Now: fixedNow})
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if diff := cmp.Diff(ev, back); diff != "" {
		t.Errorf("producer round trip (-want +got):\n%s", diff)
	}
}
