package instance_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// TestBackupAfterErasure backs up a data directory after an erasure and
// checks that the copy opens, verifies, reads the subject as erased, and
// holds the destroyed key in none of its files.
func TestBackupAfterErasure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in, err := instance.Open(ctx, instance.Options{DataDir: dir, Name: "backup.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	def, err := in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	ev := in.ChangeEvent("recording.read", "data_access",
		event.Actor{Type: "user", ID: "u-ana", Email: "ana@example.com", IP: "10.0.0.7"}, event.Target{Type: "recording", ID: "r-1"})
	if err := in.Record(ctx, def, ev); err != nil {
		t.Fatal(err)
	}
	var wrapped []byte
	if err := in.DB.Read.QueryRowContext(ctx, in.DB.Rebind(`SELECT wrapped_key FROM subjects WHERE tenant_id = ? AND subject = ?`),
		def.ID, "u-ana").Scan(&wrapped); err != nil || len(wrapped) < 16 {
		t.Fatalf("the subject's wrapped key: %v", err)
	}
	seq, err := in.Log.Head(ctx, in.DB.Read, def.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A backup made before the erasure holds the key: the scan below finds it.
	before := filepath.Join(t.TempDir(), "before")
	if _, err := in.Backup(ctx, before, instance.SystemActor(), nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(before, "attest.db")); !bytes.Contains(b, wrapped) {
		t.Fatal("a backup made before the erasure does not hold the subject's key")
	}
	if _, err := in.EraseSubject(ctx, def, "u-ana", "request 1", instance.SystemActor(), nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "backup")
	rep, err := in.Backup(ctx, out, instance.SystemActor(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Database || rep.Files < 3 {
		t.Fatalf("backup report = %+v", rep)
	}
	if _, err := in.Backup(ctx, out, instance.SystemActor(), nil); err == nil {
		t.Fatal("a backup into a directory that is not empty was made")
	}
	for _, bad := range []string{dir, filepath.Join(dir, "checkpoints", "bk"), filepath.Join(dir, "bk"), filepath.Dir(dir)} {
		if _, err := in.Backup(ctx, bad, instance.SystemActor(), nil); err == nil {
			t.Fatalf("a backup into %s, which the data directory holds or is held by, was made", bad)
		}
	}
	for _, left := range []string{filepath.Join(dir, "bk"), filepath.Join(dir, "checkpoints", "bk")} {
		if _, err := os.Stat(left); err == nil {
			t.Fatalf("a refused backup left %s", left)
		}
	}
	filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, wrapped) {
			t.Errorf("%s holds the destroyed key", path)
		}
		if fi, _ := d.Info(); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others: %v", path, fi.Mode())
		}
		return nil
	})
	// A key that is a symbolic link, as secret mounts make them, is copied.
	linked := t.TempDir()
	for _, name := range []string{"attest.db", "kek.key", "log-signing.key"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(linked, name+".real"), b, 0o600)
		if err := os.Symlink(filepath.Join(linked, name+".real"), filepath.Join(linked, name)); err != nil {
			t.Fatal(err)
		}
	}
	lin, err := instance.Open(ctx, instance.Options{DataDir: linked, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	lout := filepath.Join(t.TempDir(), "of-links")
	if _, err := lin.Backup(ctx, lout, instance.SystemActor(), nil); err != nil {
		t.Fatal(err)
	}
	lin.Close()
	if fi, err := os.Lstat(filepath.Join(lout, "kek.key")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the linked key in the backup: %v", err)
	}
	copy, err := instance.Open(ctx, instance.Options{DataDir: out, MustExist: true})
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	defer copy.Close()
	cdef, err := copy.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	var rec *auditlog.Record
	err = copy.DB.ReadTx(ctx, func(tx *sql.Tx) error {
		rec, err = copy.Log.Read(ctx, tx, cdef, seq.Size-1)
		return err
	})
	if err != nil || len(rec.Erased) == 0 || rec.Event.Actor.Email != "" {
		t.Fatalf("the erased subject's event in the backup: %v, %+v", err, rec)
	}
	vr, err := copy.Log.Verify(ctx, cdef, auditlog.VerifyOptions{Deep: true})
	if err != nil || vr.Problem != nil {
		t.Fatalf("the backup does not verify: %v %v", err, vr.Problem)
	}
}
