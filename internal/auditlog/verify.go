package auditlog

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
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
	Personal    int64 // entries whose sealed personal values were opened and checked (Deep)
	Erased      int64 // entries whose personal values are erased, so cannot be opened (Deep)
	Indexed     int64 // events whose index terms were checked (Deep)
	// IndexSkipped is the number of events in index segments that also
	// cover expired entries, which cannot be rebuilt (Deep).
	IndexSkipped int64
	// Archived is the number of entries read from archive segments, and
	// Segments the number of segments whose manifest and object were
	// checked.
	Archived int64
	Segments int
	// Expired is the number of entries whose payloads retention deleted:
	// their leaf hashes were checked against the tree, not their events.
	Expired int64
	// Unsigned is the number of newest entries no stored checkpoint covers
	// yet.
	Unsigned int64
	Elapsed  time.Duration
	// Problem is nil when the log is intact.
	Problem *Problem
	// Witness is the size of the checkpoint this data directory signed
	// last, which the log was found to extend; zero when there is none.
	Witness int64
	// ExtendsCheckpoint is set when a checkpoint was given and the log
	// extends it.
	ExtendsCheckpoint bool
}

// Verify re-hashes every stored entry of a tenant's log, rebuilds the tree
// and compares it with the stored tiles, checks the signature of every
// stored checkpoint and that each is a prefix of the rebuilt tree (which
// makes successive checkpoints consistent), and checks the log state. It
// returns a report whose Problem names the first thing wrong; the error is
// for failures to read.
func (l *Log) Verify(ctx context.Context, t *tenant.Tenant, opts VerifyOptions) (*VerifyReport, error) {
	start := time.Now()
	rep := &VerifyReport{Tenant: t.Name}
	// The witness is read before the snapshot, so that a checkpoint signed
	// meanwhile is never ahead of the log verified.
	witness, _, werr := l.Witness(t.Name)
	if werr != nil {
		rep.Problem = &Problem{Sequence: -1, What: werr.Error()}
		rep.Elapsed = time.Since(start)
		return rep, nil
	}
	if err := l.keyring.Sync(ctx); err != nil {
		return nil, err
	}
	// The walk reads one database snapshot, but archive objects live
	// outside it: a retention run that archives or expires segments while
	// the walk goes on can delete what the snapshot still names. A problem
	// found while the archived or expired bounds moved is checked again
	// over a fresh snapshot; one that holds then, or once the bounds stay
	// put, is reported.
	var err error
	for attempt := 1; ; attempt++ {
		var seen State
		err = l.db.ReadTx(ctx, func(tx *sql.Tx) error {
			return l.verifyTx(ctx, tx, t, opts, witness, rep, &seen)
		})
		if (err == nil && rep.Problem == nil) || attempt == verifyAttempts || ctx.Err() != nil {
			break
		}
		now, herr := l.Head(ctx, l.db.Read, t.ID)
		if herr != nil || (now.Archived == seen.Archived && now.Expired == seen.Expired) {
			break
		}
		rep = &VerifyReport{Tenant: t.Name}
	}
	rep.Elapsed = time.Since(start)
	return rep, err
}

// verifyAttempts bounds how often Verify walks again a log whose retention
// moved under it.
const verifyAttempts = 3

func (l *Log) verifyTx(ctx context.Context, tx *sql.Tx, t *tenant.Tenant, opts VerifyOptions, witness *checkpoint.Checkpoint,
	rep *VerifyReport, seen *State) error {
	head, err := l.Head(ctx, tx, t.ID)
	if err != nil {
		return err
	}
	*seen = head
	if l.verifySnapshotHook != nil {
		l.verifySnapshotHook()
	}
	rep.Size, rep.Root = head.Size, head.Root
	// Without keys given, only the log's own signing key is trusted: the
	// key history in the database is no more trustworthy than the rest of
	// the database.
	vkeys := opts.VerifierKeys
	if len(vkeys) == 0 {
		vk, err := l.VerifierKey(t.Name)
		if err != nil {
			return err
		}
		vkeys = []string{vk}
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
		if c.Size != cp.Size {
			rep.Problem = &Problem{Sequence: -1, What: fmt.Sprintf("stored checkpoint at size %d: its signed text says size %d", cp.Size, c.Size)}
			return nil
		}
		if c.Root != cp.Root {
			rep.Problem = &Problem{Sequence: -1, What: fmt.Sprintf("stored checkpoint at size %d: its root column differs from the root it signed", cp.Size)}
			return nil
		}
	}
	// The log must extend the checkpoint given and the witness, the
	// newest this data directory signed, whose own row must be stored.
	var givens []given
	if opts.Checkpoint != nil {
		c, err := checkpoint.Open(opts.Checkpoint, l.Origin(t.Name), vkeys...)
		if err != nil {
			rep.Problem = &Problem{Sequence: -1, What: fmt.Sprintf("the given checkpoint: %v", err)}
			return nil
		}
		givens = append(givens, given{c, "the given checkpoint"})
	}
	if witness != nil {
		givens = append(givens, given{witness, "the checkpoint this data directory signed last"})
		rep.Witness = witness.Size
		if !slices.ContainsFunc(cps, func(cp StoredCheckpoint) bool { return cp.Size == witness.Size }) &&
			witness.Size <= head.Size {
			rep.Problem = &Problem{Sequence: -1, What: fmt.Sprintf("the checkpoint at size %d that this data directory "+
				"signed is missing from the stored checkpoints: checkpoints have been deleted", witness.Size)}
			return nil
		}
	}
	if len(cps) > 0 && cps[len(cps)-1].Size > head.Size {
		last := cps[len(cps)-1]
		rep.Problem = &Problem{Sequence: head.Size, What: fmt.Sprintf("the log has been truncated or rolled back: "+
			"a checkpoint was signed at size %d but the log holds %d entries", last.Size, head.Size)}
		return nil
	}
	for _, g := range givens {
		if g.cp.Size > head.Size {
			rep.Problem = &Problem{Sequence: head.Size, What: fmt.Sprintf("the log has been truncated or rolled back: "+
				"%s is at size %d but the log holds %d entries", g.what, g.cp.Size, head.Size)}
			return nil
		}
	}
	if afterVerifySnapshot != nil {
		afterVerifySnapshot()
	}
	w := &walker{l: l, ctx: ctx, tx: tx, t: t, opts: opts, rep: rep, head: head, cps: cps, givens: givens, vkeys: vkeys,
		rng:   rangeFactory.NewEmptyRange(0),
		tiles: tree.NewReader(l.db, tx, t.ID)}
	if err := w.walk(); err != nil {
		return err
	}
	rep.Checkpoints = len(cps)
	return nil
}

// afterVerifySnapshot, when set by a test, runs once Verify has read the log
// it verifies, so that the test can append while it works.
var afterVerifySnapshot func()

// given is a checkpoint the log must extend, and what it is, for messages.
type given struct {
	cp   *checkpoint.Checkpoint
	what string
}

// walker goes through a tenant's entries in order. Workers read, decode and
// hash chunks of the log in parallel, each in a read transaction of its
// own, and fold each stored row into a compact range of its own; the walker
// joins the rows in order, checking that they tile the log exactly, and
// compares every rebuilt node at a tile level with the stored tiles. Once
// every tile is proven, each checkpoint's root is computed from them.
type walker struct {
	l      *Log
	ctx    context.Context
	tx     *sql.Tx
	t      *tenant.Tenant
	opts   VerifyOptions
	rep    *VerifyReport
	head   State
	cps    []StoredCheckpoint
	givens []given
	vkeys  []string
	rng    *compact.Range
	tiles  *tree.Reader

	next    int64 // next sequence number expected
	tileErr *Problem
	// Deep: the index segments, the one being compared, the digest of the
	// events seen of it so far, and those of them whose IP is erased.
	segs     []*index.Meta
	segIdx   int
	segSeen  int64
	seed     maphash.Seed
	want     *index.Digest
	meta     *index.MetaCheck
	erasedIP map[int64]bool
	// indexFrom is where the index segments checked start (Deep).
	indexFrom int64
	// manifests are those of the tenant's archive segments.
	manifests []*Manifest
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
		// The index segments over expired entries cannot be rebuilt: their
		// events are gone.
		for len(segs) > 0 && segs[0].First < w.head.Expired {
			w.indexFrom = max(w.indexFrom, segs[0].End)
			w.rep.IndexSkipped += segs[0].End - max(segs[0].First, w.head.Expired)
			segs = segs[1:]
		}
		w.segs, w.seed, w.erasedIP = segs, maphash.MakeSeed(), map[int64]bool{}
	}
	if err := w.segments(); err != nil {
		return ignoreStop(err)
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
		return ignoreStop(w.fail(-1, "the log state's root %v does not match the root %v rebuilt from the entries", w.head.Root, root))
	}
	if w.tileErr != nil {
		w.rep.Problem = w.tileErr
		return nil
	}
	if err := w.tileWidths(); err != nil {
		return ignoreStop(err)
	}
	// Every tile now matches the entries, so the root at any size computed
	// from the tiles is the root of the entries.
	var good int64
	for _, cp := range w.cps {
		got, err := tree.TreeHash(w.ctx, w.tiles, cp.Size)
		if err != nil {
			return err
		}
		if got != cp.Root {
			return ignoreStop(w.fail(good, "the log no longer matches the checkpoint signed at size %d: an entry from "+
				"sequence %d on was rewritten, together with the tree, after that checkpoint was signed", cp.Size, good))
		}
		good = cp.Size
	}
	for _, g := range w.givens {
		got, err := tree.TreeHash(w.ctx, w.tiles, g.cp.Size)
		if err != nil {
			return err
		}
		if got != g.cp.Root {
			return ignoreStop(w.fail(g.cp.Size-1, "the log does not extend %s at size %d: "+
				"it has been rewritten", g.what, g.cp.Size))
		}
	}
	if err := w.manifestRoots(); err != nil {
		return ignoreStop(err)
	}
	w.rep.ExtendsCheckpoint = w.opts.Checkpoint != nil
	if err := w.coverage(good); err != nil {
		return ignoreStop(err)
	}
	if w.opts.Deep {
		return ignoreStop(w.finishIndex())
	}
	return nil
}

// tileWidths checks that the stored tiles are exactly those of a tree of
// the log's size: no tile lies beyond it, and none holds more or fewer
// hashes than the tree has there. The walk proved the hashes the tree has.
func (w *walker) tileWidths() error {
	rows, err := w.tx.QueryContext(w.ctx, w.l.db.Rebind(`SELECT level, idx, width, length(hashes) FROM tiles
		WHERE tenant_id = ? ORDER BY level, idx`), w.t.ID)
	if err != nil {
		return fmt.Errorf("auditlog: read tiles: %w", err)
	}
	defer rows.Close()
	count := map[int]int64{}
	for rows.Next() {
		var level int
		var idx, width, n int64
		if err := rows.Scan(&level, &idx, &width, &n); err != nil {
			return fmt.Errorf("auditlog: read tiles: %w", err)
		}
		nodes := w.head.Size >> (tree.Height * level)
		want := min(max(nodes-idx*tree.TileWidth, 0), tree.TileWidth)
		if width != want || n != want*tree.HashSize {
			return w.fail(-1, "tile %d/%d holds %d hashes (width %d) where a tree of size %d has %d: "+
				"the stored tree was changed", level, idx, n/tree.HashSize, width, w.head.Size, want)
		}
		count[level]++
		w.rep.Tiles++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("auditlog: read tiles: %w", err)
	}
	for level := 0; w.head.Size>>(tree.Height*level) > 0; level++ {
		nodes := w.head.Size >> (tree.Height * level)
		if want := (nodes + tree.TileWidth - 1) / tree.TileWidth; count[level] != want {
			return w.fail(-1, "the stored tree has %d tiles at level %d where a tree of size %d has %d",
				count[level], level, w.head.Size, want)
		}
	}
	return nil
}

// uncoveredGrace is how old the first entry no checkpoint covers may be
// before verification calls the checkpoints missing: attest signs new
// entries within seconds.
const uncoveredGrace = 5 * time.Minute

// coverage checks that the stored checkpoints cover the log, but for its
// newest entries. Without checkpoints an outsider cannot tell a rewritten
// log from the original, so their disappearance is a problem in itself.
func (w *walker) coverage(covered int64) error {
	w.rep.Unsigned = w.head.Size - covered
	if covered >= w.head.Size || covered < w.head.Expired {
		return nil
	}
	leaf, _, err := w.l.entry(w.ctx, w.tx, w.t.ID, covered)
	if err != nil {
		return err
	}
	ev, _, err := event.DecodeLeaf(leaf)
	if err != nil {
		return w.fail(covered, "stored leaf is not valid: %v", err)
	}
	if age := w.l.now().Sub(ev.ReceivedAt); age > uncoveredGrace {
		what := "no stored checkpoint covers the log"
		if covered > 0 {
			what = fmt.Sprintf("the stored checkpoints cover only the first %d entries", covered)
		}
		return w.fail(covered, "%s, though entry %d was received %s ago and attest signs new entries within "+
			"seconds: checkpoints have been deleted, or attest stopped before it could sign (attest serve signs "+
			"them as it starts)", what, covered, age.Round(time.Second))
	}
	return nil
}

func ignoreStop(err error) error {
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// verifyChunk is how many bundles a worker reads at a time.
const verifyChunk = 32

// checkedRow is a stored row as a worker found it.
type checkedRow struct {
	row entryRow
	// limit, when set, is how many of the row's entries belong to the log
	// being verified.
	limit   int64
	count   int            // entries in the row
	bundle  *bundle        // Deep: the decoded row
	rng     *compact.Range // over the row's leaves, when they all match the tree
	docs    []*index.Doc   // Deep
	erased  int            // Deep: entries whose personal values are erased
	problem *Problem
	// archived is set for a row read from an archive segment.
	archived bool
}

type chunkResult struct {
	rows []checkedRow
	err  error
}

// entries has workers check the log in chunks and joins their results in
// order.
func (w *walker) entries() error {
	workers := max(runtime.GOMAXPROCS(0), 1)
	type job struct {
		from, to int64
		out      chan chunkResult
	}
	jobs := make(chan job)
	results := make(chan chan chunkResult, workers*2)
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		rd, err := w.l.db.OpenReader(ctx)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer rd.Close()
			for j := range jobs {
				j.out <- w.checkChunk(ctx, rd, j.from, j.to)
			}
		}()
	}
	go func() {
		defer close(results)
		defer close(jobs)
		// Rows past the log's size are read too: they are inserted ones.
		end := w.head.Size + tree.TileWidth
		for from := int64(0); from < end || from == 0; from += verifyChunk * tree.TileWidth {
			out := make(chan chunkResult, 1)
			select {
			case jobs <- job{from: from, to: from + verifyChunk*tree.TileWidth, out: out}:
			case <-ctx.Done():
				return
			}
			select {
			case results <- out:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	for out := range results {
		res := <-out
		if res.err != nil {
			return res.err
		}
		for i := range res.rows {
			if err := w.row(&res.rows[i]); err != nil {
				return err
			}
		}
		if w.opts.Progress != nil {
			w.opts.Progress(w.next, w.head.Size)
		}
	}
	// A row far beyond the end is inserted too.
	var stray int64
	err := w.tx.QueryRowContext(w.ctx, w.l.db.Rebind(`SELECT COUNT(*) FROM entries WHERE tenant_id = ? AND first_seq >= ?`),
		w.t.ID, w.head.Size+tree.TileWidth).Scan(&stray)
	if err != nil {
		return fmt.Errorf("auditlog: verify: read entries: %w", err)
	}
	if stray > 0 {
		return w.fail(w.head.Size, "entries are stored beyond the log's size of %d (inserted)", w.head.Size)
	}
	return nil
}

// checkChunk reads the rows whose first sequence number is in [from, to)
// with their level-0 tiles, in a read transaction of its own, and checks
// each leaf against the tree.
func (w *walker) checkChunk(ctx context.Context, rd *store.Reader, from, to int64) chunkResult {
	var res chunkResult
	res.err = w.l.db.ReadTxOn(ctx, rd.DB, func(rtx *sql.Tx) error {
		tx := store.Cache(rtx)
		defer tx.Close()
		// The personal values are read only when they are to be checked.
		cols := `first_seq, count, codec, leaves, personal`
		if !w.opts.Deep {
			cols = `first_seq, count, codec, leaves, NULL`
		}
		rows, err := tx.QueryContext(ctx, w.l.db.Rebind(`SELECT `+cols+` FROM entries
			WHERE tenant_id = ? AND first_seq >= ? AND first_seq < ? ORDER BY first_seq`), w.t.ID, from, to)
		if err != nil {
			return fmt.Errorf("auditlog: verify: read entries: %w", err)
		}
		for rows.Next() {
			var r entryRow
			if err := rows.Scan(&r.first, &r.count, &r.codec, &r.leaves, &r.personal); err != nil {
				rows.Close()
				return fmt.Errorf("auditlog: verify: read entries: %w", err)
			}
			res.rows = append(res.rows, checkedRow{row: r})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("auditlog: verify: read entries: %w", err)
		}
		if from < w.head.Archived {
			arch, err := w.l.archivedRows(ctx, tx, w.t.ID, from, min(to, w.head.Archived))
			if err != nil {
				return fmt.Errorf("auditlog: verify: %w", err)
			}
			all := make([]checkedRow, 0, len(arch)+len(res.rows))
			for _, r := range arch {
				if r.first >= from {
					all = append(all, checkedRow{row: r, archived: true})
				}
			}
			res.rows = append(all, res.rows...)
			slices.SortStableFunc(res.rows, func(a, b checkedRow) int { return cmp.Compare(a.row.first, b.row.first) })
		}
		// This snapshot may be newer than the walker's: entries appended
		// meanwhile are left out, and a bundle completed meanwhile is cut
		// back to the walker's size. What lies beyond this snapshot's own
		// log size is kept, for the walker to report.
		mine, err := w.l.Head(ctx, tx, w.t.ID)
		if err != nil {
			return err
		}
		kept := res.rows[:0]
		for _, cr := range res.rows {
			end := cr.row.first + cr.row.count
			switch {
			case cr.row.first >= w.head.Size && end <= mine.Size:
				continue
			case cr.row.first < w.head.Size && end > w.head.Size && end <= mine.Size:
				cr.limit = w.head.Size - cr.row.first
			}
			kept = append(kept, cr)
		}
		res.rows = kept
		tiles := tree.NewReader(w.l.db, tx, w.t.ID)
		sc := &scratch{h: tree.NewHasher()}
		for i := range res.rows {
			if err := w.checkRow(ctx, tiles, sc, &res.rows[i]); err != nil {
				return err
			}
			if !w.opts.Deep {
				// Only the checked result is needed from here on.
				res.rows[i].row.leaves, res.rows[i].row.personal = nil, nil
			}
		}
		return nil
	})
	return res
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// scratch is what one verification worker reuses from row to row.
type scratch struct {
	h      *tree.Hasher
	raw    []byte
	hashes [blockSize]tree.Hash
}

// checkRow decodes one row, hashes its leaves and compares them with the
// level-0 tile. It sets cr.problem for what is wrong with the row itself.
func (w *walker) checkRow(ctx context.Context, tiles *tree.Reader, sc *scratch, cr *checkedRow) error {
	if cap(sc.raw) < 1<<20 {
		sc.raw = make([]byte, 0, 1<<20)
	}
	if cr.row.codec == codecExpired {
		return w.checkExpired(ctx, tiles, cr)
	}
	deep := w.opts.Deep
	var b *bundle
	var err error
	if deep {
		b, err = cr.row.decode() // the docs keep referring to the leaves
	} else {
		b, err = cr.row.decodeInto(sc.raw, false)
	}
	if err != nil {
		cr.problem = &Problem{Sequence: cr.row.first, What: fmt.Sprintf("stored entries cannot be read: %v", err)}
		return nil
	}
	if cr.limit > 0 && cr.limit < int64(len(b.leaves)) {
		b.leaves = b.leaves[:cr.limit]
		if b.personal != nil {
			b.personal = b.personal[:cr.limit]
		}
	}
	if deep {
		cr.bundle = b
	}
	level0, err := tiles.Tile(ctx, tree.TileKey{Level: 0, Index: b.first / tree.TileWidth})
	if err != nil && !errors.Is(err, tree.ErrMissingTile) {
		return err
	}
	for k, leaf := range b.leaves {
		seq := b.first + int64(k)
		off := int(seq%tree.TileWidth) * tree.HashSize
		if off+tree.HashSize > len(level0) {
			cr.problem = &Problem{Sequence: seq, What: fmt.Sprintf("the tree holds no leaf hash for this entry "+
				"(tile 0/%d is short or missing)", seq/tree.TileWidth)}
			return nil
		}
		h := sc.h.Leaf(leaf)
		if want := tree.Hash(level0[off : off+tree.HashSize]); h != want {
			cr.problem = &Problem{Sequence: seq, What: "entry has been altered, moved or replaced: " + w.describe(seq, leaf, want)}
			return nil
		}
		sc.hashes[k] = h
	}
	n := len(b.leaves)
	if b.first%blockSize == 0 && n == blockSize {
		// A full block is a perfect subtree: its range is its root.
		root := tree.SubtreeRoot(sc.hashes[:n])
		if cr.rng, err = rangeFactory.NewRange(uint64(b.first), uint64(b.first)+blockSize, [][]byte{root[:]}); err != nil {
			return err
		}
	} else {
		// The range keeps the slices it is given: copy them out of the
		// scratch space, which the next row overwrites.
		cr.rng = rangeFactory.NewEmptyRange(uint64(b.first))
		for k := 0; k < n; k++ {
			h := sc.hashes[k]
			if err := cr.rng.Append(h[:], nil); err != nil {
				return err
			}
		}
	}
	cr.count = n
	if !deep {
		return nil
	}
	cr.bundle = b
	if cr.erased, cr.problem = w.checkPersonal(b); cr.problem != nil {
		return nil
	}
	for k, leaf := range b.leaves {
		d, err := w.l.doc(ctx, w.t, b.first+int64(k), leaf, b.personal[k])
		if err != nil {
			cr.problem = &Problem{Sequence: b.first + int64(k), What: err.Error()}
			return nil
		}
		cr.docs = append(cr.docs, d)
	}
	return nil
}

// checkExpired folds the leaf hashes that remain of an expired row into its
// range: with the payloads gone, the tree's own level-0 hashes are what the
// rest of the tree is checked against.
func (w *walker) checkExpired(ctx context.Context, tiles *tree.Reader, cr *checkedRow) error {
	r := cr.row
	level0, err := tiles.Tile(ctx, tree.TileKey{Level: 0, Index: r.first / tree.TileWidth})
	if err != nil && !errors.Is(err, tree.ErrMissingTile) {
		return err
	}
	off := int(r.first%tree.TileWidth) * tree.HashSize
	n := int(r.count)
	if cr.limit > 0 && cr.limit < int64(n) {
		n = int(cr.limit)
	}
	if off+n*tree.HashSize > len(level0) {
		cr.problem = &Problem{Sequence: r.first, What: fmt.Sprintf("the tree holds no leaf hashes for these expired "+
			"entries (tile 0/%d is short or missing)", r.first/tree.TileWidth)}
		return nil
	}
	cr.rng = rangeFactory.NewEmptyRange(uint64(r.first))
	for k := 0; k < n; k++ {
		h := bytes.Clone(level0[off+k*tree.HashSize : off+(k+1)*tree.HashSize])
		if err := cr.rng.Append(h, nil); err != nil {
			return err
		}
	}
	cr.count = n
	return nil
}

// row joins one checked row to the log rebuilt so far.
func (w *walker) row(cr *checkedRow) error {
	r := cr.row
	switch {
	case r.first > w.next:
		return w.fail(w.next, "entry is missing from the stored log (deleted)")
	case r.first < w.next:
		return w.fail(r.first, "entry is stored twice (an inserted row overlaps entries already seen)")
	case r.first >= w.head.Size:
		return w.fail(r.first, "entry lies beyond the log's size of %d (inserted)", w.head.Size)
	case cr.problem != nil:
		return w.fail(cr.problem.Sequence, "%s", cr.problem.What)
	}
	n := int64(cr.count)
	if w.next+n > w.head.Size {
		return w.fail(w.head.Size, "entry lies beyond the log's size of %d (inserted)", w.head.Size)
	}
	// Merging reports every node it makes, including the roots of full
	// bundles, which the level-1 tiles hold: a block is smaller than a
	// bundle, so no row's range is a tile-level node of its own.
	if err := w.rng.AppendRange(cr.rng, w.visit); err != nil {
		return err
	}
	w.next += n
	switch {
	case r.codec == codecExpired:
		w.rep.Expired += n
		return nil
	case cr.archived:
		w.rep.Archived += n
	}
	if w.opts.Deep {
		w.rep.Personal += n - int64(cr.erased)
		w.rep.Erased += int64(cr.erased)
		return w.indexDocs(cr.docs)
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
	return fmt.Sprintf("the stored event (id %q, action %q) hashes to %v but the tree holds %v for it "+
		"(tile 0/%d): a field of the event, or that hash in the tree, was changed after it was logged",
		ev.ID, ev.Action, tree.LeafHash(leaf), want, seq/tree.TileWidth)
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
}

// checkPersonal opens every sealed personal value of a bundle and checks it
// against its commitment.
func (w *walker) checkPersonal(b *bundle) (erased int, p *Problem) {
	for k, leaf := range b.leaves {
		seq := b.first + int64(k)
		ev, lf, err := event.DecodeLeaf(leaf)
		if err != nil {
			return 0, &Problem{Sequence: seq, What: fmt.Sprintf("stored leaf is not valid: %v", err)}
		}
		_, err = w.l.openPersonal(w.ctx, w.t, ev, lf, b.personal[k])
		if errors.Is(err, personal.ErrErased) {
			erased++
			continue
		}
		if err != nil {
			return 0, &Problem{Sequence: seq, What: fmt.Sprintf("personal values do not match the leaf: %v", err)}
		}
	}
	return erased, nil
}

// indexDocs checks the docs of the events just joined against the index
// segment that covers each: its id filter must hold the event's id, and
// the segment's digest is summed as it goes.
func (w *walker) indexDocs(docs []*index.Doc) error {
	for _, d := range docs {
		if d.Seq < w.indexFrom {
			continue
		}
		for w.segIdx < len(w.segs) && d.Seq >= w.segs[w.segIdx].End {
			if err := w.finishSegment(); err != nil {
				return err
			}
		}
		if w.segIdx == len(w.segs) {
			return nil // the rest is the memtable's, rebuilt from the log by every process
		}
		m := w.segs[w.segIdx]
		if d.Seq < m.First {
			return w.fail(d.Seq, "no search index segment covers this event, though the segment [%d, %d) follows it: "+
				"queries cannot find it", m.First, m.End)
		}
		if w.want == nil {
			if m.FilterDamaged() {
				return w.fail(m.First, "the id filter of the search index segment [%d, %d) does not match its checksum: "+
					"it is damaged, and the writer looks every new id up in the segment's postings instead", m.First, m.End)
			}
			w.want, w.meta = index.NewDigest(w.seed, m), index.NewMetaCheck(m)
		}
		if !m.MightContainID(index.NewIDProbe(index.Term{Field: index.FieldID, Hash: d.IDTerm})) {
			return w.fail(d.Seq, "the id filter of the search index segment [%d, %d) does not hold this event's id: "+
				"a retry of the event would be stored twice", m.First, m.End)
		}
		w.want.AddDoc(d)
		w.meta.Add(d)
		if d.IPErased {
			w.erasedIP[d.Seq] = true
		}
		w.segSeen++
	}
	return nil
}

// finishSegment compares the current segment with the digest of the events
// it covers.
func (w *walker) finishSegment() error {
	m := w.segs[w.segIdx]
	if w.segSeen != m.End-m.First {
		return w.fail(m.First+w.segSeen, "the search index segment [%d, %d) covers events beyond the log's entries",
			m.First, m.End)
	}
	got, err := m.Digest(w.ctx, w.l.db, w.tx, w.seed, func(f index.Field, seq int64) bool {
		return f == index.FieldIP && w.erasedIP[seq]
	})
	if err != nil {
		return err
	}
	if ok, from, to := w.want.Equal(got); !ok {
		return w.fail(from, "the search index segment [%d, %d) does not match the log for the events [%d, %d): "+
			"it lists an event under a term the event does not have, or leaves one out", m.First, m.End, from, min(to, m.End))
	}
	if seq, what := w.meta.Problem(); what != "" {
		return w.fail(seq, "the search index segment [%d, %d) would hide events from queries: %s", m.First, m.End, what)
	}
	w.rep.Indexed += m.End - m.First
	w.segIdx++
	w.want, w.meta, w.segSeen = nil, nil, 0
	clear(w.erasedIP)
	return nil
}

// finishIndex checks the segments left once every entry has been joined.
func (w *walker) finishIndex() error {
	for w.segIdx < len(w.segs) {
		if err := w.finishSegment(); err != nil {
			return err
		}
	}
	return nil
}
