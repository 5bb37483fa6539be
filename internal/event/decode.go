package event

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// FieldError says which field of an event is wrong and why.
type FieldError struct {
	// Field is the dotted path of the field, or "event" for the whole value.
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Limits bound what a producer may send.
type Limits struct {
	// MaxDetailsBytes bounds the canonical size of details; zero means 16 KiB.
	MaxDetailsBytes int
	// MaxDetailsDepth bounds nesting inside details; zero means 8.
	MaxDetailsDepth int
	// FutureSkew is how far past Now an occurred_at may lie; zero means 5 minutes.
	FutureSkew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AllowOriginal lets the decoded value carry "original" (importers only).
	AllowOriginal bool
}

func (l *Limits) maxDetails() int {
	if l.MaxDetailsBytes > 0 {
		return l.MaxDetailsBytes
	}
	return 16 << 10
}

func (l *Limits) maxDepth() int {
	if l.MaxDetailsDepth > 0 {
		return l.MaxDetailsDepth
	}
	return 8
}

func (l *Limits) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limits) skew() time.Duration {
	if l.FutureSkew > 0 {
		return l.FutureSkew
	}
	return 5 * time.Minute
}

// earliest is the oldest occurred_at accepted: nothing audited here predates it.
var earliest = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)

// Leaf holds what a stored leaf carries beyond the event itself.
type Leaf struct {
	Version int
	// Personal maps each personal path present in the event to the base64url
	// commitment of its value.
	Personal map[string]string
}

var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

type decoder struct {
	dec     jsontext.Decoder
	rd      bytes.Reader
	leaf    bool
	lim     *Limits
	ev      *Event
	lf      *Leaf
	in      []byte // the input being decoded
	scratch []byte // scratch for escaped strings

	// names[i] holds the member names read so far in the object open at
	// depth i; depth is the number of objects open.
	names []*nameSet
	depth int
	// stack is the containers open in a free-form value.
	stack []container
}

// decodeOptions let the decoder pass duplicate member names, which it
// refuses itself with the path of the duplicate.
var decodeOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true)}

// nameSet holds the member names of one object read so far: a copy of
// each, since a name read from the JSON decoder is valid only until its
// next read, and the set of them, to refuse a duplicate.
type nameSet struct {
	buf  []byte // the names, one after another
	ends []int  // where each name ends in buf
	// many holds every name once the object has more than linearNames,
	// which are otherwise compared one by one.
	many map[string]struct{}
}

const linearNames = 16

func (s *nameSet) reset() {
	s.buf, s.ends = s.buf[:0], s.ends[:0]
	if s.many != nil {
		clear(s.many)
	}
}

// add adds the name whose quoted JSON form is v. It returns the name,
// valid until the set is reset, and whether it was not there before; it
// is the last name either way.
func (s *nameSet) add(v []byte) (name []byte, isNew bool, err error) {
	start := len(s.buf)
	if bytes.IndexByte(v, '\\') >= 0 {
		if s.buf, err = jsontext.AppendUnquote(s.buf, v); err != nil {
			s.buf = s.buf[:start]
			return nil, false, err
		}
	} else {
		s.buf = append(s.buf, v[1:len(v)-1]...)
	}
	name = s.buf[start:]
	isNew = !s.has(name)
	s.ends = append(s.ends, len(s.buf))
	switch n := len(s.ends); {
	case !isNew || n <= linearNames:
	case n == linearNames+1:
		if s.many == nil {
			s.many = make(map[string]struct{})
		}
		for i := range s.ends {
			s.many[string(s.name(i))] = struct{}{}
		}
	default:
		s.many[string(name)] = struct{}{}
	}
	return name, isNew, nil
}

func (s *nameSet) has(name []byte) bool {
	if len(s.ends) > linearNames {
		_, ok := s.many[string(name)]
		return ok
	}
	for i := range s.ends {
		if bytes.Equal(s.name(i), name) {
			return true
		}
	}
	return false
}

func (s *nameSet) name(i int) []byte {
	start := 0
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.buf[start:s.ends[i]]
}

// last returns the name added last.
func (s *nameSet) last() []byte {
	if len(s.ends) == 0 {
		return nil
	}
	return s.name(len(s.ends) - 1)
}

// open starts the names of an object at the current depth.
func (d *decoder) open() *nameSet {
	if d.depth == len(d.names) {
		d.names = append(d.names, new(nameSet))
	}
	s := d.names[d.depth]
	s.reset()
	d.depth++
	return s
}

// DecodeProducer decodes one event as a producer sent it. Unknown fields,
// duplicate fields, wrong types, oversize values, impossible times and the
// source name of attest's own events are rejected with a *FieldError
// naming the field.
func DecodeProducer(raw []byte, lim *Limits) (*Event, error) {
	if lim == nil {
		lim = &Limits{}
	}
	d := decoderPool.Get().(*decoder)
	defer decoderPool.Put(d)
	d.leaf, d.lim = false, lim
	ev, err := d.decode(raw)
	if err != nil {
		return nil, err
	}
	if err := Validate(ev, lim); err != nil {
		return nil, err
	}
	if !printableASCII(ev.Source.Name) {
		// A system's name, not free text: letters that only look like
		// others, such as a Cyrillic "а" in "attest", cannot pass.
		return nil, fieldErr("source.name", "must be printable ASCII, such as voice-api")
	}
	if strings.TrimSpace(ev.Source.Name) != ev.Source.Name {
		return nil, fieldErr("source.name", "must not start or end with a space")
	}
	if strings.EqualFold(ev.Source.Name, SelfSource) {
		return nil, fieldErr("source.name", "%q is reserved for attest's own events", ev.Source.Name)
	}
	return ev, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// DecodeLeaf decodes a stored leaf. It accepts the fields attest sets and the
// personal commitments, and rejects anything else it does not know.
func DecodeLeaf(raw []byte) (*Event, *Leaf, error) {
	d := decoderPool.Get().(*decoder)
	defer decoderPool.Put(d)
	d.leaf, d.lim = true, &Limits{MaxDetailsBytes: math.MaxInt32, MaxDetailsDepth: 64}
	d.lf = &Leaf{}
	ev, err := d.decode(raw)
	if err != nil {
		return nil, nil, err
	}
	return ev, d.lf, nil
}

func (d *decoder) decode(raw []byte) (ev *Event, err error) {
	d.rd.Reset(raw)
	d.dec.Reset(&d.rd, decodeOptions...)
	d.ev, d.in, d.depth = New(), raw, 0
	defer func() { d.ev, d.in = nil, nil }()
	if err := d.object("", d.top); err != nil {
		return nil, err
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		return nil, fieldErr("event", "unexpected data after the event object")
	}
	return d.ev, nil
}

// at names a field by its parent's path and its own name. The two are
// joined only when an error needs the path, so that decoding allocates no
// path strings; name is valid until the next member of its object.
type at struct {
	parent string
	name   []byte
}

func (a at) String() string {
	if a.parent == "" {
		if len(a.name) == 0 {
			return "event"
		}
		return string(a.name)
	}
	if a.name == nil {
		return a.parent
	}
	return a.parent + "." + string(a.name)
}

func path(p string) at { return at{parent: p} }

// syntax turns a decoder error into a FieldError.
func (d *decoder) syntax(a at, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return err
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fieldErr(a.String(), "unexpected end of JSON")
	}
	msg := err.Error()
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		msg = se.Err.Error()
	}
	return fieldErr(a.String(), "invalid JSON: %s", msg)
}

// object reads a JSON object at path p, calling member for each member
// with the decoder positioned at the member's value.
func (d *decoder) object(p string, member func(a at) error) error {
	tok, err := d.dec.ReadToken()
	if err != nil {
		return d.syntax(path(p), err)
	}
	if tok.Kind() != '{' {
		return d.typeErr(path(p), "an object", tok.Kind())
	}
	names := d.open()
	for d.dec.PeekKind() != '}' {
		v, err := d.dec.ReadValue()
		if err != nil {
			return d.syntax(path(p), err)
		}
		name, isNew, err := names.add(v)
		if err != nil {
			return d.syntax(path(p), err)
		}
		if !isNew {
			return duplicate(at{parent: p, name: name})
		}
		if err := member(at{parent: p, name: name}); err != nil {
			return err
		}
	}
	d.depth--
	if _, err := d.dec.ReadToken(); err != nil {
		return d.syntax(path(p), err)
	}
	return nil
}

// KindName names a JSON kind in an error message: "an object", "null".
func KindName(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "invalid JSON"
}

func (d *decoder) typeErr(a at, want string, got jsontext.Kind) error {
	return fieldErr(a.String(), "must be %s, not %s", want, KindName(got))
}

func unknown(a at) error {
	return fieldErr(a.String(), "unknown field")
}

func duplicate(a at) error {
	return fieldErr(a.String(), "duplicate member name")
}

// peek checks that the next value is of kind want.
func (d *decoder) peek(a at, want jsontext.Kind, wantName string) error {
	k := d.dec.PeekKind()
	if k == want || want == 't' && k == 'f' {
		return nil
	}
	if k == 0 {
		_, err := d.dec.ReadToken()
		return d.syntax(a, err)
	}
	return d.typeErr(a, wantName, k)
}

// str reads a string value of at most max bytes with no control characters.
func (d *decoder) str(a at, max int) (string, error) {
	if err := d.peek(a, '"', "a string"); err != nil {
		return "", err
	}
	v, err := d.dec.ReadValue()
	if err != nil {
		return "", d.syntax(a, err)
	}
	b := v[1 : len(v)-1]
	if bytes.IndexByte(b, '\\') >= 0 {
		if d.scratch, err = jsontext.AppendUnquote(d.scratch[:0], v); err != nil {
			return "", d.syntax(a, err)
		}
		b = d.scratch
	}
	if len(b) > max {
		return "", fieldErr(a.String(), "longer than %d bytes", max)
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return "", fieldErr(a.String(), "contains a control character")
		}
	}
	return string(b), nil
}

func (d *decoder) integer(a at, min, max int64) (int64, error) {
	if err := d.peek(a, '0', "a number"); err != nil {
		return 0, err
	}
	v, err := d.dec.ReadValue()
	if err != nil {
		return 0, d.syntax(a, err)
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fieldErr(a.String(), "must be a whole number")
	}
	if n < min || n > max {
		return 0, fieldErr(a.String(), "must be between %d and %d", min, max)
	}
	return n, nil
}

func (d *decoder) boolean(a at) (bool, error) {
	if err := d.peek(a, 't', "a boolean"); err != nil {
		return false, err
	}
	tok, err := d.dec.ReadToken()
	if err != nil {
		return false, d.syntax(a, err)
	}
	return tok.Bool(), nil
}

func (d *decoder) timestamp(a at) (time.Time, error) {
	s, err := d.str(a, 64)
	if err != nil {
		return time.Time{}, err
	}
	t, ok := ParseTime(s)
	if !ok {
		return time.Time{}, fieldErr(a.String(), "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t, nil
}

// ParseTime reads an RFC 3339 time and returns it in UTC. RFC 3339 lets
// the T between date and time and the Z of UTC be written in lower case,
// so they may be.
func ParseTime(s string) (time.Time, bool) {
	if len(s) > 10 && (s[10] == 't' || s[len(s)-1] == 'z') {
		b := []byte(s)
		if b[10] == 't' {
			b[10] = 'T'
		}
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		s = string(b)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !exactRFC3339(s) {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// exactRFC3339 refuses what time.Parse lets through but RFC 3339 does not,
// or what would not be kept as written: an offset of 24 hours or more, and
// more than nine digits of a second, which would be cut without a word.
func exactRFC3339(s string) bool {
	if n := len(s); n >= 6 && s[n-1] != 'Z' {
		if h := s[n-5 : n-3]; h[0] > '2' || (h[0] == '2' && h[1] > '3') {
			return false
		}
	}
	if len(s) > 19 && s[19] == '.' {
		digits := 0
		for _, c := range s[20:] {
			if c < '0' || c > '9' {
				break
			}
			digits++
		}
		if digits > 9 {
			return false
		}
	}
	return true
}

// CheckEarliest refuses, as a *FieldError for field, a time before
// 1990-01-01: nothing audited here predates it. The zero time is one such.
func CheckEarliest(field string, t time.Time) error {
	if t.Before(earliest) {
		return fieldErr(field, "is before 1990-01-01, which cannot be right")
	}
	return nil
}

func (d *decoder) top(a at) error {
	ev := d.ev
	var err error
	switch string(a.name) {
	case "id":
		ev.ID, err = d.str(a, maxID)
	case "tenant":
		// The tenant comes from the credentials unless an operator names
		// one; an empty name would read as no name.
		if ev.Tenant, err = d.str(a, maxTenant); err == nil && ev.Tenant == "" {
			return fieldErr(a.String(), "is empty: leave it out to use the credentials' tenant, or name one")
		}
	case "occurred_at":
		if ev.OccurredAt, err = d.timestamp(a); err == nil && !d.leaf {
			// Checked here, since Validate takes the zero time for none.
			err = CheckEarliest(a.String(), ev.OccurredAt)
		}
	case "source":
		err = d.source(a)
	case "actor":
		err = d.object("actor", d.actor)
	case "action":
		ev.Action, err = d.str(a, maxAction)
	case "category":
		ev.Category, err = d.str(a, maxCategory)
	case "target":
		err = d.object("target", d.target)
	case "outcome":
		err = d.object("outcome", d.outcome)
	case "request":
		err = d.object("request", d.request)
	case "data":
		err = d.object("data", d.data)
	case "details":
		ev.Details, err = d.details(a)
	case "original":
		if !d.leaf && !d.lim.AllowOriginal {
			return fieldErr(a.String(), "is set only by attest's importers")
		}
		ev.Original, err = d.freeform(a, 1<<20, 64)
	case "received_at", "sequence":
		if !d.leaf {
			return fieldErr(a.String(), "is set by attest and must not be sent")
		}
		if string(a.name) == "sequence" {
			ev.Sequence, err = d.integer(a, 0, math.MaxInt64)
		} else {
			ev.ReceivedAt, err = d.timestamp(a)
		}
	case "personal":
		if !d.leaf {
			return fieldErr(a.String(), "is set by attest and must not be sent")
		}
		err = d.personal()
	case "v":
		if !d.leaf {
			return unknown(a)
		}
		var v int64
		v, err = d.integer(a, 1, 1000)
		d.lf.Version = int(v)
	default:
		return unknown(a)
	}
	return err
}

// source accepts either a name string or an object.
func (d *decoder) source(a at) error {
	if d.dec.PeekKind() == '"' {
		s, err := d.str(a, maxSourceName)
		d.ev.Source.Name = s
		return err
	}
	return d.object("source", func(a at) error {
		var err error
		switch string(a.name) {
		case "name":
			d.ev.Source.Name, err = d.str(a, maxSourceName)
		case "host":
			d.ev.Source.Host, err = d.str(a, maxSourceHost)
		case "version":
			d.ev.Source.Version, err = d.str(a, maxSourceVersion)
		default:
			return unknown(a)
		}
		return err
	})
}

func (d *decoder) actor(a at) error {
	ac := &d.ev.Actor
	var err error
	switch string(a.name) {
	case "type":
		ac.Type, err = d.str(a, maxActorType)
	case "id":
		ac.ID, err = d.str(a, maxActorID)
	case "name":
		ac.Name, err = d.str(a, maxActorName)
	case "email":
		ac.Email, err = d.str(a, maxActorEmail)
	case "ip":
		ac.IP, err = d.str(a, maxActorIP)
	case "user_agent":
		ac.UserAgent, err = d.str(a, maxUserAgent)
	case "session_id":
		ac.SessionID, err = d.str(a, maxSessionID)
	case "auth":
		err = d.object("actor.auth", d.auth)
	default:
		return unknown(a)
	}
	return err
}

func (d *decoder) auth(a at) error {
	au := &d.ev.Actor.Auth
	switch string(a.name) {
	case "method":
		var err error
		au.Method, err = d.str(a, maxAuthMethod)
		return err
	case "mfa":
		b, err := d.boolean(a)
		au.MFA = &b
		return err
	}
	return unknown(a)
}

func (d *decoder) target(a at) error {
	t := &d.ev.Target
	var err error
	switch string(a.name) {
	case "type":
		t.Type, err = d.str(a, maxTargetType)
	case "id":
		t.ID, err = d.str(a, maxTargetID)
	case "name":
		t.Name, err = d.str(a, maxTargetName)
	default:
		return unknown(a)
	}
	return err
}

func (d *decoder) outcome(a at) error {
	o := &d.ev.Outcome
	var err error
	switch string(a.name) {
	case "result":
		o.Result, err = d.str(a, maxResult)
	case "reason":
		o.Reason, err = d.str(a, maxReason)
	case "status":
		var n int64
		n, err = d.integer(a, 0, 999999)
		o.Status = int(n)
	default:
		return unknown(a)
	}
	return err
}

func (d *decoder) request(a at) error {
	r := &d.ev.Request
	var err error
	switch string(a.name) {
	case "id":
		r.ID, err = d.str(a, maxRequestID)
	case "method":
		r.Method, err = d.str(a, maxMethod)
	case "path":
		r.Path, err = d.str(a, maxPath)
	case "status":
		var n int64
		n, err = d.integer(a, 100, 599)
		r.Status = int(n)
	case "duration_ms":
		r.DurationMicros, err = d.millis(a)
	default:
		return unknown(a)
	}
	return err
}

// millis reads a non-negative duration in milliseconds, kept to the microsecond.
func (d *decoder) millis(a at) (int64, error) {
	if err := d.peek(a, '0', "a number"); err != nil {
		return 0, err
	}
	v, err := d.dec.ReadValue()
	if err != nil {
		return 0, d.syntax(a, err)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f < 0 || f > 1e12 {
		return 0, fieldErr(a.String(), "must be a number of milliseconds between 0 and 1e12")
	}
	return int64(math.Round(f * 1000)), nil
}

func (d *decoder) data(a at) error {
	dt := &d.ev.Data
	var err error
	switch string(a.name) {
	case "classification":
		dt.Classification, err = d.str(a, maxClassification)
	case "record_count":
		dt.RecordCount, err = d.integer(a, 0, 1<<53)
	case "fields":
		return d.fields(a)
	default:
		return unknown(a)
	}
	return err
}

func (d *decoder) fields(a at) error {
	if err := d.peek(a, '[', "an array of strings"); err != nil {
		return err
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return d.syntax(a, err)
	}
	dt := &d.ev.Data
	dt.Fields = []string{}
	for d.dec.PeekKind() != ']' {
		if len(dt.Fields) == 256 {
			return fieldErr(a.String(), "has more than 256 entries")
		}
		s, err := d.str(path(a.String()+"["+strconv.Itoa(len(dt.Fields))+"]"), maxDataField)
		if err != nil {
			return err
		}
		dt.Fields = append(dt.Fields, s)
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return d.syntax(a, err)
	}
	return nil
}

func (d *decoder) personal() error {
	d.lf.Personal = map[string]string{}
	return d.object("personal", func(a at) error {
		name := string(a.name)
		if !slices.Contains(ConfigurablePersonal, name) && name != PathOriginal {
			return fieldErr(a.String(), "is not a personal field")
		}
		s, err := d.str(a, 64)
		d.lf.Personal[name] = s
		return err
	})
}

// details reads a JSON object bounded in size and depth, and returns it in
// canonical form.
func (d *decoder) details(a at) (jsontext.Value, error) {
	if err := d.peek(a, '{', "an object"); err != nil {
		return nil, err
	}
	return d.freeform(a, d.lim.maxDetails(), d.lim.maxDepth())
}

// container is an object or array open in a free-form value.
type container struct {
	names *nameSet // the object's names; nil for an array
	n     int      // the array's elements read
	// value is whether the object's next token is a member's value.
	value bool
}

// freeform reads a JSON value at a, nested at most maxDepth levels, and
// returns it in canonical form. A duplicate member name is refused with its
// path, and so is, outside stored leaves, a number whose canonical text
// would denote another value (see ExactNumber).
func (d *decoder) freeform(a at, maxBytes, maxDepth int) (jsontext.Value, error) {
	start := d.dec.InputOffset()
	d.stack = d.stack[:0]
	depth := d.depth
	defer func() { d.depth = depth }()
	for {
		if d.dec.InputOffset()-start > 4*int64(maxBytes) {
			return nil, fieldErr(a.String(), "larger than %d bytes", maxBytes)
		}
		done, err := d.freeformToken(a, maxDepth)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
	}
	raw := bytes.TrimLeft(d.in[start:d.dec.InputOffset()], " \t\r\n:")
	if len(raw) > 4*maxBytes {
		return nil, fieldErr(a.String(), "larger than %d bytes", maxBytes)
	}
	cv := jsontext.Value(slices.Clone(raw))
	if err := cv.Canonicalize(); err != nil {
		return nil, fieldErr(a.String(), "cannot be put in canonical form: %v", err)
	}
	if len(cv) > maxBytes {
		return nil, fieldErr(a.String(), "larger than %d bytes", maxBytes)
	}
	return cv, nil
}

// freeformToken reads the next token or scalar of a free-form value, and
// reports whether the value is complete.
func (d *decoder) freeformToken(a at, maxDepth int) (done bool, err error) {
	var top *container
	if len(d.stack) > 0 {
		top = &d.stack[len(d.stack)-1]
	}
	switch k := d.dec.PeekKind(); {
	case k == 0:
		_, err := d.dec.ReadToken()
		return false, d.syntax(d.within(a), err)
	case top != nil && (k == '}' || k == ']'):
		if _, err := d.dec.ReadToken(); err != nil {
			return false, d.syntax(d.within(a), err)
		}
		if top.names != nil {
			d.depth--
		}
		d.stack = d.stack[:len(d.stack)-1]
		return d.ended(), nil
	case top != nil && top.names != nil && !top.value:
		v, err := d.dec.ReadValue()
		if err != nil {
			return false, d.syntax(d.within(a), err)
		}
		_, isNew, err := top.names.add(v)
		if err != nil {
			return false, d.syntax(d.within(a), err)
		}
		top.value = true
		if !isNew {
			return false, duplicate(d.within(a))
		}
		return false, nil
	case k == '{' || k == '[':
		if len(d.stack) == maxDepth {
			return false, fieldErr(a.String(), "nested deeper than %d levels", maxDepth)
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return false, d.syntax(d.within(a), err)
		}
		c := container{}
		if k == '{' {
			c.names = d.open()
		}
		d.stack = append(d.stack, c)
		return false, nil
	}
	v, err := d.dec.ReadValue()
	if err != nil {
		return false, d.syntax(d.within(a), err)
	}
	// A stored leaf is in canonical form already, and every number in it
	// is the canonical text of a double.
	if v.Kind() == '0' && !d.leaf && !ExactNumber(v) {
		return false, fieldErr(d.within(a).String(), "%v", ErrInexactNumber)
	}
	return d.ended(), nil
}

// ended marks the value just read as read in its container, and reports
// whether it was the whole free-form value.
func (d *decoder) ended() bool {
	if len(d.stack) == 0 {
		return true
	}
	top := &d.stack[len(d.stack)-1]
	if top.names != nil {
		top.value = false
	} else {
		top.n++
	}
	return false
}

// within names the place in the free-form value at a that was read last.
func (d *decoder) within(a at) at {
	if len(d.stack) == 0 {
		return a
	}
	var b strings.Builder
	b.WriteString(a.String())
	for _, c := range d.stack {
		if c.names == nil {
			b.WriteString("[" + strconv.Itoa(c.n) + "]")
			continue
		}
		if name := c.names.last(); name != nil {
			b.WriteByte('.')
			b.Write(name)
		}
	}
	return path(b.String())
}

// Validate checks an event's values against the schema: required fields,
// closed sets, formats and time bounds.
func Validate(ev *Event, lim *Limits) error {
	if ev.OccurredAt.IsZero() {
		return fieldErr("occurred_at", "is required")
	}
	if err := CheckEarliest("occurred_at", ev.OccurredAt); err != nil {
		return err
	}
	if limit := lim.now().Add(lim.skew()); ev.OccurredAt.After(limit) {
		return fieldErr("occurred_at", "is in the future (more than %s ahead of this server's clock)", lim.skew())
	}
	if ev.Action == "" {
		return fieldErr("action", "is required")
	}
	if err := checkAction(ev.Action); err != nil {
		return err
	}
	if ev.Category == "" {
		return fieldErr("category", "is required")
	}
	if !slices.Contains(Categories, ev.Category) {
		return fieldErr("category", "must be one of %s", strings.Join(Categories, ", "))
	}
	if ev.Source.Name == "" {
		return fieldErr("source.name", "is required")
	}
	if ev.Actor.Type == "" {
		return fieldErr("actor.type", "is required")
	}
	if !slices.Contains(ActorTypes, ev.Actor.Type) {
		return fieldErr("actor.type", "must be one of %s", strings.Join(ActorTypes, ", "))
	}
	if ev.Actor.IP != "" {
		ip, err := netip.ParseAddr(ev.Actor.IP)
		if err != nil || ip.Zone() != "" {
			return fieldErr("actor.ip", "must be an IPv4 or IPv6 address")
		}
		ev.Actor.IP = ip.Unmap().String()
	}
	if ev.Actor.Email != "" && !strings.Contains(ev.Actor.Email, "@") {
		return fieldErr("actor.email", "must be an email address")
	}
	if ev.Outcome.Result == "" {
		return fieldErr("outcome.result", "is required")
	}
	if !slices.Contains(Results, ev.Outcome.Result) {
		return fieldErr("outcome.result", "must be one of %s", strings.Join(Results, ", "))
	}
	if ev.Target.ID != "" && ev.Target.Type == "" {
		return fieldErr("target.type", "is required when target.id is set")
	}
	if ev.Request.Method != "" && !isToken(ev.Request.Method) {
		return fieldErr("request.method", "must be an HTTP method token")
	}
	if ev.ID != "" && !utf8.ValidString(ev.ID) {
		return fieldErr("id", "must be valid UTF-8")
	}
	return nil
}

// checkAction enforces the dotted-verb shape: letters, digits and . _ : / -,
// starting with a letter or digit.
func checkAction(a string) error {
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == ':' || c == '/' || c == '-'):
		default:
			return fieldErr("action", "may contain only letters, digits and . _ : / - and must start with a letter or digit")
		}
	}
	return nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
