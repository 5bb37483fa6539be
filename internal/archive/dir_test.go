package archive_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attest/attest/internal/archive"
)

func TestDir(t *testing.T) {
	d, err := archive.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, d)
}

func TestDirFiles(t *testing.T) {
	root := filepath.Join(t.TempDir(), "archive")
	d, err := archive.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.String(); got != root {
		t.Errorf("String() = %q; want %q", got, root)
	}
	mustPut(t, d, "tenant-3/2026/a.seg", []byte("segment"))
	mustPut(t, d, "tenant-3/2026/a.seg", []byte("segment again"))

	want := map[string]fs.FileMode{
		".":                   fs.ModeDir | 0o700,
		"tenant-3":            fs.ModeDir | 0o700,
		"tenant-3/2026":       fs.ModeDir | 0o700,
		"tenant-3/2026/a.seg": 0o600,
	}
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		fi, err := e.Info()
		if err != nil {
			return err
		}
		mode, ok := want[rel]
		switch {
		case !ok:
			t.Errorf("unexpected file %s (a leftover temporary file?)", rel)
		case fi.Mode() != mode:
			t.Errorf("mode of %s = %v; want %v", rel, fi.Mode(), mode)
		}
		delete(want, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel := range want {
		t.Errorf("%s is missing", rel)
	}
}

func TestNewDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{"", file} {
		_, err := archive.NewDir(root)
		if err == nil || !strings.HasPrefix(err.Error(), "archive: ") {
			t.Errorf("NewDir(%q): err = %v; want an archive error", root, err)
		}
	}
}
