package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn/frequency"
	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Argon2Params are the Argon2id cost parameters of new password hashes.
type Argon2Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultArgon2 is OWASP's first recommended Argon2id configuration: 19 MiB
// of memory, two passes, one lane. Hashes made with other parameters still
// verify, and are rehashed with these at the next successful login.
var DefaultArgon2 = Argon2Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

// MinArgon2 is the floor below which parameters are refused: OWASP's
// minimum in its memory-time trade-off.
var MinArgon2 = Argon2Params{MemoryKiB: 7 * 1024, Time: 1, Threads: 1}

const (
	saltLen = 16
	hashLen = 32
)

// hashSlots bounds the Argon2id computations running at once: each holds
// its memory for the whole computation, so a burst of logins must queue
// rather than exhaust the host.
var hashSlots = make(chan struct{}, 2*runtime.GOMAXPROCS(0))

// Hasher hashes and verifies passwords.
type Hasher struct {
	Params Argon2Params
}

// Hash returns the PHC string of password under h's parameters.
func (h Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	p := h.Params
	sum, err := compute(ctx, password, salt, p, hashLen)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

func compute(ctx context.Context, password string, salt []byte, p Argon2Params, n uint32) ([]byte, error) {
	select {
	case hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, n), nil
}

// errBadHash means a stored hash does not parse; it never verifies.
var errBadHash = errors.New("identity: stored password hash is malformed")

// Verify reports whether password matches the PHC string stored, and
// whether the stored hash should be replaced by one under h's parameters.
// A hash that does not parse never matches.
func (h Hasher) Verify(ctx context.Context, stored, password string) (ok, rehash bool, err error) {
	p, salt, sum, err := parsePHC(stored)
	if err != nil {
		return false, false, err
	}
	got, err := compute(ctx, password, salt, p, uint32(len(sum)))
	if err != nil {
		return false, false, err
	}
	if subtle.ConstantTimeCompare(got, sum) != 1 {
		return false, false, nil
	}
	return true, p != h.Params || len(salt) != saltLen || len(sum) != hashLen, nil
}

// Current reports whether a stored hash was made under h's parameters,
// with the salt and digest lengths new hashes have: a hash that is not
// current is replaced at its account's next successful login. A hash
// that does not parse is an error.
func (h Hasher) Current(stored string) (bool, error) {
	p, salt, sum, err := parsePHC(stored)
	if err != nil {
		return false, err
	}
	return p == h.Params && len(salt) == saltLen && len(sum) == hashLen, nil
}

func parsePHC(s string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil ||
		threads == 0 || threads > 255 {
		return p, nil, nil, errBadHash
	}
	p.Threads = uint8(threads)
	if p.MemoryKiB < MinArgon2.MemoryKiB || p.MemoryKiB > 4<<20 || p.Time < 1 || p.Time > 64 {
		return p, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	sum, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(sum) < 16 || len(sum) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, sum, nil
}

// dummyHash is verified against when an account does not exist, so that an
// unknown account costs the same work as a wrong password. It is made at
// the first login, not when a command that never logs anyone in starts.
var dummyHash = sync.OnceValue(func() string {
	s, err := Hasher{Params: DefaultArgon2}.Hash(context.Background(), "attest: no such account")
	if err != nil {
		panic(err)
	}
	return s
})

// Prepare makes what the first login would otherwise make, so that it
// takes no longer than any other: serve calls it as it starts.
func Prepare() {
	dummyHash()
	commonPasswords()
}

// Password rules, after NIST SP 800-63B: a length range and a blocklist, and
// no composition rules. Every account also has a second factor, for which
// NIST's floor is eight characters; attest asks for more.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 128
)

// PasswordError says why a password is refused. It never holds the
// password.
type PasswordError struct{ Reason string }

func (e *PasswordError) Error() string { return "password " + e.Reason }

var commonPasswords = sync.OnceValue(func() map[string]bool {
	list := frequency.FrequencyLists["passwords"]
	m := make(map[string]bool, len(list))
	for _, p := range list {
		m[p] = true
	}
	return m
})

// CheckPassword applies the password rules. context holds words a password
// must not be built on: the email, the user's name, the tenant's name. The
// length counts characters after NFKC normalisation, which is also the
// form that is hashed.
func CheckPassword(password string, context ...string) error {
	if !utf8.ValidString(password) {
		return &PasswordError{"must be valid UTF-8"}
	}
	n := utf8.RuneCountInString(norm.NFKC.String(password))
	switch {
	case n < MinPasswordLen:
		return &PasswordError{fmt.Sprintf("must have at least %d characters", MinPasswordLen)}
	case n > MaxPasswordLen:
		return &PasswordError{fmt.Sprintf("must have at most %d characters", MaxPasswordLen)}
	}
	lower := strings.ToLower(norm.NFKC.String(password))
	if commonPasswords()[lower] || repetitive(lower) {
		return &PasswordError{"is too common: it is on a list of passwords attackers try first"}
	}
	if ownPart(lower, context) < MinPasswordLen/2 {
		return &PasswordError{"is built on your name, email or organisation: choose something unrelated"}
	}
	if strings.Contains(lower, "attest") && len(lower) < MinPasswordLen+6 {
		return &PasswordError{"is built on the service's name: choose something unrelated"}
	}
	return nil
}

// NormalizePassword is the form of a password that is hashed.
func NormalizePassword(p string) string { return norm.NFKC.String(p) }

// repetitive reports a password of one repeated character or of a run of
// consecutive characters, such as "aaaaaaaaaaaa" or "123456789012".
func repetitive(p string) bool {
	rs := []rune(p)
	same, run := true, true
	for i := 1; i < len(rs); i++ {
		same = same && rs[i] == rs[0]
		d := rs[i] - rs[i-1]
		run = run && (d == 1 || d == -1 || (rs[i] == '0' && rs[i-1] == '9'))
	}
	return same || run
}

// contextWords splits a piece of context, such as an email, into the
// words a password must not be built on, the whole of it among them.
// ownPart counts the letters and digits of password left once every word
// of context, of four letters or more, is taken out wherever it stands:
// "MarkTwain2026" for Mark Twain leaves 4, "markmarkmark" none.
func ownPart(password string, context []string) int {
	var words []string
	for _, c := range context {
		for _, w := range contextWords(c) {
			if utf8.RuneCountInString(w) >= 4 {
				words = append(words, w)
			}
		}
	}
	// The longest first, so that a whole address goes before its parts.
	slices.SortFunc(words, func(a, b string) int { return len(b) - len(a) })
	for _, w := range words {
		password = strings.ReplaceAll(password, w, " ")
	}
	n := 0
	for _, r := range password {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			n++
		}
	}
	return n
}

func contextWords(s string) []string {
	s = strings.ToLower(s)
	words := strings.FieldsFunc(s, func(r rune) bool {
		return r == '@' || r == '.' || r == ' ' || r == '-' || r == '_' || r == '+'
	})
	if _, domain, ok := strings.Cut(s, "@"); ok {
		words = append(words, domain)
	}
	return append(words, s)
}
