// Package identity holds attest's people: accounts identified by a
// canonical email, Argon2id passwords under NIST SP 800-63B rules, second
// factors (TOTP, WebAuthn, recovery codes), failed-attempt counters, the
// login state machine and sessions.
package identity

import (
	"errors"
	"strings"

	"golang.org/x/text/secure/precis"
)

// MaxEmailLen bounds an email address, in bytes (RFC 5321's path limit).
const MaxEmailLen = 254

// ErrBadEmail means an email address cannot identify an account.
var ErrBadEmail = errors.New("email must be an address such as name@example.com")

// CanonicalEmail returns the form of an email address that identifies an
// account: PRECIS UsernameCaseMapped (RFC 8265), which maps full-width and
// half-width forms to their ordinary ones, folds case and normalises to
// NFC, so that "Ana@Example.com" and "ａｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ" are one
// identity. The address must have one @ with text on both sides.
func CanonicalEmail(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" || len(s) > 4*MaxEmailLen {
		return "", ErrBadEmail
	}
	c, err := precis.UsernameCaseMapped.String(s)
	if err != nil {
		return "", ErrBadEmail
	}
	local, domain, ok := strings.Cut(c, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(c) > MaxEmailLen ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", ErrBadEmail
	}
	return c, nil
}
