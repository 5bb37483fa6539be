package auditlog

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
)

// testLog is a Log on a fresh database with one tenant holding n events.
type testLog struct {
	db  *store.DB
	l   *Log
	t   *tenant.Tenant
	key *checkpoint.Key
	dir string
}

func newTestLog(t *testing.T, db *store.DB, dir string, n int) *testLog {
	t.Helper()
	return newTestLogWith(t, db, dir, n, Config{Instance: "verify.test"})
}

func newTestLogWith(t *testing.T, db *store.DB, dir string, n int, cfg Config) *testLog {
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
	reg := tenant.NewRegistry(db, kek)
	var ten *tenant.Tenant
	if err := db.InTx(ctx, func(tx *sql.Tx) error {
		ten, err = reg.Create(ctx, tx, "acme", false, time.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	l, err := Open(db, cfg, personal.NewKeyring(db, kek, nil), reg, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.RegisterKey(ctx); err != nil {
		t.Fatal(err)
	}
	g := eventgen.New(3, time.Now().Add(-time.Hour))
	for i := 0; i < n; i += 500 {
		var evs = g.Next
		var ps []*Prepared
		for j := i; j < min(i+500, n); j++ {
			p, err := l.Prepare(ctx, ten, evs())
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		if _, err := l.Append(ctx, ten, ps); err != nil {
			t.Fatal(err)
		}
		if i == 1000 {
			if _, err := l.PublishCheckpoints(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := l.PublishCheckpoints(ctx); err != nil {
		t.Fatal(err)
	}
	return &testLog{db: db, l: l, t: ten, key: key, dir: dir}
}

func (tl *testLog) verify(t *testing.T, opts VerifyOptions) *VerifyReport {
	t.Helper()
	rep, err := tl.l.Verify(context.Background(), tl.t, opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

// rewriteRow decodes the entry row holding seq, lets edit change its leaves,
// and stores it back as a raw row, as an attacker with database access would.
func (tl *testLog) rewriteRow(t *testing.T, seq int64, edit func(b *bundle)) {
	t.Helper()
	ctx := context.Background()
	rows, err := tl.l.readRows(ctx, tl.db.Read, tl.t.ID, seq, seq+1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("read row of %d: %v (%d rows)", seq, err, len(rows))
	}
	b, err := rows[0].decode()
	if err != nil {
		t.Fatal(err)
	}
	edit(b)
	_, err = tl.db.Write.ExecContext(ctx, tl.db.Rebind(`UPDATE entries SET codec = 0, count = ?, leaves = ?, personal = ?
		WHERE tenant_id = ? AND first_seq = ?`), len(b.leaves), encodeLeaves(b.leaves), encodePersonal(b.personal),
		tl.t.ID, rows[0].first)
	if err != nil {
		t.Fatal(err)
	}
}

func (tl *testLog) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := tl.db.Write.ExecContext(context.Background(), tl.db.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func wantProblem(t *testing.T, rep *VerifyReport, seq int64, substr string) {
	t.Helper()
	if rep.Problem == nil {
		t.Fatalf("verify passed; want a problem at sequence %d (%q)", seq, substr)
	}
	if rep.Problem.Sequence != seq || !strings.Contains(rep.Problem.What, substr) {
		t.Fatalf("problem = %v; want sequence %d and %q", rep.Problem, seq, substr)
	}
}

const attackSize = 3000

func TestVerifyIntact(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		tl := newTestLog(t, db, opts.DataDir, attackSize)
		// Small appends leave the last bundle in several fragment rows.
		g := eventgen.New(11, time.Now().Add(-time.Hour))
		for i := 0; i < 3; i++ {
			var ps []*Prepared
			for j := 0; j < 5; j++ {
				p, err := tl.l.Prepare(context.Background(), tl.t, g.Next())
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			if _, err := tl.l.Append(context.Background(), tl.t, ps); err != nil {
				t.Fatal(err)
			}
		}
		for _, deep := range []bool{false, true} {
			rep := tl.verify(t, VerifyOptions{Deep: deep})
			if rep.Problem != nil {
				t.Fatalf("intact log fails verification (deep %v): %v", deep, rep.Problem)
			}
			if rep.Size != attackSize+15 || rep.Checkpoints != 2 || deep && rep.Personal != attackSize+15 {
				t.Fatalf("report = %+v", rep)
			}
		}
	})
}

func TestVerifyDetectsAttacks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, tl *testLog)
		seq    int64
		want   string
	}{
		{"changed field", func(t *testing.T, tl *testLog) {
			tl.rewriteRow(t, 1234, func(b *bundle) {
				i := 1234 - b.first
				b.leaves[i] = bytes.Replace(b.leaves[i], []byte(`"result":"`), []byte(`"result":"x`), 1)
			})
		}, 1234, "altered"},
		{"changed details", func(t *testing.T, tl *testLog) {
			tl.rewriteRow(t, 100, func(b *bundle) {
				i := 100 - b.first
				b.leaves[i] = bytes.Replace(b.leaves[i], []byte(`"tenant":"acme"`), []byte(`"details":{"x":1},"tenant":"acme"`), 1)
			})
		}, 100, "altered"},
		{"deleted event inside a bundle", func(t *testing.T, tl *testLog) {
			tl.rewriteRow(t, 700, func(b *bundle) {
				i := 700 - b.first
				b.leaves = append(b.leaves[:i], b.leaves[i+1:]...)
				b.personal = append(b.personal[:i], b.personal[i+1:]...)
			})
		}, 700, "sequence 701"},
		{"checkpoint root column changed", func(t *testing.T, tl *testLog) {
			tl.exec(t, `UPDATE checkpoints SET root = ? WHERE tenant_id = ? AND size > 0`, make([]byte, tree.HashSize), tl.t.ID)
		}, -1, "root column differs"},
		{"deleted row", func(t *testing.T, tl *testLog) {
			tl.exec(t, `DELETE FROM entries WHERE tenant_id = ? AND first_seq = 512`, tl.t.ID)
		}, 512, "missing"},
		{"inserted event", func(t *testing.T, tl *testLog) {
			tl.rewriteRow(t, 10, func(b *bundle) {
				i := 10 - b.first
				fake := bytes.Clone(b.leaves[i])
				b.leaves = append(b.leaves[:i], append([][]byte{fake}, b.leaves[i:]...)...)
				b.personal = append(b.personal[:i], append([][]byte{nil}, b.personal[i:]...)...)
			})
		}, 11, "sequence 10"},
		{"inserted row past the end", func(t *testing.T, tl *testLog) {
			tl.exec(t, `INSERT INTO entries (tenant_id, first_seq, count, codec, leaves, personal) VALUES (?, ?, 1, 0, ?, ?)`,
				tl.t.ID, attackSize, encodeLeaves([][]byte{[]byte(`{}`)}), encodePersonal([][]byte{nil}))
		}, attackSize, "beyond"},
		{"swapped events", func(t *testing.T, tl *testLog) {
			tl.rewriteRow(t, 2050, func(b *bundle) {
				i := 2050 - b.first
				b.leaves[i], b.leaves[i+1] = b.leaves[i+1], b.leaves[i]
			})
		}, 2050, "sequence 2051"},
		{"truncated log", func(t *testing.T, tl *testLog) {
			// Roll the log back to 2000 entries, consistently: entries,
			// tiles and state. The checkpoint signed at 3000 gives it away.
			r := tree.NewReader(tl.db, tl.db.Read, tl.t.ID)
			root, err := tree.TreeHash(context.Background(), r, 2000)
			if err != nil {
				t.Fatal(err)
			}
			tl.exec(t, `DELETE FROM entries WHERE tenant_id = ? AND first_seq >= 2000`, tl.t.ID)
			tl.exec(t, `UPDATE log_state SET size = 2000, root = ? WHERE tenant_id = ?`, root[:], tl.t.ID)
		}, 2000, "truncated or rolled back"},
		{"checkpoint signed by another key", func(t *testing.T, tl *testLog) {
			other, _, err := checkpoint.LoadOrCreateKey(filepath.Join(t.TempDir(), "other.key"))
			if err != nil {
				t.Fatal(err)
			}
			s, _ := other.Signer(tl.l.Origin(tl.t.Name))
			note, _ := checkpoint.Sign(checkpoint.Checkpoint{Origin: tl.l.Origin(tl.t.Name), Size: 5, Root: tree.Hash{1}}, s)
			tl.exec(t, `INSERT INTO checkpoints (tenant_id, size, root, key_id, note, created_at) VALUES (?, 5, ?, ?, ?, 0)`,
				tl.t.ID, make([]byte, 32), other.ID, note)
		}, -1, "not signed by a trusted key"},
		{"hash added to a partial tile", func(t *testing.T, tl *testLog) {
			// 3000 leaves: level-0 tile 11 holds 184 hashes.
			var hashes []byte
			if err := tl.db.Read.QueryRowContext(context.Background(), tl.db.Rebind(`SELECT hashes FROM tiles
				WHERE tenant_id = ? AND level = 0 AND idx = 11`), tl.t.ID).Scan(&hashes); err != nil {
				t.Fatal(err)
			}
			tl.exec(t, `UPDATE tiles SET width = 185, hashes = ? WHERE tenant_id = ? AND level = 0 AND idx = 11`,
				append(hashes, make([]byte, 32)...), tl.t.ID)
		}, -1, "tile 0/11 holds 185 hashes"},
		{"tile beyond the log", func(t *testing.T, tl *testLog) {
			tl.exec(t, `INSERT INTO tiles (tenant_id, level, idx, width, hashes) VALUES (?, 0, 12, 1, ?)`,
				tl.t.ID, make([]byte, 32))
		}, -1, "tile 0/12 holds 1 hashes"},
		{"altered tile", func(t *testing.T, tl *testLog) {
			tl.exec(t, `UPDATE tiles SET hashes = ? WHERE tenant_id = ? AND level = 1 AND idx = 0`, make([]byte, 11*32), tl.t.ID)
		}, -1, "tile 1/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
				tl := newTestLog(t, db, opts.DataDir, attackSize)
				tc.attack(t, tl)
				wantProblem(t, tl.verify(t, VerifyOptions{}), tc.seq, tc.want)
			})
		})
	}
}

// TestVerifyAgainstEarlierCheckpoint rolls the log back and removes every
// stored trace of the lost entries; only a checkpoint kept outside the
// database shows what happened.
func TestVerifyAgainstEarlierCheckpoint(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		tl := newTestLog(t, db, opts.DataDir, attackSize)
		cp, err := tl.l.LatestCheckpoint(ctx, db.Read, tl.t.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rep := tl.verify(t, VerifyOptions{Checkpoint: cp.Note}); rep.Problem != nil || !rep.ExtendsCheckpoint {
			t.Fatalf("intact log against its own checkpoint: %+v", rep)
		}
		r := tree.NewReader(tl.db, tl.db.Read, tl.t.ID)
		root, _ := tree.TreeHash(ctx, r, 1536)
		tl.exec(t, `DELETE FROM entries WHERE tenant_id = ? AND first_seq >= 1536`, tl.t.ID)
		tl.exec(t, `DELETE FROM checkpoints WHERE tenant_id = ? AND size > 1536`, tl.t.ID)
		tl.exec(t, `UPDATE log_state SET size = 1536, root = ? WHERE tenant_id = ?`, root[:], tl.t.ID)
		if rep := tl.verify(t, VerifyOptions{}); rep.Problem == nil || !strings.Contains(rep.Problem.What, "tile 0/6") {
			t.Fatalf("a rollback that leaves the tree's tiles behind: %v", rep.Problem)
		}
		// Cut the tree back to 1536 leaves too: 6 tiles at level 0, and 6
		// hashes in the one tile of level 1.
		tl.exec(t, `DELETE FROM tiles WHERE tenant_id = ? AND level = 0 AND idx >= 6`, tl.t.ID)
		tl.exec(t, `UPDATE tiles SET width = 6, hashes = substr(hashes, 1, 192) WHERE tenant_id = ? AND level = 1 AND idx = 0`, tl.t.ID)
		if rep := tl.verify(t, VerifyOptions{}); rep.Problem != nil {
			t.Fatalf("a consistent rollback with its checkpoints removed cannot be seen from inside: %v", rep.Problem)
		}
		rep := tl.verify(t, VerifyOptions{Checkpoint: cp.Note})
		wantProblem(t, rep, 1536, "truncated or rolled back")

		// A checkpoint the log never signed at that size is a fork.
		s, _ := tl.key.Signer(tl.l.Origin(tl.t.Name))
		forged, _ := checkpoint.Sign(checkpoint.Checkpoint{Origin: tl.l.Origin(tl.t.Name), Size: 1000, Root: tree.Hash{9}}, s)
		wantProblem(t, tl.verify(t, VerifyOptions{Checkpoint: forged}), 999, "does not extend the given checkpoint")
	})
}

// TestVerifyWhileAppending appends to a log while it is being verified:
// what was committed when verification began must verify, whatever arrives
// meanwhile, including a bundle completed meanwhile.
func TestVerifyWhileAppending(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		tl := newTestLog(t, db, opts.DataDir, 1000) // the last bundle is open
		g := eventgen.New(21, time.Now().Add(-time.Hour))
		afterVerifySnapshot = func() {
			var ps []*Prepared
			for j := 0; j < 300; j++ {
				p, err := tl.l.Prepare(ctx, tl.t, g.Next())
				if err != nil {
					t.Error(err)
					return
				}
				ps = append(ps, p)
			}
			if _, err := tl.l.Append(ctx, tl.t, ps); err != nil {
				t.Error(err)
			}
		}
		defer func() { afterVerifySnapshot = nil }()
		for i := 0; i < 3; i++ {
			rep := tl.verify(t, VerifyOptions{})
			if rep.Problem != nil {
				t.Fatalf("verification %d while appending: %v", i, rep.Problem)
			}
			if rep.Size != 1000+300*int64(i) {
				t.Fatalf("verification %d covered %d entries, want %d", i, rep.Size, 1000+300*i)
			}
		}
	})
}

// TestVerifyMissingCheckpoints deletes the stored checkpoints: entries that
// no checkpoint covers minutes after they arrived mean checkpoints are gone.
func TestVerifyMissingCheckpoints(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		tl := newTestLog(t, db, opts.DataDir, 3000) // checkpoints at 1500 and 3000
		if rep := tl.verify(t, VerifyOptions{}); rep.Problem != nil || rep.Unsigned != 0 {
			t.Fatalf("intact log: %+v", rep)
		}
		tl.exec(t, `DELETE FROM checkpoints WHERE tenant_id = ? AND size > 2000`, tl.t.ID)
		rep := tl.verify(t, VerifyOptions{})
		if rep.Problem != nil || rep.Unsigned == 0 {
			t.Fatalf("entries just appended and not yet signed: %+v", rep)
		}
		later := time.Now().Add(10 * time.Minute)
		tl.l.cfg.Now = func() time.Time { return later }
		wantProblem(t, tl.verify(t, VerifyOptions{}), 1500, "cover only the first 1500 entries")
		tl.exec(t, `DELETE FROM checkpoints WHERE tenant_id = ?`, tl.t.ID)
		wantProblem(t, tl.verify(t, VerifyOptions{}), 0, "no stored checkpoint covers the log")
	})
}
