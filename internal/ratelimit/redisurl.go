package ratelimit

import (
	"errors"
	"net/url"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseRedisURL parses the value of the --redis-url flag, such as
// redis://user:password@host:6379/0, into client options.
//
// Its error names the flag and the reason but never carries the URL or any
// part of its password. It does not wrap the error of redis.ParseURL, whose
// text can contain the whole URL.
func ParseRedisURL(raw string) (*redis.Options, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("ratelimit: invalid --redis-url: empty")
	}
	if !strings.Contains(raw, "://") {
		return nil, errors.New("ratelimit: invalid --redis-url: " +
			"want a URL such as redis://host:6379/0")
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, errors.New("ratelimit: invalid --redis-url: " + redact(reason(err), raw))
	}
	return opts, nil
}

// quoted matches a quoted fragment of an input in an error message, with
// the space or ": " before it.
var quoted = regexp.MustCompile(`(?::? )?"(?:[^"\\]|\\.)*"`)

// reason returns why redis.ParseURL refused a URL, without the URL itself or
// the fragments of it that the messages quote: a misplaced character in a
// password can make net/url quote part of the password as a bad host, port
// or escape.
func reason(err error) string {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	msg = strings.TrimPrefix(msg, "redis: ")
	return quoted.ReplaceAllString(msg, "")
}

// redact removes from msg whatever in raw looks like a password: the text
// between the scheme and the last '@', after its first ':', whether or not
// it is percent-encoded, and each piece of it between the characters that
// would end a URL's authority early and so move it into the path or query.
func redact(msg, raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	at := strings.LastIndex(rest, "@")
	if !ok || at < 0 {
		return msg
	}
	pw := rest[:at]
	if _, p, ok := strings.Cut(pw, ":"); ok {
		pw = p
	}
	secrets := []string{pw}
	if s, err := url.PathUnescape(pw); err == nil {
		secrets = append(secrets, s)
	}
	secrets = append(secrets, strings.FieldsFunc(pw, func(r rune) bool {
		return r == '/' || r == '?' || r == '#'
	})...)
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}
