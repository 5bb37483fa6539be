package evidence

import (
	"archive/zip"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/event"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/transparency-dev/formats/proof"
	merkle "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Report is what a bundle proved.
type Report struct {
	Manifest *Manifest
	// Events is the number of entries of the period, each proved.
	Events int64
	// Closed says that the bundle holds the entry just after the period,
	// so no entry of the period can have been left out at its end. When
	// the period reaches past the checkpoint's last entry, nothing proves
	// that the log held no later entry of the period: a bundle made
	// against an older checkpoint looks just the same.
	Closed bool
	// Extended says that the checkpoint is proved to extend a checkpoint
	// whose tree ends at or before the period's first entry.
	Extended bool
}

// Problem is a bundle that does not prove what it claims.
type Problem struct{ What string }

func (p *Problem) Error() string { return "evidence: " + p.What }

func problem(format string, args ...any) error { return &Problem{fmt.Sprintf(format, args...)} }

// The largest file of each kind a bundle may hold.
const (
	maxManifest = 1 << 20
	maxSmall    = 1 << 20 // checkpoints, the consistency proof, the key history
	maxLeaf     = 2 << 20
	maxProof    = 64 << 10
)

// Expected is the period an auditor asked for. Verify fails when the
// bundle's differs from it.
type Expected struct {
	From, To time.Time
}

// Verify checks the bundle in r, of the given size, against verifierKey,
// a signed-note verifier key of the tenant's log (attest audit public-key
// prints it): the signatures, the exact set of files, every entry against
// its inclusion proof, the range of sequence numbers, the received times of
// the entries and of their neighbours, and the consistency of the
// checkpoint with the start checkpoint. It needs nothing else. When want
// is set, the bundle's period must be that one. A *Problem says what is
// wrong with the bundle.
func Verify(r io.ReaderAt, size int64, verifierKey string, want *Expected) (*Report, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, problem("not a zip file: %v", err)
	}
	if err := checkLocalLayout(r, zr); err != nil {
		return nil, err
	}
	// The log the key is for: the bundle must be of that log, whatever its
	// manifest says. All of an instance's logs share one signing key, so
	// a checkpoint of another tenant's log would check under this key.
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, problem("the verifier key: %v", err)
	}
	origin := v.Name()
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		if _, dup := files[f.Name]; dup {
			return nil, problem("the file %s appears twice", f.Name)
		}
		if f.Flags&0x1 != 0 {
			return nil, problem("the file %s is encrypted: what an unzip tool shows of it could differ from what was checked", f.Name)
		}
		files[f.Name] = f
	}
	mf, ok := files[ManifestFile]
	if !ok {
		return nil, problem("no %s", ManifestFile)
	}
	mb, err := readFile(mf, maxManifest)
	if err != nil {
		return nil, err
	}
	// Strict JSON: no unknown or repeated member, no other spelling of a
	// name, nothing after the object, so that every tool reads the
	// manifest as this one does.
	var m Manifest
	if err := jsonv2.Unmarshal(mb, &m, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, problem("%s: %v", ManifestFile, err)
	}
	if m.Format != Format {
		return nil, problem("%s: format %q, want %q", ManifestFile, m.Format, Format)
	}
	if m.Origin != origin {
		return nil, problem("the bundle is of the log %s, not of %s, the log the key is for", m.Origin, origin)
	}
	m.From, m.To, m.CreatedAt = m.From.UTC(), m.To.UTC(), m.CreatedAt.UTC()
	if want != nil && (!m.From.Equal(want.From) || !m.To.Equal(want.To)) {
		return nil, problem("the bundle covers %s to %s, not the period asked for, %s to %s", m.From.Format(time.RFC3339Nano),
			m.To.Format(time.RFC3339Nano), want.From.UTC().Format(time.RFC3339Nano), want.To.UTC().Format(time.RFC3339Nano))
	}
	if m.First < 0 || m.First > m.End || m.End > m.TreeSize || m.StartSize < 0 || m.StartSize > m.First ||
		!m.From.Before(m.To) {
		return nil, problem("the manifest's range [%d, %d), start size %d or period does not fit a tree of size %d",
			m.First, m.End, m.StartSize, m.TreeSize)
	}
	// The bundle holds exactly the files its range calls for, spelled as
	// the format spells them: no other name, however an unzip tool would
	// read it, can stand in for an entry.
	layout := map[string]int64{ManifestFile: maxManifest, CheckpointFile: maxSmall, PublicKeysFile: maxSmall}
	if m.StartSize > 0 {
		layout[StartCheckpointFile], layout[ConsistencyFile] = maxSmall, maxSmall
	}
	if m.First > 0 {
		layout[EventFile("before", m.First-1)], layout[ProofFile("before", m.First-1)] = maxLeaf, maxProof
	}
	if m.End < m.TreeSize {
		layout[EventFile("after", m.End)], layout[ProofFile("after", m.End)] = maxLeaf, maxProof
	}
	if int64(len(files)) != int64(len(layout))+2*(m.End-m.First) {
		return nil, problem("the bundle holds %d files; its range of %d entries calls for %d", len(files), m.End-m.First,
			int64(len(layout))+2*(m.End-m.First))
	}
	for name := range files {
		if _, ok := layout[name]; ok {
			continue
		}
		if !entryName(name, m.First, m.End) {
			return nil, problem("%s is not a file of this bundle's range: added", name)
		}
	}
	for name := range layout {
		if _, ok := files[name]; !ok {
			return nil, problem("%s is missing", name)
		}
	}
	// The small files are also held to the manifest's hashes.
	small := map[string][]byte{}
	for _, name := range []string{CheckpointFile, StartCheckpointFile, ConsistencyFile, PublicKeysFile} {
		f, ok := files[name]
		if !ok {
			continue
		}
		b, err := readFile(f, maxSmall)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != m.Files[name] {
			return nil, problem("%s does not match its hash in the manifest: changed", name)
		}
		small[name] = b
	}
	if len(m.Files) != len(small) {
		return nil, problem("the manifest lists %d files; the bundle holds %d of those", len(m.Files), len(small))
	}

	// The key history must hold the key verified with; beyond that it is
	// as the exporter wrote it.
	var keys []PublicKey
	if err := json.Unmarshal(small[PublicKeysFile], &keys); err != nil {
		return nil, problem("%s: %v", PublicKeysFile, err)
	}
	pub, err := verifierPublicKey(verifierKey)
	if err != nil {
		return nil, problem("the verifier key: %v", err)
	}
	if !slices.ContainsFunc(keys, func(k PublicKey) bool { return bytes.Equal(k.PublicKey, pub) }) {
		return nil, problem("%s does not hold the key the bundle is verified with", PublicKeysFile)
	}

	cpNote := small[CheckpointFile]
	cp, err := checkpoint.Open(cpNote, m.Origin, verifierKey)
	if err != nil {
		return nil, problem("%s: %v", CheckpointFile, err)
	}
	if cp.Size != m.TreeSize || base64.StdEncoding.EncodeToString(cp.Root[:]) != m.Root {
		return nil, problem("the manifest's tree (size %d) is not the signed checkpoint's (size %d)", m.TreeSize, cp.Size)
	}
	if !strings.HasSuffix(m.Origin, "/"+m.Tenant) {
		return nil, problem("the log %s is not tenant %s's", m.Origin, m.Tenant)
	}
	rep := &Report{Manifest: &m}

	// entry proves one leaf and returns its event.
	entry := func(dir, proofDir string, seq int64) (*event.Event, error) {
		lf, ok := files[EventFile(dir, seq)]
		if !ok {
			return nil, problem("entry %d is missing (%s)", seq, EventFile(dir, seq))
		}
		pf, ok := files[ProofFile(proofDir, seq)]
		if !ok {
			return nil, problem("the inclusion proof of entry %d is missing", seq)
		}
		leaf, err := readFile(lf, maxLeaf)
		if err != nil {
			return nil, err
		}
		pb, err := readFile(pf, maxProof)
		if err != nil {
			return nil, err
		}
		var tp proof.TLogProof
		if err := tp.Unmarshal(pb); err != nil {
			return nil, problem("the inclusion proof of entry %d: %v", seq, err)
		}
		if tp.Index != uint64(seq) || !bytes.Equal(tp.Checkpoint, cpNote) {
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
		start, err := checkpoint.Open(small[StartCheckpointFile], m.Origin, verifierKey)
		if err != nil {
			return nil, problem("%s: %v", StartCheckpointFile, err)
		}
		if start.Size != m.StartSize || start.Size > m.First {
			return nil, problem("the start checkpoint has size %d; the manifest says %d, at or before entry %d", start.Size, m.StartSize, m.First)
		}
		var c ConsistencyProof
		if err := json.Unmarshal(small[ConsistencyFile], &c); err != nil {
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

// checkLocalLayout holds the zip's entries, as a tool reading it from the
// start sees them, to the directory at its end that this verifier reads:
// the listed entries one after another from the first byte, each under its
// listed name, and the directory right after the last. Anything else, such
// as an entry hidden between them or bytes before the first, would let an
// unzip tool that reads from the start show what was never checked.
func checkLocalLayout(r io.ReaderAt, zr *zip.Reader) error {
	type located struct {
		f   *zip.File
		off int64
	}
	files := make([]located, 0, len(zr.File))
	for _, f := range zr.File {
		off, err := f.DataOffset()
		if err != nil {
			return problem("%s: %v", f.Name, err)
		}
		files = append(files, located{f, off})
	}
	slices.SortFunc(files, func(a, b located) int { return cmp.Compare(a.off, b.off) })
	var pos int64
	var hdr [30]byte
	for _, l := range files {
		f := l.f
		if _, err := r.ReadAt(hdr[:], pos); err != nil {
			return problem("the entry %s is not where the zip's directory says: %v", f.Name, err)
		}
		if binary.LittleEndian.Uint32(hdr[0:]) != 0x04034b50 {
			return problem("something other than the listed entries lies at byte %d of the zip", pos)
		}
		nameLen, extraLen := int64(binary.LittleEndian.Uint16(hdr[26:])), int64(binary.LittleEndian.Uint16(hdr[28:]))
		name := make([]byte, nameLen)
		if _, err := r.ReadAt(name, pos+30); err != nil || string(name) != f.Name {
			return problem("the entry at byte %d is named %q in its header and %q in the zip's directory", pos, name, f.Name)
		}
		if pos+30+nameLen+extraLen != l.off {
			return problem("the entry %s is not where the zip's directory says", f.Name)
		}
		pos = l.off + int64(f.CompressedSize64)
		if f.Flags&0x8 != 0 {
			// A data descriptor: an optional signature, the CRC and the
			// two sizes, of 8 bytes each in zip64 form.
			var sig [4]byte
			if _, err := r.ReadAt(sig[:], pos); err != nil {
				return problem("the entry %s is cut short", f.Name)
			}
			if binary.LittleEndian.Uint32(sig[:]) == 0x08074b50 {
				pos += 4
			}
			pos += 4 + 8
			if f.CompressedSize64 >= 0xffffffff || f.UncompressedSize64 >= 0xffffffff {
				pos += 8
			}
		}
	}
	var sig [4]byte
	if _, err := r.ReadAt(sig[:], pos); err != nil || binary.LittleEndian.Uint32(sig[:]) != 0x02014b50 {
		return problem("something other than the zip's directory follows its last listed entry, at byte %d", pos)
	}
	return nil
}

// verifierPublicKey returns the Ed25519 public key of a signed-note
// verifier key: name+hash+base64(algorithm byte, key).
func verifierPublicKey(vkey string) ([]byte, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("malformed")
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(b) < 2 || b[0] != 1 {
		return nil, fmt.Errorf("not an Ed25519 verifier key")
	}
	return b[1:], nil
}

// entryName reports whether name is the leaf or the proof of an entry in
// [first, end), spelled exactly as EventFile and ProofFile spell it.
func entryName(name string, first, end int64) bool {
	var dir, ext string
	switch {
	case strings.HasPrefix(name, "events/") && strings.HasSuffix(name, ".json"):
		dir, ext = "events/", ".json"
	case strings.HasPrefix(name, "proofs/") && strings.HasSuffix(name, ".tlog-proof"):
		dir, ext = "proofs/", ".tlog-proof"
	default:
		return false
	}
	digits := name[len(dir) : len(name)-len(ext)]
	if len(digits) != 20 {
		return false
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || seq < first || seq >= end {
		return false
	}
	if dir == "events/" {
		return name == EventFile("events", seq)
	}
	return name == ProofFile("proofs", seq)
}

// readFile reads a file of the bundle, refusing one larger than max
// whatever its header claims.
func readFile(f *zip.File, max int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(max) {
		return nil, problem("%s is larger than %d bytes", f.Name, max)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, problem("%s: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, problem("%s: %v", f.Name, err)
	}
	if int64(len(b)) > max {
		return nil, problem("%s is larger than %d bytes", f.Name, max)
	}
	return b, nil
}
