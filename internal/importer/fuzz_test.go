package importer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/attest/attest/internal/event"
)

// fuzzNow is the clock of the fuzz targets, so that a time is accepted or
// not whatever the day.
func fuzzNow() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// addFixture adds each line of a testdata file, and the whole file, as
// seeds.
func addFixture(f *testing.F, name string) {
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	for line := range bytes.Lines(raw) {
		f.Add(bytes.TrimSpace(line))
	}
}

// addCommon adds the seeds every target shares: nothing, broken JSON and
// values of the wrong shape.
func addCommon(f *testing.F) {
	for _, s := range []string{"", " \n", `{"kind": 0}`, `[`, `[{"eventID":"e1",`, `{"Records":[{}`,
		`{"Records":5}`, `null`, `[1,"a",null,{}]`, "{\"a\":\"\xff\"}", `{"a":1,"a":2}`,
		"\x1f\x8b\x08\x00",
		// Small valid records, which mutate field by field.
		`{"eventID":"e","eventTime":"2020-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject",` +
			`"userIdentity":{"type":"AWSAccount","principalId":"p"},"sourceIPAddress":"01.2.3.4","errorCode":"AccessDenied",` +
			`"resources":[{"ARN":"arn:aws:s3:::b"}],"requestParameters":{"names":["n"]},"readOnly":true}`,
		`{"kind":"Event","auditID":"x","stage":"Panic","verb":"get","timestamp":"2020-01-01T00:00:00Z",` +
			`"user":{"username":"system:a","groups":["g"]},"objectRef":{"resource":"pods","subresource":"exec",` +
			`"namespace":"n","name":"p","apiGroup":"g"},"responseStatus":{"code":403},"sourceIPs":["::1"]}`,
	} {
		f.Add([]byte(s))
	}
}

// fuzzRead reads data in format and checks every record: an event or an
// error, indexes in order, and each event valid with a leaf that decodes.
// Read's own error, for input it cannot read at all, is not a failure.
func fuzzRead(t *testing.T, format string, data []byte) {
	lim := &event.Limits{Now: fuzzNow}
	n := 0
	_ = Read(format, bytes.NewReader(data), &Options{Limits: lim, MaxRecordBytes: 64 << 10}, func(r Record) error {
		if err := checkFuzzRecord(format, r, n, lim); err != nil {
			t.Fatal(err)
		}
		n++
		return nil
	})
}

func checkFuzzRecord(format string, r Record, n int, lim *event.Limits) error {
	if r.Index != n {
		return fmt.Errorf("record %d has index %d", n, r.Index)
	}
	if (r.Event == nil) == (r.Err == nil) {
		return fmt.Errorf("record %d: event %v and error %v; want exactly one", r.Index, r.Event, r.Err)
	}
	if r.Err != nil {
		return nil
	}
	if err := event.Validate(r.Event, lim); err != nil {
		return fmt.Errorf("record %d: event does not validate: %v", r.Index, err)
	}
	if format == "ndjson" {
		return nil
	}
	return checkLeaf(r.Event)
}

// checkLeaf checks that an imported event's leaf, with its original
// committed as the log does, decodes.
func checkLeaf(ev *event.Event) error {
	e := *ev
	e.Tenant, e.ReceivedAt, e.Sequence = "t", fuzzNow(), 1
	leaf := event.AppendLeaf(nil, &e, []event.Commitment{{Path: event.PathOriginal, Value: "c"}})
	if _, _, err := event.DecodeLeaf(leaf); err != nil {
		return fmt.Errorf("leaf does not decode: %v\n%s", err, leaf)
	}
	return nil
}

func FuzzCloudTrail(f *testing.F) {
	addFixture(f, "cloudtrail-records.json")
	addFixture(f, "cloudtrail-array.json")
	addFixture(f, "cloudtrail.ndjson")
	addCommon(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, "cloudtrail", data) })
}

func FuzzKubernetes(f *testing.F) {
	addFixture(f, "kubernetes.ndjson")
	addCommon(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, "kubernetes", data) })
}

func FuzzNDJSON(f *testing.F) {
	f.Add([]byte(`{"id":"e-1","occurred_at":"2025-06-01T00:00:00Z","source":"app","actor":{"type":"user","id":"u1"},` +
		`"action":"report.read","category":"data_access","outcome":{"result":"success"}}`))
	f.Add([]byte(`{"occurred_at":"2025-06-01T00:00:00Z","source":{"name":"a"},"actor":{"type":"robot"}}` + "\n" + `{"id":`))
	addCommon(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, "ndjson", data) })
}
