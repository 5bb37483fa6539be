package auditlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// VerifierKeys are trusted signed-note verifier keys for the tenant's
	// checkpoints. Empty means the keys of the log's own key history.
	VerifierKeys []string
	// Checkpoint, when set, is a checkpoint obtained earlier that the log
	// must still extend.
	Checkpoint []byte
	// Deep also checks every sealed personal value against its commitment
	// and rebuilds the search index from the log to compare it with the
	// stored one.
	Deep bool
	// Progress, when set, is called now and then with the entries checked.
	Progress func(done, total int64)
}

// Problem is the first thing found wrong with a log.
type Problem struct {
	// Sequence is the first bad entry, or -1 when the problem is not one
	// entry's (a checkpoint, the log state).
	Sequence int64
	What     string
}

func (p *Problem) Error() string {
	if p.Sequence >= 0 {
		return fmt.Sprintf("sequence %d: %s", p.Sequence, p.What)
	}
	return p.What
}

// VerifyReport says what Verify checked.
type VerifyReport struct {
	Tenant      string
	Size        int64
	Root        tree.Hash
	Checkpoints int
	Tiles       int
	Personal    int64 // sealed personal values checked (Deep)
	Indexed     int64 // events whose index terms were checked (Deep)
	Elapsed     time.Duration
	// Problem is nil when the log is intact.
	Problem *Problem
	// ExtendsCheckpoint is set when a checkpoint was given and the log
	// extends it.
	ExtendsCheckpoint bool
}

const verifyRows = 64 // entry rows read per query

// Verify re-hashes every stored entry of a tenant's log, rebuilds the tree
// and compares it with the stored tiles, checks the signature of every
// stored checkpoint and that each is a prefix of the rebuilt tree (which
// makes successive checkpoints consistent), and checks the log state. It
// returns a report whose Problem names the first thing wrong; the error is
// for failures to read.
func (l *Log) Verify(ctx context.Context, t *tenant.Tenant, opts VerifyOptions) (*VerifyReport, error) {
	start := time.Now()
	rep := &VerifyReport{Tenant: t.Name}
	err := l.db.ReadTx(ctx, func(tx *sql.Tx) error {
		return l.verifyTx(ctx, tx, t, opts, rep)
	})
	rep.Elapsed = time.Since(start)
	return rep, err
}

func (l *Log) verifyTx(ctx context.Context, tx *sql.Tx, t *tenant.Tenant, opts VerifyOptions, rep *VerifyReport) error {
	head, err := l.Head(ctx, tx, t.ID)
	if err != nil {
		return err
	}
	rep.Size, rep.Root = head.Size, head.Root
	vkeys := opts.VerifierKeys
	if len(vkeys) == 0 {
		if vkeys, err = l.historyVerifierKeys(ctx, tx, t.Name); err != nil {
			return err
		}
	}
	cps, err := l.Checkpoints(ctx, tx, t.ID)
	if err != nil {
		return err
	}
	// Every stored checkpoint must be signed by a trusted key.
	for _, cp := range cps {
		c, err := checkpoint.Open(cp.Note, l.Origin(t.Name), vkeys...)
		if err != nil {
			rep.Problem = &Problem{Sequence: -1, What: fmt.Sprintf("stored checkpoint at size %d: %v", cp.Size, err)}
			return nil
		}
		if c.Size != cp.Size || c.Root != cp.Root {
			rep.Problem = &Problem{Sequence: -1, What: fmt.Sprintf("stored checkpoint at size %d: its signed text says size %d", cp.Size, c.Size)}
			return nil
		}
	}
	var given *checkpoint.Checkpoint
	if opts.Checkpoint != nil {
		if given, err = checkpoint.Open(opts.Checkpoint, l.Origin(t.Name), vkeys...); err != nil {
			rep.Problem = &Problem{Sequence: -1, What: fmt.Sprintf("the given checkpoint: %v", err)}
			return nil
		}
	}
	if len(cps) > 0 && cps[len(cps)-1].Size > head.Size {
		last := cps[len(cps)-1]
		rep.Problem = &Problem{Sequence: head.Size, What: fmt.Sprintf("the log has been truncated or rolled back: "+
			"a checkpoint was signed at size %d but the log holds %d entries", last.Size, head.Size)}
		return nil
	}
	if given != nil && given.Size > head.Size {
		rep.Problem = &Problem{Sequence: head.Size, What: fmt.Sprintf("the log has been truncated or rolled back: "+
			"the given checkpoint is at size %d but the log holds %d entries", given.Size, head.Size)}
		return nil
	}
	w := &walker{l: l, ctx: ctx, tx: tx, t: t, opts: opts, rep: rep, head: head, cps: cps, given: given,
		rng:   (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0),
		tiles: tree.NewReader(l.db, tx, t.ID)}
	if err := w.walk(); err != nil {
		return err
	}
	rep.Checkpoints = len(cps)
	return nil
}

func (l *Log) historyVerifierKeys(ctx context.Context, q store.Querier, tenantName string) ([]string, error) {
	hist, err := l.KeyHistory(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range hist {
		if k.Algorithm != "ed25519" || len(k.PublicKey) != ed25519.PublicKeySize {
			continue
		}
		vk, err := checkpoint.VerifierKey(l.Origin(tenantName), ed25519.PublicKey(k.PublicKey))
		if err != nil {
			return nil, err
		}
		out = append(out, vk)
	}
	return out, nil
}

// walker goes through a tenant's entries in order.
type walker struct {
	l     *Log
	ctx   context.Context
	tx    *sql.Tx
	t     *tenant.Tenant
	opts  VerifyOptions
	rep   *VerifyReport
	head  State
	cps   []StoredCheckpoint
	given *checkpoint.Checkpoint
	rng   *compact.Range
	tiles *tree.Reader

	next     int64 // next sequence number expected
	cpIdx    int
	tileErr  *Problem
	docs     []*index.Doc // Deep: docs of the events not yet compared with a segment
	segs     []*index.Meta
	segIdx   int
	memStart int64
}

func (w *walker) fail(seq int64, format string, args ...any) error {
	if w.rep.Problem == nil {
		w.rep.Problem = &Problem{Sequence: seq, What: fmt.Sprintf(format, args...)}
	}
	return errStop
}

var errStop = errors.New("stop")

func (w *walker) walk() error {
	if w.opts.Deep {
		segs, err := index.LoadMetas(w.ctx, w.l.db, w.tx, w.t.ID)
		if err != nil {
			return err
		}
		w.segs = segs
	}
	err := w.entries()
	if errors.Is(err, errStop) {
		return nil
	}
	if err != nil {
		return err
	}
	if w.next != w.head.Size {
		return ignoreStop(w.fail(w.next, "entry is missing: the log state says %d entries but only %d are stored", w.head.Size, w.next))
	}
	root := tree.EmptyRoot
	if w.head.Size > 0 {
		r, err := w.rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		root = tree.Hash(r)
	}
	if root != w.head.Root {
		return ignoreStop(w.fail(-1, "the log state's root %x does not match the root %x rebuilt from the entries", w.head.Root, root))
	}
	if w.tileErr != nil {
		w.rep.Problem = w.tileErr
		return nil
	}
	for ; w.cpIdx < len(w.cps); w.cpIdx++ {
		if err := w.checkpointAt(w.cps[w.cpIdx].Size, w.cps[w.cpIdx].Root, "stored checkpoint"); err != nil {
			return ignoreStop(err)
		}
	}
	if w.given != nil {
		if err := w.checkpointAt(w.given.Size, w.given.Root, "given checkpoint"); err != nil {
			return ignoreStop(err)
		}
		w.rep.ExtendsCheckpoint = true
	}
	if w.opts.Deep {
		return ignoreStop(w.flushDocs(true))
	}
	return nil
}

func ignoreStop(err error) error {
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// checkpointAt compares a checkpoint's root with the rebuilt tree. Called
// when the walk has just reached size, or at the end for sizes it passed.
func (w *walker) checkpointAt(size int64, root tree.Hash, what string) error {
	got, err := tree.TreeHash(w.ctx, w.tiles, size)
	if err != nil {
		return err
	}
	if got != root {
		return w.fail(-1, "the log no longer matches the %s at size %d: it has root %x there, the checkpoint %x", what, size, got, root)
	}
	return nil
}

// entries streams the entry rows, re-hashing each leaf.
func (w *walker) entries() error {
	q := w.l.db.Rebind(`SELECT first_seq, count, codec, leaves, personal FROM entries
		WHERE tenant_id = ? AND first_seq >= ? ORDER BY first_seq LIMIT ?`)
	var from int64
	type job struct {
		row    entryRow
		b      *bundle
		hashes []tree.Hash
		err    error
		done   chan struct{}
	}
	workers := max(runtime.GOMAXPROCS(0), 1)
	for {
		rows, err := w.tx.QueryContext(w.ctx, q, w.t.ID, from, verifyRows)
		if err != nil {
			return fmt.Errorf("auditlog: verify: read entries: %w", err)
		}
		var batch []entryRow
		for rows.Next() {
			var r entryRow
			if err := rows.Scan(&r.first, &r.count, &r.codec, &r.leaves, &r.personal); err != nil {
				rows.Close()
				return fmt.Errorf("auditlog: verify: read entries: %w", err)
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("auditlog: verify: read entries: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		// Decode and hash the rows in parallel, then check them in order.
		jobs := make([]*job, len(batch))
		var wg sync.WaitGroup
		sem := make(chan struct{}, workers)
		for i := range batch {
			j := &job{row: batch[i], done: make(chan struct{})}
			jobs[i] = j
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done(); close(j.done) }()
				if j.b, j.err = j.row.decode(); j.err != nil {
					return
				}
				j.hashes = make([]tree.Hash, len(j.b.leaves))
				for k, leaf := range j.b.leaves {
					j.hashes[k] = tree.LeafHash(leaf)
				}
				if w.opts.Deep {
					j.err = w.checkPersonal(j.b)
				}
			}()
		}
		wg.Wait()
		for _, j := range jobs {
			if err := w.row(j.row, j.b, j.hashes, j.err); err != nil {
				return err
			}
		}
		from = batch[len(batch)-1].first + 1
		if w.opts.Progress != nil {
			w.opts.Progress(w.next, w.head.Size)
		}
	}
}

// row checks one stored row, already decoded and hashed.
func (w *walker) row(r entryRow, b *bundle, hashes []tree.Hash, decodeErr error) error {
	switch {
	case r.first > w.next:
		return w.fail(w.next, "entry is missing from the stored log (deleted)")
	case r.first < w.next:
		return w.fail(r.first, "entry is stored twice (an inserted row overlaps entries already seen)")
	case r.first >= w.head.Size:
		return w.fail(r.first, "entry lies beyond the log's size of %d (inserted)", w.head.Size)
	case decodeErr != nil:
		var p *Problem
		if errors.As(decodeErr, &p) {
			return w.fail(p.Sequence, "%s", p.What)
		}
		return w.fail(r.first, "stored entries cannot be read: %v", decodeErr)
	}
	if w.next+int64(len(b.leaves)) > w.head.Size {
		return w.fail(w.head.Size, "entry lies beyond the log's size of %d (inserted)", w.head.Size)
	}
	level0, err := w.tiles.Tile(w.ctx, tree.TileKey{Level: 0, Index: w.next / tree.TileWidth})
	if err != nil && !errors.Is(err, tree.ErrMissingTile) {
		return err
	}
	for k, h := range hashes {
		seq := w.next
		off := int(seq%tree.TileWidth) * tree.HashSize
		if off+tree.HashSize > len(level0) {
			return w.fail(seq, "the tree holds no leaf hash for this entry (tile 0/%d is short or missing)", seq/tree.TileWidth)
		}
		if want := tree.Hash(level0[off : off+tree.HashSize]); h != want {
			return w.fail(seq, "entry has been altered, moved or replaced: %s", w.describe(seq, b.leaves[k], want))
		}
		if err := w.rng.Append(h[:], w.visit); err != nil {
			return err
		}
		w.next++
		for w.cpIdx < len(w.cps) && w.cps[w.cpIdx].Size == w.next {
			if r, _ := w.rng.GetRootHash(nil); tree.Hash(r) != w.cps[w.cpIdx].Root {
				return w.fail(w.next-1, "the log no longer matches the checkpoint signed at size %d", w.next)
			}
			w.cpIdx++
		}
		if w.given != nil && w.given.Size == w.next {
			if r, _ := w.rng.GetRootHash(nil); tree.Hash(r) != w.given.Root {
				return w.fail(w.next-1, "the log does not extend the given checkpoint at size %d: it has been rewritten", w.next)
			}
		}
	}
	if w.opts.Deep {
		return w.index(b)
	}
	return nil
}

// describe says what is wrong with an entry whose hash does not match.
func (w *walker) describe(seq int64, leaf []byte, want tree.Hash) string {
	ev, _, err := event.DecodeLeaf(leaf)
	if err != nil {
		return fmt.Sprintf("its stored form is not a valid leaf (%v)", err)
	}
	if ev.Sequence != seq {
		return fmt.Sprintf("the entry stored here is sequence %d (id %q): entries were deleted, inserted or reordered",
			ev.Sequence, ev.ID)
	}
	return fmt.Sprintf("the stored event (id %q, action %q) hashes to %x but the tree holds %x for it; "+
		"a field of the event was changed after it was logged", ev.ID, ev.Action, tree.LeafHash(leaf), want)
}

// visit compares each rebuilt node at a tile level with the stored tile.
func (w *walker) visit(id compact.NodeID, hash []byte) {
	if id.Level == 0 || id.Level%tree.Height != 0 || w.tileErr != nil {
		return
	}
	k := tree.TileKey{Level: int(id.Level / tree.Height), Index: int64(id.Index / tree.TileWidth)}
	t, err := w.tiles.Tile(w.ctx, k)
	off := int(id.Index%tree.TileWidth) * tree.HashSize
	if err != nil || off+tree.HashSize > len(t) {
		w.tileErr = &Problem{Sequence: -1, What: fmt.Sprintf("tile %d/%d is missing hashes the entries need", k.Level, k.Index)}
		return
	}
	if !bytes.Equal(t[off:off+tree.HashSize], hash) {
		w.tileErr = &Problem{Sequence: -1, What: fmt.Sprintf("tile %d/%d does not match the entries below it", k.Level, k.Index)}
	}
	if off == 0 {
		w.rep.Tiles++
	}
}

// checkPersonal opens every sealed personal value of a bundle and checks it
// against its commitment.
func (w *walker) checkPersonal(b *bundle) error {
	for k, leaf := range b.leaves {
		seq := b.first + int64(k)
		ev, lf, err := event.DecodeLeaf(leaf)
		if err != nil {
			return &Problem{Sequence: seq, What: fmt.Sprintf("stored leaf is not valid: %v", err)}
		}
		_, err = w.l.openPersonal(w.ctx, w.t, ev, lf, b.personal[k])
		if err != nil && !errors.Is(err, personal.ErrErased) {
			return &Problem{Sequence: seq, What: fmt.Sprintf("personal values do not match the leaf: %v", err)}
		}
	}
	return nil
}

// index, in a deep verification, rebuilds the index docs of a bundle and
// compares them with the stored segment covering them.
func (w *walker) index(b *bundle) error {
	for k, leaf := range b.leaves {
		d, err := w.l.doc(w.ctx, w.t, b.first+int64(k), leaf, b.personal[k])
		if err != nil {
			return w.fail(b.first+int64(k), "%v", err)
		}
		w.docs = append(w.docs, d)
	}
	w.rep.Personal += int64(len(b.leaves))
	return w.flushDocs(false)
}

// flushDocs compares the docs collected so far with each segment they
// complete.
func (w *walker) flushDocs(final bool) error {
	for w.segIdx < len(w.segs) {
		m := w.segs[w.segIdx]
		if len(w.docs) == 0 || w.docs[0].Seq > m.First {
			if len(w.docs) > 0 {
				return w.fail(m.First, "the index segment [%d, %d) does not start where the rebuilt index does", m.First, m.End)
			}
			break
		}
		n := int(m.End - m.First)
		if len(w.docs) < n {
			break
		}
		if err := w.compareSegment(m, w.docs[:n]); err != nil {
			return err
		}
		w.rep.Indexed += int64(n)
		w.docs = w.docs[n:]
		w.segIdx++
	}
	if final && w.segIdx < len(w.segs) {
		m := w.segs[w.segIdx]
		return w.fail(m.First, "an index segment covers [%d, %d) beyond the log's entries", m.First, m.End)
	}
	return nil
}

func (w *walker) compareSegment(m *index.Meta, docs []*index.Doc) error {
	mem := index.NewMemtable(m.First)
	for _, d := range docs {
		mem.Add(d)
	}
	expect := mem.Snapshot().BuildSegment()
	stored, err := m.Fields(w.ctx, w.l.db, w.tx)
	if err != nil {
		return err
	}
	for f, terms := range expect.Fields {
		for h, want := range terms {
			if got := stored[f][h]; !equalInts(got, want) {
				return w.fail(want[0], "the search index segment [%d, %d) does not list this event under one of its terms "+
					"(field %d): the index does not match the log", m.First, m.End, f)
			}
		}
	}
	for f, terms := range stored {
		for h, got := range terms {
			if _, ok := expect.Fields[f][h]; !ok && !w.erasedTerm(f) {
				return w.fail(got[0], "the search index segment [%d, %d) lists this event under a term it does not have "+
					"(field %d)", m.First, m.End, f)
			}
		}
	}
	occ, err := m.Occurred(w.ctx, w.l.db, w.tx)
	if err != nil {
		return err
	}
	if !equalInts(occ, expect.Occurred) {
		return w.fail(m.First, "the search index segment [%d, %d) has occurred_at times that differ from the log", m.First, m.End)
	}
	return nil
}

// erasedTerm reports whether a stored term of field f may be missing from
// the rebuilt index because the value it was made from has been erased.
func (w *walker) erasedTerm(f index.Field) bool { return f == index.FieldIP }

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
