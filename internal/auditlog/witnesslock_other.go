//go:build !unix

package auditlog

// lockWitness does nothing where there is no flock: two processes sharing a
// data directory there can race to replace a witness, and the smaller
// checkpoint can win.
func lockWitness(dir string) (unlock func(), err error) { return func() {}, nil }

// syncDir does nothing where directories cannot be synced.
func syncDir(dir string) error { return nil }
