// Package archive keeps attest's archive objects: immutable segment files of
// compressed audit-log entries (a few MB to about 50 MB each) and the small
// signed manifests that describe them.
//
// A Store holds objects by name. Dir keeps them as files under a local
// directory; S3 keeps them in an S3 bucket, optionally under S3 Object Lock
// so that no one can destroy an object's data before its retention date. Both
// give the same guarantees: a Put is atomic (a reader sees the whole object or
// none of it) and durable once it returns, and a read of a missing object
// fails with an error that matches ErrNotExist.
//
// Names are slash-separated relative paths built from the characters
// A-Z a-z 0-9 . _ / - such as "tenant-3/0000000000000000-0000000000010000.seg".
// Every method refuses any other name with an error that matches
// ErrInvalidName.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// Store keeps immutable named objects. Its methods are safe for concurrent
// use.
type Store interface {
	// Put stores data under name durably and atomically: a reader sees all
	// of it or nothing, and once Put returns the object survives a crash.
	// Putting a name again replaces the object, where the store allows it
	// (an object under S3 Object Lock retention keeps its locked version).
	Put(ctx context.Context, name string, data []byte, opts PutOptions) error

	// ReadAt reads len(p) bytes of the object from offset off, with the
	// rules of io.ReaderAt: when it reads fewer than len(p) bytes because
	// the object ends first, it returns io.EOF with the bytes it read.
	ReadAt(ctx context.Context, name string, p []byte, off int64) (int, error)

	// Size returns the size of the object in bytes, or an error matching
	// ErrNotExist when there is no object of that name.
	Size(ctx context.Context, name string) (int64, error)

	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error

	// String describes where the objects live, for messages; it never
	// includes a secret.
	String() string
}

// PutOptions holds the per-object options of Store.Put. The zero value asks
// for nothing beyond a plain write.
type PutOptions struct {
	// RetainUntil, when not zero, asks the store to refuse deletion of the
	// object before that time. S3 sets it as an Object Lock retention date
	// in COMPLIANCE mode when it is configured with ObjectLock; Dir and an
	// S3 store without ObjectLock ignore it.
	RetainUntil time.Time
}

// ErrNotExist is matched by the errors of a Store for an object that does not
// exist. Those errors also match fs.ErrNotExist.
var ErrNotExist error = notExistError{}

// notExistError is the type of ErrNotExist. It matches fs.ErrNotExist so that
// code written against io/fs keeps working.
type notExistError struct{}

func (notExistError) Error() string { return "archive: object does not exist" }

func (notExistError) Is(target error) bool { return target == fs.ErrNotExist }

// ErrInvalidName is matched by the errors of a Store for a name it refuses.
var ErrInvalidName = errors.New("archive: invalid object name")

// maxNameLen keeps names well inside S3's limit of 1024 bytes per key, which
// also has to fit the key prefix.
const maxNameLen = 512

// checkName returns an error naming name and the reason when name is not a
// valid object name.
func checkName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidName, name, reason)
	}
	return nil
}

// nameProblem returns why name is not a valid object name, or "" when it is.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > maxNameLen:
		return fmt.Sprintf("longer than %d bytes", maxNameLen)
	case strings.HasPrefix(name, "/"):
		return "absolute"
	case strings.Contains(name, `\`):
		return "contains a backslash"
	case strings.Contains(name, "\x00"):
		return "contains NUL"
	}
	for _, r := range name {
		if !nameChar(r) {
			return fmt.Sprintf("contains %q (allowed: A-Z a-z 0-9 . _ / -)", r)
		}
	}
	for elem := range strings.SplitSeq(name, "/") {
		switch elem {
		case "":
			return "has an empty path element"
		case ".":
			return `has a "." path element`
		case "..":
			return `has a ".." path element`
		}
	}
	return ""
}

func nameChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return r == '.' || r == '_' || r == '/' || r == '-'
}

// notExist returns the error for a missing object name in store s.
func notExist(name string, s fmt.Stringer) error {
	return fmt.Errorf("%w: %q in %s", ErrNotExist, name, s)
}

// checkRead returns an error when off cannot start a read of name.
func checkRead(ctx context.Context, name string, off int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("archive: read %q: negative offset %d", name, off)
	}
	return ctx.Err()
}
