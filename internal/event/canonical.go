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

// AppendLeaf appends the leaf form of ev in RFC 8785 canonical JSON: members
// sorted by name, no insignificant whitespace, strings escaped minimally.
// Each path in personal is left out of its place and its commitment written
// under "personal" instead; personal must be sorted by Path.
//
// The member names below are written in sorted order by hand; a test checks
// the output against an independent canonicaliser.
func AppendLeaf(b []byte, ev *Event, personal []Commitment) []byte {
	hidden := func(path string) bool {
		for _, c := range personal {
			if c.Path == path {
				return true
			}
		}
		return false
	}
	w := objWriter{b: b}
	w.open()
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
	w.str("received_at", FormatTime(ev.ReceivedAt))
	if r := appendRequest(nil, &ev.Request, hidden); r != nil {
		w.raw("request", r)
	}
	w.int("sequence", ev.Sequence)
	if s := appendSource(nil, &ev.Source); s != nil {
		w.raw("source", s)
	}
	if t := appendTarget(nil, &ev.Target, hidden); t != nil {
		w.raw("target", t)
	}
	w.str("tenant", ev.Tenant)
	w.int("v", LeafVersion)
	return w.close()
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
