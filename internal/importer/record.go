package importer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/attest/attest/internal/event"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// mapper is a source record's decoded form, which fills an event.
type mapper interface {
	fill(ev *event.Event) error
}

// mapRecord decodes raw into m, lets m fill a new event, keeps raw in
// canonical form as the event's original, and validates the event.
func mapRecord(raw []byte, opts *Options, m mapper) (*event.Event, error) {
	// A null decodes into a struct as nothing at all; it is no record.
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, fieldError("record", "must be an object, not null")
	}
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, decodeError(err)
	}
	ev := event.New()
	if err := m.fill(ev); err != nil {
		return nil, err
	}
	orig, err := canonicalOriginal(raw)
	if err != nil {
		return nil, err
	}
	ev.Original = orig
	if err := event.Validate(ev, opts.Limits); err != nil {
		return nil, err
	}
	return ev, nil
}

// readLines reads NDJSON and maps each line with mapLine.
func readLines(r io.Reader, opts *Options, emit func(Record) error,
	mapLine func([]byte, *Options) (*event.Event, error)) error {
	return scanLines(r, opts.maxRecord(), func(i, lineNo int, line []byte, err error) error {
		rec := Record{Index: i, Line: lineNo, Err: err}
		if err == nil {
			rec.Event, rec.Err = mapLine(line, opts)
		}
		return emit(rec)
	})
}

func fieldError(field, format string, args ...any) error {
	return &event.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// checkID checks a source identifier that an event id is made from.
func checkID(field, id string, max int) error {
	switch {
	case id == "":
		return fieldError(field, "is required")
	case len(id) > max:
		return fieldError(field, "longer than %d bytes", max)
	case strings.IndexFunc(id, isControl) >= 0:
		return fieldError(field, "contains a control character")
	}
	return nil
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fieldError(field, "is required")
	}
	t, ok := event.ParseTime(s)
	if !ok {
		return time.Time{}, fieldError(field, "must be an RFC 3339 time such as 2024-08-02T08:53:24Z")
	}
	if err := event.CheckEarliest(field, t); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// makeAction maps each character that an action may not hold to '_'.
func makeAction(s string) string {
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && isActionByte(byte(r)) {
			return r
		}
		return '_'
	}, s)
}

func isActionByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == ':' || c == '/' || c == '-'
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func startsAlnum(s string) bool { return s != "" && isAlnum(s[0]) }

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// clean makes s fit a string field of at most max bytes: control
// characters, which the leaf decoder refuses, become U+FFFD, and the result
// is cut on a character boundary.
func clean(s string, max int) string {
	if strings.IndexFunc(s, isControl) >= 0 {
		s = strings.Map(func(r rune) rune {
			if isControl(r) {
				return utf8.RuneError
			}
			return r
		}, s)
	}
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// parseIP returns s as a normalised IP address, or "" when s is not one.
// Anonymised CloudTrail writes IPv4 parts with leading zeros, as in
// "225.01.00.16"; each part is read as decimal, never octal.
func parseIP(s string) string {
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return ""
		}
		return ip.Unmap().String()
	}
	parts := strings.SplitN(s, ".", 5)
	if len(parts) != 4 {
		return ""
	}
	var b [4]byte
	for i, p := range parts {
		n := index(p)
		if len(p) > 3 || n < 0 || n > 255 {
			return ""
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b).String()
}

// canonicalDetails encodes v, a details struct, in canonical form; it
// returns nil when v has no members.
func canonicalDetails(v any) (jsontext.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("importer: encode details: %w", err)
	}
	d := jsontext.Value(b)
	if err := d.Canonicalize(); err != nil {
		return nil, fmt.Errorf("importer: canonicalize details: %w", err)
	}
	if string(d) == "{}" {
		return nil, nil
	}
	return d, nil
}

// canonicalOriginal returns raw in canonical form. Canonical JSON writes
// numbers as doubles, so raw is refused, as the event decoder refuses such
// values, when that would change a number (see event.ExactNumber); and when
// it nests deeper than the decoder lets an original nest.
func canonicalOriginal(raw []byte) (jsontext.Value, error) {
	if err := checkOriginal(raw); err != nil {
		return nil, err
	}
	v := jsontext.Value(bytes.Clone(raw))
	if err := v.Canonicalize(); err != nil {
		return nil, fieldError("record", "cannot be put in canonical form: %v", err)
	}
	return v, nil
}

func checkOriginal(raw []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return decodeError(err)
		}
		if dec.StackDepth() > maxOriginalDepth {
			return fieldError(fieldPath(dec.StackPointer()), "nested deeper than %d levels", maxOriginalDepth)
		}
		if tok.Kind() == '0' && !event.ExactNumber([]byte(tok.String())) {
			return fieldError(fieldPath(dec.StackPointer()), "%v", event.ErrInexactNumber)
		}
	}
}

// decodeError turns an error of json.Unmarshal into a FieldError naming the
// member at fault.
func decodeError(err error) error {
	var se *json.SemanticError
	if errors.As(err, &se) {
		return &event.FieldError{Field: fieldPath(se.JSONPointer), Reason: semanticReason(se)}
	}
	var sy *jsontext.SyntacticError
	if errors.As(err, &sy) && errors.Is(err, jsontext.ErrDuplicateName) {
		return fieldError(fieldPath(sy.JSONPointer), "duplicate member name")
	}
	if errors.As(err, &sy) {
		return fieldError(fieldPath(sy.JSONPointer), "invalid JSON: %v", sy.Err)
	}
	return fieldError("record", "%v", err)
}

func semanticReason(se *json.SemanticError) string {
	want, wantKind := expectedKind(se.GoType)
	got := se.JSONKind
	if got == 'f' {
		got = 't'
	}
	switch {
	case want == "":
	case got != 0 && got != wantKind:
		return fmt.Sprintf("must be %s, not %s", want, event.KindName(se.JSONKind))
	case wantKind == '0':
		return fmt.Sprintf("must be %s in range", want)
	}
	if se.Err != nil {
		return se.Err.Error()
	}
	return "cannot be decoded"
}

// expectedKind names the JSON kind a Go type decodes from.
func expectedKind(t reflect.Type) (string, jsontext.Kind) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "", 0
	}
	switch t.Kind() {
	case reflect.String:
		return "a string", '"'
	case reflect.Bool:
		return "a boolean", 't'
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number", '0'
	case reflect.Float32, reflect.Float64:
		return "a number", '0'
	case reflect.Struct, reflect.Map:
		return "an object", '{'
	case reflect.Slice, reflect.Array:
		return "an array", '['
	}
	return "", 0
}

// fieldPath writes a JSON pointer as a field path: "/resources/0/type" is
// "resources[0].type"; the record itself is "record".
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		switch {
		case b.Len() > 0 && index(tok) >= 0:
			b.WriteString("[" + tok + "]")
			continue
		case b.Len() > 0:
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "record"
	}
	return clean(b.String(), 256)
}
