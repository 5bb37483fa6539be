package event

import (
	"strconv"
	"time"
	"unicode/utf8"
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
	head []byte // members before received_at, without the opening brace
	mid  []byte // members between received_at and sequence, with a leading comma
	tail []byte // members after sequence, with a leading comma, and the closing brace
}

// NewLeafTemplate encodes the leaf form of ev in RFC 8785 canonical JSON:
// members sorted by name, no insignificant whitespace, strings escaped
// minimally. Each path in personal is left out of its place and its
// commitment written under "personal" instead; personal must be sorted by
// Path.
//
// The member names below are written in sorted order by hand; a test checks
// the output against an independent canonicaliser.
func NewLeafTemplate(ev *Event, personal []Commitment) *LeafTemplate {
	hidden := func(path string) bool {
		for _, c := range personal {
			if c.Path == path {
				return true
			}
		}
		return false
	}
	w := objWriter{b: make([]byte, 0, 512)}
	w.str("action", ev.Action)
	if a := appendActor(nil, &ev.Actor, hidden); a != nil {
		w.raw("actor", a)
	}
	w.str("category", ev.Category)
	if dt := appendData(nil, &ev.Data); dt != nil {
		w.raw("data", dt)
	}
	if len(ev.Details) > 0 && !hidden(PathDetails) {
		w.raw("details", ev.Details)
	}
	w.str("id", ev.ID)
	w.str("occurred_at", FormatTime(ev.OccurredAt))
	if o := appendOutcome(nil, &ev.Outcome); o != nil {
		w.raw("outcome", o)
	}
	if len(personal) > 0 {
		pw := objWriter{}
		pw.open()
		for _, c := range personal {
			pw.str(c.Path, c.Value)
		}
		w.raw("personal", pw.close())
	}
	t := &LeafTemplate{head: w.b}
	if r := appendRequest(nil, &ev.Request, hidden); r != nil {
		t.mid = append([]byte(`,"request":`), r...)
	}
	w = objWriter{b: make([]byte, 0, 128), n: 1}
	if s := appendSource(nil, &ev.Source); s != nil {
		w.raw("source", s)
	}
	if tg := appendTarget(nil, &ev.Target, hidden); tg != nil {
		w.raw("target", tg)
	}
	w.str("tenant", ev.Tenant)
	w.int("v", LeafVersion)
	t.tail = w.close()
	return t
}

// Append appends the leaf with the given received time and sequence number.
func (t *LeafTemplate) Append(b []byte, received time.Time, seq int64) []byte {
	b = append(b, '{')
	b = append(b, t.head...)
	b = append(b, `,"received_at":"`...)
	b = received.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = append(b, t.mid...)
	b = append(b, `,"sequence":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, t.tail...)
}

// Len is the size of the leaf the template makes, give or take the
// received time and sequence number.
func (t *LeafTemplate) Len() int { return len(t.head) + len(t.mid) + len(t.tail) + 64 }

// AppendLeaf appends the leaf form of ev, with its ReceivedAt and Sequence.
func AppendLeaf(b []byte, ev *Event, personal []Commitment) []byte {
	return NewLeafTemplate(ev, personal).Append(b, ev.ReceivedAt, ev.Sequence)
}

// FormatTime is the canonical text of a stored time: UTC, RFC 3339, with as
// many fractional digits as needed and no more.
func FormatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

func appendActor(b []byte, a *Actor, hidden func(string) bool) []byte {
	w := objWriter{b: b}
	w.open()
	if a.Auth.Method != "" || a.Auth.MFA != nil {
		aw := objWriter{}
		aw.open()
		aw.str("method", a.Auth.Method)
		if a.Auth.MFA != nil {
			aw.boolean("mfa", *a.Auth.MFA)
		}
		w.raw("auth", aw.close())
	}
	w.personal("email", a.Email, hidden(PathActorEmail))
	w.str("id", a.ID)
	w.personal("ip", a.IP, hidden(PathActorIP))
	w.personal("name", a.Name, hidden(PathActorName))
	w.personal("session_id", a.SessionID, hidden(PathActorSessionID))
	w.str("type", a.Type)
	w.personal("user_agent", a.UserAgent, hidden(PathActorUserAgent))
	return w.closeOrNil()
}

func appendData(b []byte, d *Data) []byte {
	w := objWriter{b: b}
	w.open()
	w.str("classification", d.Classification)
	if d.Fields != nil {
		w.name("fields")
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
	return w.closeOrNil()
}

func appendOutcome(b []byte, o *Outcome) []byte {
	w := objWriter{b: b}
	w.open()
	w.str("reason", o.Reason)
	w.str("result", o.Result)
	if o.Status != 0 {
		w.int("status", int64(o.Status))
	}
	return w.closeOrNil()
}

func appendRequest(b []byte, r *Request, hidden func(string) bool) []byte {
	w := objWriter{b: b}
	w.open()
	if r.DurationMicros >= 0 {
		w.name("duration_ms")
		w.b = AppendMillis(w.b, r.DurationMicros)
	}
	w.str("id", r.ID)
	w.str("method", r.Method)
	w.personal("path", r.Path, hidden(PathRequestPath))
	if r.Status != 0 {
		w.int("status", int64(r.Status))
	}
	return w.closeOrNil()
}

// AppendMillis appends a duration in microseconds as a JSON number of
// milliseconds, in the shortest form that reads back exactly, which for
// these values is also the form RFC 8785 prescribes.
func AppendMillis(b []byte, micros int64) []byte {
	return strconv.AppendFloat(b, float64(micros)/1000, 'f', -1, 64)
}

func appendSource(b []byte, s *Source) []byte {
	w := objWriter{b: b}
	w.open()
	w.str("host", s.Host)
	w.str("name", s.Name)
	w.str("version", s.Version)
	return w.closeOrNil()
}

func appendTarget(b []byte, t *Target, hidden func(string) bool) []byte {
	w := objWriter{b: b}
	w.open()
	w.str("id", t.ID)
	w.personal("name", t.Name, hidden(PathTargetName))
	w.str("type", t.Type)
	return w.closeOrNil()
}

// objWriter writes the members of one JSON object; callers add members in
// sorted order and empty strings are left out.
type objWriter struct {
	b     []byte
	start int
	n     int
}

func (w *objWriter) open() {
	w.start = len(w.b)
	w.b = append(w.b, '{')
}

func (w *objWriter) name(k string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *objWriter) str(k, v string) {
	if v == "" {
		return
	}
	w.name(k)
	w.b = appendJSONString(w.b, v)
}

func (w *objWriter) personal(k, v string, hidden bool) {
	if !hidden {
		w.str(k, v)
	}
}

func (w *objWriter) int(k string, v int64) {
	w.name(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *objWriter) boolean(k string, v bool) {
	w.name(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *objWriter) raw(k string, v []byte) {
	w.name(k)
	w.b = append(w.b, v...)
}

func (w *objWriter) close() []byte {
	return append(w.b, '}')
}

// closeOrNil closes the object, or returns nil if it has no members.
func (w *objWriter) closeOrNil() []byte {
	if w.n == 0 {
		return nil
	}
	return w.close()
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as RFC 8785 prescribes: only the quote, the
// backslash and control characters are escaped, using the short escapes
// where JSON has them and \u00xx otherwise. s must be valid UTF-8.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			if c < utf8.RuneSelf {
				i++
				continue
			}
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
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
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendProducer appends ev in the producer form the ingest API takes, in
// canonical JSON: the event's fields without the ones attest sets.
func AppendProducer(b []byte, ev *Event) []byte {
	none := func(string) bool { return false }
	w := objWriter{b: b}
	w.open()
	w.str("action", ev.Action)
	if a := appendActor(nil, &ev.Actor, none); a != nil {
		w.raw("actor", a)
	}
	w.str("category", ev.Category)
	if dt := appendData(nil, &ev.Data); dt != nil {
		w.raw("data", dt)
	}
	if len(ev.Details) > 0 {
		w.raw("details", ev.Details)
	}
	w.str("id", ev.ID)
	w.str("occurred_at", FormatTime(ev.OccurredAt))
	if o := appendOutcome(nil, &ev.Outcome); o != nil {
		w.raw("outcome", o)
	}
	if r := appendRequest(nil, &ev.Request, none); r != nil {
		w.raw("request", r)
	}
	if s := appendSource(nil, &ev.Source); s != nil {
		w.raw("source", s)
	}
	if t := appendTarget(nil, &ev.Target, none); t != nil {
		w.raw("target", t)
	}
	w.str("tenant", ev.Tenant)
	return w.close()
}
