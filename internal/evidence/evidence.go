// Package evidence is the auditor's evidence bundle: a zip file holding a
// tenant's events of a period of received times, with what proves them
// against a public key alone, and the offline verifier of such a file.
//
// A bundle holds:
//
//	manifest.json          the period, the sequence range, the tree, and the SHA-256 of the files above the entries
//	checkpoint.txt         the signed checkpoint every proof is against
//	start-checkpoint.txt   the newest signed checkpoint at or before the period's first entry, if any
//	consistency.json       the proof that the checkpoint extends the start checkpoint
//	public-keys.json       the instance's signing key history
//	events/N.json          the leaf of each entry N of the period, byte for byte
//	proofs/N.tlog-proof    its inclusion proof, in C2SP tlog-proof form
//	before/N.json, .tlog-proof   the entry just before the period, when there is one
//	after/N.json, .tlog-proof    the entry just after it, when the checkpoint holds one
//
// Since received times never decrease along the log, the entries of a
// period are one contiguous range of sequence numbers. The neighbours, with
// their proofs, show that the range is whole: the entry before was
// received before the period and the one after at or after its end.
//
// A bundle holds exactly these files, named exactly so; anything else, or
// any other spelling of a name, fails verification. The manifest is not
// signed: what it says is believed only where the signed checkpoint and
// the proofs bear it out, and the period it names is checked against the
// one the auditor asked for when given.
package evidence

import (
	"fmt"
	"time"
)

// Format names the bundle format in its manifest.
const Format = "attest-evidence/v1"

// Manifest describes a bundle.
type Manifest struct {
	Format string `json:"format"`
	// Origin is the checkpoint origin of the tenant's log.
	Origin string `json:"origin"`
	Tenant string `json:"tenant"`
	// From and To bound the period of received times: From <= t < To.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// First and End bound the sequence numbers of the period's entries:
	// First <= n < End.
	First int64 `json:"first"`
	End   int64 `json:"end"`
	// TreeSize and Root are those of checkpoint.txt.
	TreeSize int64  `json:"tree_size"`
	Root     string `json:"root"`
	// StartSize is the size of start-checkpoint.txt; 0 when there is none.
	StartSize int64     `json:"start_size"`
	CreatedAt time.Time `json:"created_at"`
	// Files maps the checkpoints, the consistency proof and the key
	// history to their SHA-256, in hex. Entries and their proofs are not
	// listed: each proves itself against the checkpoint.
	Files map[string]string `json:"files"`
}

// The files of a bundle.
const (
	ManifestFile        = "manifest.json"
	CheckpointFile      = "checkpoint.txt"
	StartCheckpointFile = "start-checkpoint.txt"
	ConsistencyFile     = "consistency.json"
	PublicKeysFile      = "public-keys.json"
)

// EventFile and ProofFile name the leaf and the inclusion proof of entry
// seq in dir: "events" and "proofs" for the period's entries, "before" and
// "after" for its neighbours (whose proofs sit beside their leaves).
func EventFile(dir string, seq int64) string { return fmt.Sprintf("%s/%020d.json", dir, seq) }

// ProofFile names the inclusion proof of entry seq.
func ProofFile(dir string, seq int64) string { return fmt.Sprintf("%s/%020d.tlog-proof", dir, seq) }

// ConsistencyProof is consistency.json: hashes proving that the tree of
// size New extends the tree of size Old.
type ConsistencyProof struct {
	Old    int64    `json:"old"`
	New    int64    `json:"new"`
	Hashes [][]byte `json:"hashes"`
}

// PublicKey is one entry of public-keys.json.
type PublicKey struct {
	ID        string     `json:"id"`
	Algorithm string     `json:"algorithm"`
	PublicKey []byte     `json:"public_key"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
}
