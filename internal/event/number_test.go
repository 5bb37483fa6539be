package event

import (
	"bytes"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

func TestExactNumber(t *testing.T) {
	for _, tc := range []struct {
		lit  string
		want bool
	}{
		{"0", true}, {"-0", true}, {"-0.0e-5", true}, {"0e400", true}, {"0.000e-99999999999999999999", true},
		{"1", true}, {"-17", true}, {"1.50", true}, {"100e-2", true}, {"1E2", true}, {"0.1", true},
		{"0.3", true}, {"0.30000000000000004", true}, {"1e-7", true}, {"1e21", true}, {"1e22", true}, {"1e23", true},
		{"9007199254740992", true}, {"-9007199254740992", true}, {"9007199254740994", true},
		{"18014398509481984", true}, {"1.7976931348623157e308", true}, {"5e-324", true},
		{"9007199254740993", false}, {"-9007199254740993", false}, {"12345678901234567890", false},
		{"123456789012345678", false}, {"1.0000000000000001", false},
		{"0.1000000000000000055511151231257827", false}, {"4.9406564584124654e-324", false},
		{"1e400", false}, {"-1e400", false}, {"1.7976931348623159e308", false},
		{"1e-400", false}, {"2e-324", false}, {"1e99999999999999999999", false},
	} {
		if got := ExactNumber([]byte(tc.lit)); got != tc.want {
			t.Errorf("ExactNumber(%s) = %v, want %v", tc.lit, got, tc.want)
		}
	}
}

// TestExactNumberAgainstBig compares ExactNumber with exact rational
// arithmetic on the literal and on its canonical text as the JSON library
// writes it, over literals near the edges: integers around 2^53, long
// fractions, and exponents at the ends of the double range.
func TestExactNumberAgainstBig(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lits := []string{"0.1", "9007199254740993"}
	for range 20000 {
		lits = append(lits, randomNumber(r))
	}
	for _, lit := range lits {
		want := exactByBig(t, lit)
		if got := ExactNumber([]byte(lit)); got != want {
			t.Errorf("ExactNumber(%s) = %v, want %v", lit, got, want)
		}
	}
}

func randomNumber(r *rand.Rand) string {
	var b strings.Builder
	if r.IntN(2) == 0 {
		b.WriteByte('-')
	}
	switch r.IntN(4) {
	case 0: // integers of 15 to 20 digits
		fmt.Fprintf(&b, "%d", (uint64(1)<<53)+uint64(r.IntN(64))-32)
		b.WriteString(strings.Repeat("0", r.IntN(5)))
	case 1: // doubles printed with too many or too few digits
		fmt.Fprintf(&b, "%.*g", 1+r.IntN(25), r.Float64()*10)
	default: // digits and exponents at the ends of the range
		b.WriteString(fmt.Sprint(1 + r.IntN(9)))
		if n := r.IntN(20); n > 0 {
			b.WriteByte('.')
			for range n {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
		fmt.Fprintf(&b, "e%d", r.IntN(700)-350)
	}
	return strings.Replace(b.String(), "e+", "e", 1)
}

// exactByBig reports whether the canonical text of lit denotes exactly
// the value of lit.
func exactByBig(t *testing.T, lit string) bool {
	canon := jsontext.Value(lit)
	if err := canon.Canonicalize(); err != nil {
		return false
	}
	x, ok1 := new(big.Rat).SetString(lit)
	y, ok2 := new(big.Rat).SetString(string(canon))
	if !ok1 || !ok2 {
		t.Fatalf("big.Rat cannot read %s or %s", lit, canon)
	}
	return x.Cmp(y) == 0
}

func TestNumberRule(t *testing.T) {
	for _, tc := range []struct{ details, field string }{
		{`{"n":9007199254740993}`, "details.n"},
		{`{"x":[1,2,1e400]}`, "details.x[2]"},
		{`{"a":{"b":[{"c":0.1000000000000000055511151231257827}]}}`, "details.a.b[0].c"},
		{`{"tiny":1e-400}`, "details.tiny"},
	} {
		fe := decodeErr(t, `{`+minimal+`,"details":`+tc.details+`}`)
		if fe.Field != tc.field || fe.Reason != ErrInexactNumber.Error() {
			t.Errorf("details %s: error %q, want %s: %v", tc.details, fe, tc.field, ErrInexactNumber)
		}
	}
	ev, err := DecodeProducer([]byte(`{`+minimal+`,"details":{"a":0.1,"b":1.50,"c":1e2,"d":9007199254740992}}`),
		&Limits{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":0.1,"b":1.5,"c":100,"d":9007199254740992}`; string(ev.Details) != want {
		t.Errorf("details = %s, want %s", ev.Details, want)
	}
}

// TestLeafNumbersNotRechecked checks that DecodeLeaf reads the numbers of
// a stored leaf as they are, leaving the number rule to the producer form.
func TestLeafNumbersNotRechecked(t *testing.T) {
	ev, err := DecodeProducer([]byte(`{`+minimal+`,"details":{"n":1}}`), &Limits{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	ev.Tenant = "t"
	leaf := bytes.Replace(AppendLeaf(nil, ev, nil), []byte(`"n":1`), []byte(`"n":9007199254740993`), 1)
	if _, _, err := DecodeLeaf(leaf); err != nil {
		t.Errorf("DecodeLeaf(%s) = %v, want no error", leaf, err)
	}
}
