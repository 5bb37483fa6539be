package auditlog

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

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
	if len(fs) > 64 {
		return 0, errors.New("auditlog: a scan takes at most 64 filters")
	}
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
		return sc.read(ctx, tx, merge(found), treeSize)
	})
	return treeSize, err
}

// hit is an entry the index found, and the filters that found it as a set
// of bits.
type hit struct {
	seq int64
	by  uint64
}

// merge merges ascending lists of entries, one a filter.
func merge(found [][]int64) []hit {
	var out []hit
	for {
		h := hit{seq: math.MaxInt64}
		for i, f := range found {
			switch {
			case len(f) == 0 || f[0] > h.seq:
			case f[0] < h.seq:
				h = hit{f[0], 1 << i}
			default:
				h.by |= 1 << i
			}
		}
		if h.by == 0 {
			return out
		}
		for i := range found {
			if h.by&(1<<i) != 0 {
				found[i] = found[i][1:]
			}
		}
		out = append(out, h)
	}
}

// passSpan is how many entries a scan reads from the database at a time.
const passSpan = 64 * blockSize

// span is a run of hits and the rows that hold them, read in the snapshot:
// a worker checks them against the filters, in order with the others.
type span struct {
	hits []hit
	rows []entryRow
	out  []*matched
	err  error
	done chan struct{}
}

type matched struct {
	rec *Record
	by  uint64
}

// sealedAsk asks the goroutine reading a scan's snapshot for the sealed
// personal values of an entry.
type sealedAsk struct {
	seq   int64
	reply chan sealedReply // buffered
}

type sealedReply struct {
	sealed []byte
	err    error
}

// read reads the rows holding hits, treeSize bounding them, in tx's
// snapshot, while workers check them against the filters, one span each;
// fn gets the matches in order. Only the reading goroutine uses tx: it also
// answers the workers' asks for sealed values it left unread.
func (sc *scan) read(ctx context.Context, tx store.Querier, hits []hit, treeSize int64) error {
	withPersonal := sc.opts.Personal == nil || slices.ContainsFunc(sc.fs, (*Filter).onPersonal) ||
		slices.ContainsFunc(sc.opts.Personal, sc.l.IsPersonal)
	workers := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancel(ctx)
	var wg, checking sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	work := make(chan *span)
	order := make(chan *span, 2*workers)
	asks := make(chan sealedAsk)
	checked := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		closeWork := sync.OnceFunc(func() { close(work) })
		defer closeWork()
		// pass hands sp on, answering asks meanwhile.
		pass := func(ch chan<- *span, sp *span) bool {
			for {
				select {
				case ch <- sp:
					return true
				case a := <-asks:
					a.reply <- sc.sealed(ctx, tx, a.seq)
				case <-ctx.Done():
					return false
				}
			}
		}
		for len(hits) > 0 {
			first := hits[0].seq
			end := min(first-first%blockSize+passSpan, treeSize)
			n, _ := slices.BinarySearchFunc(hits, end, func(h hit, end int64) int { return cmp.Compare(h.seq, end) })
			sp := &span{hits: hits[:n], done: make(chan struct{})}
			hits = hits[n:]
			sp.rows, sp.err = sc.l.readRowsOf(ctx, tx, sc.t.ID, first, end, withPersonal)
			if sp.err != nil {
				close(sp.done)
				pass(order, sp)
				return
			}
			if !pass(work, sp) || !pass(order, sp) {
				return
			}
		}
		closeWork()
		for {
			select {
			case a := <-asks:
				a.reply <- sc.sealed(ctx, tx, a.seq)
			case <-checked:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		checking.Add(1)
		go func() {
			defer checking.Done()
			p := &blockPass{scratch: make([]byte, 0, 1<<20), withPersonal: withPersonal}
			for sp := range work {
				sp.out, sp.err = sc.check(ctx, p, sp, asks)
				close(sp.done)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		checking.Wait()
		close(checked)
	}()
	var by []int
	for sp := range order {
		select {
		case <-sp.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if sp.err != nil {
			return sp.err
		}
		for _, m := range sp.out {
			by = by[:0]
			for i := range sc.fs {
				if m.by&(1<<i) != 0 {
					by = append(by, i)
				}
			}
			if err := sc.fn(m.rec, slices.Clone(by)); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// check checks the hits of a span against the filters that found them,
// decoding each entry at most once, and restores what the matches need,
// sending asks for the sealed values p left unread.
func (sc *scan) check(ctx context.Context, p *blockPass, sp *span, asks chan<- sealedAsk) ([]*matched, error) {
	p.reset(sp.rows)
	var out []*matched
	for _, h := range sp.hits {
		leaf, sealed, err := p.entry(h.seq)
		if err != nil {
			return nil, err
		}
		c := &candidate{seq: h.seq, leaf: leaf, sealed: sealed, borrowed: true}
		m := &matched{}
		for i, f := range sc.fs {
			if h.by&(1<<i) == 0 {
				continue
			}
			ok, err := sc.l.match(ctx, sc.t, f, f.needles(), c)
			if err != nil {
				return nil, err
			}
			if ok {
				m.by |= 1 << i
			}
		}
		if m.by == 0 {
			continue
		}
		if sc.restores(c.rec) {
			if !p.withPersonal {
				if c.sealed, err = ask(ctx, asks, h.seq); err != nil {
					return nil, err
				}
			}
			if err := sc.l.restore(ctx, sc.t, c); err != nil {
				return nil, err
			}
		}
		m.rec = c.rec
		out = append(out, m)
	}
	return out, nil
}

func ask(ctx context.Context, asks chan<- sealedAsk, seq int64) ([]byte, error) {
	a := sealedAsk{seq: seq, reply: make(chan sealedReply, 1)}
	select {
	case asks <- a:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-a.reply:
		return r.sealed, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
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

// sealed reads, in the scan's snapshot, the sealed personal values of
// entry seq: those of an entry committing to paths that are personal no
// longer, which a scan leaving personal values out did not read.
func (sc *scan) sealed(ctx context.Context, tx store.Querier, seq int64) sealedReply {
	rows, err := sc.l.readRows(ctx, tx, sc.t.ID, seq, seq+1)
	if err != nil {
		return sealedReply{err: err}
	}
	p := &blockPass{withPersonal: true}
	p.reset(rows)
	_, sealed, err := p.entry(seq)
	return sealedReply{sealed, err}
}

// blockPass reads entries of rows in ascending order, decoding each row
// once, when an entry in it is first asked for. The leaves it returns are
// in its scratch space, valid until the next row is decoded.
type blockPass struct {
	rows         []entryRow
	cur          *bundle
	scratch      []byte
	withPersonal bool
}

func (p *blockPass) reset(rows []entryRow) { p.rows, p.cur = rows, nil }

// entry returns the leaf and, with withPersonal, the sealed personal values
// of seq, which must not be below any entry asked for before.
func (p *blockPass) entry(seq int64) (leaf, sealed []byte, err error) {
	if p.cur == nil || seq >= p.cur.end() {
		for len(p.rows) > 0 && p.rows[0].first+p.rows[0].count <= seq {
			p.rows = p.rows[1:]
		}
		if len(p.rows) == 0 || p.rows[0].first > seq {
			return nil, nil, fmt.Errorf("auditlog: entry %d is not stored: %w", seq, store.ErrNotFound)
		}
		if p.cur, err = p.rows[0].decodeInto(p.scratch, p.withPersonal); err != nil {
			return nil, nil, fmt.Errorf("auditlog: %w", err)
		}
	}
	i := seq - p.cur.first
	if i < 0 {
		return nil, nil, fmt.Errorf("auditlog: entry %d is not stored: %w", seq, store.ErrNotFound)
	}
	if p.withPersonal {
		sealed = p.cur.personal[i]
	}
	return p.cur.leaves[i], sealed, nil
}
