package auditlog

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tree"
)

// With a witness in the data directory, a rollback that removes all its
// traces from the database is found, and no checkpoint is signed for it.
func TestWitnessCatchesRollbackWithoutTraces(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		cfg := Config{Instance: "verify.test", WitnessDir: filepath.Join(opts.DataDir, "checkpoints")}
		tl := newTestLogWith(t, db, opts.DataDir, attackSize, cfg)
		if rep := tl.verify(t, VerifyOptions{}); rep.Problem != nil || rep.Witness != attackSize {
			t.Fatalf("intact log: problem %v, witness at %d", rep.Problem, rep.Witness)
		}
		r := tree.NewReader(tl.db, tl.db.Read, tl.t.ID)
		root, _ := tree.TreeHash(ctx, r, 1536)
		tl.exec(t, `DELETE FROM entries WHERE tenant_id = ? AND first_seq >= 1536`, tl.t.ID)
		tl.exec(t, `DELETE FROM checkpoints WHERE tenant_id = ? AND size > 1536`, tl.t.ID)
		tl.exec(t, `UPDATE log_state SET size = 1536, root = ? WHERE tenant_id = ?`, root[:], tl.t.ID)
		tl.exec(t, `DELETE FROM tiles WHERE tenant_id = ? AND level = 0 AND idx >= 6`, tl.t.ID)
		tl.exec(t, `UPDATE tiles SET width = 6, hashes = substr(hashes, 1, 192) WHERE tenant_id = ? AND level = 1 AND idx = 0`, tl.t.ID)
		rep := tl.verify(t, VerifyOptions{})
		wantProblem(t, rep, 1536, "the checkpoint this data directory signed last is at size")

		// The rolled-back log gets no checkpoint, and grows none either.
		tl.appendGenerated(t, 10)
		_, err := tl.l.PublishCheckpoints(ctx)
		if !errors.Is(err, ErrRefusedToSign) || !strings.Contains(err.Error(), "rolled back") {
			t.Fatalf("publishing on a rolled-back log: %v", err)
		}
		if cp, err := tl.l.LatestCheckpoint(ctx, db.Read, tl.t.ID); err != nil || cp.Size > 1536 {
			t.Fatalf("latest checkpoint %+v (%v)", cp, err)
		}
	})
}

// A log state that its tiles do not prove is never signed.
func TestNoCheckpointForAnUnprovenState(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		tl := newTestLog(t, db, opts.DataDir, 600)
		publish := func(want string) {
			t.Helper()
			_, err := tl.l.PublishCheckpoints(ctx)
			if !errors.Is(err, ErrRefusedToSign) || !strings.Contains(err.Error(), want) {
				t.Fatalf("publishing: %v, want %q", err, want)
			}
		}
		tl.exec(t, `UPDATE log_state SET size = 750 WHERE tenant_id = ?`, tl.t.ID)
		publish("do not hold that tree")
		tl.exec(t, `UPDATE log_state SET size = 600 WHERE tenant_id = ?`, tl.t.ID)

		// Ten more entries, with their tiles, under a root that is not theirs.
		tl.appendGenerated(t, 10)
		tl.exec(t, `UPDATE log_state SET root = ? WHERE tenant_id = ?`, make([]byte, tree.HashSize), tl.t.ID)
		publish("is not the root of the stored tiles")
		if cp, err := tl.l.LatestCheckpoint(ctx, db.Read, tl.t.ID); err != nil || cp.Size != 600 {
			t.Fatalf("latest checkpoint %+v (%v)", cp, err)
		}
	})
}

// appendGenerated appends n generated events.
func (tl *testLog) appendGenerated(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	g := eventgen.New(9, time.Now().Add(-time.Minute))
	var ps []*Prepared
	for range n {
		p, err := tl.l.Prepare(ctx, tl.t, g.Next())
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if _, err := tl.l.Append(ctx, tl.t, ps); err != nil {
		t.Fatal(err)
	}
}

// Deleting the checkpoints is found through the witness, and is not
// healed by signing anew; a checkpoint given to verify does not replace the
// witness but adds to it.
func TestWitnessCatchesDeletedCheckpoints(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		cfg := Config{Instance: "verify.test", WitnessDir: filepath.Join(opts.DataDir, "checkpoints")}
		tl := newTestLogWith(t, db, opts.DataDir, 2000, cfg)
		cps, err := tl.l.Checkpoints(ctx, db.Read, tl.t.ID)
		if err != nil || len(cps) < 2 {
			t.Fatalf("checkpoints %v (%v)", cps, err)
		}
		early := cps[0]
		tl.exec(t, `DELETE FROM checkpoints WHERE tenant_id = ?`, tl.t.ID)
		wantProblem(t, tl.verify(t, VerifyOptions{}), -1, "missing from the stored checkpoints")
		wantProblem(t, tl.verify(t, VerifyOptions{Checkpoint: early.Note}), -1, "missing from the stored checkpoints")
		_, err = tl.l.PublishCheckpoints(ctx)
		if !errors.Is(err, ErrRefusedToSign) || !strings.Contains(err.Error(), "checkpoints have been deleted") {
			t.Fatalf("publishing after the checkpoints were deleted: %v", err)
		}
		wantProblem(t, tl.verify(t, VerifyOptions{}), -1, "missing from the stored checkpoints")
	})
}

// Writers racing to replace the witness leave the largest checkpoint, as
// two processes sharing a data directory would.
func TestWitnessKeepsTheLargestUnderRacingWriters(t *testing.T) {
	db, opts := storetest.OpenSQLite(t)
	dir := opts.DataDir
	cfg := Config{Instance: "verify.test", WitnessDir: filepath.Join(dir, "checkpoints")}
	tl := newTestLogWith(t, db, dir, 0, cfg)
	signer, err := tl.l.key.Signer(tl.l.Origin("acme"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	notes := make([][]byte, n+1)
	for size := 1; size <= n; size++ {
		if notes[size], err = checkpoint.Sign(checkpoint.Checkpoint{Origin: tl.l.Origin("acme"), Size: int64(size)}, signer); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for size := n; size >= 1; size-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- tl.l.recordWitness("acme", int64(size), notes[size])
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cp, _, err := tl.l.Witness("acme")
	if err != nil || cp == nil || cp.Size != n {
		t.Fatalf("witness %+v (%v), want size %d", cp, err, n)
	}
}
