package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/mod/sumdb/note"
)

// ManifestKind names the manifest format in its JSON.
const ManifestKind = "attest.soc2.manifest/v1"

// Bundle file names.
const (
	ReportFile    = "report.json"
	HTMLFile      = "report.html"
	PDFFile       = "report.pdf"
	OSCALFile     = "report.oscal.json"
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.sig"
)

// Manifest lists the files of a report with their SHA-256, and pins them
// to the period, the tenant and a signed checkpoint of its log. It is
// signed as a signed note (C2SP signed-note) with the log's key, under the
// tenant's log origin: the verifier key of the tenant's log, as attest
// audit public-key prints it, verifies both the manifest and the
// checkpoint inside it.
type Manifest struct {
	Manifest    string    `json:"manifest"`
	Tenant      string    `json:"tenant"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	GeneratedAt time.Time `json:"generated_at"`
	// ReportSHA256 is the SHA-256 of report.json, the canonical (RFC 8785)
	// JSON of the report; it is also among Files.
	ReportSHA256 string      `json:"report_sha256"`
	Files        []File      `json:"files"`
	Checkpoint   *Checkpoint `json:"checkpoint"`
	Seed         string      `json:"seed"`
}

// File is one file of a bundle.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
}

// Canonical returns the canonical (RFC 8785) JSON of v.
func Canonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, check("encode", err)
	}
	jv := jsontext.Value(b)
	if err := jv.Canonicalize(); err != nil {
		return nil, check("canonicalize", err)
	}
	return jv, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// seal renders the report's files, writes the manifest over them and
// signs it.
func seal(in *instance.Instance, t *tenant.Tenant, r *Report, csvs map[string][]byte) (*Bundle, error) {
	js, err := Canonical(r)
	if err != nil {
		return nil, err
	}
	html, err := HTML(r)
	if err != nil {
		return nil, err
	}
	pdf, err := PDF(r)
	if err != nil {
		return nil, err
	}
	oscal, err := OSCAL(r)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Report: r, JSON: js, HTML: html, PDF: pdf, OSCAL: oscal, CSV: csvs}
	m := &Manifest{Manifest: ManifestKind, Tenant: r.Tenant, From: r.From, To: r.To, GeneratedAt: r.GeneratedAt,
		ReportSHA256: digest(js), Checkpoint: r.Checkpoint, Seed: r.Seed}
	for name, data := range b.Files() {
		m.Files = append(m.Files, File{Name: name, SHA256: digest(data), Size: len(data)})
	}
	slices.SortFunc(m.Files, func(a, b File) int { return cmpString(a.Name, b.Name) })
	mj, err := Canonical(m)
	if err != nil {
		return nil, err
	}
	mj = append(mj, '\n')
	s, err := in.SigningKey.Signer(in.Log.Origin(t.Name))
	if err != nil {
		return nil, err
	}
	sig, err := note.Sign(&note.Note{Text: string(mj)}, s)
	if err != nil {
		return nil, check("sign manifest", err)
	}
	b.Manifest, b.ManifestJSON, b.Signature = m, mj, sig
	return b, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Files returns the bundle's files that the manifest covers, by path.
func (b *Bundle) Files() map[string][]byte {
	out := map[string][]byte{ReportFile: b.JSON, HTMLFile: b.HTML, PDFFile: b.PDF, OSCALFile: b.OSCAL}
	for name, data := range b.CSV {
		out[PopulationFile(name)] = data
	}
	return out
}

// VerifyManifest checks that sig, the signed note of manifest.sig, is
// signed by the key of verifierKey (a signed-note verifier key, as attest
// audit public-key prints it), that the checkpoint it pins is signed by the
// same key under the same origin, and returns the manifest.
func VerifyManifest(sig []byte, verifierKey string) (*Manifest, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, check("verifier key", err)
	}
	n, err := note.Open(sig, note.VerifierList(v))
	var unknown *note.UnverifiedNoteError
	if errors.As(err, &unknown) && len(unknown.Note.UnverifiedSigs) > 0 && unknown.Note.UnverifiedSigs[0].Name != v.Name() {
		return nil, fmt.Errorf("report: manifest signature: signed by the log %s, and the key given is the log %s's "+
			"(attest audit public-key --tenant names the tenant)", unknown.Note.UnverifiedSigs[0].Name, v.Name())
	}
	if err != nil {
		return nil, check("manifest signature", err)
	}
	m := &Manifest{}
	dec := json.NewDecoder(bytes.NewReader([]byte(n.Text)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, check("read manifest", err)
	}
	if m.Manifest != ManifestKind {
		return nil, fmt.Errorf("report: not a %s manifest", ManifestKind)
	}
	if m.Checkpoint == nil || m.Checkpoint.Origin != v.Name() {
		return nil, fmt.Errorf("report: the manifest pins no checkpoint of the log %s", v.Name())
	}
	cp, err := checkpoint.Open([]byte(m.Checkpoint.Note), m.Checkpoint.Origin, verifierKey)
	if err != nil {
		return nil, check("pinned checkpoint", err)
	}
	if cp.Size != m.Checkpoint.TreeSize || hex.EncodeToString(cp.Root[:]) != m.Checkpoint.RootHash {
		return nil, errors.New("report: the pinned checkpoint's size or root differs from the manifest's")
	}
	return m, nil
}

// Check recomputes the SHA-256 of each file the manifest lists, read by
// read, and that report.json speaks of the manifest's tenant, period and
// checkpoint. It names the first file that differs.
func (m *Manifest) Check(read func(name string) ([]byte, error)) error {
	seenReport := false
	for _, f := range m.Files {
		data, err := read(f.Name)
		if err != nil {
			return fmt.Errorf("report: %s: %w", f.Name, err)
		}
		if got := digest(data); got != f.SHA256 || len(data) != f.Size {
			return fmt.Errorf("report: %s does not match the manifest: sha256 %s, want %s", f.Name, got, f.SHA256)
		}
		if f.Name == ReportFile {
			seenReport = true
			if err := m.checkReport(data, f.SHA256); err != nil {
				return err
			}
		}
	}
	if !seenReport {
		return errors.New("report: the manifest lists no report.json")
	}
	return nil
}

func (m *Manifest) checkReport(data []byte, sum string) error {
	if sum != m.ReportSHA256 {
		return errors.New("report: report_sha256 differs from the hash of report.json")
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return check("read report.json", err)
	}
	if r.Tenant != m.Tenant || !r.From.Equal(m.From) || !r.To.Equal(m.To) || r.Checkpoint == nil ||
		*r.Checkpoint != *m.Checkpoint {
		return errors.New("report: report.json names another tenant, period or checkpoint than the manifest")
	}
	return nil
}

// VerifyDir verifies the bundle in dir: the signature of manifest.sig
// with verifierKey, that manifest.json is the text it signs, and the
// hash of every file. It returns the manifest.
func VerifyDir(dir, verifierKey string) (*Manifest, error) {
	sig, err := os.ReadFile(filepath.Join(dir, SignatureFile))
	if err != nil {
		return nil, check("read signature", err)
	}
	m, err := VerifyManifest(sig, verifierKey)
	if err != nil {
		return nil, err
	}
	mj, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, check("read manifest", err)
	}
	if !bytes.HasPrefix(sig, mj) || len(sig) <= len(mj) || sig[len(mj)] != '\n' {
		return nil, errors.New("report: manifest.json is not the text manifest.sig signs")
	}
	err = m.Check(func(name string) ([]byte, error) {
		if !filepath.IsLocal(name) {
			return nil, errors.New("not a path inside the bundle")
		}
		return os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	})
	if err != nil {
		return m, err
	}
	// Nothing may stand beside what the manifest lists: a file added to
	// a bundle would pass for part of the signed report.
	listed := map[string]bool{ManifestFile: true, SignatureFile: true}
	for _, f := range m.Files {
		listed[f.Name] = true
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if !listed[filepath.ToSlash(rel)] {
			return fmt.Errorf("report: %s is not in the manifest", filepath.ToSlash(rel))
		}
		return nil
	})
	return m, err
}

// SHA256 returns the hex SHA-256 of b, as the manifest writes hashes.
func SHA256(b []byte) string { return digest(b) }
