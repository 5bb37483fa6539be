package auditlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

// ScanOptions bound a scan and say what its records need.
type ScanOptions struct {
	// Size, when positive, bounds the log size the scan reads, such as the
	// size of a signed checkpoint.
	Size int64
	// Personal, when not nil, lists the only personal paths the caller
	// reads: a record that commits to none of them is passed on as its
	// leaf holds it, without personal values, Erased or LeafHash (its
	// Committed paths say what it withholds). A record that commits to one
	// of them is restored as Query restores every record.
	Personal []string
}

// Scan calls fn with every event of tenant t that matches any of the
// filters fs, oldest first, each once, with the indexes in fs of the
// filters it matches in ascending order. Each filter selects the events
// that Query, paging through it oldest first, would return; Limit, Cursor
// and Asc do not apply. Scan answers all of them in one pass, in one read
// snapshot: the index queries of the filters run first, then each entry
// they find is read and decoded once, its block read once. It returns the
// tree size it read. An error from fn ends the scan and is returned.
func (l *Log) Scan(ctx context.Context, t *tenant.Tenant, fs []Filter, opts ScanOptions,
	fn func(rec *Record, matched []int) error) (int64, error) {
	fs = slices.Clone(fs)
	ptrs := make([]*Filter, len(fs))
	for i := range fs {
		if fs[i].Cursor != "" {
			return 0, &event.FieldError{Field: "cursor", Reason: "does not apply to a scan"}
		}
		fs[i].Asc = true
		if err := fs[i].normalize(); err != nil {
			return 0, err
		}
		ptrs[i] = &fs[i]
	}
	if err := l.keyring.Sync(ctx); err != nil {
		return 0, err
	}
	size := int64(math.MaxInt64)
	if opts.Size > 0 {
		size = opts.Size
	}
	for attempt := 0; ; attempt++ {
		qs := make([]*index.Query, len(fs))
		for i, f := range ptrs {
			qs[i] = l.indexQuery(t, f)
		}
		v, empty, err := l.queryView(ctx, t, ptrs, qs)
		if err != nil {
			return 0, err
		}
		sc := &scan{l: l, t: t, fs: ptrs, opts: opts, fn: fn}
		treeSize, err := sc.run(ctx, v, qs, empty, size)
		if errors.Is(err, errStaleIndex) && attempt < 2 {
			if err := l.Sync(ctx, t); err != nil {
				return 0, fmt.Errorf("auditlog: catch up with the index: %w", err)
			}
			continue
		}
		return treeSize, err
	}
}

// scan is one pass of Scan.
type scan struct {
	l    *Log
	t    *tenant.Tenant
	fs   []*Filter
	opts ScanOptions
	fn   func(*Record, []int) error
}

// run reads the pass in one read snapshot. The index is read first, whole:
// errStaleIndex comes before fn is called.
func (sc *scan) run(ctx context.Context, v *view, qs []*index.Query, empty []bool, size int64) (int64, error) {
	var treeSize int64
	err := sc.l.db.ReadTx(ctx, func(rtx *sql.Tx) error {
		tx := store.Cache(rtx)
		defer tx.Close()
		s := sc.l.searcher(tx, v)
		found := make([][]int64, len(qs))
		for i, q := range qs {
			var err error
			if treeSize, err = sc.l.bound(ctx, tx, sc.t, v, size, q); err != nil {
				return err
			}
			if empty[i] {
				continue
			}
			err = s.Run(ctx, q, func(seqs []int64) bool {
				found[i] = append(found[i], seqs...)
				return true
			})
			if err != nil {
				return err
			}
		}
		return sc.read(ctx, &blockPass{l: sc.l, q: tx, tenant: sc.t.ID, end: treeSize}, found)
	})
	return treeSize, err
}

// read checks the entries found, in ascending order, against the filters
// that found them, and passes the matches on.
func (sc *scan) read(ctx context.Context, p *blockPass, found [][]int64) error {
	needles := make([][][]byte, len(sc.fs))
	for i, f := range sc.fs {
		needles[i] = f.needles()
	}
	var by, matched []int
	for {
		// The next entry is the smallest at the head of any list; by are
		// the filters that found it.
		seq := int64(math.MaxInt64)
		by = by[:0]
		for i, f := range found {
			switch {
			case len(f) == 0 || f[0] > seq:
			case f[0] < seq:
				seq, by = f[0], append(by[:0], i)
			default:
				by = append(by, i)
			}
		}
		if len(by) == 0 {
			return nil
		}
		for _, i := range by {
			found[i] = found[i][1:]
		}
		leaf, sealed, err := p.entry(ctx, seq)
		if err != nil {
			return err
		}
		c := &candidate{seq: seq, leaf: leaf, sealed: sealed}
		matched = matched[:0]
		for _, i := range by {
			ok, err := sc.l.match(ctx, sc.t, sc.fs[i], needles[i], c)
			if err != nil {
				return err
			}
			if ok {
				matched = append(matched, i)
			}
		}
		if len(matched) == 0 {
			continue
		}
		if sc.restores(c.rec) {
			if err := sc.l.restore(ctx, sc.t, c); err != nil {
				return err
			}
		}
		if err := sc.fn(c.rec, slices.Clone(matched)); err != nil {
			return err
		}
	}
}

// restores reports whether a matching record needs its personal values.
func (sc *scan) restores(r *Record) bool {
	if sc.opts.Personal == nil {
		return true
	}
	for _, p := range r.Committed {
		if slices.Contains(sc.opts.Personal, p) {
			return true
		}
	}
	return false
}

// passSpan is how many entries a pass reads from the database at a time.
const passSpan = 64 * blockSize

// blockPass reads entries of a tenant's log in ascending order in one
// snapshot: its rows a span at a time, each row decoded once, when an entry
// in it is first asked for.
type blockPass struct {
	l      *Log
	q      store.Querier
	tenant int64
	end    int64 // the snapshot's log size
	rows   []entryRow
	cur    *bundle
}

// entry returns the leaf and sealed personal values of seq, which must be
// below p.end and not below any entry asked for before.
func (p *blockPass) entry(ctx context.Context, seq int64) (leaf, sealed []byte, err error) {
	if p.cur == nil || seq >= p.cur.end() {
		if err := p.advance(ctx, seq); err != nil {
			return nil, nil, err
		}
	}
	i := seq - p.cur.first
	if i < 0 || i >= int64(len(p.cur.leaves)) {
		return nil, nil, fmt.Errorf("auditlog: entry %d is not stored: %w", seq, store.ErrNotFound)
	}
	return p.cur.leaves[i], p.cur.personal[i], nil
}

// advance decodes the row holding seq, reading the span of rows from it
// when the rows read so far end before it.
func (p *blockPass) advance(ctx context.Context, seq int64) error {
	p.drop(seq)
	if len(p.rows) == 0 || p.rows[0].first > seq {
		start := seq - seq%blockSize
		rows, err := p.l.readRows(ctx, p.q, p.tenant, seq, min(start+passSpan, p.end))
		if err != nil {
			return err
		}
		p.rows = rows
		p.drop(seq)
	}
	if len(p.rows) == 0 || p.rows[0].first > seq {
		return fmt.Errorf("auditlog: entry %d is not stored: %w", seq, store.ErrNotFound)
	}
	b, err := p.rows[0].decode()
	if err != nil {
		return fmt.Errorf("auditlog: %w", err)
	}
	p.cur = b
	return nil
}

// drop forgets the rows that end at or before seq.
func (p *blockPass) drop(seq int64) {
	for len(p.rows) > 0 && p.rows[0].first+p.rows[0].count <= seq {
		p.rows = p.rows[1:]
	}
}
