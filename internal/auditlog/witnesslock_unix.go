//go:build unix

package auditlog

import (
	"os"
	"path/filepath"
	"syscall"
)

// lockWitness takes an exclusive lock on the witness directory's lock file,
// so that two processes sharing a data directory replace a witness one
// after the other: neither can put back a smaller checkpoint over the
// larger one the other just wrote. The lock is released by unlock, or by
// the process ending.
func lockWitness(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
