package server

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"

	"github.com/attest/attest/internal/event"
	"github.com/go-json-experiment/json/jsontext"
)

// redacted replaces an API key found where a client put one by mistake: in
// a path, a query, a header other than Authorization.
const redacted = "atk_REDACTED"

// secretPattern matches an API key, or the start of one cut short. It is
// deliberately wider than a valid key: a malformed key is still a secret.
var secretPattern = regexp.MustCompile(`(?i)atk_[a-z0-9_\-]*`)

// tokenPattern matches people's secrets: session (ats_), pending login
// (atl_) and enrolment (ate_) tokens. It needs the 16 letters of the id,
// since "ate_" ends words such as "state_".
var tokenPattern = regexp.MustCompile(`(?i)(at[sle])_[a-z2-7]{16}[a-z0-9_\-]*`)

// redact replaces every API key and token in s with a fixed marker.
func redact(s string) string {
	if !containsSecret(s) {
		return s
	}
	return tokenPattern.ReplaceAllString(secretPattern.ReplaceAllString(s, redacted), "${1}_REDACTED")
}

func containsSecret(s string) bool {
	if len(s) < 4 {
		return false
	}
	l := strings.ToLower(s)
	return strings.Contains(l, "atk_") || strings.Contains(l, "ats_") || strings.Contains(l, "atl_") ||
		strings.Contains(l, "ate_")
}

// redactEvent removes API keys from the parts of a self-audit event that
// carry what the client sent.
func redactEvent(ev *event.Event) {
	for _, p := range []*string{&ev.Request.Path, &ev.Target.Type, &ev.Target.ID, &ev.Target.Name,
		&ev.Outcome.Reason, &ev.Actor.Name, &ev.Actor.UserAgent} {
		*p = redact(*p)
	}
	if len(ev.Details) > 0 && containsSecret(string(ev.Details)) {
		// The canonical form escapes neither letters nor "_", so a key in
		// it reads as in the clear; the marker keeps the JSON valid, and
		// canonicalizing again restores the member order.
		v := jsontext.Value(tokenPattern.ReplaceAll(secretPattern.ReplaceAll(ev.Details, []byte(redacted)),
			[]byte("${1}_REDACTED")))
		if v.Canonicalize() != nil {
			v = nil
		}
		ev.Details = v
	}
}

// redactingHandler is a slog handler that removes API keys from messages
// and from string and error attributes before they reach the log.
type redactingHandler struct{ h slog.Handler }

func (r redactingHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	for i := range as {
		as[i] = redactAttr(as[i])
	}
	return redactingHandler{r.h.WithAttrs(as)}
}

func (r redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{r.h.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(redact(v.String()))
	case slog.KindGroup:
		as := v.Group()
		out := make([]slog.Attr, len(as))
		for i := range as {
			out[i] = redactAttr(as[i])
		}
		a.Value = slog.GroupValue(out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok && containsSecret(err.Error()) {
			a.Value = slog.AnyValue(errors.New(redact(err.Error())))
		} else {
			a.Value = v
		}
	default:
		a.Value = v
	}
	return a
}
