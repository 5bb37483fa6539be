package controls

import "testing"

func TestRaises(t *testing.T) {
	for _, tc := range []struct {
		previous Status
		ran      bool
		now      Status
		want     bool
	}{
		{"", false, Fail, true},
		{"", false, NoEvidence, false},
		{"", false, Pass, false},
		{Pass, true, Fail, true},
		{Pass, true, NoEvidence, true},
		{Pass, true, Pass, false},
		{NoEvidence, true, Fail, true},
		{NoEvidence, true, NoEvidence, false},
		{Fail, true, Fail, false},
		{Fail, true, NoEvidence, false},
		{Fail, true, Pass, false},
	} {
		if got := Raises(tc.previous, tc.ran, tc.now); got != tc.want {
			t.Errorf("Raises(%q, %v, %q) = %v, want %v", tc.previous, tc.ran, tc.now, got, tc.want)
		}
	}
}

// TestSignature checks Sign against a digest made by another tool:
// printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
func TestSignature(t *testing.T) {
	const want = "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
	if got := Sign("secret", "1700000000", []byte("{}")); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}
