package event

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// minimal holds the required members of a producer event.
const minimal = `"occurred_at":"2026-11-30T10:00:00Z","source":"s","actor":{"type":"user"},"action":"a.b",` +
	`"category":"system","outcome":{"result":"success"}`

// decodeErr decodes body as a producer event and returns its FieldError.
func decodeErr(t *testing.T, body string) *FieldError {
	t.Helper()
	_, err := DecodeProducer([]byte(body), &Limits{Now: fixedNow})
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a *FieldError", err, err)
	}
	return fe
}

// TestNamesOutliveReads checks that a field's name is still right when its
// error is reported after a long value, which makes the JSON decoder refill
// and move its buffer. The padding moves the name across the buffer's
// boundaries.
func TestNamesOutliveReads(t *testing.T) {
	long := strings.Repeat("y", 9000)
	for _, tc := range []struct{ field, replaces, member string }{
		{"target.name", "", `"target":{"type":"x","name":"` + long + `"}`},
		{"source.host", `"source":"s",`, `"source":{"name":"s","host":"` + long + `"}`},
		{"actor.auth.method", `"actor":{"type":"user"},`, `"actor":{"type":"user","user_agent":"` +
			long[:1000] + `","auth":{"mfa":true,"method":"` + long + `"}}`},
		{"data.fields[2]", "", `"data":{"classification":"c","fields":["a","b","` + long + `"]}`},
	} {
		body := strings.Replace(minimal, tc.replaces, "", 1)
		for pad := 0; pad < 4500; pad += 3 {
			b := "{" + body + "," + strings.Repeat(" ", pad) + tc.member + "}"
			if fe := decodeErr(t, b); fe.Field != tc.field || !strings.Contains(fe.Reason, "longer than") {
				t.Fatalf("padding %d: error %q, want field %s longer than its limit", pad, fe, tc.field)
			}
		}
	}
}

func TestDuplicateNames(t *testing.T) {
	var many, long strings.Builder
	for i := range 40 {
		fmt.Fprintf(&many, `"k%d":%d,`, i, i)
		fmt.Fprintf(&long, `"%s%03d":"%s",`, strings.Repeat("n", 120), i, strings.Repeat("v", 200))
	}
	for _, tc := range []struct{ name, members, field string }{
		{"top level", `"action":"x.y"`, "action"},
		{"escaped", `"act\u0069on":"x.y"`, "action"},
		{"schema object", `"target":{"type":"a","id":"b","type":"c"}`, "target.type"},
		{"nested schema object", `"request":{"id":"r"},"actor":{"type":"user","auth":{"mfa":true,"mfa":false}}`,
			"actor.auth.mfa"},
		{"details", `"details":{"a":1,"a":2}`, "details.a"},
		{"details escaped", `"details":{"a":1,"\u0061":2}`, "details.a"},
		{"details nested", `"details":{"x":{"b":1,"c":[0,{"k":1,"j":{},"k":2}]}}`, "details.x.c[1].k"},
		{"details many members", `"details":{` + many.String() + `"k7":0}`, "details.k7"},
		{"details long members", `"details":{"o":{` + long.String() + `"` + strings.Repeat("n", 120) + `001":0}}`,
			"details.o." + strings.Repeat("n", 120) + "001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "{" + strings.Replace(minimal, `"actor":{"type":"user"},`, "", 1) + "," + tc.members
			if !strings.Contains(tc.members, `"actor"`) {
				body = "{" + minimal + "," + tc.members
			}
			fe := decodeErr(t, body+"}")
			if fe.Field != tc.field || fe.Reason != "duplicate member name" {
				t.Errorf("error = %q, want %s: duplicate member name", fe, tc.field)
			}
		})
	}
}

// TestDistinctNames checks that names repeated in different objects, and
// many long names whose reading refills the decoder's buffer, are not
// taken for duplicates and reach the canonical form intact.
func TestDistinctNames(t *testing.T) {
	var long, want strings.Builder
	for i := range 60 {
		fmt.Fprintf(&long, `,"%s%03d":{"k":[{"k":%d},{"k":"%s"}]}`, strings.Repeat("n", 120), i, i, strings.Repeat("v", 150))
	}
	want.WriteString(`{"a":{"x":1},"b":{"x":1}`)
	want.WriteString(long.String())
	want.WriteString("}")
	body := `{` + minimal + `,"details":{"b":{"x":1},"a":{"x":1}` + long.String() + `}}`
	ev, err := DecodeProducer([]byte(body), &Limits{Now: fixedNow, MaxDetailsBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(ev.Details); got != want.String() {
		t.Errorf("details =\n%s\nwant\n%s", got, want.String())
	}
}

// TestLeafDuplicateNames checks that a stored leaf with a duplicate name
// is refused too.
func TestLeafDuplicateNames(t *testing.T) {
	ev, err := DecodeProducer([]byte(`{`+minimal+`,"details":{"a":1}}`), &Limits{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	ev.Tenant = "t"
	leaf := string(AppendLeaf(nil, ev, nil))
	for _, tc := range []struct{ leaf, field string }{
		{strings.Replace(leaf, `"details":{"a":1}`, `"details":{"a":1,"a":2}`, 1), "details.a"},
		{strings.Replace(leaf, `"tenant":"t"`, `"tenant":"t","tenant":"u"`, 1), "tenant"},
	} {
		_, _, err := DecodeLeaf([]byte(tc.leaf))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Reason != "duplicate member name" {
			t.Errorf("DecodeLeaf(%s) = %v, want %s: duplicate member name", tc.leaf, err, tc.field)
		}
	}
}

func TestOccurredAt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time // zero when refused
		why  string    // the reason refused
	}{
		{"2026-11-30T10:00:00Z", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), ""},
		{"2026-11-30t10:00:00z", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), ""},
		{"2026-11-30t10:00:00.5+01:00", time.Date(2026, 11, 30, 9, 0, 0, 5e8, time.UTC), ""},
		{"2026-11-30T10:00:00z", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), ""},
		{"1990-01-01T00:00:00Z", time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"0001-01-01T00:00:00Z", time.Time{}, "before 1990-01-01"},
		{"0001-01-01t00:00:00z", time.Time{}, "before 1990-01-01"},
		{"0001-01-01T00:00:00+00:00", time.Time{}, "before 1990-01-01"},
		{"1989-12-31T23:59:59.999999999Z", time.Time{}, "before 1990-01-01"},
		{"2026-11-30 10:00:00Z", time.Time{}, "RFC 3339"},
		{"2026-11-30x10:00:00Z", time.Time{}, "RFC 3339"},
		{"2026-11-30T10:00:00y", time.Time{}, "RFC 3339"},
	} {
		body := strings.Replace("{"+minimal+"}", "2026-11-30T10:00:00Z", tc.in, 1)
		ev, err := DecodeProducer([]byte(body), &Limits{Now: fixedNow})
		if tc.why == "" {
			if err != nil || !ev.OccurredAt.Equal(tc.want) {
				t.Errorf("occurred_at %s: %v, %v; want %v", tc.in, ev, err, tc.want)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "occurred_at" || !strings.Contains(fe.Reason, tc.why) {
			t.Errorf("occurred_at %s: error %v, want occurred_at: ...%s...", tc.in, err, tc.why)
		}
	}
}

func TestTenant(t *testing.T) {
	fe := decodeErr(t, "{"+minimal+`,"tenant":""}`)
	if fe.Field != "tenant" || !strings.Contains(fe.Reason, "is empty") {
		t.Errorf("empty tenant: error %q, want tenant: is empty", fe)
	}
	ev, err := DecodeProducer([]byte("{"+minimal+`,"tenant":"acme"}`), &Limits{Now: fixedNow})
	if err != nil || ev.Tenant != "acme" {
		t.Errorf("tenant acme: %v, %v; want tenant acme", ev, err)
	}
}

// TestSelfSourceReserved checks that a producer cannot send an event under
// the source name of attest's own events, in any spelling of it or in
// letters that only look like its own.
func TestSelfSourceReserved(t *testing.T) {
	for _, src := range []string{`"attest"`, `"Attest"`, `{"name":"attest","host":"h"}`} {
		body := "{" + strings.Replace(minimal, `"source":"s"`, `"source":`+src, 1) + "}"
		if fe := decodeErr(t, body); fe.Field != "source.name" || !strings.Contains(fe.Reason, "reserved") {
			t.Errorf("source %s: error %q, want source.name reserved", src, fe)
		}
	}
	for _, src := range []string{`"\u0430ttest"`, `"att\u0435st"`, `"ａｔｔｅｓｔ"`, `"attest\u200b"`} {
		body := "{" + strings.Replace(minimal, `"source":"s"`, `"source":`+src, 1) + "}"
		if fe := decodeErr(t, body); fe.Field != "source.name" || !strings.Contains(fe.Reason, "ASCII") {
			t.Errorf("source %s: error %q, want source.name must be printable ASCII", src, fe)
		}
	}
	for _, src := range []string{`" ATTEST "`, `" "`, `" voice-api"`, `"voice-api "`} {
		body := "{" + strings.Replace(minimal, `"source":"s"`, `"source":`+src, 1) + "}"
		if fe := decodeErr(t, body); fe.Field != "source.name" {
			t.Errorf("source %s: error %q, want a source.name error", src, fe)
		}
	}
	for _, src := range []string{`"attest-agent"`, `"my-attest"`, `"Voice API"`} {
		body := "{" + strings.Replace(minimal, `"source":"s"`, `"source":`+src, 1) + "}"
		if _, err := DecodeProducer([]byte(body), &Limits{Now: fixedNow}); err != nil {
			t.Errorf("source %s: %v, want it accepted", src, err)
		}
	}
}
