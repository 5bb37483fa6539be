package inclusion_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/console/inclusion"
	"golang.org/x/mod/sumdb/tlog"
)

const origin = "attest.example/attest/acme"

// memTree is an RFC 6962 tree in memory, built and proved with
// golang.org/x/mod/sumdb/tlog: another implementation than the one the
// package verifies with.
type memTree struct{ stored []tlog.Hash }

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.stored[x]
	}
	return out, nil
}

func (m *memTree) add(t *testing.T, n int64, leaf []byte) {
	hs, err := tlog.StoredHashes(n, leaf, m)
	if err != nil {
		t.Fatal(err)
	}
	m.stored = append(m.stored, hs...)
}

// fixture is a log of size entries, signed, and the input proving entry
// seq in it.
func fixture(t *testing.T, size, seq int64) (inclusion.Input, string) {
	t.Helper()
	m := &memTree{}
	var leaves [][]byte
	for i := int64(0); i < size; i++ {
		leaf := fmt.Appendf(nil, `{"action":"a.b","sequence":%d}`, i)
		leaves = append(leaves, leaf)
		m.add(t, i, leaf)
	}
	root, err := tlog.TreeHash(size, m)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := tlog.ProveRecord(size, seq, m)
	if err != nil {
		t.Fatal(err)
	}
	k, _, err := checkpoint.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := k.Signer(origin)
	if err != nil {
		t.Fatal(err)
	}
	note, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: size, Root: root}, s)
	if err != nil {
		t.Fatal(err)
	}
	vk, err := checkpoint.VerifierKey(origin, k.Public)
	if err != nil {
		t.Fatal(err)
	}
	lh := tlog.RecordHash(leaves[seq])
	in := inclusion.Input{Sequence: seq, Leaf: b64(leaves[seq]), LeafHash: b64(lh[:]), TreeSize: size,
		Checkpoint: string(note), VerifierKey: vk}
	for _, h := range proof {
		in.Hashes = append(in.Hashes, b64(h[:]))
	}
	return in, b64(root[:])
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// flip changes one bit of the base64 value s, at byte i.
func flip(s string, i int) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	b[i%len(b)] ^= 1
	return b64(b)
}

func TestGoodProofPasses(t *testing.T) {
	for _, tc := range []struct{ size, seq int64 }{{1, 0}, {2, 1}, {7, 3}, {300, 0}, {300, 257}, {300, 299}} {
		in, root := fixture(t, tc.size, tc.seq)
		r := inclusion.Verify(in)
		if !r.OK || !r.LeafChecked || r.Root != root || r.TreeSize != tc.size || r.Origin != origin {
			t.Errorf("entry %d of %d: %+v, want it proved in root %s", tc.seq, tc.size, r, root)
		}
		if r.KeyID == "" || len(r.KeyHash) != 8 || !strings.Contains(r.Reason, root) {
			t.Errorf("entry %d of %d: the result does not name the key and root: %+v", tc.seq, tc.size, r)
		}
		// The proof alone, for a leaf hash without the leaf.
		in.Leaf = ""
		if r := inclusion.Verify(in); !r.OK || r.LeafChecked {
			t.Errorf("entry %d of %d by its hash: %+v", tc.seq, tc.size, r)
		}
	}
}

func TestTamperingFails(t *testing.T) {
	good, _ := fixture(t, 300, 123)
	_, otherVK := func() (inclusion.Input, string) {
		in, _ := fixture(t, 2, 0)
		return in, in.VerifierKey
	}()
	sig := strings.LastIndex(good.Checkpoint, " ") + 1 // the signature's base64
	for _, tc := range []struct {
		name   string
		edit   func(*inclusion.Input)
		reason string
	}{
		{"a bit of the leaf", func(in *inclusion.Input) { in.Leaf = flip(in.Leaf, 5) }, "the leaf hashes to"},
		{"a bit of the leaf hash", func(in *inclusion.Input) { in.LeafHash = flip(in.LeafHash, 0) }, "the leaf hashes to"},
		{"a bit of the leaf, its hash along", func(in *inclusion.Input) {
			in.Leaf = flip(in.Leaf, 5)
			in.LeafHash = ""
		}, "not in the signed tree"},
		{"a bit of a proof hash", func(in *inclusion.Input) { in.Hashes[2] = flip(in.Hashes[2], 31) }, "not in the signed tree"},
		{"a proof hash left out", func(in *inclusion.Input) { in.Hashes = in.Hashes[1:] }, "not in the signed tree"},
		{"another sequence", func(in *inclusion.Input) { in.Sequence = 124 }, "not in the signed tree"},
		{"a sequence beyond the tree", func(in *inclusion.Input) { in.Sequence = 300 }, "not within the signed tree"},
		{"another tree size", func(in *inclusion.Input) { in.TreeSize = 299 }, "a tree of 299 entries"},
		{"the checkpoint's size", func(in *inclusion.Input) {
			in.Checkpoint = strings.Replace(in.Checkpoint, "\n300\n", "\n301\n", 1)
		}, "the checkpoint does not verify"},
		{"a bit of the checkpoint's root", func(in *inclusion.Input) {
			lines := strings.SplitN(in.Checkpoint, "\n", 4)
			lines[2] = flip(lines[2], 3)
			in.Checkpoint = strings.Join(lines, "\n")
		}, "the checkpoint does not verify"},
		{"a bit of the signature", func(in *inclusion.Input) {
			s := strings.TrimSuffix(in.Checkpoint[sig:], "\n")
			in.Checkpoint = in.Checkpoint[:sig] + flip(s, 40) + "\n"
		}, "the checkpoint does not verify"},
		{"another key", func(in *inclusion.Input) { in.VerifierKey = otherVK }, "not signed by a trusted key"},
		{"no key", func(in *inclusion.Input) { in.VerifierKey = "" }, "the verifier key is not"},
		{"a proof hash too short", func(in *inclusion.Input) { in.Hashes[0] = "AAAA" }, "proof hash 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := good
			in.Hashes = append([]string(nil), good.Hashes...)
			tc.edit(&in)
			r := inclusion.Verify(in)
			if r.OK || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("got ok %v, reason %q; want a failure saying %q", r.OK, r.Reason, tc.reason)
			}
		})
	}
}

func TestVerifyJSON(t *testing.T) {
	in, root := fixture(t, 5, 4)
	b, _ := json.Marshal(in)
	var r inclusion.Result
	if err := json.Unmarshal(inclusion.VerifyJSON(b), &r); err != nil || !r.OK || r.Root != root {
		t.Errorf("VerifyJSON: %+v, %v", r, err)
	}
	for _, bad := range []string{"", "nope", "[]"} {
		r := inclusion.Result{OK: true}
		if err := json.Unmarshal(inclusion.VerifyJSON([]byte(bad)), &r); err != nil || r.OK || r.Reason == "" {
			t.Errorf("VerifyJSON(%q): %+v, %v", bad, r, err)
		}
	}
}
