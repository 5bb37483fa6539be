package checkpoint_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/tree"
	"golang.org/x/mod/sumdb/note"
)

const origin = "attest.example/acme"

// newKey creates a signing key in a temporary directory and returns it with
// its verifier key for origin.
func newKey(t *testing.T) (*checkpoint.Key, string) {
	t.Helper()
	k, created, err := checkpoint.LoadOrCreateKey(filepath.Join(t.TempDir(), "log-signing.key"))
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey: created %v, %v", created, err)
	}
	vk, err := checkpoint.VerifierKey(origin, k.Public)
	if err != nil {
		t.Fatal(err)
	}
	return k, vk
}

// signed returns a checkpoint of origin and its signed note.
func signed(t *testing.T, k *checkpoint.Key) (checkpoint.Checkpoint, []byte) {
	t.Helper()
	s, err := k.Signer(origin)
	if err != nil {
		t.Fatal(err)
	}
	cp := checkpoint.Checkpoint{Origin: origin, Size: 42}
	for i := range cp.Root {
		cp.Root[i] = byte(i)
	}
	msg, err := checkpoint.Sign(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	return cp, msg
}

func TestSignOpen(t *testing.T) {
	k, vk := newKey(t)
	cp, msg := signed(t, k)
	if want := origin + "\n42\n"; !strings.HasPrefix(string(msg), want) {
		t.Errorf("note %q does not start with %q", msg, want)
	}
	got, err := checkpoint.Open(msg, origin, vk)
	if err != nil {
		t.Fatal(err)
	}
	if *got != cp {
		t.Errorf("Open = %+v, want %+v", *got, cp)
	}

	// Among several keys, the one that signed is found.
	_, other := newKey(t)
	if _, err := checkpoint.Open(msg, origin, other, vk); err != nil {
		t.Errorf("Open with the signer's key second: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "log-signing.key")
	k, created, err := checkpoint.LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey: created %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	again, created, err := checkpoint.LoadOrCreateKey(path)
	if err != nil || created {
		t.Fatalf("LoadOrCreateKey of an existing key: created %v, %v", created, err)
	}
	if again.ID != k.ID || !again.Public.Equal(k.Public) {
		t.Errorf("reloaded key %s, want %s", again.ID, k.ID)
	}
	if len(k.ID) != 16 || k.ID != checkpoint.KeyID(k.Public) {
		t.Errorf("key id %q, want the 16 hex digits of KeyID", k.ID)
	}

	notPEM := filepath.Join(t.TempDir(), "log-signing.key")
	if err := os.WriteFile(notPEM, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := checkpoint.LoadOrCreateKey(notPEM); err == nil {
		t.Error("a file that is not a PEM key was loaded")
	}
}

// flipSignature flips one bit of the Ed25519 signature in a note's last
// signature line, leaving the key name and key hash as they were.
func flipSignature(t *testing.T, msg []byte) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(msg), "\n"), "\n")
	last := lines[len(lines)-1]
	i := strings.LastIndex(last, " ")
	sig, err := base64.StdEncoding.DecodeString(last[i+1:])
	if err != nil || len(sig) != 4+64 {
		t.Fatalf("signature line %q: %d bytes, %v", last, len(sig), err)
	}
	sig[4+10] ^= 1
	lines[len(lines)-1] = last[:i+1] + base64.StdEncoding.EncodeToString(sig)
	return []byte(strings.Join(lines, "\n") + "\n")
}

func TestOpenRefuses(t *testing.T) {
	k, vk := newKey(t)
	_, msg := signed(t, k)
	_, wrong := newKey(t)
	s, err := k.Signer(origin)
	if err != nil {
		t.Fatal(err)
	}
	notCheckpoint, err := note.Sign(&note.Note{Text: "hello\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	otherOrigin, err := checkpoint.VerifierKey("attest.example/other", k.Public)
	if err != nil {
		t.Fatal(err)
	}
	body, _, _ := bytes.Cut(msg, []byte("\n\n"))
	for _, tc := range []struct {
		name  string
		msg   []byte
		vkeys []string
		want  string
	}{
		{"flipped signature bit", flipSignature(t, msg), []string{vk}, "does not verify"},
		{"changed tree size", bytes.Replace(msg, []byte("\n42\n"), []byte("\n43\n"), 1), []string{vk}, "does not verify"},
		{"wrong key", msg, []string{wrong}, "not signed by a trusted key"},
		{"key of another origin", msg, []string{otherOrigin}, "not signed by a trusted key"},
		{"no key", msg, nil, "no verifier key"},
		{"malformed verifier key", msg, []string{"attest+nothex+AAAA"}, "bad verifier key"},
		{"empty note", nil, []string{vk}, "malformed signed note"},
		{"no signature", append(body, '\n'), []string{vk}, "malformed signed note"},
		{"text without a body", []byte("just text\n"), []string{vk}, "malformed signed note"},
		{"garbled signature line", append(bytes.Clone(body), []byte("\n\n— "+origin+" !!!\n")...), []string{vk},
			"malformed signed note"},
		{"signed text that is no checkpoint", notCheckpoint, []string{vk}, "checkpoint: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := checkpoint.Open(tc.msg, origin, tc.vkeys...)
			if err == nil {
				t.Fatalf("Open = %+v, want an error", cp)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want %q", err, tc.want)
			}
		})
	}

	// A checkpoint opened for another origin than it names is refused.
	if cp, err := checkpoint.Open(msg, "attest.example/other", vk); err == nil {
		t.Errorf("Open for another origin = %+v, want an error", cp)
	}
	var zero tree.Hash
	if cp, err := checkpoint.Open(msg, origin, vk); err != nil || cp.Root == zero {
		t.Errorf("the untouched note: %+v, %v", cp, err)
	}
}
