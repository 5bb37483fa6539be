package event

import (
	"errors"
	"strconv"
)

// ErrInexactNumber is the reason a number is refused by ExactNumber.
var ErrInexactNumber = errors.New("number cannot be represented exactly in canonical JSON, " +
	"which keeps numbers as doubles; send it as a string")

// ExactNumber reports whether the JSON number literal lit keeps its value
// in canonical form. RFC 8785 writes a number as the shortest text that
// reads back as the same double; lit keeps its value when that text
// denotes exactly the value lit denotes. So 0.1 and 1.50 and 1e2 are kept,
// while 9007199254740993 (2^53+1), 1e400 and 1e-400 are not: they would be
// stored as 9007199254740992, refused, and 0.
//
// lit must be a valid JSON number, as the JSON decoder has checked.
func ExactNumber(lit []byte) bool {
	if smallInteger(lit) {
		return true
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return false // out of range
	}
	var buf [32]byte
	canon := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	var d1, d2 [64]byte
	neg1, digits1, exp1 := decimal(d1[:0], lit)
	neg2, digits2, exp2 := decimal(d2[:0], canon)
	if len(digits1) == 0 || len(digits2) == 0 {
		return len(digits1) == len(digits2)
	}
	return neg1 == neg2 && exp1 == exp2 && string(digits1) == string(digits2)
}

// smallInteger reports whether lit is an integer written without fraction
// or exponent whose magnitude is at most 2^53, which every double holds.
func smallInteger(lit []byte) bool {
	if len(lit) > 0 && lit[0] == '-' {
		lit = lit[1:]
	}
	if len(lit) == 0 || len(lit) > 16 {
		return false
	}
	var n uint64
	for _, c := range lit {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + uint64(c-'0')
	}
	return n <= 1<<53
}

// maxExponent bounds the exponent decimal reads: far past any double's, so
// that a value beyond it still differs from every double's text, and far
// from int overflow.
const maxExponent = 1 << 40

// decimal returns the value of the JSON number lit as digits × 10^exp, with
// digits appended to buf and stripped of leading and trailing zeros; zero
// has no digits.
func decimal(buf, lit []byte) (neg bool, digits []byte, exp int) {
	i := 0
	if i < len(lit) && lit[i] == '-' {
		neg = true
		i++
	}
	seenPoint := false
	for ; i < len(lit); i++ {
		c := lit[i]
		switch {
		case c == '.':
			seenPoint = true
			continue
		case c < '0' || c > '9':
		case c == '0' && len(buf) == 0:
			if seenPoint {
				exp--
			}
			continue
		default:
			buf = append(buf, c)
			if seenPoint {
				exp--
			}
			continue
		}
		break
	}
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		exp += exponent(lit[i+1:])
	}
	for len(buf) > 0 && buf[len(buf)-1] == '0' {
		buf = buf[:len(buf)-1]
		exp++
	}
	return neg, buf, exp
}

// exponent reads an exponent's optional sign and digits, bounded by
// maxExponent.
func exponent(b []byte) int {
	sign := 1
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		if b[0] == '-' {
			sign = -1
		}
		b = b[1:]
	}
	n := 0
	for _, c := range b {
		n = min(n*10+int(c-'0'), maxExponent)
	}
	return sign * n
}
