package event

import (
	"strings"
	"unicode/utf8"
)

// The longest value of each text field, in bytes: the decoder refuses a
// longer one, and Clean cuts to it.
const (
	maxID             = 128
	maxTenant         = 64
	maxAction         = 128
	maxCategory       = 32
	maxSourceName     = 128
	maxSourceHost     = 255
	maxSourceVersion  = 64
	maxActorType      = 32
	maxActorID        = 256
	maxActorName      = 256
	maxActorEmail     = 320
	maxActorIP        = 64
	maxUserAgent      = 1024
	maxSessionID      = 256
	maxAuthMethod     = 64
	maxTargetType     = 64
	maxTargetID       = 256
	maxTargetName     = 512
	maxResult         = 16
	maxReason         = 1024
	maxRequestID      = 128
	maxMethod         = 16
	maxPath           = 2048
	maxClassification = 64
	maxDataField      = 128
)

// The longest values, in bytes, of the fields other packages fill from
// what they are given.
const (
	MaxActorID   = maxActorID
	MaxActorIP   = maxActorIP
	MaxUserAgent = maxUserAgent
	MaxTargetID  = maxTargetID
	MaxReason    = maxReason
	MaxRequestID = maxRequestID
	MaxPath      = maxPath
	MaxMethod    = maxMethod
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
		{&ev.ID, maxID}, {&ev.Tenant, maxTenant}, {&ev.Action, maxAction}, {&ev.Category, maxCategory},
		{&ev.Source.Name, maxSourceName}, {&ev.Source.Host, maxSourceHost}, {&ev.Source.Version, maxSourceVersion},
		{&ev.Actor.Type, maxActorType}, {&ev.Actor.ID, maxActorID}, {&ev.Actor.Name, maxActorName},
		{&ev.Actor.Email, maxActorEmail}, {&ev.Actor.IP, maxActorIP}, {&ev.Actor.UserAgent, maxUserAgent},
		{&ev.Actor.SessionID, maxSessionID}, {&ev.Actor.Auth.Method, maxAuthMethod},
		{&ev.Target.Type, maxTargetType}, {&ev.Target.ID, maxTargetID}, {&ev.Target.Name, maxTargetName},
		{&ev.Outcome.Result, maxResult}, {&ev.Outcome.Reason, maxReason},
		{&ev.Request.ID, maxRequestID}, {&ev.Request.Method, maxMethod}, {&ev.Request.Path, maxPath},
		{&ev.Data.Classification, maxClassification},
	} {
		*f.s = CleanText(*f.s, f.max)
	}
	for i, s := range ev.Data.Fields {
		ev.Data.Fields[i] = CleanText(s, maxDataField)
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
