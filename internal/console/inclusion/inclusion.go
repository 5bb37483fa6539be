// Package inclusion checks that one entry is in a tenant's log: that its
// leaf hashes to its leaf hash, that its RFC 6962 inclusion proof leads
// from that hash to the root of a checkpoint, and that the checkpoint is
// signed by a trusted verifier key. The checks are those attest verify and
// the evidence bundle verifier make, with the same code: checkpoint.Open
// for the signed note, and transparency-dev/merkle for the hashing and the
// proof. Nothing here is written by hand but the plumbing.
//
// The console compiles this package to WebAssembly (see ../verifier), so
// that a browser checks the server's answers without trusting its script
// to have done so: the package must not reach the database or the
// operating system.
package inclusion

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/attest/attest/internal/checkpoint"
	merkle "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Input is one entry and the evidence of its inclusion, as the read API
// answers them (GET /api/v1/audit/events/{sequence} and
// /api/v1/audit/proofs/inclusion) with the verifier key of
// GET /api/v1/audit/public-key. Hashes and the leaf are standard base64.
type Input struct {
	Sequence int64 `json:"sequence"`
	// Leaf is the entry's bytes as the log hashed them. When it is absent
	// the leaf hash is taken as given and only the proof is checked.
	Leaf     string   `json:"leaf,omitempty"`
	LeafHash string   `json:"leaf_hash,omitempty"`
	TreeSize int64    `json:"tree_size"`
	Hashes   []string `json:"hashes"`
	// Checkpoint is the signed note of the tree the proof leads to.
	Checkpoint string `json:"checkpoint"`
	// VerifierKey is the trusted signed-note verifier key of the log,
	// "<origin>+<key hash>+<base64 key>"; its name is the log's origin.
	VerifierKey string `json:"verifier_key"`
}

// Result says what was proved, or why not. The fields other than OK and
// Reason are filled as far as the checks got.
type Result struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
	// LeafHash is the hash the proof was checked for: the leaf's own
	// hash when the leaf was given, and LeafChecked says so.
	LeafHash    string `json:"leaf_hash,omitempty"`
	LeafChecked bool   `json:"leaf_checked"`
	Sequence    int64  `json:"sequence"`
	// TreeSize and Root are the signed checkpoint's.
	TreeSize int64  `json:"tree_size,omitempty"`
	Root     string `json:"root,omitempty"`
	Origin   string `json:"origin,omitempty"`
	// Signer is the key name of the verifying signature, KeyHash its
	// signed-note key hash in hex and KeyID the key's id in attest's key
	// history (GET /api/v1/audit/public-key?format=json).
	Signer  string `json:"signer,omitempty"`
	KeyHash string `json:"key_hash,omitempty"`
	KeyID   string `json:"key_id,omitempty"`
	// Proof is the number of hashes of the proof.
	Proof int `json:"proof_hashes"`
}

// Verify checks in, returning a Result whose Reason names the first check
// that failed.
func Verify(in Input) Result {
	r := Result{Sequence: in.Sequence, Proof: len(in.Hashes)}
	fail := func(format string, args ...any) Result {
		r.OK, r.Reason = false, fmt.Sprintf(format, args...)
		return r
	}
	v, err := note.NewVerifier(strings.TrimSpace(in.VerifierKey))
	if err != nil {
		return fail("the verifier key is not a signed-note verifier key: %v", err)
	}
	r.Origin, r.Signer, r.KeyHash = v.Name(), v.Name(), fmt.Sprintf("%08x", v.KeyHash())
	if pub, ok := ed25519Key(in.VerifierKey); ok {
		r.KeyID = checkpoint.KeyID(pub)
	}
	cp, err := checkpoint.Open([]byte(in.Checkpoint), v.Name(), strings.TrimSpace(in.VerifierKey))
	if err != nil {
		return fail("the checkpoint does not verify: %s", strings.TrimPrefix(err.Error(), "checkpoint: "))
	}
	r.TreeSize, r.Root = cp.Size, b64(cp.Root[:])
	if in.TreeSize != cp.Size {
		return fail("the proof is for a tree of %d entries, the signed checkpoint's has %d", in.TreeSize, cp.Size)
	}
	if in.Sequence < 0 || in.Sequence >= cp.Size {
		return fail("entry %d is not within the signed tree of %d entries", in.Sequence, cp.Size)
	}

	var lh []byte
	if in.LeafHash != "" {
		if lh, err = hash(in.LeafHash); err != nil {
			return fail("the leaf hash: %v", err)
		}
	}
	if in.Leaf != "" {
		leaf, err := base64.StdEncoding.DecodeString(in.Leaf)
		if err != nil {
			return fail("the leaf is not base64: %v", err)
		}
		own := rfc6962.DefaultHasher.HashLeaf(leaf)
		if lh != nil && !bytes.Equal(own, lh) {
			return fail("the leaf hashes to %s, not to the leaf hash %s given with it", b64(own), in.LeafHash)
		}
		lh, r.LeafChecked = own, true
	}
	if lh == nil {
		return fail("neither the leaf nor its hash was given")
	}
	r.LeafHash = b64(lh)

	proof := make([][]byte, len(in.Hashes))
	for i, s := range in.Hashes {
		if proof[i], err = hash(s); err != nil {
			return fail("proof hash %d: %v", i, err)
		}
	}
	err = merkle.VerifyInclusion(rfc6962.DefaultHasher, uint64(in.Sequence), uint64(cp.Size), lh, proof, cp.Root[:])
	if err != nil {
		return fail("entry %d is not in the signed tree: %v", in.Sequence, err)
	}
	r.OK = true
	r.Reason = fmt.Sprintf("entry %d is in the tree of %d entries whose root %s is signed by %s", in.Sequence,
		cp.Size, r.Root, r.Signer)
	return r
}

// VerifyJSON is Verify with its input and result in JSON, for callers in
// JavaScript. Input that is not JSON fails with the reason.
func VerifyJSON(in []byte) []byte {
	var i Input
	var r Result
	if err := json.Unmarshal(in, &i); err != nil {
		r.Reason = "the input is not the JSON of an entry and its proof: " + err.Error()
	} else {
		r = Verify(i)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return []byte(`{"ok":false,"reason":"the result could not be encoded"}`)
	}
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// hash decodes one base64 SHA-256 hash.
func hash(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %v", err)
	}
	if len(b) != rfc6962.DefaultHasher.Size() {
		return nil, fmt.Errorf("%d bytes, not the %d of a SHA-256 hash", len(b), rfc6962.DefaultHasher.Size())
	}
	return b, nil
}

// ed25519Key returns the public key of a signed-note Ed25519 verifier key,
// "<name>+<hex key hash>+<base64 of the algorithm byte 1 and the key>";
// the base64 may hold a '+' too.
func ed25519Key(vk string) ([]byte, bool) {
	parts := strings.SplitN(strings.TrimSpace(vk), "+", 3)
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(b) != 33 || b[0] != 1 {
		return nil, false
	}
	return b[1:], true
}
