package event

import (
	"bytes"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeProducer checks that the decoder never panics, and that every
// event it accepts makes a canonical leaf that decodes back to the event.
func FuzzDecodeProducer(f *testing.F) {
	base := `"occurred_at":"2026-11-30T10:00:00Z","source":"s","actor":{"type":"user"},"action":"a.b",` +
		`"category":"system","outcome":{"result":"success"}`
	for _, s := range []string{
		validEvent,
		`{` + base + `}`,
		`{` + base + `,"details":{"z":1e2,"a":[-0,0.1,"\u2028"],"n":null}}`,
		`{` + base + `,"request":{"duration_ms":0.0015,"status":599}}`,
		`{` + base + `,"data":{"fields":[],"record_count":0}}`,
		`{` + base + `,"actor":{"type":"user"}}`,
		`{` + base + `,"details":{"n":12345678901234567890}}`,
		`{` + base,
		`{"id":"\ud800"}`,
		`[]`,
		``,
		`{"kind": 0}`,
	} {
		f.Add([]byte(s))
	}
	lim := &Limits{Now: fixedNow}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := DecodeProducer(raw, lim)
		if err != nil {
			return
		}
		ev.Tenant = "default"
		ev.ReceivedAt = time.Date(2026, 11, 30, 9, 0, 1, 500, time.UTC)
		ev.Sequence = 42
		leaf := AppendLeaf(nil, ev, nil)
		canon := jsontext.Value(bytes.Clone(leaf))
		if err := canon.Canonicalize(); err != nil {
			t.Fatalf("leaf is not valid JSON: %v\n%s", err, leaf)
		}
		if !bytes.Equal(canon, leaf) {
			t.Fatalf("leaf is not canonical:\n got %s\nwant %s", leaf, canon)
		}
		back, _, err := DecodeLeaf(leaf)
		if err != nil {
			t.Fatalf("leaf does not decode: %v\n%s", err, leaf)
		}
		if diff := cmp.Diff(ev, back); diff != "" {
			t.Fatalf("leaf round trip (-decoded +leaf):\n%s\n%s", diff, leaf)
		}
	})
}
