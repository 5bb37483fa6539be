package auditlog

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/archive"
	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/evidence"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// retentionLog is a log whose clock the test moves, with an archive
// directory.
type retentionLog struct {
	*testLog
	clock *clock
	arch  archive.Store
}

func newRetentionLog(t testing.TB, db *store.DB, dir string) *retentionLog {
	t.Helper()
	arch, err := archive.NewDir(filepath.Join(dir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	return newRetentionLogOn(t, db, dir, arch)
}

func newRetentionLogOn(t testing.TB, db *store.DB, dir string, arch archive.Store) *retentionLog {
	t.Helper()
	return newRetentionLogWith(t, db, dir, Config{Archive: arch})
}

// newRetentionLogWith is newRetentionLog with cfg, whose clock and instance
// name it sets.
func newRetentionLogWith(t testing.TB, db *store.DB, dir string, cfg Config) *retentionLog {
	t.Helper()
	ctx := context.Background()
	kek, _, err := personal.LoadOrCreateKEK(filepath.Join(dir, "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := checkpoint.LoadOrCreateKey(filepath.Join(dir, "sign.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := tenant.NewRegistry(db, kek)
	var ten *tenant.Tenant
	if err := db.InTx(ctx, func(tx *sql.Tx) error {
		ten, err = reg.Create(ctx, tx, "acme", false, c.now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cfg.Instance, cfg.Now = "retention.test", c.now
	l, err := Open(db, cfg, personal.NewKeyring(db, kek, nil), reg, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.RegisterKey(ctx); err != nil {
		t.Fatal(err)
	}
	return &retentionLog{testLog: &testLog{db: db, l: l, t: ten, key: key, dir: dir}, clock: c, arch: cfg.Archive}
}

// add appends n generated events received now, by the test clock.
func (rl *retentionLog) add(t testing.TB, g *eventgen.Generator, n int) {
	t.Helper()
	ctx := context.Background()
	var ps []*Prepared
	for range n {
		p, err := rl.l.Prepare(ctx, rl.t, g.Next())
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if _, err := rl.l.Append(ctx, rl.t, ps); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.l.PublishCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
}

func retentionEvent(action string, target event.Target, details map[string]any) *event.Event {
	ev := event.New()
	ev.OccurredAt = time.Now().UTC()
	ev.Source = event.Source{Name: "attest"}
	ev.Actor = event.Actor{Type: "system", ID: "attest"}
	ev.Action, ev.Category, ev.Target = action, "system", target
	ev.Outcome = event.Outcome{Result: "success"}
	b, _ := json.Marshal(details)
	ev.Details = b
	return ev
}

func (rl *retentionLog) run(t *testing.T) *RetentionReport {
	t.Helper()
	rep, err := rl.l.RunRetention(context.Background(), rl.t, RetentionOptions{Event: retentionEvent, SegmentEntries: 1024})
	if err != nil {
		t.Fatalf("retention run: %v", err)
	}
	if _, err := rl.l.PublishCheckpoints(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rep
}

func (rl *retentionLog) count(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := rl.db.Read.QueryRowContext(context.Background(), rl.db.Rebind(q), args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (rl *retentionLog) head(t *testing.T) State {
	t.Helper()
	h, err := rl.l.Head(context.Background(), rl.db.Read, rl.t.ID)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkProofs proves entries against the newest checkpoint, and the
// consistency of every earlier size with it, using only the tree.
func (rl *retentionLog) checkProofs(t *testing.T, seqs ...int64) {
	t.Helper()
	ctx := context.Background()
	cp, err := rl.l.LatestCheckpoint(ctx, rl.db.Read, rl.t.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		p, err := rl.l.ProveInclusion(ctx, rl.db.Read, rl.t, seq, cp.Size)
		if err != nil {
			t.Fatalf("prove %d: %v", seq, err)
		}
		hashes, err := tree.ProveInclusion(ctx, tree.NewReader(rl.db, rl.db.Read, rl.t.ID), cp.Size, seq)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := tree.NewReader(rl.db, rl.db.Read, rl.t.ID).Tile(ctx, tree.TileKey{Level: 0, Index: seq / tree.TileWidth})
		if err != nil {
			t.Fatal(err)
		}
		off := (seq % tree.TileWidth) * tree.HashSize
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(seq), uint64(cp.Size), leaf[off:off+tree.HashSize],
			hb(hashes), cp.Root[:]); err != nil || p.Sequence != seq || p.LeafHash != tree.Hash(leaf[off:off+tree.HashSize]) {
			t.Fatalf("inclusion proof of %d does not verify: %v", seq, err)
		}
	}
	for _, old := range []int64{1, seqs[0] + 1, cp.Size / 2} {
		c, err := rl.l.ProveConsistency(ctx, rl.db.Read, rl.t, old, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		oldRoot, err := tree.TreeHash(ctx, tree.NewReader(rl.db, rl.db.Read, rl.t.ID), old)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(old), uint64(cp.Size), hb(c.Hashes),
			oldRoot[:], cp.Root[:]); err != nil {
			t.Fatalf("consistency %d -> %d does not verify: %v", old, cp.Size, err)
		}
	}
}

func hb(hs []tree.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func TestRetentionArchivesAndExpires(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		dir := opts.DataDir
		if dir == "" {
			dir = t.TempDir()
		}
		rl := newRetentionLog(t, db, dir)
		g := eventgen.New(5, rl.clock.now())
		start := rl.clock.now()
		rl.add(t, g, 3000) // received on day 0
		rl.clock.set(start.Add(300 * 24 * time.Hour))
		rl.add(t, g, 2000) // day 300
		rl.clock.set(start.Add(900 * 24 * time.Hour))
		rl.add(t, g, 500) // day 900

		// Day 900: the hot window (400 days) reaches back to day 500, so
		// the first 5000 entries are due, in whole blocks.
		rep := rl.run(t)
		if rep.ArchivedEntries != 5000-5000%blockSize || len(rep.Expired) != 0 {
			t.Fatalf("first run: archived %d entries in %d segments, expired %d", rep.ArchivedEntries, len(rep.Archived),
				len(rep.Expired))
		}
		h := rl.head(t)
		if h.Archived != 4992 || h.Expired != 0 {
			t.Fatalf("head after archiving = %+v", h)
		}
		if n := rl.count(t, `SELECT COUNT(*) FROM entries WHERE tenant_id = ? AND first_seq < ?`, rl.t.ID, h.Archived); n != 0 {
			t.Fatalf("%d archived rows are still in the database", n)
		}
		// Idempotent: nothing more is due.
		if again := rl.run(t); len(again.Archived) != 0 || len(again.Expired) != 0 {
			t.Fatalf("second run did work: %+v", again)
		}

		// Every archived event still reads, queries and verifies.
		for _, seq := range []int64{0, 63, 64, 1023, 1024, 4991, 4992, 5499} {
			rec, err := rl.l.Read(ctx, rl.db.Read, rl.t, seq)
			if err != nil {
				t.Fatalf("read archived %d: %v", seq, err)
			}
			if rec.Sequence != seq {
				t.Fatalf("read %d returned %d", seq, rec.Sequence)
			}
		}
		rl.l.bundles = newBundleCache(2048) // read from the archive, not the cache
		page, err := rl.l.Query(ctx, rl.t, Filter{Asc: true, Limit: 100})
		if err != nil || len(page.Items) != 100 || page.Items[0].Sequence != 0 {
			t.Fatalf("query over archived range: %v, %d items", err, len(page.Items))
		}
		old := page.Items[7].Event
		page, err = rl.l.Query(ctx, rl.t, Filter{Action: old.Action, ActorID: old.Actor.ID, Limit: 1000})
		if err != nil || len(page.Items) == 0 {
			t.Fatalf("filtered query over archived range: %v, %d items", err, len(page.Items))
		}
		for _, deep := range []bool{false, true} {
			vr := rl.verify(t, VerifyOptions{Deep: deep})
			if vr.Problem != nil {
				t.Fatalf("verify (deep %v) after archiving: %v", deep, vr.Problem)
			}
			if vr.Archived != 4992 || vr.Segments != len(rep.Archived) {
				t.Fatalf("verify report: archived %d, segments %d", vr.Archived, vr.Segments)
			}
		}
		rl.checkProofs(t, 0, 100, 4991, 5000)
		var buf strings.Builder
		if _, err := rl.l.ExportRecords(ctx, rl.t, start.Add(-time.Hour), start.Add(time.Hour), FormatNDJSON, &buf, nil); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(buf.String(), "\n"); n != 3000 {
			t.Fatalf("export over archived range has %d events, want 3000", n)
		}
		// An auditor's bundle of an archived period proves it, offline.
		var zb bytes.Buffer
		if _, err := rl.l.ExportBundle(ctx, rl.t, start.Add(-time.Hour), start.Add(time.Hour), &zb, nil); err != nil {
			t.Fatalf("bundle of an archived period: %v", err)
		}
		vk, _ := rl.l.VerifierKey(rl.t.Name)
		br, err := evidence.Verify(bytes.NewReader(zb.Bytes()), int64(zb.Len()), vk, nil)
		if err != nil || br.Events != 3000 {
			t.Fatalf("bundle of an archived period does not verify: %v (%+v)", err, br)
		}
		// Each archive step is itself in the log.
		page, err = rl.l.Query(ctx, rl.t, Filter{Action: "audit.archive.create", Limit: 100})
		if err != nil || len(page.Items) != len(rep.Archived) {
			t.Fatalf("archive events: %v, %d of %d", err, len(page.Items), len(rep.Archived))
		}

		// Day 900 + 2557 - 300: the day-0 segments are past retention; the
		// day-300 ones are not. A legal hold keeps them all.
		rl.clock.set(start.Add((2557 + 10) * 24 * time.Hour))
		if _, err := rl.l.Do(ctx, rl.t, func(ctx context.Context, tx *sql.Tx) error {
			return rl.l.WritePolicy(ctx, tx, rl.t.ID, Policy{RetentionDays: DefaultRetentionDays, HotDays: DefaultHotDays,
				LegalHold: true, HoldReason: "litigation 2026-114"})
		}); err != nil {
			t.Fatal(err)
		}
		rep = rl.run(t)
		if len(rep.Expired) != 0 || rep.HeldEntries != 3000-3000%1024 {
			t.Fatalf("under legal hold: expired %d segments, held %d entries", len(rep.Expired), rep.HeldEntries)
		}
		if _, err := rl.l.Read(ctx, rl.db.Read, rl.t, 0); err != nil {
			t.Fatalf("held entry: %v", err)
		}
		if _, err := rl.l.Do(ctx, rl.t, func(ctx context.Context, tx *sql.Tx) error {
			return rl.l.WritePolicy(ctx, tx, rl.t.ID, DefaultPolicy())
		}); err != nil {
			t.Fatal(err)
		}
		rep = rl.run(t)
		// The segments wholly received on day 0 expire; the one holding
		// both day-0 and day-300 entries waits for its newest.
		if rep.ExpiredEntries != 2048 || rep.ObjectsDeleted != 2 {
			t.Fatalf("expiry: %d entries in %d segments, %d objects deleted", rep.ExpiredEntries, len(rep.Expired),
				rep.ObjectsDeleted)
		}
		h = rl.head(t)
		if h.Expired != 2048 {
			t.Fatalf("head after expiry = %+v", h)
		}
		for _, s := range rep.Expired {
			if _, err := os.Stat(filepath.Join(dir, "archive", filepath.FromSlash(s.Object))); !os.IsNotExist(err) {
				t.Fatalf("expired object %s is still stored: %v", s.Object, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "archive", filepath.FromSlash(ManifestObject(s.Object)))); err != nil {
				t.Fatalf("the manifest of an expired segment is kept: %v", err)
			}
		}
		rl.l.bundles = newBundleCache(2048)
		if _, err := rl.l.Read(ctx, rl.db.Read, rl.t, 5); !errors.Is(err, ErrExpired) {
			t.Fatalf("read of an expired entry = %v, want ErrExpired", err)
		}
		if _, err := rl.l.Read(ctx, rl.db.Read, rl.t, 2048); err != nil {
			t.Fatalf("entry after the expired ones: %v", err)
		}
		page, err = rl.l.Query(ctx, rl.t, Filter{Asc: true, Limit: 10})
		if err != nil || page.Items[0].Sequence != 2048 {
			t.Fatalf("query after expiry: %v, first %d", err, page.Items[0].Sequence)
		}
		if _, err := rl.l.ExportRecords(ctx, rl.t, start.Add(-time.Hour), start.Add(time.Hour), FormatNDJSON,
			&strings.Builder{}, nil); !errors.Is(err, ErrExpired) {
			t.Fatalf("export of an expired period = %v, want ErrExpired", err)
		}
		for _, deep := range []bool{false, true} {
			vr := rl.verify(t, VerifyOptions{Deep: deep})
			if vr.Problem != nil {
				t.Fatalf("verify (deep %v) after expiry: %v", deep, vr.Problem)
			}
			if vr.Expired != 2048 {
				t.Fatalf("verify report: expired %d", vr.Expired)
			}
		}
		rl.checkProofs(t, 0, 2047, 2048, 5000)
		page, err = rl.l.Query(ctx, rl.t, Filter{Action: "audit.archive.expire", Limit: 100})
		if err != nil || len(page.Items) != 2 {
			t.Fatalf("expire events: %v, %d", err, len(page.Items))
		}
		if again := rl.run(t); len(again.Expired) != 0 || again.ObjectsDeleted != 0 || len(again.Archived) != 0 {
			t.Fatalf("a repeated run did work: %+v", again)
		}
	})
}

// TestVerifyWhileRetentionExpires runs a retention run that expires
// segments and deletes their objects after a verify has taken its
// snapshot: the objects its snapshot still names are gone, and the verify
// walks again over the new state instead of reporting them tampered with.
func TestVerifyWhileRetentionExpires(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		dir := opts.DataDir
		if dir == "" {
			dir = t.TempDir()
		}
		rl := newRetentionLog(t, db, dir)
		g := eventgen.New(9, rl.clock.now())
		start := rl.clock.now()
		rl.add(t, g, 3000) // day 0
		rl.clock.set(start.Add(900 * 24 * time.Hour))
		rl.add(t, g, 100) // day 900
		if rep := rl.run(t); len(rep.Archived) == 0 {
			t.Fatal("nothing archived")
		}
		rl.clock.set(start.Add((DefaultRetentionDays + 10) * 24 * time.Hour))
		var expired *RetentionReport
		rl.l.verifySnapshotHook = func() {
			if expired == nil {
				expired = rl.run(t)
			}
		}
		vr := rl.verify(t, VerifyOptions{Deep: true})
		rl.l.verifySnapshotHook = nil
		if expired == nil || expired.ObjectsDeleted == 0 {
			t.Fatalf("the run under the verify deleted no object: %+v", expired)
		}
		if vr.Problem != nil {
			t.Fatalf("verify under a retention run: %v", vr.Problem)
		}
		if vr.Expired != expired.ExpiredEntries {
			t.Fatalf("verify reports %d entries expired, want the %d the run expired", vr.Expired, expired.ExpiredEntries)
		}
	})
}

func TestVerifyCatchesArchiveTampering(t *testing.T) {
	for _, tc := range []struct {
		name string
		harm func(t *testing.T, rl *retentionLog, s ArchiveSegment)
		want string
	}{
		{"object altered", func(t *testing.T, rl *retentionLog, s ArchiveSegment) {
			p := filepath.Join(rl.dir, "archive", filepath.FromSlash(s.Object))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not the one its manifest signed"},
		{"object deleted", func(t *testing.T, rl *retentionLog, s ArchiveSegment) {
			if err := os.Remove(filepath.Join(rl.dir, "archive", filepath.FromSlash(s.Object))); err != nil {
				t.Fatal(err)
			}
		}, "is not the one its manifest signed"},
		{"segment record removed", func(t *testing.T, rl *retentionLog, s ArchiveSegment) {
			rl.exec(t, `DELETE FROM archives WHERE tenant_id = ? AND first_seq = ?`, rl.t.ID, s.First)
		}, "do not cover the archived entries"},
		{"manifest swapped", func(t *testing.T, rl *retentionLog, s ArchiveSegment) {
			rl.exec(t, `UPDATE archives SET sha256 = (SELECT sha256 FROM archives WHERE tenant_id = ? AND first_seq = 0)
				WHERE tenant_id = ? AND first_seq = ?`, rl.t.ID, rl.t.ID, s.First)
		}, "does not describe the segment"},
		{"manifest object altered", func(t *testing.T, rl *retentionLog, s ArchiveSegment) {
			if err := rl.arch.Put(context.Background(), ManifestObject(s.Object), []byte("garbage"), archive.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "kept beside archive segment"},
		{"record names another object", func(t *testing.T, rl *retentionLog, s ArchiveSegment) {
			rl.exec(t, `UPDATE archives SET object = 'tenant-99/elsewhere.seg' WHERE tenant_id = ? AND first_seq = ?`,
				rl.t.ID, s.First)
		}, "signed manifest of archive segment"},
		{"expiry forged", func(t *testing.T, rl *retentionLog, s ArchiveSegment) {
			rl.exec(t, `UPDATE archives SET expired_at = 1, object_deleted_at = 1 WHERE tenant_id = ? AND first_seq = 0`, rl.t.ID)
			rl.exec(t, `UPDATE log_state SET expired_end = 1024 WHERE tenant_id = ?`, rl.t.ID)
			if err := rl.arch.Delete(context.Background(), archiveObject(rl.t.ID, 0, 1024)); err != nil {
				t.Fatal(err)
			}
		}, "deleted outside attest"},
		{"archived rows put back altered", func(t *testing.T, rl *retentionLog, s ArchiveSegment) {
			rl.exec(t, `INSERT INTO entries (tenant_id, first_seq, count, codec, leaves, personal)
				SELECT tenant_id, ?, count, codec, leaves, personal FROM entries WHERE tenant_id = ? AND first_seq = ?`,
				s.First, rl.t.ID, rl.head(t).Archived)
		}, "stored twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, opts := storetest.OpenSQLite(t)
			rl := newRetentionLog(t, db, opts.DataDir)
			g := eventgen.New(9, rl.clock.now())
			rl.add(t, g, 3000)
			rl.clock.set(rl.clock.now().Add(500 * 24 * time.Hour))
			rl.add(t, g, 100)
			rep := rl.run(t)
			if len(rep.Archived) < 2 {
				t.Fatalf("archived %d segments", len(rep.Archived))
			}
			if vr := rl.verify(t, VerifyOptions{}); vr.Problem != nil {
				t.Fatalf("intact: %v", vr.Problem)
			}
			tc.harm(t, rl, rep.Archived[1])
			rl.l.archIdx = archiveIndexes{}
			vr := rl.verify(t, VerifyOptions{})
			if vr.Problem == nil || !strings.Contains(vr.Problem.What, tc.want) {
				t.Fatalf("verify after %s: %v, want %q", tc.name, vr.Problem, tc.want)
			}
		})
	}
}

func TestArchiveInterruptedBeforeCommit(t *testing.T) {
	db, opts := storetest.OpenSQLite(t)
	rl := newRetentionLog(t, db, opts.DataDir)
	g := eventgen.New(2, rl.clock.now())
	rl.add(t, g, 2048)
	rl.clock.set(rl.clock.now().Add(500 * 24 * time.Hour))
	rl.add(t, g, 10)
	ctx := context.Background()
	// A run that fails after writing its first object, before its
	// transaction, removes the object it wrote.
	cctx, cancel := context.WithCancel(ctx)
	_, err := rl.l.RunRetention(cctx, rl.t, RetentionOptions{SegmentEntries: 1024,
		Event: func(action string, target event.Target, details map[string]any) *event.Event {
			cancel()
			return retentionEvent(action, target, details)
		}})
	if err == nil {
		t.Fatal("interrupted run reported success")
	}
	if h := rl.head(t); h.Archived != 0 {
		t.Fatalf("interrupted run moved the boundary: %+v", h)
	}
	if _, err := rl.arch.Size(ctx, archiveObject(rl.t.ID, 0, 1024)); !errors.Is(err, archive.ErrNotExist) {
		t.Fatalf("the failed step's object: %v", err)
	}
	// A run killed between writing and committing leaves its object and
	// pending record; the next run deletes the object.
	orphan := archiveObject(rl.t.ID, 0, 960)
	if err := rl.l.addPending(ctx, rl.t.ID, orphan); err != nil {
		t.Fatal(err)
	}
	if err := rl.arch.Put(ctx, orphan, []byte("left by a killed run"), archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if vr := rl.verify(t, VerifyOptions{}); vr.Problem != nil {
		t.Fatalf("verify after the interruption: %v", vr.Problem)
	}
	rep := rl.run(t)
	if rep.ArchivedEntries != 2048 || rep.OrphansDeleted != 1 {
		t.Fatalf("the next run archived %d entries and deleted %d orphans", rep.ArchivedEntries, rep.OrphansDeleted)
	}
	if _, err := rl.arch.Size(ctx, orphan); !errors.Is(err, archive.ErrNotExist) {
		t.Fatalf("the orphan object: %v", err)
	}
	if vr := rl.verify(t, VerifyOptions{Deep: true}); vr.Problem != nil || vr.Archived != 2048 {
		t.Fatalf("verify after finishing: %v (archived %d)", vr.Problem, vr.Archived)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	db, opts := storetest.OpenSQLite(t)
	rl := newRetentionLog(t, db, opts.DataDir)
	g := eventgen.New(2, rl.clock.now())
	rl.add(t, g, 1100)
	rl.clock.set(rl.clock.now().Add(500 * 24 * time.Hour))
	rl.add(t, g, 10)
	rep := rl.run(t)
	vk, err := rl.l.VerifierKey(rl.t.Name)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Archived[0]
	m, err := OpenManifest(s.Manifest, vk)
	if err != nil {
		t.Fatal(err)
	}
	if m.First != 0 || m.End != 1024 || m.Object != s.Object || m.Size != s.Size {
		t.Fatalf("manifest = %+v", m)
	}
	root, err := tree.TreeHash(context.Background(), tree.NewReader(rl.db, rl.db.Read, rl.t.ID), 1024)
	if err != nil || root != m.TreeRoot {
		t.Fatalf("manifest root %v, tree %v (%v)", m.TreeRoot, root, err)
	}
	// Another key's verifier refuses it; a changed byte breaks it.
	other, _, _ := checkpoint.LoadOrCreateKey(filepath.Join(t.TempDir(), "other.key"))
	ovk, _ := checkpoint.VerifierKey(rl.l.Origin(rl.t.Name), other.Public)
	if _, err := OpenManifest(s.Manifest, ovk); err == nil {
		t.Fatal("manifest opened with another key")
	}
	bad := []byte(strings.Replace(string(s.Manifest), "entries 0 1024", "entries 0 1023", 1))
	if _, err := OpenManifest(bad, vk); err == nil {
		t.Fatal("altered manifest opened")
	}
}

// TestRetentionOnS3 archives into an S3-compatible bucket, served over
// HTTP by an in-memory S3 implementation, and reads, verifies and expires
// from there.
func TestRetentionOnS3(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("attest-archive"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	defer srv.Close()
	ctx := context.Background()
	s3, err := archive.NewS3(ctx, archive.S3Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "attest-archive",
		Prefix: "prod/", Region: "us-east-1", AccessKey: "test", SecretKey: "test-secret", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	db, opts := storetest.OpenSQLite(t)
	rl := newRetentionLogOn(t, db, opts.DataDir, s3)
	g := eventgen.New(4, rl.clock.now())
	start := rl.clock.now()
	rl.add(t, g, 2100)
	rl.clock.set(start.Add(500 * 24 * time.Hour))
	rl.add(t, g, 10)
	rep := rl.run(t)
	if rep.ArchivedEntries != 2048 || len(rep.Archived) != 2 {
		t.Fatalf("archived %d entries in %d segments", rep.ArchivedEntries, len(rep.Archived))
	}
	obj, err := backend.HeadObject("attest-archive", "prod/"+rep.Archived[0].Object)
	if err != nil || obj.Size != rep.Archived[0].Size {
		t.Fatalf("the segment in the bucket: %v", err)
	}
	rl.l.bundles = newBundleCache(2048)
	if rec, err := rl.l.Read(ctx, rl.db.Read, rl.t, 1500); err != nil || rec.Sequence != 1500 {
		t.Fatalf("read from the bucket: %v", err)
	}
	if vr := rl.verify(t, VerifyOptions{Deep: true}); vr.Problem != nil || vr.Segments != 2 || vr.Archived != 2048 {
		t.Fatalf("verify: %v (%d segments, %d archived)", vr.Problem, vr.Segments, vr.Archived)
	}
	rl.clock.set(start.Add(3000 * 24 * time.Hour))
	rep = rl.run(t)
	if rep.ExpiredEntries != 2048 || rep.ObjectsDeleted != 2 {
		t.Fatalf("expired %d entries, deleted %d objects", rep.ExpiredEntries, rep.ObjectsDeleted)
	}
	if _, err := backend.HeadObject("attest-archive", "prod/"+rep.Expired[0].Object); err == nil {
		t.Fatal("the expired segment is still in the bucket")
	}
	if vr := rl.verify(t, VerifyOptions{}); vr.Problem != nil || vr.Expired != 2048 {
		t.Fatalf("verify after expiry: %v (%d expired)", vr.Problem, vr.Expired)
	}
}

// BenchmarkReadArchived reads single events at random from archive
// segments and, for comparison, from the database, each with the block
// cache empty, as a query over a range not read lately does.
func BenchmarkReadArchived(b *testing.B) {
	for _, e := range storetest.Engines() {
		for _, archived := range []bool{false, true} {
			name := e.Name + "/database"
			if archived {
				name = e.Name + "/archive"
			}
			b.Run(name, func(b *testing.B) {
				db, opts := e.Open(b)
				rl := newRetentionLog(b, db, opts.DataDir)
				g := eventgen.New(4, rl.clock.now())
				for range 10 {
					rl.add(b, g, 2000)
				}
				if archived {
					rl.clock.set(rl.clock.now().Add(500 * 24 * time.Hour))
					if _, err := rl.l.RunRetention(context.Background(), rl.t, RetentionOptions{Event: retentionEvent}); err != nil {
						b.Fatal(err)
					}
				}
				ctx := context.Background()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					rl.l.bundles = newBundleCache(2048)
					if _, err := rl.l.Read(ctx, rl.db.Read, rl.t, int64(i*7919%19000)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkArchive measures a retention run that archives 65,536 entries
// into one segment: reading them, checking them against the tree,
// compressing, writing and syncing the object, and the transaction, on
// each engine.
func BenchmarkArchive(b *testing.B) {
	for _, e := range storetest.Engines() {
		b.Run(e.Name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				db, opts := e.Open(b)
				dir := opts.DataDir
				rl := newRetentionLog(b, db, dir)
				g := eventgen.New(4, rl.clock.now())
				for range 32 {
					rl.add(b, g, 2048)
				}
				rl.add(b, g, 10)
				rl.clock.set(rl.clock.now().Add(500 * 24 * time.Hour))
				var stored int64
				if err := db.Read.QueryRow(`SELECT SUM(length(leaves) + length(personal)) FROM entries
					WHERE first_seq < 65536`).Scan(&stored); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				rep, err := rl.l.RunRetention(context.Background(), rl.t, RetentionOptions{Event: retentionEvent})
				if err != nil || rep.ArchivedEntries != 65536 {
					b.Fatalf("archived %v: %v", rep, err)
				}
				b.StopTimer()
				b.ReportMetric(float64(stored)/65536, "db-bytes/entry")
				b.ReportMetric(float64(rep.Archived[0].Size)/65536, "archive-bytes/entry")
				b.StartTimer()
			}
			b.ReportMetric(float64(65536*b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
