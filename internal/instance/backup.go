package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
// or be empty, and must be neither inside the data directory nor hold it:
// the keys, the TLS certificate, the signed checkpoints this directory
// keeps, the archive segments under it, and on SQLite the database, as one
// transaction sees it. Symbolic links are followed. The copy is written
// beside dir and renamed into place once complete, so that a failed backup
// leaves nothing that looks like one. It is itself a data directory that
// attest serve opens. Subjects erased before the backup stay erased in it:
// their keys are in none of its files. The backup, or its failure, is
// recorded in the operator's trail.
func (in *Instance) Backup(ctx context.Context, dir string, actor event.Actor, decorate func(*event.Event)) (*BackupReport, error) {
	start := time.Now()
	abs, err := in.checkBackupDir(dir)
	if err != nil {
		return nil, err
	}
	rep := &BackupReport{Dir: abs, Database: in.DB.Dialect == store.SQLite}
	err = in.writeBackup(ctx, abs, rep)
	rep.Elapsed = time.Since(start)
	outcome := event.Outcome{Result: "success"}
	if err != nil {
		outcome = event.Outcome{Result: "error", Reason: "the backup failed; nothing was left at its path"}
	}
	if rerr := in.recordBackup(ctx, rep, outcome, actor, decorate); rerr != nil {
		if err == nil {
			return rep, fmt.Errorf("backup: %s is complete, but recording it in the operator's trail failed: %w", abs, rerr)
		}
		in.Logger.Error("a failed backup could not be recorded", "error", rerr)
	}
	return rep, err
}

// checkBackupDir returns dir made absolute, refusing one that is not empty,
// or that lies inside the data directory or holds it.
func (in *Instance) checkBackupDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	if ents, err := os.ReadDir(abs); err == nil && len(ents) > 0 {
		return "", fmt.Errorf("backup: %s is not empty: a backup goes into a new or empty directory", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("backup: %w", err)
	}
	data, err := realPath(in.dataDir)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	out, err := realPath(abs)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	if within(out, data) || within(data, out) {
		return "", fmt.Errorf("backup: %s and the data directory %s lie one inside the other: write the backup elsewhere",
			dir, in.dataDir)
	}
	return abs, nil
}

// realPath resolves the symbolic links of p's longest existing prefix.
func realPath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...), nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// writeBackup writes the copy beside out and renames it into place.
func (in *Instance) writeBackup(ctx context.Context, out string, rep *BackupReport) error {
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".partial-")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	// The checkpoints this directory signed are copied before the
	// database, so that the copy's are never ahead of its log.
	for _, name := range []string{SigningKeyFile, KEKFile, "tls", WitnessDir} {
		if err := copyTree(filepath.Join(in.dataDir, name), filepath.Join(tmp, name), rep, 0); err != nil {
			return err
		}
	}
	if rep.Database {
		path := filepath.Join(tmp, "attest.db")
		// VACUUM INTO writes into an empty file that exists, keeping its
		// mode.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		f.Close()
		if err := in.DB.BackupInto(ctx, path); err != nil {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		rep.Files++
		rep.Bytes += fi.Size()
	}
	// Segments are immutable once recorded; a segment archived during the
	// backup is in the copy's archive but not its database, as if the
	// backup had been taken during that step, and one that expires during
	// it may be missing, as it would be a moment later.
	if err := copyTree(filepath.Join(in.dataDir, ArchiveDir), filepath.Join(tmp, ArchiveDir), rep, 0); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	// An empty directory at out, allowed, gives way to the copy.
	if err := os.Remove(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	done = true
	return syncDir(parent)
}

func (in *Instance) recordBackup(ctx context.Context, rep *BackupReport, outcome event.Outcome, actor event.Actor,
	decorate func(*event.Event)) error {
	op, err := in.Operator(ctx)
	if err != nil {
		return err
	}
	ev := in.ChangeEvent("instance.backup.create", "admin", actor, event.Target{Type: "backup", ID: rep.Dir})
	ev.Outcome = outcome
	ev.Details = detailsJSON(map[string]any{"files": rep.Files, "bytes": rep.Bytes, "database": rep.Database})
	if decorate != nil {
		decorate(ev)
	}
	return in.Record(ctx, op, ev)
}

// copyTree copies the file or directory src to dst, following symbolic
// links, files readable by their owner alone, each synced. A src that does
// not exist is skipped, as are the hidden files attest writes and renames
// (temporary files, the witness lock).
func copyTree(src, dst string, rep *BackupReport, depth int) error {
	if depth > 32 {
		return fmt.Errorf("backup: %s: directories nest too deep (a symbolic link loop?)", src)
	}
	fi, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	switch {
	case fi.IsDir():
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if err := copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), rep, depth+1); err != nil {
				return err
			}
		}
		return nil
	case !fi.Mode().IsRegular():
		return fmt.Errorf("backup: %s is neither a file nor a directory", src)
	}
	n, err := copyFile(src, dst)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed meanwhile, as an expired segment is
	}
	rep.Files++
	rep.Bytes += n
	return err
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
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
	return n, nil
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
