package importer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"
)

// datasets is where the shared datasets live, relative to this package.
var datasets = filepath.Join("..", "..", "..", "shared", "datasets")

// datasetDir returns a dataset's directory, skipping the test when it is
// not present.
func datasetDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(datasets, name)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("dataset not present: %s (%v); see /work/shared/datasets/SOURCES.md", dir, err)
	}
	return dir
}

// readAll reads the whole of in and returns every record.
func readAll(t *testing.T, format string, in io.Reader, opts *Options) []Record {
	t.Helper()
	var recs []Record
	err := Read(format, in, opts, func(r Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%s): %v", format, err)
	}
	return recs
}

func readFile(t *testing.T, format, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readAll(t, format, f, nil)
}

// checkRecord checks what every record must satisfy: an event or an error,
// never both; an event that validates and whose leaf reads back.
func checkRecord(t *testing.T, r Record) {
	t.Helper()
	if (r.Event == nil) == (r.Err == nil) {
		t.Fatalf("record %d: event %v and error %v; want exactly one", r.Index, r.Event, r.Err)
	}
	if r.Err != nil {
		return
	}
	if err := checkEvent(r.Event); err != nil {
		t.Fatalf("record %d: %v", r.Index, err)
	}
}

// checkEvent validates ev and checks that its leaf, with the original
// committed as the log does, decodes.
func checkEvent(ev *event.Event) error {
	if err := event.Validate(ev, &event.Limits{}); err != nil {
		return err
	}
	leafEv := *ev
	leafEv.Tenant, leafEv.ReceivedAt, leafEv.Sequence = "t1", time.Now(), 7
	leaf := event.AppendLeaf(nil, &leafEv, []event.Commitment{{Path: event.PathOriginal, Value: "c"}})
	if _, _, err := event.DecodeLeaf(leaf); err != nil {
		return errors.New("leaf does not decode: " + err.Error() + "\n" + string(leaf))
	}
	return nil
}

func TestCloudTrailDataset(t *testing.T) {
	dir := datasetDir(t, "cloudtrail-stratus-red-team")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		total, failed, notSuccess int
		perAction                 = map[string]int{}
		perFile                   = map[string]int{}
		ids                       = map[string]bool{}
		login                     *event.Event
	)
	for _, path := range files {
		name := filepath.Base(path)
		for _, r := range readFile(t, "cloudtrail", path) {
			total++
			checkRecord(t, r)
			if r.Err != nil {
				failed++
				t.Errorf("%s record %d: %v", name, r.Index, r.Err)
				continue
			}
			ev := r.Event
			if ids[ev.ID] {
				t.Errorf("%s: id %s seen twice", name, ev.ID)
			}
			ids[ev.ID] = true
			if ev.Outcome.Result != "success" {
				notSuccess++
				perFile[name]++
				perAction[ev.Action+" "+ev.Outcome.Result]++
				if !strings.Contains(string(ev.Details), `"error_code"`) {
					t.Errorf("%s: %s is %s without an error code", name, ev.ID, ev.Outcome.Result)
				}
			}
			if strings.Contains(name, "console-login-without-mfa") {
				login = ev
			}
		}
	}
	if total != 310 || failed != 0 {
		t.Errorf("read %d records with %d errors, want 310 and 0", total, failed)
	}
	if notSuccess != 52 {
		t.Errorf("%d events are not successes, want the 52 that carry an errorCode", notSuccess)
	}
	// SOURCES.md says "32 denied GetPasswordData calls and 17 denied
	// DescribeInstanceAttribute calls", but those are the errorCode counts of
	// the two files: each also holds two AssumeRole calls denied with
	// AccessDenied. The records have 30 and 15 such calls.
	for key, want := range map[string]int{
		"aws.credential-access.ec2-get-password-data.json": 32,
		"aws.discovery.ec2-download-user-data.json":        17,
	} {
		if got := perFile[key]; got != want {
			t.Errorf("%s: %d events not successes, want %d", key, got, want)
		}
	}
	for key, want := range map[string]int{
		"ec2:GetPasswordData denied":             30,
		"ec2:DescribeInstanceAttribute denied":   15,
		"sts:AssumeRole denied":                  4,
		"organizations:LeaveOrganization denied": 1,
		"ec2:RunInstances denied":                1,
		"iam:DeleteLoginProfile failure":         1,
	} {
		if got := perAction[key]; got != want {
			t.Errorf("%s: %d events, want %d", key, got, want)
		}
	}

	if login == nil {
		t.Fatal("no event from the console-login-without-mfa file")
	}
	if login.Action != "signin:ConsoleLogin" || login.Category != "authentication" ||
		login.Actor.Auth.MFA == nil || *login.Actor.Auth.MFA || login.Actor.IP != "225.1.0.16" {
		t.Errorf("console login = action %q, category %q, mfa %v, ip %q; want signin:ConsoleLogin, "+
			"authentication, false, 225.1.0.16", login.Action, login.Category, login.Actor.Auth.MFA, login.Actor.IP)
	}
}

func TestKubernetesDataset(t *testing.T) {
	dir := datasetDir(t, "k8s-audit-falco")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		imported int
		errs     []string
		ids      = map[string]bool{}
	)
	for _, path := range files {
		name := filepath.Base(path)
		if strings.HasPrefix(name, "derived-") {
			continue
		}
		recs := readFile(t, "kubernetes", path)
		for _, r := range recs {
			checkRecord(t, r)
			if r.Err != nil {
				errs = append(errs, name+": "+r.Err.Error())
				continue
			}
			imported++
			// The trace files were made from one another and some share an
			// auditID, so ids are unique only within a file.
			id := name + " " + r.Event.ID
			if ids[id] {
				t.Errorf("%s: id %s seen twice", name, r.Event.ID)
			}
			ids[id] = true
		}
		checkFalcoFile(t, name, recs)
	}
	if imported != 51 {
		t.Errorf("imported %d events, want 51", imported)
	}
	if len(errs) != 1 || !strings.HasPrefix(errs[0], "fal_01_003.json: kind:") {
		t.Errorf("record errors = %q, want one, about kind in fal_01_003.json", errs)
	}
}

// checkFalcoFile checks what is known of a few of the Falco trace files.
func checkFalcoFile(t *testing.T, name string, recs []Record) {
	t.Helper()
	first := func() *event.Event {
		if len(recs) == 0 || recs[0].Event == nil {
			t.Fatalf("%s: no event", name)
		}
		return recs[0].Event
	}
	switch name {
	case "exec_pod.json":
		ev := first()
		if ev.Action != "pods/exec.create" || ev.Category != "security" || ev.Actor.IP != "192.168.99.1" ||
			ev.Outcome.Result != "success" || ev.Request.Status != 101 {
			t.Errorf("%s = %s %s %s %s %d; want pods/exec.create security 192.168.99.1 success 101",
				name, ev.Action, ev.Category, ev.Actor.IP, ev.Outcome.Result, ev.Request.Status)
		}
	case "anonymous_creates_namespace_foo.json":
		if ev := first(); ev.Actor.Type != "anonymous" {
			t.Errorf("%s: actor type %q, want anonymous", name, ev.Actor.Type)
		}
	case "create_configmap_sensitive_values.json":
		if len(recs) != 6 {
			t.Errorf("%s: %d records, want 6", name, len(recs))
		}
	case "fal_01_003.json":
		if len(recs) != 1 || recs[0].Err == nil {
			t.Errorf("%s: records %v, want one error", name, recs)
		}
	}
}

// TestCloudTrailForms checks that the three container forms, compressed or
// not, give the same events.
func TestCloudTrailForms(t *testing.T) {
	want := readFile(t, "cloudtrail", filepath.Join("testdata", "cloudtrail-records.json"))
	if len(want) != 3 {
		t.Fatalf("Records object: %d records, want 3", len(want))
	}
	for _, r := range want {
		checkRecord(t, r)
		if r.Err != nil {
			t.Fatalf("Records object: record %d: %v", r.Index, r.Err)
		}
	}
	for _, name := range []string{"cloudtrail-records.json", "cloudtrail-array.json", "cloudtrail.ndjson"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, gz := range []bool{false, true} {
			in := raw
			if gz {
				in = gzipped(t, raw)
			}
			got := readAll(t, "cloudtrail", bytes.NewReader(in), nil)
			for i := range got {
				line := 0
				if strings.HasSuffix(name, ".ndjson") {
					line = i + 1
				}
				if got[i].Line != line {
					t.Errorf("%s: record %d is on line %d, want %d", name, i, got[i].Line, line)
				}
				got[i].Line = 0
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (gzip %v): records differ from the Records object (-want +got):\n%s", name, gz, diff)
			}
		}
	}
}

// TestCloudTrailPrettyRecords reads records printed over several lines, one
// after another, as a console or jq prints them.
func TestCloudTrailPrettyRecords(t *testing.T) {
	want := readFile(t, "cloudtrail", filepath.Join("testdata", "cloudtrail-records.json"))
	raw, err := os.ReadFile(filepath.Join("testdata", "cloudtrail-array.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	for _, r := range recs {
		b, _ := json.MarshalIndent(r, "", "  ")
		pretty.Write(append(b, '\n'))
	}
	got := readAll(t, "cloudtrail", bytes.NewReader(pretty.Bytes()), nil)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pretty records differ from the Records object (-want +got):\n%s", diff)
	}
	// A record cut short is reported, after the whole ones.
	got = readAll(t, "cloudtrail", bytes.NewReader(append(pretty.Bytes(), "{\n  \"eventID\": "...)), nil)
	if len(got) != len(want)+1 || got[len(want)].Err == nil {
		t.Errorf("a cut record: %d records, last %+v", len(got), got[len(got)-1])
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCloudTrailMapping checks the mapping of the fixture records field by
// field.
func TestCloudTrailMapping(t *testing.T) {
	lines, err := os.ReadFile(filepath.Join("testdata", "cloudtrail.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, "cloudtrail", bytes.NewReader(lines), nil)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	no := false
	pwReason := "Client.UnauthorizedOperation: You are not authorized to perform this operation. User: " +
		"arn:aws:sts::751353041310:assumed-role/stratus-red-team-ec2-get-password-data-role/aws-go-sdk-1722375070115152000 " +
		"is not authorized to perform: ec2:GetPasswordData on resource: arn:aws:ec2:apiso-northsouth-3r:751353041310:instance/* " +
		"because no identity-based policy allows the ec2:GetPasswordData action. Encoded authorization failure message: "
	want := []*event.Event{{
		ID:         "cloudtrail:865d9377-9c6b-4fd7-8aad-725e95f6a140",
		OccurredAt: time.Date(2024, 8, 2, 8, 53, 24, 0, time.UTC),
		Source:     event.Source{Name: "cloudtrail", Version: "1.08"},
		Actor: event.Actor{Type: "user", ID: "arn:aws:iam::562283505220:user/stratus-red-team-nmfalu-jfzdtsvchl",
			Name: "stratus-red-team-nmfalu-jfzdtsvchl", IP: "225.1.0.16",
			UserAgent: "stratus-red-team_fccf7123-0651-41f5-b06c-460da5ee1c94",
			Auth:      event.Auth{Method: "console", MFA: &no}},
		Action:   "signin:ConsoleLogin",
		Category: "authentication",
		Outcome:  event.Outcome{Result: "success"},
		Details: []byte(`{"aws_region":"eu-west-2r","event_category":"Management","event_type":"AwsConsoleSignIn",` +
			`"management_event":true,"read_only":false,"recipient_account_id":"562283505220"}`),
	}, {
		ID:         "cloudtrail:450230d4-b39e-4a18-a6a0-d07a6e2105cb",
		OccurredAt: time.Date(2024, 7, 30, 21, 31, 21, 0, time.UTC),
		Source:     event.Source{Name: "cloudtrail", Version: "1.09"},
		Actor: event.Actor{Type: "user",
			ID:        "arn:aws:sts::457448411975:assumed-role/stratus-red-team-ec2-get-password-data-role/aws-go-sdk-1722375070115152000",
			Name:      "stratus-red-team-ec2-get-password-data-role",
			IP:        "200.249.253.51",
			UserAgent: "stratus-red-team_5c59eb79-6dac-405c-a4c4-e19aec03c666",
			SessionID: "ASIANQQHHS551LWULIWD",
			Auth:      event.Auth{Method: "assume_role", MFA: &no}},
		Action:   "ec2:GetPasswordData",
		Category: "data_access",
		Target:   event.Target{Type: "aws:instanceId", ID: "i-i2jnm5swa59p4fxg"},
		Outcome:  event.Outcome{Result: "denied", Reason: pwReason},
		Request:  event.Request{ID: "b20c2df5-71d5-441e-84c8-b424f1c78ffb"},
		Details: []byte(`{"aws_region":"apiso-northsouth-3r","error_code":"Client.UnauthorizedOperation",` +
			`"event_category":"Management","event_type":"AwsApiCall","management_event":true,"read_only":true,` +
			`"recipient_account_id":"457448411975"}`),
	}, {
		ID:         "cloudtrail:10163ed2-2253-469d-a5ee-cbc6651f8934",
		OccurredAt: time.Date(2024, 7, 31, 13, 6, 24, 0, time.UTC),
		Source:     event.Source{Name: "cloudtrail", Version: "1.10"},
		Actor: event.Actor{Type: "user", ID: "arn:aws:iam::143434273843:user/christophe", Name: "christophe",
			IP: "86.245.153.234", UserAgent: "stratus-red-team_c97089f1-1ae3-4ecc-b006-f5e8fd0f2571",
			SessionID: "AKIAGGWFBBHBE7D3M9WI", Auth: event.Auth{Method: "aws_credentials"}},
		Action:   "cloudtrail:StopLogging",
		Category: "security",
		Target:   event.Target{Type: "aws:name", ID: "stratus-red-team-ct-stop-trail-buykxbqejv"},
		Outcome:  event.Outcome{Result: "success"},
		Request:  event.Request{ID: "14c891b6-11b5-4787-ae97-64a974977078"},
		Details: []byte(`{"aws_region":"apiso-centralnorth-2r","event_category":"Management","event_type":"AwsApiCall",` +
			`"management_event":true,"read_only":false,"recipient_account_id":"143434273843"}`),
	}}
	for i, line := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
		got := recs[i].Event
		if got == nil {
			t.Fatalf("record %d: %v", i, recs[i].Err)
		}
		w := want[i]
		w.Request.DurationMicros, w.Data.RecordCount = -1, -1
		w.Original = jsontext.Value(bytes.Clone(line))
		if err := w.Original.Canonicalize(); err != nil {
			t.Fatal(err)
		}
		if i == 1 && strings.HasPrefix(got.Outcome.Reason, pwReason) { // spare the encoded message
			w.Outcome.Reason = got.Outcome.Reason
			if n := len(got.Outcome.Reason); n != 1009 {
				t.Errorf("record 1: reason of %d bytes, want the whole errorCode and message, 1009", n)
			}
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("record %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestCloudTrailCategory(t *testing.T) {
	for _, tc := range []struct {
		service, name string
		readOnly      bool
		want          string
	}{
		{"signin", "ConsoleLogin", false, "authentication"},
		{"sts", "AssumeRole", true, "authentication"},
		{"sts", "AssumeRoleWithSAML", false, "authentication"},
		{"sts", "GetFederationToken", false, "authentication"},
		{"sts", "GetSessionToken", true, "authentication"},
		{"sts", "GetCallerIdentity", true, "data_access"},
		{"iam", "CreateAccessKey", false, "admin"},
		{"iam", "ListRoles", true, "data_access"},
		{"organizations", "LeaveOrganization", false, "admin"},
		{"sso", "CreateAccountAssignment", false, "admin"},
		{"identitystore", "CreateUser", false, "admin"},
		{"cloudtrail", "StopLogging", false, "security"},
		{"cloudtrail", "DeleteTrail", false, "security"},
		{"cloudtrail", "PutEventSelectors", false, "security"},
		{"cloudtrail", "DescribeTrails", true, "data_access"},
		{"guardduty", "DeleteDetector", false, "security"},
		{"securityhub", "DisableSecurityHub", false, "security"},
		{"config", "StopConfigurationRecorder", false, "security"},
		{"kms", "PutKeyPolicy", false, "security"},
		{"kms", "CreateKey", false, "configuration"},
		{"logs", "DeleteLogGroup", false, "security"},
		{"ec2", "DeleteFlowLogs", false, "security"},
		{"route53resolver", "DeleteResolverQueryLogConfig", false, "security"},
		{"s3", "GetObject", false, "data_access"},
		{"secretsmanager", "GetSecretValue", false, "data_access"},
		{"secretsmanager", "BatchGetSecretValue", false, "data_access"},
		{"ssm", "GetParameters", false, "data_access"},
		{"ec2", "GetPasswordData", false, "data_access"},
		{"ec2", "DescribeInstances", true, "data_access"},
		{"ec2", "RunInstances", false, "configuration"},
		{"lambda", "UpdateFunctionCode20150331v2", false, "configuration"},
	} {
		if got := cloudTrailCategory(tc.service, tc.name, tc.readOnly); got != tc.want {
			t.Errorf("category of %s:%s (read-only %v) = %s, want %s", tc.service, tc.name, tc.readOnly, got, tc.want)
		}
	}
}

// TestCloudTrailFields checks mapping rules on small made-up records.
func TestCloudTrailFields(t *testing.T) {
	const base = `"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances"`
	const s3 = `"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"GetObject"`
	yes := true
	for _, tc := range []struct {
		name, record string
		check        func(*event.Event) any // returns what is compared
		want         any
	}{
		{"denied code", `{` + base + `,"errorCode":"AccessDenied","errorMessage":"no"}`,
			func(e *event.Event) any { return e.Outcome }, event.Outcome{Result: "denied", Reason: "AccessDenied: no"}},
		{"denied suffix", `{` + base + `,"errorCode":"Client.Unauthorized"}`,
			func(e *event.Event) any { return e.Outcome.Result }, "denied"},
		{"other error", `{` + base + `,"errorCode":"ThrottlingException","errorMessage":"slow down"}`,
			func(e *event.Event) any { return e.Outcome },
			event.Outcome{Result: "failure", Reason: "ThrottlingException: slow down"}},
		{"long reason", `{` + base + `,"errorCode":"X","errorMessage":"` + strings.Repeat("é", 600) + `"}`,
			func(e *event.Event) any { return len(e.Outcome.Reason) }, 1023},
		{"failed console login", `{"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","eventSource":"signin.amazonaws.com",` +
			`"eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Failure"},"errorMessage":"Failed authentication"}`,
			func(e *event.Event) any { return e.Outcome },
			event.Outcome{Result: "failure", Reason: "Failed authentication"}},
		{"aws service", `{` + base + `,"userIdentity":{"type":"AWSService","invokedBy":"ec2.amazonaws.com"},"sourceIPAddress":"ec2.amazonaws.com"}`,
			func(e *event.Event) any { return []string{e.Actor.Type, e.Actor.ID, e.Actor.IP, string(e.Details)} },
			[]string{"service", "ec2.amazonaws.com", "", `{"source_ip_address":"ec2.amazonaws.com"}`}},
		{"anonymous account", `{` + base + `,"userIdentity":{"type":"AWSAccount","accountId":"1"}}`,
			func(e *event.Event) any { return e.Actor.Type }, "anonymous"},
		{"no identity", `{` + base + `}`,
			func(e *event.Event) any { return e.Actor.Type }, "anonymous"},
		{"unknown identity", `{` + base + `,"userIdentity":{"type":"Unknown"}}`,
			func(e *event.Event) any { return e.Actor.Type }, "anonymous"},
		{"root", `{` + base + `,"userIdentity":{"type":"Root","principalId":"123","accessKeyId":"AKIA1"}}`,
			func(e *event.Event) any { return e.Actor }, event.Actor{Type: "user", ID: "123", SessionID: "AKIA1",
				Auth: event.Auth{Method: "aws_credentials"}}},
		{"mfa from session", `{` + base + `,"userIdentity":{"type":"AssumedRole","sessionContext":{"attributes":{"mfaAuthenticated":"true"}}}}`,
			func(e *event.Event) any { return e.Actor.Auth }, event.Auth{Method: "assume_role", MFA: &yes}},
		{"leading zeros", `{` + base + `,"sourceIPAddress":"010.001.000.099"}`,
			func(e *event.Event) any { return e.Actor.IP }, "10.1.0.99"},
		{"ipv6", `{` + base + `,"sourceIPAddress":"2001:db8::1"}`,
			func(e *event.Event) any { return e.Actor.IP }, "2001:db8::1"},
		{"odd action", `{"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","eventSource":"my svc.amazonaws.com","eventName":"Dö it!"}`,
			func(e *event.Event) any { return e.Action }, "my_svc:D__it_"},
		{"resource without type", `{` + base + `,"resources":[{"ARN":"arn:aws:ssm:r:1:parameter/p"}]}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "aws:ssm", ID: "arn:aws:ssm:r:1:parameter/p"}},
		{"instances set", `{` + base + `,"requestParameters":{"instancesSet":{"items":[{"instanceId":"i-1"}]}}}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "aws:instanceId", ID: "i-1"}},
		{"s3 object", `{` + s3 + `,"requestParameters":{"bucketName":"calls","key":"2024/rec-1.wav"}}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "AWS::S3::Object", ID: "arn:aws:s3:::calls/2024/rec-1.wav"}},
		{"s3 bucket", `{` + s3 + `,"requestParameters":{"bucketName":"calls","key":7}}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "aws:bucketName", ID: "calls"}},
		{"s3 key too long for a target id", `{` + s3 + `,"requestParameters":{"bucketName":"calls","key":"` + strings.Repeat("k", 300) + `"}}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "aws:bucketName", ID: "calls"}},
		{"s3 bucket with a slash", `{` + s3 + `,"requestParameters":{"bucketName":"calls/x","key":"k"}}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "aws:bucketName", ID: "calls/x"}},
		{"s3 key with a control character", `{` + s3 + `,"requestParameters":{"bucketName":"calls","key":"a\nb"}}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "aws:bucketName", ID: "calls"}},
		{"bucket and key outside s3", `{` + base + `,"requestParameters":{"bucketName":"calls","key":"k"}}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "aws:bucketName", ID: "calls"}},
		{"target not a string", `{` + base + `,"requestParameters":{"bucketName":7,"roleName":"r"}}`,
			func(e *event.Event) any { return e.Target }, event.Target{Type: "aws:roleName", ID: "r"}},
		{"control characters", `{` + base + `,"userAgent":"a\nb"}`,
			func(e *event.Event) any { return e.Actor.UserAgent }, "a\uFFFDb"},
		{"unknown members", `{` + base + `,"newField":{"x":[1,2]},"EventName":"ignored"}`,
			func(e *event.Event) any { return e.Action }, "ec2:RunInstances"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := readAll(t, "cloudtrail", strings.NewReader(tc.record), nil)
			if len(recs) != 1 || recs[0].Err != nil {
				t.Fatalf("records = %+v, want one event", recs)
			}
			checkRecord(t, recs[0])
			if diff := cmp.Diff(tc.want, tc.check(recs[0].Event)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseIP(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"225.01.00.16", "225.1.0.16"},
		{"010.020.030.040", "10.20.30.40"}, // decimal, not octal
		{"08.09.1.250", "8.9.1.250"},
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"2001:DB8::1", "2001:db8::1"},
		{"256.1.1.1", ""},
		{"1.2.3", ""},
		{"1.2.3.4.5", ""},
		{"0001.2.3.4", ""},
		{"1.2.3.-4", ""},
		{"fe80::1%eth0", ""},
		{"AWS Internal", ""},
		{"ec2.amazonaws.com", ""},
		{"", ""},
	} {
		if got := parseIP(tc.in); got != tc.want {
			t.Errorf("parseIP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestKubernetesFields(t *testing.T) {
	event := func(extra string) string {
		return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a1","stage":"ResponseComplete",` +
			`"requestReceivedTimestamp":"2024-01-02T03:04:05.123456Z","verb":"get","user":{"username":"alice"}` + extra + `}`
	}
	for _, tc := range []struct {
		name, line string
		want       []string // id, action, category, actor type, result, target type, target id
	}{
		{"secret read", event(`,"objectRef":{"resource":"secrets","namespace":"ns","name":"s"},"responseStatus":{"code":200}`),
			[]string{"k8s:a1:ResponseComplete", "secrets.get", "data_access", "user", "success", "secrets", "ns/s"}},
		{"list in namespace", event(`,"objectRef":{"resource":"pods","namespace":"ns"}`),
			[]string{"k8s:a1:ResponseComplete", "pods.get", "data_access", "user", "success", "pods", "ns/pods"}},
		{"rbac", event(`,"objectRef":{"resource":"clusterroles","apiGroup":"rbac.authorization.k8s.io","name":"admin"},"responseStatus":{"code":403}`),
			[]string{"k8s:a1:ResponseComplete", "clusterroles.get", "authorization", "user", "denied",
				"rbac.authorization.k8s.io/clusterroles", "admin"}},
		{"token", event(`,"objectRef":{"resource":"serviceaccounts","subresource":"token","namespace":"ns","name":"sa"}`),
			[]string{"k8s:a1:ResponseComplete", "serviceaccounts/token.get", "authorization", "user", "success",
				"serviceaccounts", "ns/sa"}},
		{"forbidden by annotation", event(`,"objectRef":{"resource":"pods"},"annotations":{"authorization.k8s.io/decision":"forbid"}`),
			[]string{"k8s:a1:ResponseComplete", "pods.get", "data_access", "user", "denied", "pods", ""}},
		{"not found", event(`,"objectRef":{"resource":"pods","name":"p"},"responseStatus":{"code":404}`),
			[]string{"k8s:a1:ResponseComplete", "pods.get", "data_access", "user", "failure", "pods", "p"}},
		{"server error", event(`,"objectRef":{"resource":"pods"},"responseStatus":{"code":503}`),
			[]string{"k8s:a1:ResponseComplete", "pods.get", "data_access", "user", "error", "pods", ""}},
		{"port forward", event(`,"objectRef":{"resource":"pods","subresource":"portforward"}`),
			[]string{"k8s:a1:ResponseComplete", "pods/portforward.get", "security", "user", "success", "pods", ""}},
		{"non-resource", event(``),
			[]string{"k8s:a1:ResponseComplete", "nonresource.get", "system", "user", "success", "", ""}},
		{"delete collection", strings.Replace(event(`,"objectRef":{"resource":"configmaps"}`), `"get"`, `"deletecollection"`, 1),
			[]string{"k8s:a1:ResponseComplete", "configmaps.deletecollection", "data_change", "user", "success",
				"configmaps", ""}},
		{"odd verb", strings.Replace(event(`,"objectRef":{"resource":"pods"}`), `"get"`, `"escalate"`, 1),
			[]string{"k8s:a1:ResponseComplete", "pods.escalate", "system", "user", "success", "pods", ""}},
		{"v1beta1 timestamp only", `{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","auditID":"a2","stage":"Panic",` +
			`"timestamp":"2018-10-25T13:58:49Z","verb":"create","user":{"username":"system:serviceaccount:kube-system:x"}}`,
			[]string{"k8s:a2:Panic", "nonresource.create", "system", "service", "success", "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := readAll(t, "kubernetes", strings.NewReader(tc.line), nil)
			if len(recs) != 1 || recs[0].Err != nil {
				t.Fatalf("records = %+v, want one event", recs)
			}
			checkRecord(t, recs[0])
			ev := recs[0].Event
			// The id ends in a digest of the record.
			id := ev.ID[:strings.LastIndexByte(ev.ID, ':')]
			got := []string{id, ev.Action, ev.Category, ev.Actor.Type, ev.Outcome.Result, ev.Target.Type, ev.Target.ID}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestKubernetesUserType(t *testing.T) {
	for _, tc := range []struct {
		user k8sUser
		want string
	}{
		{k8sUser{Username: "system:anonymous"}, "anonymous"},
		{k8sUser{}, "anonymous"},
		{k8sUser{UID: "u1"}, "user"},
		{k8sUser{Username: "system:serviceaccount:default:builder"}, "service"},
		{k8sUser{Username: "system:kube-controller-manager"}, "system"},
		{k8sUser{Username: "system:node:worker-1"}, "system"},
		{k8sUser{Username: "minikube-user"}, "user"},
	} {
		if got := userType(&tc.user); got != tc.want {
			t.Errorf("userType(%+v) = %s, want %s", tc.user, got, tc.want)
		}
	}
}

// TestDetailsSize checks that details stay under 2 KiB when every value is
// as long as kept and made of characters that need escaping.
func TestDetailsSize(t *testing.T) {
	long := strings.Repeat(`"\`, 2000)
	ct := &ctRecord{AWSRegion: long, RecipientAccountID: long, EventType: long, EventCategory: long,
		ErrorCode: long, SourceIPAddress: long, ReadOnly: new(bool), ManagementEvent: new(bool)}
	groups := make([]string, 100)
	for i := range groups {
		groups[i] = long
	}
	ke := &k8sEvent{Stage: long, Level: long, User: k8sUser{Groups: groups},
		ImpersonatedUser: &k8sUser{Username: long},
		ObjectRef:        &k8sObjectRef{Namespace: long, APIGroup: long, APIVersion: long},
		Annotations:      map[string]string{decisionAnnotation: long, reasonAnnotation: long}}
	for name, v := range map[string]any{"cloudtrail": ct.details(""), "kubernetes": ke.details()} {
		d, err := canonicalDetails(v)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) > 2048 {
			t.Errorf("%s details are %d bytes, want at most 2048", name, len(d))
		}
	}
}

// TestMalformed checks that each malformed record is reported with its
// position and the field at fault, and that the others are still imported.
func TestMalformed(t *testing.T) {
	const (
		ct1  = `{"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"GetObject"}`
		ct3  = `{"eventID":"e3","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"PutObject"}`
		k8s1 = `{"kind":"Event","auditID":"a1","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"2024-01-02T03:04:05Z"}`
		k8s3 = `{"kind":"Event","auditID":"a3","stage":"ResponseComplete","verb":"list","requestReceivedTimestamp":"2024-01-02T03:04:05Z"}`
	)
	type bad struct {
		pos, field, reason string
	}
	for _, tc := range []struct {
		name, format, input string
		maxRecord           int
		events              []int // indexes of the records imported
		errs                []bad
	}{
		{"cloudtrail eventTime missing", "cloudtrail",
			`[` + ct1 + `,{"eventID":"e2","eventSource":"s3.amazonaws.com","eventName":"GetObject"},` + ct3 + `]`, 0,
			[]int{0, 2}, []bad{{"record 2", "eventTime", "is required"}}},
		{"cloudtrail bad eventTime", "cloudtrail",
			ct1 + "\n" + strings.Replace(ct3, "2024-01-02T03:04:05Z", "yesterday", 1), 0,
			[]int{0}, []bad{{"line 2", "eventTime", "RFC 3339"}}},
		{"cloudtrail zero eventTime", "cloudtrail",
			strings.Replace(ct1, "2024-01-02T03:04:05Z", "0001-01-01T00:00:00Z", 1) + "\n" +
				strings.Replace(ct3, "2024-01-02T03:04:05Z", "2024-01-02t03:04:05z", 1), 0,
			[]int{1}, []bad{{"line 1", "eventTime", "before 1990-01-01"}}},
		{"kubernetes old time", "kubernetes",
			strings.Replace(k8s1, "2024-01-02T03:04:05Z", "1989-12-31T23:59:59Z", 1) + "\n" +
				strings.Replace(k8s3, "2024-01-02T03:04:05Z", "2024-01-02t03:04:05.5z", 1), 0,
			[]int{1}, []bad{{"line 1", "requestReceivedTimestamp", "before 1990-01-01"}}},
		{"cloudtrail eventID missing", "cloudtrail",
			`{"Records":[` + ct1 + `,{"eventTime":"2024-01-02T03:04:05Z"},` + ct3 + `]}`, 0,
			[]int{0, 2}, []bad{{"record 2", "eventID", "is required"}}},
		{"cloudtrail wrong type", "cloudtrail",
			`{"Records":[` + ct1 + `,` + strings.Replace(ct3, `"PutObject"`, `5`, 1) + `,` + ct3 + `]}`, 0,
			[]int{0, 2}, []bad{{"record 2", "eventName", "must be a string, not a number"}}},
		{"cloudtrail nested wrong type", "cloudtrail",
			`[` + strings.Replace(ct1, `{`, `{"userIdentity":{"type":true},`, 1) + `,` + ct3 + `]`, 0,
			[]int{1}, []bad{{"record 1", "userIdentity.type", "must be a string, not a boolean"}}},
		{"cloudtrail truncated array", "cloudtrail",
			`[` + ct1 + `,` + ct3 + `,{"eventID":"e3","eventTi`, 0,
			[]int{0, 1}, []bad{{"record 3", "record", "invalid JSON"}}},
		{"cloudtrail truncated Records", "cloudtrail",
			`{"Records":[` + ct1 + `,` + ct3, 0,
			[]int{0, 1}, []bad{{"record 3", "record", "unexpected EOF"}}},
		{"cloudtrail missing comma", "cloudtrail",
			`[` + ct1 + ` ` + ct3 + `]`, 0,
			[]int{0}, []bad{{"record 2", "record", "invalid character"}}},
		{"cloudtrail duplicate member", "cloudtrail",
			`[` + ct1 + `,` + strings.Replace(ct3, `{`, `{"eventName":"X",`, 1) + `,` + ct1 + `]`, 0,
			[]int{0, 2}, []bad{{"record 2", "eventName", "duplicate member name"}}},
		{"cloudtrail nested duplicate member", "cloudtrail",
			`[` + strings.Replace(ct1, `{`, `{"requestParameters":{"a":[{"b":1,"\u0062":2}]},`, 1) + `,` + ct3 + `]`, 0,
			[]int{1}, []bad{{"record 1", "requestParameters.a[0].b", "duplicate member name"}}},
		{"kubernetes duplicate annotation", "kubernetes",
			strings.Replace(k8s1, `{`, `{"annotations":{"x":"1","x":"2"},`, 1) + "\n" + k8s3, 0,
			[]int{1}, []bad{{"line 1", "annotations.x", "duplicate member name"}}},
		{"cloudtrail invalid UTF-8", "cloudtrail",
			`[` + strings.Replace(ct1, "GetObject", "Get\xffObject", 1) + `,` + ct3 + `]`, 0,
			[]int{1}, []bad{{"record 1", "eventName", "invalid UTF-8"}}},
		{"cloudtrail record not an object", "cloudtrail",
			`[` + ct1 + `,"oops",` + ct3 + `]`, 0,
			[]int{0, 2}, []bad{{"record 2", "record", "must be an object, not a string"}}},
		{"cloudtrail record null", "cloudtrail",
			`[` + ct1 + `,null,` + ct3 + `]`, 0,
			[]int{0, 2}, []bad{{"record 2", "record", "must be an object, not null"}}},
		{"kubernetes line null", "kubernetes",
			k8s1 + "\nnull\n" + k8s3, 0,
			[]int{0, 2}, []bad{{"line 2", "record", "must be an object, not null"}}},
		{"cloudtrail Records not an array", "cloudtrail",
			`{"Records":{"a":1}}`, 0,
			nil, []bad{{"record 1", "Records", "must be an array"}}},
		{"cloudtrail huge integer", "cloudtrail",
			`[` + strings.Replace(ct1, `{`, `{"requestParameters":{"size":123456789012345678901},`, 1) + `,` + ct3 + `]`, 0,
			[]int{1}, []bad{{"record 1", "requestParameters.size", "cannot be represented exactly"}}},
		{"cloudtrail integer past 2^53", "cloudtrail",
			`[` + ct3 + `,` + strings.Replace(ct1, `{`, `{"requestParameters":{"size":9007199254740993},`, 1) + `]`, 0,
			[]int{0}, []bad{{"record 2", "requestParameters.size", "cannot be represented exactly"}}},
		{"cloudtrail number out of range", "cloudtrail",
			strings.Replace(ct1, `{`, `{"additionalEventData":{"n":[1,-1e400]},`, 1) + "\n" + ct3, 0,
			[]int{1}, []bad{{"line 1", "additionalEventData.n[1]", "cannot be represented exactly"}}},
		{"kubernetes fraction that rounds", "kubernetes",
			strings.Replace(k8s1, `{`, `{"requestObject":{"spec":{"x":[0.1000000000000000055511151231257827]}},`, 1) +
				"\n" + k8s3, 0,
			[]int{1}, []bad{{"line 1", "requestObject.spec.x[0]", "cannot be represented exactly"}}},
		{"cloudtrail over-long line", "cloudtrail",
			ct1 + "\n" + strings.Replace(ct1, `{`, `{"pad":"`+strings.Repeat("x", 300)+`",`, 1) + "\n" + ct3 + "\n", 200,
			[]int{0, 2}, []bad{{"line 2", "", "record larger than the limit"}}},
		{"cloudtrail over-long array record", "cloudtrail",
			`[` + ct1 + `,` + strings.Replace(ct1, `{`, `{"pad":"`+strings.Repeat("x", 300)+`",`, 1) + `,` + ct3 + `]`, 200,
			[]int{0, 2}, []bad{{"record 2", "", "record larger than the limit"}}},
		{"cloudtrail future time", "cloudtrail",
			ct1 + "\n" + strings.Replace(ct3, "2024", "2999", 1), 0,
			[]int{0}, []bad{{"line 2", "occurred_at", "future"}}},
		{"kubernetes line not an object", "kubernetes",
			k8s1 + "\n[1,2]\n" + k8s3, 0,
			[]int{0, 2}, []bad{{"line 2", "record", "must be an object, not an array"}}},
		{"kubernetes line not JSON", "kubernetes",
			k8s1 + "\nnot json\n" + k8s3, 0,
			[]int{0, 2}, []bad{{"line 2", "record", "invalid JSON"}}},
		{"kubernetes kind not a string", "kubernetes",
			k8s1 + "\n" + `{"kind": 0}` + "\n" + k8s3, 0,
			[]int{0, 2}, []bad{{"line 2", "kind", "must be a string, not a number"}}},
		{"kubernetes wrong kind", "kubernetes",
			k8s1 + "\n" + strings.Replace(k8s3, `"Event"`, `"EventList"`, 1), 0,
			[]int{0}, []bad{{"line 2", "kind", `must be "Event"`}}},
		{"kubernetes wrong apiVersion", "kubernetes",
			strings.Replace(k8s1, `{`, `{"apiVersion":"v1",`, 1) + "\n" + k8s3, 0,
			[]int{1}, []bad{{"line 1", "apiVersion", "audit.k8s.io/v1"}}},
		{"kubernetes no auditID", "kubernetes",
			k8s1 + "\n" + strings.Replace(k8s3, `"auditID":"a3",`, ``, 1) + "\n" + k8s3, 0,
			[]int{0, 2}, []bad{{"line 2", "auditID", "is required"}}},
		{"kubernetes no time", "kubernetes",
			strings.Replace(k8s1, `,"requestReceivedTimestamp":"2024-01-02T03:04:05Z"`, ``, 1) + "\n" + k8s3, 0,
			[]int{1}, []bad{{"line 1", "requestReceivedTimestamp", "is required"}}},
		{"kubernetes bad status", "kubernetes",
			strings.Replace(k8s1, `{`, `{"responseStatus":{"code":1.5},`, 1) + "\n" +
				strings.Replace(k8s1, `{`, `{"responseStatus":{"code":99},`, 1) + "\n" + k8s3, 0,
			[]int{2}, []bad{{"line 1", "responseStatus.code", "whole number"},
				{"line 2", "responseStatus.code", "100 to 599"}}},
		{"kubernetes over-long line", "kubernetes",
			k8s1 + "\n" + strings.Replace(k8s1, `{`, `{"pad":"`+strings.Repeat("x", 300)+`",`, 1) + "\n" + k8s3, 200,
			[]int{0, 2}, []bad{{"line 2", "", "record larger than the limit"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := readAll(t, tc.format, strings.NewReader(tc.input), &Options{MaxRecordBytes: tc.maxRecord})
			var events []int
			var errs []bad
			for i, r := range recs {
				if r.Index != i {
					t.Errorf("record %d has index %d", i, r.Index)
				}
				checkRecord(t, r)
				if r.Err == nil {
					events = append(events, r.Index)
					continue
				}
				b := bad{pos: r.Position(), reason: r.Err.Error()}
				var fe *event.FieldError
				if errors.As(r.Err, &fe) {
					b.field, b.reason = fe.Field, fe.Reason
				}
				errs = append(errs, b)
			}
			if diff := cmp.Diff(tc.events, events); diff != "" {
				t.Errorf("records imported (-want +got):\n%s", diff)
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("errors = %+v, want %+v", errs, tc.errs)
			}
			for i, want := range tc.errs {
				got := errs[i]
				if got.pos != want.pos || got.field != want.field || !strings.Contains(got.reason, want.reason) {
					t.Errorf("error %d = %+v, want %s, field %q and a reason containing %q",
						i, got, want.pos, want.field, want.reason)
				}
			}
		})
	}
}

// TestOriginalNumbers checks that numbers whose canonical text denotes
// the same value are kept in the original, in canonical form.
func TestOriginalNumbers(t *testing.T) {
	const rec = `{"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com",` +
		`"eventName":"GetObject","requestParameters":{"ratio":0.10,"max":9007199254740992,"big":1E22,"neg":-0}}`
	recs := readAll(t, "cloudtrail", strings.NewReader(rec), nil)
	if len(recs) != 1 || recs[0].Err != nil {
		t.Fatalf("records %+v, want one event", recs)
	}
	want := `"requestParameters":{"big":1e+22,"max":9007199254740992,"neg":0,"ratio":0.1}`
	if orig := string(recs[0].Event.Original); !strings.Contains(orig, want) {
		t.Errorf("original = %s, want it to hold %s", orig, want)
	}
}

func TestReadStopsWhenEmitFails(t *testing.T) {
	stop := errors.New("stop")
	for _, tc := range []struct{ format, name string }{
		{"cloudtrail", "cloudtrail-array.json"},
		{"cloudtrail", "cloudtrail.ndjson"},
		{"kubernetes", "kubernetes.ndjson"},
	} {
		f, err := os.Open(filepath.Join("testdata", tc.name))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = Read(tc.format, f, nil, func(Record) error { n++; return stop })
		f.Close()
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("%s: Read = %v after %d records, want the emit error after 1", tc.name, err, n)
		}
	}
}

// failingReader returns its data, then an error that is not io.EOF.
type failingReader struct{ data []byte }

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// TestReadError checks that a failing input is reported as Read's error,
// not as a broken record.
func TestReadError(t *testing.T) {
	const valid = `{"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"GetObject"}`
	for _, input := range []string{`[{"eventID":"e1"`, `{"Records":[`, `{"ev`, valid + "\n" + `{"ev`} {
		err := Read("cloudtrail", &failingReader{data: []byte(input)}, nil, func(r Record) error {
			if r.Err != nil {
				t.Errorf("%s: record %d: %v; want Read to fail instead", input, r.Index, r.Err)
			}
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("%s: Read = %v, want the reader's error", input, err)
		}
	}
	in := &failingReader{data: []byte(valid + "\n\n\n" + `{"ev`)}
	err := Read("cloudtrail", in, nil, func(Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "read line 4:") {
		t.Errorf("Read = %v, want an error reading line 4", err)
	}
}

func TestEmptyInput(t *testing.T) {
	for _, format := range Formats {
		for _, input := range []string{"", " \n\t\n"} {
			if recs := readAll(t, format, strings.NewReader(input), nil); len(recs) != 0 {
				t.Errorf("%s %q: %d records, want none", format, input, len(recs))
			}
		}
	}
}

func TestConcatenatedContainers(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "cloudtrail-records.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Two CloudTrail files compressed apart and concatenated, as with
	// cat a.json.gz b.json.gz.
	in := append(gzipped(t, raw), gzipped(t, []byte(`[]`+"\n"+`{"Other":1,"Records":[]}`))...)
	in = append(in, gzipped(t, raw)...)
	recs := readAll(t, "cloudtrail", bytes.NewReader(in), nil)
	if len(recs) != 6 {
		t.Fatalf("%d records, want 6", len(recs))
	}
	for i, r := range recs {
		if r.Index != i || r.Err != nil {
			t.Errorf("record %d: index %d, error %v", i, r.Index, r.Err)
		}
	}
}

// TestNDJSONFormat reads attest's own schema.
func TestNDJSONFormat(t *testing.T) {
	input := `{"id":"e-1","occurred_at":"2026-01-02T03:04:05Z","source":"app","actor":{"type":"user","id":"u1"},` +
		`"action":"report.read","category":"data_access","outcome":{"result":"success"}}` + "\n\n" +
		`{"id":"e-2","occurred_at":"2026-01-02T03:04:05Z","source":"app","actor":{"type":"robot"},` +
		`"action":"report.read","category":"data_access","outcome":{"result":"success"}}` + "\n"
	now := func() time.Time { return time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC) }
	recs := readAll(t, "ndjson", strings.NewReader(input), &Options{Limits: &event.Limits{Now: now}})
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	if ev := recs[0].Event; recs[0].Err != nil || ev.ID != "e-1" || ev.Actor.ID != "u1" {
		t.Errorf("record 0 = %+v, %v; want event e-1 by u1", ev, recs[0].Err)
	}
	var fe *event.FieldError
	if !errors.As(recs[1].Err, &fe) || recs[1].Index != 1 || fe.Field != "actor.type" {
		t.Errorf("record 1 error = %v at index %d, want an actor.type error at index 1", recs[1].Err, recs[1].Index)
	}
	if p0, p1 := recs[0].Position(), recs[1].Position(); p0 != "line 1" || p1 != "line 3" {
		t.Errorf("positions %q and %q, want line 1 and line 3", p0, p1)
	}
}

// TestPositions checks that records are placed by line, blank lines and
// over-long lines counted, in line formats, and by record from one in JSON
// containers.
func TestPositions(t *testing.T) {
	const (
		ct  = `{"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"GetObject"}`
		k8s = `{"kind":"Event","auditID":"a1","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"2024-01-02T03:04:05Z"}`
	)
	long := strings.Replace(ct, `{`, `{"pad":"`+strings.Repeat("x", 300)+`",`, 1)
	for _, tc := range []struct {
		format, input string
		want          []string
	}{
		{"kubernetes", "\n" + k8s + "\r\n\r\n  \n" + k8s + "\n{}\n", []string{"line 2", "line 5", "line 6"}},
		{"cloudtrail", ct + "\n\n" + long + "\n" + ct, []string{"line 1", "line 3", "line 4"}},
		{"ndjson", "\n\n{}\n", []string{"line 3"}},
		{"cloudtrail", "[" + ct + "," + long + "]\n\n[" + ct + "]", []string{"record 1", "record 2", "record 3"}},
		{"cloudtrail", `{"Records":[` + ct + `]}` + "\n" + `{"Other":1}`, []string{"record 1", "record 2"}},
	} {
		var got []string
		for _, r := range readAll(t, tc.format, strings.NewReader(tc.input), &Options{MaxRecordBytes: 200}) {
			got = append(got, r.Position())
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s %.30q...: positions (-want +got):\n%s", tc.format, tc.input, diff)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	err := Read("syslog", strings.NewReader(""), nil, func(Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("Read(syslog) = %v, want an unknown format error", err)
	}
}

// TestReadNDJSONLimit checks that a line of exactly the limit is read, with
// either line ending, and one byte more is not.
func TestReadNDJSONLimit(t *testing.T) {
	line := strings.Repeat("x", 100)
	for _, tc := range []struct {
		input string
		want  []string // the lines read; "" for a line too large
	}{
		{line + "\n" + line + "x\n" + line, []string{line, "", line}},
		{line + "\r\n" + line + "\r\n", []string{line, line}},
		{"  " + line + "\n", []string{""}},
		{"\n\n" + line, []string{line}},
	} {
		var got []string
		err := ReadNDJSON(strings.NewReader(tc.input), 100, func(i int, b []byte, err error) error {
			if i != len(got) {
				t.Errorf("line %d has index %d", len(got), i)
			}
			if errors.Is(err, ErrRecordTooLarge) {
				b = nil
			}
			got = append(got, string(b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ReadNDJSON(%.20q...) (-want +got):\n%s", tc.input, diff)
		}
	}
}

// TestCloudTrailHugeRecord gives a record far over the limit in each form
// that reads records as JSON values: it is reported as too large, without
// being read whole.
func TestCloudTrailHugeRecord(t *testing.T) {
	huge := `{"eventID":"x","eventName":"GetObject","errorMessage":"` + strings.Repeat("a", 8<<20) + `"}`
	for name, in := range map[string]string{
		"array":   "[" + huge + "]",
		"records": `{"Records":[` + huge + `]}`,
		"pretty":  "{\n" + huge[1:] + "\n",
	} {
		recs := readAll(t, "cloudtrail", strings.NewReader(in), &Options{MaxRecordBytes: 1 << 20})
		if len(recs) != 1 || !errors.Is(recs[0].Err, ErrRecordTooLarge) {
			t.Errorf("%s: %d records, first %+v", name, len(recs), recs)
		}
	}
}
