package event

import (
	"errors"
	"strings"
	"testing"
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
