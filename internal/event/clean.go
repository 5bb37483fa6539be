package event

import (
	"strings"
	"unicode/utf8"
)

// Clean makes an event that attest assembles itself, from what a client
// sent (a URL path, a header, a key's name), fit the rules its decoder holds
// stored leaves to: every text field valid UTF-8 without control
// characters, each replaced by U+FFFD, and cut at a character boundary to
// its field's limit. A leaf its own decoder refused could not be read back.
func (ev *Event) Clean() {
	for _, f := range []struct {
		s   *string
		max int
	}{
		{&ev.ID, 128}, {&ev.Action, 128}, {&ev.Category, 32},
		{&ev.Source.Name, 128}, {&ev.Source.Host, 255}, {&ev.Source.Version, 64},
		{&ev.Actor.Type, 32}, {&ev.Actor.ID, 256}, {&ev.Actor.Name, 256}, {&ev.Actor.Email, 320},
		{&ev.Actor.IP, 64}, {&ev.Actor.UserAgent, 1024}, {&ev.Actor.SessionID, 256}, {&ev.Actor.Auth.Method, 64},
		{&ev.Target.Type, 64}, {&ev.Target.ID, 256}, {&ev.Target.Name, 512},
		{&ev.Outcome.Result, 16}, {&ev.Outcome.Reason, 1024},
		{&ev.Request.ID, 128}, {&ev.Request.Method, 16}, {&ev.Request.Path, 2048},
		{&ev.Data.Classification, 64},
	} {
		*f.s = CleanText(*f.s, f.max)
	}
	for i, s := range ev.Data.Fields {
		ev.Data.Fields[i] = CleanText(s, 128)
	}
}

// CleanText returns s as valid UTF-8 with each control character and
// invalid byte replaced by U+FFFD, cut to at most max bytes without
// splitting a character.
func CleanText(s string, max int) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return utf8.RuneError
			}
			return r
		}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
