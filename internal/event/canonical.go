package event

import (
	"bytes"
	"strconv"
	"time"
)

// Commitment is the keyed commitment to one personal value.
type Commitment struct {
	Path string
	// Value is the base64url (unpadded) HMAC of the value.
	Value string
}

// LeafTemplate is an event's leaf form with its received_at and sequence
// left open, so that the costly encoding can happen before the log writer
// assigns them.
type LeafTemplate struct {
	buf  []byte
	head int // buf[:head]: members before received_at, after the opening brace
	mid  int // buf[head:mid]: members between received_at and sequence, each with a leading comma
	// buf[mid:]: members after sequence, each with a leading comma, and the closing brace
}

// hidden is a set of personal paths left out of their places in a leaf.
type hidden uint16

const (
	hideActorName hidden = 1 << iota
	hideActorEmail
	hideActorIP
	hideActorUserAgent
	hideActorSessionID
	hideTargetName
	hideRequestPath
	hideDetails
	hideOriginal
)

var pathBits = map[string]hidden{PathActorName: hideActorName, PathActorEmail: hideActorEmail,
	PathActorIP: hideActorIP, PathActorUserAgent: hideActorUserAgent, PathActorSessionID: hideActorSessionID,
	PathTargetName: hideTargetName, PathRequestPath: hideRequestPath, PathDetails: hideDetails, PathOriginal: hideOriginal}

func (h hidden) has(bit hidden) bool { return h&bit != 0 }

// NewLeafTemplate encodes the leaf form of ev in RFC 8785 canonical JSON:
// members sorted by name, no insignificant whitespace, strings escaped
// minimally. Each path in personal is left out of its place and its
// commitment written under "personal" instead; personal must be sorted by
// Path.
//
// The member names below are written in sorted order by hand; a test checks
// the output against an independent canonicaliser.
func NewLeafTemplate(ev *Event, personal []Commitment) *LeafTemplate {
	var h hidden
	for _, c := range personal {
		h |= pathBits[c.Path]
	}
	w := jw{b: make([]byte, 0, leafSizeHint(ev, len(personal)))}
	w.push(0)
	w.str("action", ev.Action)
	w.actor(&ev.Actor, h)
	w.str("category", ev.Category)
	w.data(&ev.Data)
	if len(ev.Details) > 0 && !h.has(hideDetails) {
		w.raw("details", ev.Details)
	}
	w.str("id", ev.ID)
	w.time("occurred_at", ev.OccurredAt)
	w.outcome(&ev.Outcome)
	if len(personal) > 0 {
		w.open("personal")
		for _, c := range personal {
			w.str(c.Path, c.Value)
		}
		w.close()
	}
	t := &LeafTemplate{head: len(w.b)}
	w.request(&ev.Request, h)
	t.mid = len(w.b)
	w.source(&ev.Source)
	w.target(&ev.Target, h)
	w.str("tenant", ev.Tenant)
	w.int("v", LeafVersion)
	w.b = append(w.b, '}')
	t.buf = w.b
	return t
}

// leafSizeHint is a size that holds the leaf form of ev in most cases, so
// that its buffer is allocated once: the values, their member names and
// quotes, and a commitment for each personal value.
func leafSizeHint(ev *Event, personal int) int {
	n := 160 + 72*personal + len(ev.ID) + len(ev.Tenant) + len(ev.Action) + len(ev.Category) + len(ev.Details)
	for _, v := range [...]string{ev.Source.Name, ev.Source.Host, ev.Source.Version,
		ev.Actor.Type, ev.Actor.ID, ev.Actor.Name, ev.Actor.Email, ev.Actor.IP, ev.Actor.UserAgent,
		ev.Actor.SessionID, ev.Actor.Auth.Method, ev.Target.Type, ev.Target.ID, ev.Target.Name,
		ev.Outcome.Result, ev.Outcome.Reason, ev.Request.ID, ev.Request.Method, ev.Request.Path,
		ev.Data.Classification} {
		if v != "" {
			n += len(v) + 20
		}
	}
	for _, f := range ev.Data.Fields {
		n += len(f) + 3
	}
	return n
}

// Append appends the leaf with the given received time and sequence number.
func (t *LeafTemplate) Append(b []byte, received time.Time, seq int64) []byte {
	b = append(b, '{')
	b = append(b, t.buf[:t.head]...)
	b = append(b, `,"received_at":"`...)
	b = received.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = append(b, t.buf[t.head:t.mid]...)
	b = append(b, `,"sequence":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, t.buf[t.mid:]...)
}

// Equal reports whether two templates make the same leaves.
func (t *LeafTemplate) Equal(o *LeafTemplate) bool {
	return t.head == o.head && t.mid == o.mid && bytes.Equal(t.buf, o.buf)
}

// Len is an upper bound of the size of the leaf the template makes: its
// members, braces, and the longest received time and sequence number.
func (t *LeafTemplate) Len() int {
	return len(t.buf) + len(`{,"received_at":"2006-01-02T15:04:05.999999999Z","sequence":-9223372036854775808`)
}

// AppendLeaf appends the leaf form of ev, with its ReceivedAt and Sequence.
func AppendLeaf(b []byte, ev *Event, personal []Commitment) []byte {
	return NewLeafTemplate(ev, personal).Append(b, ev.ReceivedAt, ev.Sequence)
}

// AppendProducer appends ev in the producer form the ingest API takes, in
// canonical JSON: the event's fields without the ones attest sets.
func AppendProducer(b []byte, ev *Event) []byte {
	w := jw{b: append(b, '{')}
	w.push(len(b))
	w.str("action", ev.Action)
	w.actor(&ev.Actor, 0)
	w.str("category", ev.Category)
	w.data(&ev.Data)
	if len(ev.Details) > 0 {
		w.raw("details", ev.Details)
	}
	w.str("id", ev.ID)
	w.time("occurred_at", ev.OccurredAt)
	w.outcome(&ev.Outcome)
	w.request(&ev.Request, 0)
	w.source(&ev.Source)
	w.target(&ev.Target, 0)
	w.str("tenant", ev.Tenant)
	return append(w.b, '}')
}

// FormatTime is the canonical text of a stored time: UTC, RFC 3339, with as
// many fractional digits as needed and no more.
func FormatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// AppendMillis appends a duration in microseconds as a JSON number of
// milliseconds, in the shortest form that reads back exactly, which for
// these values is also the form RFC 8785 prescribes.
func AppendMillis(b []byte, micros int64) []byte {
	return strconv.AppendFloat(b, float64(micros)/1000, 'f', -1, 64)
}

// jw writes canonical JSON into one buffer. Callers add members in sorted
// order; empty strings are left out, and an object that ends up with no
// members is taken out again together with its name.
type jw struct {
	b     []byte
	stack [4]frame // the objects being written; the deepest is actor.auth
	depth int
}

type frame struct {
	start int // where the member that opened the object began
	n     int // members written
}

func (w *jw) push(start int) {
	w.stack[w.depth] = frame{start: start}
	w.depth++
}

// member writes a member name, after a comma when it is not the first.
// Names are attest's own ASCII identifiers and need no escaping.
func (w *jw) member(k string) {
	f := &w.stack[w.depth-1]
	if f.n > 0 {
		w.b = append(w.b, ',')
	}
	f.n++
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jw) str(k, v string) {
	if v == "" {
		return
	}
	w.member(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jw) personal(k, v string, hide bool) {
	if !hide {
		w.str(k, v)
	}
}

func (w *jw) int(k string, v int64) {
	w.member(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jw) boolean(k string, v bool) {
	w.member(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *jw) raw(k string, v []byte) {
	w.member(k)
	w.b = append(w.b, v...)
}

func (w *jw) time(k string, t time.Time) {
	w.member(k)
	w.b = append(w.b, '"')
	w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

// open starts an object member.
func (w *jw) open(k string) {
	start := len(w.b)
	w.member(k)
	w.b = append(w.b, '{')
	w.push(start)
}

// close ends an object member, or removes it when it has no members.
func (w *jw) close() {
	w.depth--
	f := w.stack[w.depth]
	if f.n > 0 {
		w.b = append(w.b, '}')
		return
	}
	w.b = w.b[:f.start]
	w.stack[w.depth-1].n--
}

func (w *jw) actor(a *Actor, h hidden) {
	w.open("actor")
	if a.Auth.Method != "" || a.Auth.MFA != nil {
		w.open("auth")
		w.str("method", a.Auth.Method)
		if a.Auth.MFA != nil {
			w.boolean("mfa", *a.Auth.MFA)
		}
		w.close()
	}
	w.personal("email", a.Email, h.has(hideActorEmail))
	w.str("id", a.ID)
	w.personal("ip", a.IP, h.has(hideActorIP))
	w.personal("name", a.Name, h.has(hideActorName))
	w.personal("session_id", a.SessionID, h.has(hideActorSessionID))
	w.str("type", a.Type)
	w.personal("user_agent", a.UserAgent, h.has(hideActorUserAgent))
	w.close()
}

func (w *jw) data(d *Data) {
	w.open("data")
	w.str("classification", d.Classification)
	if d.Fields != nil {
		w.member("fields")
		w.b = append(w.b, '[')
		for i, f := range d.Fields {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = appendJSONString(w.b, f)
		}
		w.b = append(w.b, ']')
	}
	if d.RecordCount >= 0 {
		w.int("record_count", d.RecordCount)
	}
	w.close()
}

func (w *jw) outcome(o *Outcome) {
	w.open("outcome")
	w.str("reason", o.Reason)
	w.str("result", o.Result)
	if o.Status != 0 {
		w.int("status", int64(o.Status))
	}
	w.close()
}

func (w *jw) request(r *Request, h hidden) {
	w.open("request")
	if r.DurationMicros >= 0 {
		w.member("duration_ms")
		w.b = AppendMillis(w.b, r.DurationMicros)
	}
	w.str("id", r.ID)
	w.str("method", r.Method)
	w.personal("path", r.Path, h.has(hideRequestPath))
	if r.Status != 0 {
		w.int("status", int64(r.Status))
	}
	w.close()
}

func (w *jw) source(s *Source) {
	w.open("source")
	w.str("host", s.Host)
	w.str("name", s.Name)
	w.str("version", s.Version)
	w.close()
}

func (w *jw) target(t *Target, h hidden) {
	w.open("target")
	w.str("id", t.ID)
	w.personal("name", t.Name, h.has(hideTargetName))
	w.str("type", t.Type)
	w.close()
}

// AppendString appends s as a JSON string in its canonical form.
func AppendString(b []byte, s string) []byte { return appendJSONString(b, s) }

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as RFC 8785 prescribes: only the quote, the
// backslash and control characters are escaped, using the short escapes
// where JSON has them and \u00xx otherwise. s must be valid UTF-8.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		// Bytes of multi-byte UTF-8 sequences are all 0x80 or above and are
		// copied as they are, like every other byte that needs no escape.
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
