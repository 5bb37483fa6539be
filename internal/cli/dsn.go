package cli

import (
	"errors"
	"net/url"
	"sort"
	"strings"

	"github.com/attest/attest/internal/store"
)

// errDSN is the one complaint about a connection string. It never quotes
// the string, which may hold a password.
var errDSN = errors.New("--database-url must be a postgres:// or postgresql:// URL, " +
	"or keyword=value pairs such as \"host=db dbname=attest user=attest password=...\"")

// connURL returns the PostgreSQL connection string s as a URL. s may be a
// postgres:// or postgresql:// URL, or libpq keyword=value pairs, whose
// values may be single-quoted with \' and \\ inside. Of the pairs, user and
// password become the URL's user information and the others its query
// parameters, which the driver reads as it reads the pairs.
func connURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		if _, err := url.Parse(s); err != nil {
			return "", errDSN // url's errors quote the URL
		}
		return s, nil
	}
	pairs, err := parseKeywordValues(s)
	if err != nil {
		return "", err
	}
	u := &url.URL{Scheme: "postgres", Path: "/"}
	user, hasUser := pairs["user"]
	password, hasPassword := pairs["password"]
	switch {
	case hasPassword:
		u.User = url.UserPassword(user, password)
	case hasUser:
		u.User = url.User(user)
	}
	delete(pairs, "user")
	delete(pairs, "password")
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var q []string
	for _, k := range keys {
		// The driver, like libpq, reads + as itself, not as a space.
		q = append(q, k+"="+strings.ReplaceAll(url.QueryEscape(pairs[k]), "+", "%20"))
	}
	u.RawQuery = strings.Join(q, "&")
	return u.String(), nil
}

// parseKeywordValues reads libpq keyword=value pairs.
func parseKeywordValues(s string) (map[string]string, error) {
	pairs := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, errDSN
		}
		key := strings.TrimRight(s[:eq], " \t\n\r")
		for _, c := range key {
			if !(c >= 'a' && c <= 'z' || c == '_') {
				return nil, errDSN
			}
		}
		s = strings.TrimLeft(s[eq+1:], " \t\n\r")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 && !closed {
				switch c := s[0]; {
				case c == '\\' && len(s) > 1:
					val.WriteByte(s[1])
					s = s[2:]
				case c == '\'':
					closed = true
					s = s[1:]
				default:
					val.WriteByte(c)
					s = s[1:]
				}
			}
			if !closed {
				return nil, errDSN
			}
		} else {
			for len(s) > 0 && !strings.ContainsRune(" \t\n\r", rune(s[0])) {
				if s[0] == '\\' && len(s) > 1 {
					s = s[1:]
				}
				val.WriteByte(s[0])
				s = s[1:]
			}
		}
		pairs[key] = val.String()
	}
	if len(pairs) == 0 {
		return nil, errDSN
	}
	return pairs, nil
}

// redactDSN returns a PostgreSQL connection string in either form, for
// logs, with its password replaced. One that cannot be read is replaced
// whole.
func redactDSN(s string) string {
	u, err := connURL(s)
	if err != nil {
		return "REDACTED"
	}
	return store.RedactURL(u)
}
