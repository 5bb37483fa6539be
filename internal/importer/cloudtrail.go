package importer

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/attest/attest/internal/event"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// readCloudTrail reads CloudTrail records in any of the forms AWS and its
// tools write: a {"Records": [...]} object as CloudTrail delivers to S3, a
// JSON array of records, or NDJSON with one record per line. The form is
// told from the first byte that is not white space, and for '{' from
// whether the object has a "Records" member.
func readCloudTrail(r io.Reader, opts *Options, emit func(Record) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := firstByte(br)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("importer: read cloudtrail input: %w", err)
	}
	var in io.Reader = br
	switch first {
	case '[':
		return readContainers(br, opts, emit)
	case '{':
		found, replay := hasRecordsMember(br, opts.maxRecord())
		if found {
			return readContainers(replay, opts, emit)
		}
		in = replay
		// A record written out over several lines, as the console and
		// jq print one, or several such one after another.
		rb := bufio.NewReaderSize(in, 64<<10)
		if line, _ := rb.Peek(64); isOpenBraceLine(line) {
			return readValues(rb, opts, emit)
		}
		in = rb
	}
	return readLines(in, opts, emit, mapCloudTrail)
}

// isOpenBraceLine reports whether b starts with a line holding only "{",
// which no line of NDJSON does.
func isOpenBraceLine(b []byte) bool {
	line, _, ok := bytes.Cut(b, []byte("\n"))
	return ok && string(bytes.TrimSpace(line)) == "{"
}

// readValues reads records written one after another as JSON objects,
// each over as many lines as it likes. A break in the JSON ends the input,
// since nothing after it can be located.
func readValues(r io.Reader, opts *Options, emit func(Record) error) error {
	in := &errReader{r: r}
	c := &containers{in: in, dec: jsontext.NewDecoder(in, containerOptions...), opts: opts, emit: emit}
	for {
		switch k := c.dec.PeekKind(); k {
		case '{':
			raw, err := c.readRecord()
			if err != nil {
				err = c.broken(err)
			} else {
				err = c.record(raw)
			}
			if errors.Is(err, errStopped) {
				return nil
			}
			if err != nil {
				return err
			}
		case 0:
			_, err := c.dec.ReadToken()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err = c.broken(err); errors.Is(err, errStopped) {
				return nil
			}
			return err
		default:
			if err := c.stop(fieldError("record", "must be an object, not %s", event.KindName(k))); !errors.Is(err, errStopped) {
				return err
			}
			return nil
		}
	}
}

// firstByte returns the first byte of br that is not JSON white space and
// leaves it unread. It returns io.EOF when there is none.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c, br.UnreadByte()
	}
}

// hasRecordsMember reports whether the JSON object at the start of br has a
// top-level "Records" member, looking at no more than limit bytes. The
// reader it returns yields the whole input, the bytes looked at included.
func hasRecordsMember(br *bufio.Reader, limit int) (bool, io.Reader) {
	var seen bytes.Buffer
	replay := io.MultiReader(&seen, br)
	dec := jsontext.NewDecoder(io.TeeReader(io.LimitReader(br, int64(limit)), &seen), containerOptions...)
	if _, err := dec.ReadToken(); err != nil {
		return false, replay
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return false, replay
		}
		if name.String() == "Records" {
			return true, replay
		}
		if err := dec.SkipValue(); err != nil {
			return false, replay
		}
	}
	return false, replay
}

// containerOptions let the container decoder pass duplicate names and
// invalid UTF-8 inside a record through to the record's own decoding, which
// rejects them, so that such a record fails alone instead of ending the
// stream.
var containerOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// errStopped ends a container stream after its breakage was reported.
var errStopped = errors.New("stopped at broken JSON")

// containers reads records out of JSON containers: arrays of records and
// {"Records": [...]} objects, one or more of them in a row, as when
// CloudTrail files are concatenated.
type containers struct {
	in   *errReader
	dec  *jsontext.Decoder
	opts *Options
	emit func(Record) error
	n    int // index of the next record
}

func readContainers(r io.Reader, opts *Options, emit func(Record) error) error {
	in := &errReader{r: r}
	c := &containers{in: in, dec: jsontext.NewDecoder(in, containerOptions...), opts: opts, emit: emit}
	err := c.all()
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

func (c *containers) all() error {
	for {
		var err error
		switch k := c.dec.PeekKind(); k {
		case '[':
			err = c.array("record")
		case '{':
			err = c.object()
		case 0:
			_, err := c.dec.ReadToken()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return c.broken(err)
		default:
			return c.stop(fieldError("record", "must be in an array or a Records object, not %s", event.KindName(k)))
		}
		if err != nil {
			return err
		}
	}
}

// object reads a {"Records": [...]} object; members other than Records are
// skipped.
func (c *containers) object() error {
	if _, err := c.dec.ReadToken(); err != nil {
		return c.broken(err)
	}
	found := false
	for c.dec.PeekKind() != '}' {
		name, err := c.dec.ReadToken()
		if err != nil {
			return c.broken(err)
		}
		if name.String() != "Records" {
			if err := c.dec.SkipValue(); err != nil {
				return c.broken(err)
			}
			continue
		}
		if found {
			return c.stop(fieldError("Records", "appears twice in one object"))
		}
		found = true
		if err := c.array("Records"); err != nil {
			return err
		}
	}
	if _, err := c.dec.ReadToken(); err != nil {
		return c.broken(err)
	}
	if !found {
		return c.fail(fieldError("Records", "is missing: an object among containers must hold a Records array"))
	}
	return nil
}

// array reads an array of records; field names the array in errors.
func (c *containers) array(field string) error {
	if k := c.dec.PeekKind(); k != '[' {
		if k == 0 {
			_, err := c.dec.ReadToken()
			return c.broken(err)
		}
		return c.stop(fieldError(field, "must be an array of records, not %s", event.KindName(k)))
	}
	if _, err := c.dec.ReadToken(); err != nil {
		return c.broken(err)
	}
	for c.dec.PeekKind() != ']' {
		raw, err := c.readRecord()
		if err != nil {
			return c.broken(err)
		}
		if err := c.record(raw); err != nil {
			return err
		}
	}
	if _, err := c.dec.ReadToken(); err != nil {
		return c.broken(err)
	}
	return nil
}

func (c *containers) record(raw jsontext.Value) error {
	rec := Record{Index: c.n}
	c.n++
	if max := c.opts.maxRecord(); len(raw) > max {
		rec.Err = fmt.Errorf("%w (%d bytes)", ErrRecordTooLarge, max)
	} else {
		rec.Event, rec.Err = mapCloudTrail(raw, c.opts)
	}
	return c.emit(rec)
}

// fail reports err as the next record's error; reading goes on.
func (c *containers) fail(err error) error {
	rec := Record{Index: c.n, Err: err}
	c.n++
	return c.emit(rec)
}

// stop reports err as the next record's error and ends the stream, since
// nothing after it can be located.
func (c *containers) stop(err error) error {
	if err := c.emit(Record{Index: c.n, Err: err}); err != nil {
		return err
	}
	return errStopped
}

// broken reports a decoder error: the input's own read error, or a break
// in the JSON that ends the stream.
func (c *containers) broken(err error) error {
	if errors.Is(c.in.err, errOverBudget) || errors.Is(err, errOverBudget) {
		return c.stop(fmt.Errorf("%w (%d bytes); the records after it are not read", ErrRecordTooLarge, c.opts.maxRecord()))
	}
	if c.in.err != nil {
		return fmt.Errorf("importer: read cloudtrail input: %w", c.in.err)
	}
	offset := c.dec.InputOffset()
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		offset, err = se.ByteOffset, se.Err
	}
	return c.stop(fieldError("record",
		"invalid JSON after byte %d: %v; the records after it cannot be located", offset, err))
}

// errReader remembers the first error of r other than io.EOF, which the
// JSON decoder reports as if it were a syntax error.
// While a record is read, it also bounds how much of r the decoder takes,
// so that one huge record is refused before it is all in memory.
type errReader struct {
	r   io.Reader
	err error
	// budget is how many more bytes the record being read may take, when
	// limited is set.
	budget  int64
	limited bool
}

// errOverBudget ends a record that goes past its budget.
var errOverBudget = errors.New("record over its budget")

func (e *errReader) Read(p []byte) (int, error) {
	if e.limited {
		if e.budget <= 0 {
			return 0, errOverBudget
		}
		if int64(len(p)) > e.budget {
			p = p[:e.budget]
		}
	}
	n, err := e.r.Read(p)
	e.budget -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// readRecord reads the next value, refusing one well past the record
// limit before it is all read: the decoder reads ahead, so the budget
// leaves it room beyond the limit.
func (c *containers) readRecord() (jsontext.Value, error) {
	c.in.budget, c.in.limited = int64(2*c.opts.maxRecord())+256<<10, true
	raw, err := c.dec.ReadValue()
	c.in.limited = false
	return raw, err
}

// ctRecord is the part of a CloudTrail record that the mapping reads.
// Unknown members are allowed: AWS adds fields over time.
type ctRecord struct {
	EventVersion        string         `json:"eventVersion"`
	EventID             string         `json:"eventID"`
	EventTime           string         `json:"eventTime"`
	EventSource         string         `json:"eventSource"`
	EventName           string         `json:"eventName"`
	EventType           string         `json:"eventType"`
	EventCategory       string         `json:"eventCategory"`
	AWSRegion           string         `json:"awsRegion"`
	RecipientAccountID  string         `json:"recipientAccountId"`
	SourceIPAddress     string         `json:"sourceIPAddress"`
	UserAgent           string         `json:"userAgent"`
	UserIdentity        ctIdentity     `json:"userIdentity"`
	RequestID           string         `json:"requestID"`
	ErrorCode           string         `json:"errorCode"`
	ErrorMessage        string         `json:"errorMessage"`
	ReadOnly            *bool          `json:"readOnly"`
	ManagementEvent     *bool          `json:"managementEvent"`
	Resources           []ctResource   `json:"resources"`
	RequestParameters   jsontext.Value `json:"requestParameters"`
	ResponseElements    jsontext.Value `json:"responseElements"`
	AdditionalEventData jsontext.Value `json:"additionalEventData"`
}

type ctIdentity struct {
	Type           string    `json:"type"`
	PrincipalID    string    `json:"principalId"`
	ARN            string    `json:"arn"`
	AccessKeyID    string    `json:"accessKeyId"`
	UserName       string    `json:"userName"`
	InvokedBy      string    `json:"invokedBy"`
	SessionContext ctSession `json:"sessionContext"`
}

type ctSession struct {
	SessionIssuer struct {
		UserName string `json:"userName"`
	} `json:"sessionIssuer"`
	Attributes struct {
		MFAAuthenticated string `json:"mfaAuthenticated"`
	} `json:"attributes"`
}

type ctResource struct {
	ARN  string `json:"ARN"`
	Type string `json:"type"`
}

// mapCloudTrail maps one CloudTrail record to an event.
func mapCloudTrail(raw []byte, opts *Options) (*event.Event, error) {
	return mapRecord(raw, opts, new(ctRecord))
}

// cloudTrailIDPrefix starts the id of every event mapped from CloudTrail.
const cloudTrailIDPrefix = "cloudtrail:"

func (rec *ctRecord) fill(ev *event.Event) error {
	if err := checkID("eventID", rec.EventID, maxIDBytes-len(cloudTrailIDPrefix)); err != nil {
		return err
	}
	ev.ID = cloudTrailIDPrefix + rec.EventID
	t, err := parseTime("eventTime", rec.EventTime)
	if err != nil {
		return err
	}
	ev.OccurredAt = t
	service, err := rec.service()
	if err != nil {
		return err
	}
	if rec.EventName == "" {
		return fieldError("eventName", "is required")
	}
	ev.Action = makeAction(service + ":" + rec.EventName)
	if len(ev.Action) > maxActionBytes {
		return fieldError("eventName", "makes an action longer than %d bytes", maxActionBytes)
	}

	ev.Source = event.Source{Name: "cloudtrail", Version: clean(rec.EventVersion, 64)}
	ev.Category = cloudTrailCategory(service, rec.EventName, rec.ReadOnly != nil && *rec.ReadOnly)
	ev.Actor = rec.actor(service)
	ev.Outcome = rec.outcome(service)
	ev.Request.ID = clean(rec.RequestID, 128)
	ev.Target = rec.target()
	ev.Details, err = canonicalDetails(rec.details(ev.Actor.IP))
	return err
}

// service returns the service part of the event source: "s3" for
// "s3.amazonaws.com".
func (rec *ctRecord) service() (string, error) {
	if rec.EventSource == "" {
		return "", fieldError("eventSource", "is required")
	}
	s, _ := strings.CutSuffix(rec.EventSource, ".amazonaws.com")
	if !startsAlnum(s) {
		return "", fieldError("eventSource", "must start with a letter or digit")
	}
	return s, nil
}

// isConsoleLogin reports whether the record is a sign-in to the console.
func (rec *ctRecord) isConsoleLogin(service string) bool {
	return service == "signin" && rec.EventName == "ConsoleLogin"
}

func (rec *ctRecord) actor(service string) event.Actor {
	ui := &rec.UserIdentity
	return event.Actor{
		Type:      identityType(ui),
		ID:        clean(cmp.Or(ui.ARN, ui.PrincipalID, ui.InvokedBy), 256),
		Name:      clean(cmp.Or(ui.UserName, ui.SessionContext.SessionIssuer.UserName), 256),
		IP:        parseIP(rec.SourceIPAddress),
		UserAgent: clean(rec.UserAgent, 1024),
		SessionID: clean(ui.AccessKeyID, 256),
		Auth:      rec.auth(service),
	}
}

// identityType maps userIdentity.type to an actor type. A missing identity
// has an empty type and is anonymous.
func identityType(ui *ctIdentity) string {
	switch ui.Type {
	case "AWSService":
		return "service"
	case "AWSAccount":
		if ui.PrincipalID == "" {
			return "anonymous"
		}
	case "", "Unknown":
		return "anonymous"
	}
	return "user"
}

func (rec *ctRecord) auth(service string) event.Auth {
	a := event.Auth{MFA: rec.mfa()}
	switch {
	case rec.isConsoleLogin(service):
		a.Method = "console"
	case rec.UserIdentity.Type == "AssumedRole":
		a.Method = "assume_role"
	case rec.UserIdentity.AccessKeyID != "":
		a.Method = "aws_credentials"
	}
	return a
}

// mfa says whether the session used MFA, from the session context of
// temporary credentials or, for console sign-ins, additionalEventData.
func (rec *ctRecord) mfa() *bool {
	yes, no := true, false
	switch rec.UserIdentity.SessionContext.Attributes.MFAAuthenticated {
	case "true":
		return &yes
	case "false":
		return &no
	}
	switch lookup(rec.AdditionalEventData, "MFAUsed") {
	case "Yes":
		return &yes
	case "No":
		return &no
	}
	return nil
}

// deniedCodes are the error codes that name an authorization failure.
var deniedCodes = []string{"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
	"Client.UnauthorizedOperation", "UnauthorizedAccess"}

func isDenied(code string) bool {
	return slices.Contains(deniedCodes, code) || strings.HasSuffix(code, "Unauthorized")
}

func (rec *ctRecord) outcome(service string) event.Outcome {
	if rec.ErrorCode != "" {
		reason := rec.ErrorCode
		if rec.ErrorMessage != "" {
			reason += ": " + rec.ErrorMessage
		}
		o := event.Outcome{Result: "failure", Reason: clean(reason, 1024)}
		if isDenied(rec.ErrorCode) {
			o.Result = "denied"
		}
		return o
	}
	if rec.isConsoleLogin(service) && lookup(rec.ResponseElements, "ConsoleLogin") == "Failure" {
		reason := cmp.Or(rec.ErrorMessage, "ConsoleLogin: Failure")
		return event.Outcome{Result: "failure", Reason: clean(reason, 1024)}
	}
	return event.Outcome{Result: "success"}
}

// cloudTrailCategory classifies a call. The order matters: STS sign-ins are
// marked read-only by AWS, and reads of security services are data access,
// not security changes.
func cloudTrailCategory(service, name string, readOnly bool) string {
	call := service + ":" + name
	switch {
	case service == "signin", service == "sts" && isSTSLogin(name):
		return "authentication"
	case readOnly || dataReads[call]:
		return "data_access"
	case securityServices[service] || securityCalls[call]:
		return "security"
	case adminServices[service]:
		return "admin"
	}
	return "configuration"
}

func isSTSLogin(name string) bool {
	return strings.HasPrefix(name, "AssumeRole") || name == "GetSessionToken" ||
		name == "GetFederationToken"
}

// dataReads are reads of data that AWS may not mark read-only.
var dataReads = map[string]bool{
	"s3:GetObject":                       true,
	"secretsmanager:GetSecretValue":      true,
	"secretsmanager:BatchGetSecretValue": true,
	"ssm:GetParameter":                   true,
	"ssm:GetParameters":                  true,
	"ec2:GetPasswordData":                true,
}

// securityServices are the services whose every change is a security change.
var securityServices = map[string]bool{
	"cloudtrail": true, "guardduty": true, "securityhub": true, "config": true,
}

// securityCalls weaken key protection or delete logs in other services.
var securityCalls = map[string]bool{
	"kms:PutKeyPolicy":                                   true,
	"kms:ScheduleKeyDeletion":                            true,
	"kms:DisableKey":                                     true,
	"logs:DeleteLogGroup":                                true,
	"logs:DeleteLogStream":                               true,
	"ec2:DeleteFlowLogs":                                 true,
	"route53resolver:DeleteResolverQueryLogConfig":       true,
	"route53resolver:DisassociateResolverQueryLogConfig": true,
}

// adminServices manage identities and accounts.
var adminServices = map[string]bool{
	"iam": true, "organizations": true, "sso": true, "identitystore": true,
}

// ctTargetKeys are the request parameters that name a call's target, in the
// order they are tried when the record lists no resources.
var ctTargetKeys = []struct{ path, typ string }{
	{"bucketName", "aws:bucketName"},
	{"instanceId", "aws:instanceId"},
	{"instancesSet.items.0.instanceId", "aws:instanceId"},
	{"instanceIds.0", "aws:instanceId"},
	{"roleName", "aws:roleName"},
	{"userName", "aws:userName"},
	{"secretId", "aws:secretId"},
	{"name", "aws:name"},
	{"functionName", "aws:functionName"},
	{"trailName", "aws:trailName"},
	{"snapshotId", "aws:snapshotId"},
	{"imageId", "aws:imageId"},
	{"groupId", "aws:groupId"},
	{"dBSnapshotIdentifier", "aws:dBSnapshotIdentifier"},
	{"parameterNames.0", "aws:parameterName"},
	{"names.0", "aws:parameterName"},
	{"roleArn", "aws:roleArn"},
	{"modelId", "aws:modelId"},
	{"target", "aws:target"},
	{"sessionId", "aws:sessionId"},
}

func (rec *ctRecord) target() event.Target {
	if len(rec.Resources) > 0 && rec.Resources[0].ARN != "" {
		r := rec.Resources[0]
		return event.Target{Type: clean(cmp.Or(r.Type, arnType(r.ARN)), 64), ID: clean(r.ARN, 256)}
	}
	params := members(rec.RequestParameters)
	// An S3 object call names the object by its bucket and key; the
	// object, not the bucket, is what was acted on. An ARN too long for a
	// target id would be cut and could name another object: the bucket is
	// the target then, and the record keeps the key.
	if rec.EventSource == "s3.amazonaws.com" {
		bucket, key := lookup(params["bucketName"], ""), lookup(params["key"], "")
		if arn := "arn:aws:s3:::" + bucket + "/" + key; bucket != "" && key != "" && !strings.Contains(bucket, "/") &&
			len(arn) <= 256 && clean(arn, 256) == arn {
			return event.Target{Type: "AWS::S3::Object", ID: arn}
		}
	}
	for _, k := range ctTargetKeys {
		name, rest, _ := strings.Cut(k.path, ".")
		if id := lookup(params[name], rest); id != "" {
			return event.Target{Type: k.typ, ID: clean(id, 256)}
		}
	}
	return event.Target{}
}

// arnType names the type of a resource listed without one by the service
// of its ARN (arn:partition:service:region:account:resource).
func arnType(arn string) string {
	parts := strings.SplitN(arn, ":", 4)
	if len(parts) < 4 || parts[0] != "arn" || parts[2] == "" {
		return "aws:resource"
	}
	return "aws:" + parts[2]
}

// ctDetails is what an event keeps of a record beyond the mapped fields.
// Each string is cut to 128 bytes, which keeps the object under 2 KiB.
type ctDetails struct {
	AWSRegion          string `json:"aws_region,omitzero"`
	RecipientAccountID string `json:"recipient_account_id,omitzero"`
	EventType          string `json:"event_type,omitzero"`
	EventCategory      string `json:"event_category,omitzero"`
	ReadOnly           *bool  `json:"read_only,omitzero"`
	ManagementEvent    *bool  `json:"management_event,omitzero"`
	ErrorCode          string `json:"error_code,omitzero"`
	SourceIPAddress    string `json:"source_ip_address,omitzero"`
}

// details returns the record's details; ip is the actor's parsed address,
// empty when sourceIPAddress is not one and so is kept here instead.
func (rec *ctRecord) details(ip string) *ctDetails {
	d := &ctDetails{
		AWSRegion:          clean(rec.AWSRegion, 128),
		RecipientAccountID: clean(rec.RecipientAccountID, 128),
		EventType:          clean(rec.EventType, 128),
		EventCategory:      clean(rec.EventCategory, 128),
		ReadOnly:           rec.ReadOnly,
		ManagementEvent:    rec.ManagementEvent,
		ErrorCode:          clean(rec.ErrorCode, 128),
	}
	if ip == "" {
		d.SourceIPAddress = clean(rec.SourceIPAddress, 128)
	}
	return d
}

// lookup returns the string at path in the free-form JSON value v, or ""
// when there is none. Path names object members and array indexes,
// separated by dots ("items.0.instanceId"); an empty path means v itself.
func lookup(v jsontext.Value, path string) string {
	if path != "" {
		for name := range strings.SplitSeq(path, ".") {
			v = child(v, name)
		}
	}
	var s string
	if v.Kind() != '"' || json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// members returns the members of the JSON object v, or nil when v is not
// an object.
func members(v jsontext.Value) map[string]jsontext.Value {
	var m map[string]jsontext.Value
	if v.Kind() != '{' || json.Unmarshal(v, &m) != nil {
		return nil
	}
	return m
}

func child(v jsontext.Value, name string) jsontext.Value {
	switch v.Kind() {
	case '{':
		return members(v)[name]
	case '[':
		var a []jsontext.Value
		i := index(name)
		if i >= 0 && json.Unmarshal(v, &a) == nil && i < len(a) {
			return a[i]
		}
	}
	return nil
}

// index returns the array index name spells, or -1.
func index(name string) int {
	if name == "" || len(name) > 6 {
		return -1
	}
	n := 0
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return -1
		}
		n = n*10 + int(name[i]-'0')
	}
	return n
}

// The helpers below are shared by the CloudTrail and Kubernetes importers.

// Limits of the leaf decoder that mapped values must meet, so that a stored
// leaf reads back.
const (
	maxIDBytes     = 128
	maxActionBytes = 128
	// maxOriginalDepth is how deep the event decoder lets "original" nest.
	maxOriginalDepth = 64
)
