package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/store"
)

// BackupReport says what Backup wrote.
type BackupReport struct {
	Dir      string
	Files    int
	Bytes    int64
	Database bool // false on PostgreSQL, whose database pg_dump backs up
	Elapsed  time.Duration
}

// Backup writes a copy of the data directory into dir, which must not exist
// or be empty: the keys, the TLS certificate, the signed checkpoints this
// directory keeps, the archive segments under it, and on SQLite the
// database, as one transaction sees it. The copy is itself a data
// directory that attest serve opens. Subjects erased before the backup
// stay erased in it: their keys are in none of its files. The backup is
// recorded in the operator's trail.
func (in *Instance) Backup(ctx context.Context, dir string, actor event.Actor, decorate func(*event.Event)) (*BackupReport, error) {
	start := time.Now()
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	rep := &BackupReport{Dir: dir, Database: in.DB.Dialect == store.SQLite}
	// The checkpoints this directory signed are copied before the
	// database, so that the copy's are never ahead of its log.
	for _, name := range []string{SigningKeyFile, KEKFile, "tls", WitnessDir} {
		if err := copyTree(filepath.Join(in.dataDir, name), filepath.Join(dir, name), rep); err != nil {
			return nil, err
		}
	}
	if rep.Database {
		path := filepath.Join(dir, "attest.db")
		if err := in.DB.BackupInto(ctx, path); err != nil {
			return nil, err
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		rep.Files++
		rep.Bytes += fi.Size()
	}
	// Segments are immutable once recorded; a segment archived during the
	// backup is in the copy's archive but not its database, which is as
	// if the backup had been taken during that step.
	if err := copyTree(filepath.Join(in.dataDir, ArchiveDir), filepath.Join(dir, ArchiveDir), rep); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	rep.Elapsed = time.Since(start)
	op, err := in.Operator(ctx)
	if err != nil {
		return rep, err
	}
	ev := in.ChangeEvent("instance.backup.create", "admin", actor, event.Target{Type: "backup", ID: dir})
	ev.Details = detailsJSON(map[string]any{"files": rep.Files, "bytes": rep.Bytes, "database": rep.Database})
	if decorate != nil {
		decorate(ev)
	}
	return rep, in.Record(ctx, op, ev)
}

// emptyDir creates dir, or accepts it if it exists and is empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("backup: %s is not empty: a backup goes into a new or empty directory", dir)
	}
	return nil
}

// copyTree copies the file or directory src to dst, files readable by
// their owner alone, each synced. A src that does not exist is skipped.
func copyTree(src, dst string, rep *BackupReport) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == src {
			return nil
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		n, err := copyFile(path, to)
		rep.Files++
		rep.Bytes += n
		return err
	})
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("backup: write %s: %w", dst, err)
	}
	return n, syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", dir, err)
	}
	return nil
}
