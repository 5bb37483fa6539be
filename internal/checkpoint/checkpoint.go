// Package checkpoint signs and verifies the log's checkpoints: C2SP
// tlog-checkpoint bodies in signed notes with Ed25519 signatures, through
// golang.org/x/mod/sumdb/note.
//
// One Ed25519 key signs the checkpoints of every tenant's log. Each tenant's
// log has its own origin, and the key name in the signature line is that
// origin, as tlog-checkpoint recommends; so each tenant has its own verifier
// key string although the public key bytes are shared.
package checkpoint

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	tlogfmt "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Key is the log signing key.
type Key struct {
	priv ed25519.PrivateKey
	// Public is the public key.
	Public ed25519.PublicKey
	// ID identifies the key in the key history: the first 16 hex digits of
	// the SHA-256 of the public key.
	ID string
}

// LogValue keeps the private key out of logs.
func (k *Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.String("algorithm", "ed25519"))
}

// KeyID returns the id of a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// VerifierKey returns the signed-note verifier key for a log origin:
// "<origin>+<key hash>+<base64 key>".
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	vk, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return "", fmt.Errorf("checkpoint: verifier key for %q: %w", origin, err)
	}
	return vk, nil
}

// Signer returns a note signer for one log origin.
func (k *Key) Signer(origin string) (note.Signer, error) {
	vk, err := VerifierKey(origin, k.Public)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vk)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: verifier for %q: %w", origin, err)
	}
	return &signer{name: origin, hash: v.KeyHash(), priv: k.priv}, nil
}

type signer struct {
	name string
	hash uint32
	priv ed25519.PrivateKey
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }

// Checkpoint is a tree head: a log's origin, size and root. Root is a
// tlog.Hash, the type tree.Hash names: this package does not import the
// tree, which reads the database, so that the console's browser verifier
// can compile it to WebAssembly.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Sign returns the signed note of a checkpoint.
func Sign(cp Checkpoint, s note.Signer) ([]byte, error) {
	body := tlogfmt.Checkpoint{Origin: cp.Origin, Size: uint64(cp.Size), Hash: cp.Root[:]}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(body)}, s)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: sign: %w", err)
	}
	return msg, nil
}

// Open verifies a signed checkpoint for the given origin against the
// verifier keys and returns its contents. It fails when none of the keys
// signed it, naming the signers it found instead.
func Open(msg []byte, origin string, vkeys ...string) (*Checkpoint, error) {
	if len(vkeys) == 0 {
		return nil, errors.New("checkpoint: no verifier key")
	}
	vs := make([]note.Verifier, len(vkeys))
	for i, vk := range vkeys {
		v, err := note.NewVerifier(vk)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: bad verifier key: %w", err)
		}
		vs[i] = v
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		var unv *note.UnverifiedNoteError
		var inv *note.InvalidSignatureError
		switch {
		case errors.As(err, &unv):
			var who []string
			for _, s := range unv.Note.UnverifiedSigs {
				who = append(who, fmt.Sprintf("%s (key hash %08x)", s.Name, s.Hash))
			}
			return nil, fmt.Errorf("checkpoint: not signed by a trusted key; signed by %s", strings.Join(who, ", "))
		case errors.As(err, &inv):
			return nil, fmt.Errorf("checkpoint: signature by %s does not verify", inv.Name)
		}
		return nil, fmt.Errorf("checkpoint: malformed signed note: %w", err)
	}
	for _, v := range vs {
		for _, sig := range n.Sigs {
			if sig.Name != v.Name() || sig.Hash != v.KeyHash() {
				continue
			}
			cp, _, _, err := tlogfmt.ParseCheckpoint(msg, origin, v)
			if err != nil {
				return nil, fmt.Errorf("checkpoint: %w", err)
			}
			if cp.Size > 1<<62 || len(cp.Hash) != sha256.Size {
				return nil, errors.New("checkpoint: malformed tree size or root")
			}
			return &Checkpoint{Origin: cp.Origin, Size: int64(cp.Size), Root: tlog.Hash(cp.Hash)}, nil
		}
	}
	return nil, errors.New("checkpoint: no trusted signature")
}
