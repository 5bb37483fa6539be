package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Dir is a Store that keeps each object as a file under a root directory,
// at the object's name read as a relative path. Directories are created with
// mode 0700 and files with mode 0600. Unlike S3, Dir cannot hold both an
// object "a" and an object "a/b": the second Put fails.
type Dir struct {
	root string
}

var _ Store = (*Dir)(nil)

// NewDir returns a Dir that keeps its objects under root, creating root
// (mode 0700) if it does not exist.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("archive: dir: root is required")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("archive: dir: resolve root %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("archive: dir: create root: %w", err)
	}
	return &Dir{root: abs}, nil
}

// String returns the root directory.
func (d *Dir) String() string { return d.root }

// path returns the file that holds the object name, which must be valid.
func (d *Dir) path(name string) string {
	return filepath.Join(d.root, filepath.FromSlash(name))
}

// Put writes data to a temporary file beside the object's file, syncs it,
// renames it into place and syncs the directory. It creates missing parent
// directories and syncs their parents too, so that the new entries are
// durable as well.
func (d *Dir) Put(ctx context.Context, name string, data []byte, _ PutOptions) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.mkdirs(name); err != nil {
		return fmt.Errorf("archive: put %q in %s: %w", name, d, err)
	}
	if err := writeFile(d.path(name), data); err != nil {
		return fmt.Errorf("archive: put %q in %s: %w", name, d, err)
	}
	return nil
}

// mkdirs creates the missing parent directories of the object name, syncing
// the parent of each directory it creates.
func (d *Dir) mkdirs(name string) error {
	dir := d.root
	elems := strings.Split(name, "/")
	for _, elem := range elems[:len(elems)-1] {
		parent := dir
		dir = filepath.Join(dir, elem)
		err := os.Mkdir(dir, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := syncDir(parent); err != nil {
			return err
		}
	}
	return nil
}

// writeFile replaces the file at path with data atomically and durably.
func writeFile(path string, data []byte) error {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir makes the entries of directory dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadAt reads from the object's file with os.File.ReadAt.
func (d *Dir) ReadAt(ctx context.Context, name string, p []byte, off int64) (int, error) {
	if err := checkRead(ctx, name, off); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		_, err := d.Size(ctx, name)
		return 0, err
	}
	f, err := os.Open(d.path(name))
	if err != nil {
		return 0, d.fail("read", name, err)
	}
	defer f.Close()

	n, err := f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, d.fail("read", name, err)
	}
	return n, err
}

// Size returns the size of the object's file.
func (d *Dir) Size(ctx context.Context, name string) (int64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	fi, err := os.Stat(d.path(name))
	if err != nil {
		return 0, d.fail("size", name, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, notExist(name, d)
	}
	return fi.Size(), nil
}

// Delete removes the object's file and syncs its directory. A directory that
// holds other objects under name is not an object and is left alone.
func (d *Dir) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path := d.path(name)
	fi, err := os.Lstat(path)
	if missing(err) || err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		err = os.Remove(path)
	}
	if missing(err) {
		return nil // removed by a concurrent Delete
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("archive: delete %q in %s: %w", name, d, err)
	}
	return nil
}

// fail returns the error for op on the object name after err.
func (d *Dir) fail(op, name string, err error) error {
	if missing(err) {
		return notExist(name, d)
	}
	return fmt.Errorf("archive: %s %q in %s: %w", op, name, d, err)
}

// missing reports whether err from a file operation means that there is no
// object: the file is missing, a directory stands in its place, or a file
// stands in place of one of its parent directories.
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) ||
		errors.Is(err, syscall.ENOTDIR)
}
