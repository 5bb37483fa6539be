package report

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// all returns every file of the bundle by path: those the manifest covers,
// the manifest and its signature.
func (b *Bundle) all() map[string][]byte {
	out := b.Files()
	out[ManifestFile], out[SignatureFile] = b.ManifestJSON, b.Signature
	return out
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Zip returns the bundle as a zip archive: report.json, report.html,
// populations/*.csv, manifest.json and manifest.sig.
func (b *Bundle) Zip() ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := b.all()
	for _, name := range sortedNames(files) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: b.Report.GeneratedAt.In(time.UTC)})
		if err != nil {
			return nil, check("zip", err)
		}
		if _, err := w.Write(files[name]); err != nil {
			return nil, check("zip", err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, check("zip", err)
	}
	return buf.Bytes(), nil
}

// WriteDir writes the bundle's files under dir, which must not hold a
// bundle already.
func (b *Bundle) WriteDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		return check("write bundle", os.ErrExist)
	}
	files := b.all()
	for _, name := range sortedNames(files) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return check("write bundle", err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return check("write bundle", err)
		}
	}
	return nil
}
