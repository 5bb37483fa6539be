package auditlog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
)

// Result is what became of one submitted event.
type Result struct {
	// Sequence is the event's index in its tenant's log: the new one, or
	// for a duplicate the original's.
	Sequence int64
	LeafHash tree.Hash
	// Duplicate is true when an event with the same id was already logged;
	// nothing was stored.
	Duplicate bool
	// Err is set when this event alone was refused.
	Err error
}

// ErrTooLarge refuses an event whose leaf would not fit an entry bundle.
var ErrTooLarge = fmt.Errorf("event too large: its stored form exceeds %d bytes", maxLeaf)

// op is one unit of work for the writer.
type op struct {
	t       *tenant.Tenant
	events  []*Prepared
	change  func(ctx context.Context, tx *sql.Tx) error
	arrived int64 // unix microseconds
	weight  int64
	done    chan struct{} // closed when finished; nil when nobody waits
	// after runs in the writer once the transaction commits.
	after func()

	results []Result
	err     error
}

// Append logs events for tenant t and returns once they are durably
// committed, with one result per event in order. A client's cancellation
// does not abandon events already handed to the writer.
func (l *Log) Append(ctx context.Context, t *tenant.Tenant, events []*Prepared) ([]Result, error) {
	ops := make([]*op, 0, len(events)/l.cfg.MaxBatch+1)
	for i := 0; i < len(events) || i == 0; i += l.cfg.MaxBatch {
		chunk := events[i:min(i+l.cfg.MaxBatch, len(events))]
		o := &op{t: t, events: chunk, done: make(chan struct{})}
		if err := l.submit(ctx, o); err != nil {
			return nil, waitAll(ops, err)
		}
		ops = append(ops, o)
		if len(events) == 0 {
			break
		}
	}
	if err := waitAll(ops, nil); err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(events))
	for _, o := range ops {
		out = append(out, o.results...)
	}
	return out, nil
}

func waitAll(ops []*op, err error) error {
	for _, o := range ops {
		<-o.done
		if o.err != nil && err == nil {
			err = o.err
		}
	}
	return err
}

// Enqueue hands events to the writer without waiting for the commit. When
// the queue is full it waits for room: events are never dropped.
func (l *Log) Enqueue(ctx context.Context, t *tenant.Tenant, events []*Prepared) error {
	for i := 0; i < len(events); i += l.cfg.MaxBatch {
		o := &op{t: t, events: events[i:min(i+l.cfg.MaxBatch, len(events))]}
		if err := l.submit(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// Do runs change in the writer's transaction and, if it succeeds, appends
// events for tenant t in the same transaction, so that the change and its
// audit record commit together or not at all. change must use only tx:
// it runs while the writer holds the database's write lock. Its error is
// returned and nothing of it, or of events, is kept.
func (l *Log) Do(ctx context.Context, t *tenant.Tenant, change func(ctx context.Context, tx *sql.Tx) error, events ...*Prepared) ([]Result, error) {
	o := &op{t: t, events: events, change: change, done: make(chan struct{})}
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	<-o.done
	return o.results, o.err
}

// Sync makes the writer catch up with whatever other processes have
// committed to a tenant's log, so that this process's index covers it.
func (l *Log) Sync(ctx context.Context, t *tenant.Tenant) error {
	_, err := l.Append(ctx, t, nil)
	return err
}

func (l *Log) submit(ctx context.Context, o *op) error {
	o.weight = int64(max(len(o.events), 1))
	if err := l.room.Acquire(ctx, o.weight); err != nil {
		return err
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		l.room.Release(o.weight)
		return ErrClosed
	}
	o.arrived = l.now().UnixMicro()
	l.queue <- o
	return nil
}

func (l *Log) run() {
	defer close(l.done)
	for {
		var first *op
		select {
		case first = <-l.queue:
		case <-l.stopped:
			for {
				select {
				case o := <-l.queue:
					l.commit(l.collect(o))
				default:
					return
				}
			}
		}
		l.commit(l.collect(first))
	}
}

// collect gathers what is waiting, up to MaxBatch events, behind first.
// While nobody waits on the batch (its events were only enqueued), it
// lingers for more, up to Config.Linger, so that a stream of single
// enqueued events commits in a few transactions rather than one each.
func (l *Log) collect(first *op) []*op {
	batch := []*op{first}
	n := len(first.events)
	waited := first.done != nil
	var timeout <-chan time.Time
	for n < l.cfg.MaxBatch {
		var o *op
		select {
		case o = <-l.queue:
		default:
			if waited || l.cfg.Linger <= 0 {
				return batch
			}
			if timeout == nil {
				t := time.NewTimer(l.cfg.Linger)
				defer t.Stop()
				timeout = t.C
			}
			select {
			case o = <-l.queue:
			case <-timeout:
				return batch
			case <-l.stopped:
				return batch
			}
		}
		batch = append(batch, o)
		n += len(o.events)
		waited = waited || o.done != nil
	}
	return batch
}

func (l *Log) commit(batch []*op) {
	start := time.Now()
	ctx := context.Background()
	groups := map[int64][]*op{}
	var order []int64
	for _, o := range batch {
		if o.t == nil {
			continue // only an after hook
		}
		if _, ok := groups[o.t.ID]; !ok {
			order = append(order, o.t.ID)
		}
		groups[o.t.ID] = append(groups[o.t.ID], o)
	}
	slices.Sort(order) // a fixed order keeps PostgreSQL row locks deadlock-free
	var touched []*tenantState
	appended := 0
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, id := range order {
			st := l.state(groups[id][0].t)
			touched = append(touched, st)
			n, err := l.appendTenant(ctx, tx, st, groups[id])
			if err != nil {
				return fmt.Errorf("tenant %s: %w", st.t.Name, err)
			}
			appended += n
		}
		return nil
	})
	if err != nil {
		l.log.Error("audit log commit failed", "error", err, "events", len(batch))
		for _, st := range touched {
			st.reset()
		}
	} else {
		for _, o := range batch {
			if o.after != nil && o.err == nil {
				o.after()
			}
		}
		for _, st := range touched {
			l.maybeSegment(st)
		}
		l.notify(batch)
	}
	for _, o := range batch {
		if err != nil && o.err == nil {
			o.err = err
			o.results = nil
		}
		l.room.Release(o.weight)
		if o.done != nil {
			close(o.done)
		}
	}
	if l.metrics != nil {
		l.metrics.observeCommit(batch, appended, time.Since(start), err)
		if err == nil {
			for _, st := range touched {
				l.metrics.logSize.WithLabelValues(st.t.Name).Set(float64(st.size))
			}
		}
	}
}

// reset forgets the writer's view of a tenant after a failed transaction;
// it is reloaded from the database on next use.
func (st *tenantState) reset() {
	st.loaded = false
	st.edge, st.open = nil, nil
	st.building = false
	st.mu.Lock()
	st.mem, st.segs = nil, nil
	st.mu.Unlock()
}

// appendTenant appends one tenant's share of a batch in tx and returns how
// many events it stored.
func (l *Log) appendTenant(ctx context.Context, tx *sql.Tx, st *tenantState, ops []*op) (int, error) {
	if err := l.syncState(ctx, tx, st); err != nil {
		return 0, err
	}
	n, size := 0, 0
	for _, o := range ops {
		n += len(o.events)
		for _, p := range o.events {
			size += p.leaf.Len()
		}
	}
	// The batch's leaves share one buffer, allocated once.
	arena := make([]byte, 0, size)
	add := &bundle{first: st.size, leaves: make([][]byte, 0, n), personal: make([][]byte, 0, n)}
	hashes := make([]tree.Hash, 0, n)
	docs := make([]index.Doc, 0, n)
	type batched struct {
		pos int
		p   *Prepared
	}
	batchIDs := make(map[string]batched, n)
	seq := st.size
	var changes int64
	for _, o := range ops {
		if o.change != nil {
			if err := runChange(ctx, tx, o.change); err != nil {
				o.err = err
				continue
			}
		}
		o.results = make([]Result, len(o.events))
		recv := max(o.arrived, st.lastReceived)
		for i, p := range o.events {
			ev := p.Event
			if b, ok := batchIDs[ev.ID]; ok {
				o.results[i] = Result{Sequence: add.first + int64(b.pos), LeafHash: hashes[b.pos], Duplicate: true}
				if !p.leaf.Equal(b.p.leaf) {
					o.results[i] = Result{Err: &ConflictError{Sequence: add.first + int64(b.pos)}}
				}
				continue
			}
			dup, err := l.findID(ctx, tx, st, p)
			if err != nil {
				return 0, err
			}
			if dup != nil {
				o.results[i] = *dup
				continue
			}
			ev.Sequence = seq
			ev.ReceivedAt = time.UnixMicro(recv).UTC()
			start := len(arena)
			arena = p.leaf.Append(arena, ev.ReceivedAt, seq)
			leaf := arena[start:len(arena):len(arena)]
			if len(leaf) > maxLeaf {
				arena = arena[:start]
				o.results[i] = Result{Err: ErrTooLarge}
				continue
			}
			h := tree.LeafHash(leaf)
			batchIDs[ev.ID] = batched{len(add.leaves), p}
			add.leaves = append(add.leaves, leaf)
			add.personal = append(add.personal, p.sealed)
			hashes = append(hashes, h)
			docs = append(docs, index.Doc{Seq: seq, ID: ev.ID, IDTerm: p.idTerm.Hash, LeafTerm: index.LeafTerm(h[:]).Hash,
				Terms: p.terms, Text: p.text, Action: ev.Action, Occurred: ev.OccurredAt.UnixMicro(), Received: recv})
			o.results[i] = Result{Sequence: seq, LeafHash: h}
			if IsChange(ev) {
				changes++
			}
			seq++
			st.lastReceived = recv
		}
	}
	if len(hashes) == 0 {
		return 0, nil
	}
	open, err := writeEntries(ctx, l.db, tx, &l.entryBuf, st.t.ID, st.open, add)
	if err != nil {
		return 0, err
	}
	st.open = open
	st.edge.Append(hashes)
	if err := tree.WriteTiles(ctx, l.db, tx, st.t.ID, st.edge.DirtyTiles()); err != nil {
		return 0, err
	}
	st.size, st.root = seq, st.edge.Root()
	upd, err := l.db.Stmt(ctx, tx, sqlUpdateState)
	if err != nil {
		return 0, err
	}
	if _, err := upd.ExecContext(ctx, st.size, st.root[:], st.lastReceived, l.now().UnixMicro(), changes, st.t.ID); err != nil {
		return 0, fmt.Errorf("auditlog: update log state: %w", err)
	}
	st.mu.Lock()
	for i := range docs {
		st.mem.Add(&docs[i])
	}
	st.mu.Unlock()
	return len(hashes), nil
}

func runChange(ctx context.Context, tx *sql.Tx, change func(context.Context, *sql.Tx) error) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT attest_change`); err != nil {
		return fmt.Errorf("auditlog: savepoint: %w", err)
	}
	if err := change(ctx, tx); err != nil {
		if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT attest_change`); rerr != nil {
			return errors.Join(err, rerr)
		}
		tx.ExecContext(ctx, `RELEASE SAVEPOINT attest_change`)
		return err
	}
	if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT attest_change`); err != nil {
		return fmt.Errorf("auditlog: release savepoint: %w", err)
	}
	return nil
}

// ConflictError refuses an event whose id an earlier, different event of the
// tenant already has: a retry repeats its event exactly, so reusing an id for
// other content is a producer's error, and is never silently dropped.
type ConflictError struct {
	// Sequence is the earlier event's.
	Sequence int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the id is already used by a different event (sequence %d)", e.Sequence)
}

// findID looks for an already logged event with p's id, and reports a
// duplicate when it is the same event, a conflict when it is not.
func (l *Log) findID(ctx context.Context, tx *sql.Tx, st *tenantState, p *Prepared) (*Result, error) {
	id := p.Event.ID
	if s, ok := st.mem.LookupID(id); ok {
		return l.duplicate(ctx, tx, st, p, s)
	}
	probe := index.NewIDProbe(p.idTerm)
	for i := len(st.segs) - 1; i >= 0; i-- {
		m := st.segs[i]
		if !m.MightContainID(probe) {
			continue
		}
		seqs, err := m.Postings(ctx, l.db, tx, p.idTerm)
		if err != nil {
			return nil, err
		}
		for _, s := range seqs {
			leaf, _, err := l.entry(ctx, tx, st.t.ID, s)
			if errors.Is(err, ErrExpired) {
				continue // an expired entry's id is free again
			}
			if err != nil {
				return nil, err
			}
			ev, _, err := event.DecodeLeaf(leaf)
			if err != nil {
				// The event cannot be told apart from a damaged entry
				// that may hold its id: it is refused, and the rest of
				// the batch goes on.
				return &Result{Err: &CorruptError{Sequence: s, Err: err}}, nil
			}
			if ev.ID == id {
				return l.duplicate(ctx, tx, st, p, s)
			}
		}
	}
	return nil, nil
}

// duplicate compares p with the stored event s of the same id.
func (l *Log) duplicate(ctx context.Context, tx *sql.Tx, st *tenantState, p *Prepared, s int64) (*Result, error) {
	leaf, sealed, err := l.entry(ctx, tx, st.t.ID, s)
	if errors.Is(err, ErrExpired) {
		// The id went with the payload: whether the entry was this event
		// cannot be told any more, and a process that starts afresh does
		// not know the id at all, so it is free again.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	stored, lf, err := event.DecodeLeaf(leaf)
	if err != nil {
		return &Result{Err: &CorruptError{Sequence: s, Err: err}}, nil
	}
	dup := &Result{Sequence: s, LeafHash: tree.LeafHash(leaf), Duplicate: true}
	// The same event, given the stored one's arrival time and sequence,
	// has the same leaf.
	if bytes.Equal(p.leaf.Append(nil, stored.ReceivedAt, stored.Sequence), leaf) {
		return dup, nil
	}
	// The stored event's commitments may have been made under a key an
	// erasure destroyed since: its personal values can then no longer be
	// compared, and it is the same event when all the rest is, with the
	// same personal fields present.
	if len(p.commitments) == len(lf.Personal) && len(p.commitments) > 0 && l.erasedValues(ctx, st.t, stored, sealed) {
		same := make([]event.Commitment, len(p.commitments))
		for i, c := range p.commitments {
			v, ok := lf.Personal[c.Path]
			if !ok {
				return &Result{Err: &ConflictError{Sequence: s}}, nil
			}
			same[i] = event.Commitment{Path: c.Path, Value: v}
		}
		if bytes.Equal(event.NewLeafTemplate(p.Event, same).Append(nil, stored.ReceivedAt, stored.Sequence), leaf) {
			return dup, nil
		}
	}
	return &Result{Err: &ConflictError{Sequence: s}}, nil
}

// erasedValues reports whether the key that sealed a stored event's
// personal values has been destroyed.
func (l *Log) erasedValues(ctx context.Context, t *tenant.Tenant, ev *event.Event, sealed []byte) bool {
	gen, err := personal.BlobGeneration(sealed)
	if err != nil {
		return false
	}
	_, err = l.keyring.Generation(ctx, t.ID, ev.Subject(), gen)
	return errors.Is(err, personal.ErrErased)
}

// syncState locks the tenant's log state for this transaction and reloads
// the writer's view when it is missing or another process moved the log.
func (l *Log) syncState(ctx context.Context, tx *sql.Tx, st *tenantState) error {
	var size, lastRecv, gen int64
	var root []byte
	sel, err := l.db.Stmt(ctx, tx, l.sqlLockState())
	if err != nil {
		return err
	}
	err = sel.QueryRowContext(ctx, st.t.ID).Scan(&size, &root, &lastRecv, &gen)
	if isNoRows(err) {
		size, root, lastRecv, gen = 0, tree.EmptyRoot[:], 0, 0
		_, err = tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO log_state (tenant_id, size, root, last_received, updated_at)
			VALUES (?, 0, ?, 0, ?)`), st.t.ID, root, l.now().UnixMicro())
	}
	if err != nil {
		return fmt.Errorf("auditlog: lock log state: %w", err)
	}
	if st.loaded && size == st.size && tree.Hash(root) == st.root && gen == st.indexGen {
		return nil
	}
	return l.load(ctx, tx, st, size, tree.Hash(root), lastRecv, gen)
}

// load rebuilds the writer's view of a tenant from the database.
func (l *Log) load(ctx context.Context, q store.Querier, st *tenantState, size int64, root tree.Hash, lastRecv, gen int64) error {
	st.reset()
	edge, err := tree.LoadEdge(ctx, tree.NewReader(l.db, q, st.t.ID), size)
	if err != nil {
		return err
	}
	if edge.Root() != root {
		return fmt.Errorf("auditlog: stored tiles give root %v at size %d but the log state says %v; "+
			"refusing to append to a log that does not verify", edge.Root(), size, root)
	}
	segs, err := index.LoadMetas(ctx, l.db, q, st.t.ID)
	if err != nil {
		return err
	}
	var segEnd int64
	for _, m := range segs {
		segEnd = max(segEnd, m.End)
	}
	mem := index.NewMemtable(segEnd)
	docs, err := l.docs(ctx, q, st.t, segEnd, size)
	if err != nil {
		return err
	}
	for _, d := range docs {
		mem.Add(d)
	}
	var open *bundle
	if size%blockSize != 0 {
		if open, err = l.readBlock(ctx, q, st.t.ID, size-1); err != nil {
			return err
		}
		if open.end() != size {
			return fmt.Errorf("auditlog: log size is %d but the stored entries end at %d", size, open.end())
		}
	}
	st.edge, st.open, st.size, st.root, st.lastReceived = edge, open, size, root, lastRecv
	st.mu.Lock()
	st.mem, st.segs, st.indexGen = mem, segs, gen
	st.mu.Unlock()
	st.loaded = true
	return nil
}

func (l *Log) sqlLockState() string {
	return `SELECT size, root, last_received, index_gen FROM log_state WHERE tenant_id = ?` + l.db.Types().ForUpdate
}
