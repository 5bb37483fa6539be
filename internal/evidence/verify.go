package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/event"
	"github.com/transparency-dev/formats/proof"
	merkle "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Report is what a bundle proved.
type Report struct {
	Manifest *Manifest
	// Events is the number of entries of the period, each proved.
	Events int64
	// Closed says that the bundle holds the entry just after the period,
	// so no entry of the period can have been left out at its end. When
	// the period reaches past the checkpoint's last entry, it is complete
	// only up to the checkpoint.
	Closed bool
	// Extended says that the checkpoint is proved to extend a checkpoint
	// signed at or before the period's start.
	Extended bool
}

// Problem is a bundle that does not prove what it claims.
type Problem struct{ What string }

func (p *Problem) Error() string { return "evidence: " + p.What }

func problem(format string, args ...any) error { return &Problem{fmt.Sprintf(format, args...)} }

// maxFile bounds one file of a bundle when it is read.
const maxFile = 4 << 20

// Verify checks the bundle in r, of the given size, against verifierKey,
// a signed-note verifier key of the tenant's log (attest audit public-key
// prints it): the signatures, every file against the manifest, every entry
// against its inclusion proof, the range of sequence numbers, the received
// times of the entries and of their neighbours, and the consistency of the
// checkpoint with the start checkpoint. It needs nothing else. A *Problem
// says what is wrong with the bundle.
func Verify(r io.ReaderAt, size int64, verifierKey string) (*Report, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, problem("not a zip file: %v", err)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		if _, dup := files[f.Name]; dup {
			return nil, problem("the file %s appears twice", f.Name)
		}
		files[f.Name] = f
	}
	mf, ok := files[ManifestFile]
	if !ok {
		return nil, problem("no %s", ManifestFile)
	}
	mb, err := readFile(mf)
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, problem("%s: %v", ManifestFile, err)
	}
	if m.Format != Format {
		return nil, problem("%s: format %q, want %q", ManifestFile, m.Format, Format)
	}
	// Every file is listed, and every listed file is there with its hash.
	content := map[string][]byte{}
	for name, f := range files {
		if name == ManifestFile {
			continue
		}
		want, ok := m.Files[name]
		if !ok {
			return nil, problem("%s is not listed in the manifest: added to the bundle", name)
		}
		b, err := readFile(f)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != want {
			return nil, problem("%s does not match its hash in the manifest: changed", name)
		}
		content[name] = b
	}
	for name := range m.Files {
		if _, ok := content[name]; !ok {
			return nil, problem("%s is listed in the manifest but missing", name)
		}
	}

	note := content[CheckpointFile]
	cp, err := checkpoint.Open(note, m.Origin, verifierKey)
	if err != nil {
		return nil, problem("%s: %v", CheckpointFile, err)
	}
	if cp.Size != m.TreeSize || base64.StdEncoding.EncodeToString(cp.Root[:]) != m.Root {
		return nil, problem("the manifest's tree (size %d) is not the signed checkpoint's (size %d)", m.TreeSize, cp.Size)
	}
	if m.Origin != "" && !strings.HasSuffix(m.Origin, "/"+m.Tenant) {
		return nil, problem("the log %s is not tenant %s's", m.Origin, m.Tenant)
	}
	if m.First < 0 || m.First > m.End || m.End > cp.Size || !m.From.Before(m.To) {
		return nil, problem("the manifest's range [%d, %d) or period does not fit the tree of size %d", m.First, m.End, cp.Size)
	}
	rep := &Report{Manifest: &m}

	// entry proves one leaf and returns its event.
	entry := func(dir, proofDir string, seq int64) (*event.Event, error) {
		leaf, ok := content[EventFile(dir, seq)]
		if !ok {
			return nil, problem("entry %d is missing (%s)", seq, EventFile(dir, seq))
		}
		pb, ok := content[ProofFile(proofDir, seq)]
		if !ok {
			return nil, problem("the inclusion proof of entry %d is missing", seq)
		}
		var tp proof.TLogProof
		if err := tp.Unmarshal(pb); err != nil {
			return nil, problem("the inclusion proof of entry %d: %v", seq, err)
		}
		if tp.Index != uint64(seq) || !bytes.Equal(tp.Checkpoint, note) {
			return nil, problem("the inclusion proof of entry %d is for entry %d or another checkpoint", seq, tp.Index)
		}
		hashes := make([][]byte, len(tp.Hashes))
		for i := range tp.Hashes {
			hashes[i] = tp.Hashes[i][:]
		}
		lh := rfc6962.DefaultHasher.HashLeaf(leaf)
		if err := merkle.VerifyInclusion(rfc6962.DefaultHasher, uint64(seq), uint64(cp.Size), lh, hashes, cp.Root[:]); err != nil {
			return nil, problem("entry %d is not in the signed tree: %v", seq, err)
		}
		ev, _, err := event.DecodeLeaf(leaf)
		if err != nil {
			return nil, problem("entry %d: %v", seq, err)
		}
		if ev.Sequence != seq || ev.Tenant != m.Tenant {
			return nil, problem("entry %d says it is entry %d of tenant %s", seq, ev.Sequence, ev.Tenant)
		}
		return ev, nil
	}
	in := func(t time.Time) bool { return !t.Before(m.From) && t.Before(m.To) }
	for seq := m.First; seq < m.End; seq++ {
		ev, err := entry("events", "proofs", seq)
		if err != nil {
			return nil, err
		}
		if !in(ev.ReceivedAt) {
			return nil, problem("entry %d was received at %s, outside the period", seq, ev.ReceivedAt.Format(time.RFC3339Nano))
		}
		rep.Events++
	}
	// Nothing else under events/ and proofs/: each is one of the range.
	var events, proofs int64
	for name := range content {
		switch {
		case strings.HasPrefix(name, "events/"):
			events++
		case strings.HasPrefix(name, "proofs/"):
			proofs++
		}
	}
	if events != m.End-m.First || proofs != m.End-m.First {
		return nil, problem("the bundle holds %d entries and %d proofs for a range of %d", events, proofs, m.End-m.First)
	}
	if m.First > 0 {
		ev, err := entry("before", "before", m.First-1)
		if err != nil {
			return nil, err
		}
		if !ev.ReceivedAt.Before(m.From) {
			return nil, problem("entry %d, before the range, was received within the period: the range is not whole", m.First-1)
		}
	}
	if m.End < cp.Size {
		ev, err := entry("after", "after", m.End)
		if err != nil {
			return nil, err
		}
		if ev.ReceivedAt.Before(m.To) {
			return nil, problem("entry %d, after the range, was received within the period: the range is not whole", m.End)
		}
		rep.Closed = true
	}
	if m.StartSize > 0 {
		start, err := checkpoint.Open(content[StartCheckpointFile], m.Origin, verifierKey)
		if err != nil {
			return nil, problem("%s: %v", StartCheckpointFile, err)
		}
		if start.Size != m.StartSize || start.Size > m.First {
			return nil, problem("the start checkpoint has size %d; the manifest says %d, at or before entry %d", start.Size, m.StartSize, m.First)
		}
		var c ConsistencyProof
		if err := json.Unmarshal(content[ConsistencyFile], &c); err != nil {
			return nil, problem("%s: %v", ConsistencyFile, err)
		}
		if c.Old != start.Size || c.New != cp.Size {
			return nil, problem("%s proves sizes %d to %d, not %d to %d", ConsistencyFile, c.Old, c.New, start.Size, cp.Size)
		}
		if err := merkle.VerifyConsistency(rfc6962.DefaultHasher, uint64(c.Old), uint64(c.New), c.Hashes, start.Root[:], cp.Root[:]); err != nil {
			return nil, problem("the checkpoint does not extend the start checkpoint: %v", err)
		}
		rep.Extended = true
	}
	return rep, nil
}

func readFile(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > maxFile {
		return nil, problem("%s is larger than %d bytes", f.Name, maxFile)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, problem("%s: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxFile+1))
	if err != nil {
		return nil, problem("%s: %v", f.Name, err)
	}
	if len(b) > maxFile {
		return nil, problem("%s is larger than %d bytes", f.Name, maxFile)
	}
	return b, nil
}
