package auditlog

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/tenant"
)

// segmentJob asks for the first segment of a tenant's memtable to be built.
type segmentJob struct {
	st   *tenantState
	snap *index.Snapshot
}

// maybeSegment, called by the writer after a commit, hands the first
// segment of a full memtable to the segment builder. Building is CPU work
// that would stall every append if the writer did it; the builder does it
// on its own goroutine and gives the writer only the rows to store.
func (l *Log) maybeSegment(st *tenantState) {
	if !st.loaded || st.building {
		return
	}
	st.mu.Lock()
	full := st.mem != nil && st.mem.Full()
	var snap *index.Snapshot
	if full {
		snap = st.mem.Snapshot()
	}
	st.mu.Unlock()
	if !full {
		return
	}
	select {
	case l.segs <- segmentJob{st: st, snap: snap}:
		st.building = true
	default:
		// The builder is busy; the next commit asks again.
	}
}

// buildSegments builds the segments it is asked for and has the writer
// store each in a transaction of its own.
func (l *Log) buildSegments() {
	for {
		select {
		case <-l.stopped:
			return
		case job := <-l.segs:
			l.buildSegment(job)
		}
	}
}

func (l *Log) buildSegment(job segmentJob) {
	st, snap := job.st, job.snap
	sd := snap.BuildSegment()
	enc, err := index.EncodeSegment(sd)
	if err != nil {
		l.log.Error("encoding an index segment failed; it is retried", "tenant", st.t.Name, "error", err)
		l.writerDo(func() { st.building = false })
		return
	}
	var meta *index.Meta
	o := &op{t: st.t, done: make(chan struct{})}
	o.change = func(ctx context.Context, tx *sql.Tx) error {
		// Another process may have indexed this range already.
		ids, err := l.segmentsOver(ctx, tx, st.t.ID, sd.First, sd.End)
		if err != nil || len(ids) > 0 {
			return err
		}
		meta, err = enc.Store(ctx, l.db, tx, st.t.ID)
		return err
	}
	o.after = func() {
		// Runs in the writer, which owns st. The view may have been
		// reloaded meanwhile; then the reload has read the segment.
		st.building = false
		if meta == nil {
			// Stored by another process: reload to pick it up.
			st.loaded = false
			return
		}
		if !st.loaded || st.mem == nil || st.mem.Base() != sd.First {
			return
		}
		st.mu.Lock()
		st.segs = append(st.segs, meta)
		st.mem = st.mem.Rebase(sd.End)
		st.mu.Unlock()
	}
	if err := l.submit(context.Background(), o); err != nil {
		l.writerDo(func() { st.building = false })
		return
	}
	<-o.done
	if o.err != nil {
		l.log.Error("storing an index segment failed; it is retried", "tenant", st.t.Name, "error", o.err)
		l.writerDo(func() { st.building = false })
		return
	}
	l.mergeSegments(st)
}

// segmentsOver returns the ids of a tenant's segments that overlap [first, end).
func (l *Log) segmentsOver(ctx context.Context, tx *sql.Tx, tenantID, first, end int64) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, l.db.Rebind(`SELECT id FROM segments
		WHERE tenant_id = ? AND first_seq < ? AND end_seq > ? ORDER BY first_seq`), tenantID, end, first)
	if err != nil {
		return nil, fmt.Errorf("auditlog: look for segments: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("auditlog: look for segments: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auditlog: look for segments: %w", err)
	}
	return ids, nil
}

// mergeSegments merges the tenant's segments, level by level, for as long
// as some group of them is due. The merged segment is read and encoded
// from a read snapshot, off the writer's path; the writer then swaps it for
// the group in one transaction that moves the index generation on, so that
// readers and other processes holding the old list notice.
func (l *Log) mergeSegments(st *tenantState) {
	ctx := context.Background()
	for {
		st.mu.Lock()
		group := index.Mergeable(st.segs)
		st.mu.Unlock()
		if group == nil {
			return
		}
		if beforeMerge != nil {
			beforeMerge()
		}
		var enc *index.Encoded
		err := l.db.ReadTx(ctx, func(tx *sql.Tx) error {
			var err error
			enc, err = index.MergeSegments(ctx, l.db, tx, group)
			return err
		})
		if err != nil {
			l.log.Error("merging index segments failed; the segments stay as they are", "tenant", st.t.Name,
				"first", group[0].First, "end", group[len(group)-1].End, "error", err)
			return
		}
		var meta *index.Meta
		var gen int64
		o := &op{t: st.t, done: make(chan struct{})}
		o.change = func(ctx context.Context, tx *sql.Tx) error {
			// Another process may have merged or replaced them already.
			ids, err := l.segmentsOver(ctx, tx, st.t.ID, enc.Meta.First, enc.Meta.End)
			if err != nil {
				return err
			}
			if len(ids) != len(group) {
				return nil
			}
			for i, g := range group {
				if ids[i] != g.ID {
					return nil
				}
			}
			if meta, err = enc.Store(ctx, l.db, tx, st.t.ID); err != nil {
				return err
			}
			err = tx.QueryRowContext(ctx, l.db.Rebind(`UPDATE log_state SET index_gen = index_gen + 1
				WHERE tenant_id = ? RETURNING index_gen`), st.t.ID).Scan(&gen)
			if err != nil {
				return fmt.Errorf("auditlog: move the index generation on: %w", err)
			}
			return nil
		}
		o.after = func() {
			if meta == nil {
				st.loaded = false // reload what another process did
				return
			}
			i := slices.Index(st.segs, group[0])
			if !st.loaded || i < 0 || i+len(group) > len(st.segs) || !slices.Equal(st.segs[i:i+len(group)], group) {
				st.loaded = false
				return
			}
			st.mu.Lock()
			st.segs = slices.Replace(slices.Clone(st.segs), i, i+len(group), meta)
			st.indexGen = gen
			st.mu.Unlock()
		}
		if err := l.submit(ctx, o); err != nil {
			return
		}
		<-o.done
		if o.err != nil {
			l.log.Error("storing merged index segments failed; the segments stay as they are", "tenant", st.t.Name,
				"error", o.err)
			return
		}
		if meta == nil {
			return
		}
		l.metrics.observeMerge(enc)
	}
}

// writerDo runs f in the writer goroutine.
func (l *Log) writerDo(f func()) {
	o := &op{done: make(chan struct{}), after: f}
	if l.submit(context.Background(), o) == nil {
		<-o.done
	}
}

// beforeMerge, when set by a test, runs before each merge reads its segments.
var beforeMerge func()

// IndexIdle reports whether the tenant's index has caught up with its log:
// no segment is being built or waits to be, and no merge is due.
func (l *Log) IndexIdle(t *tenant.Tenant) bool {
	st := l.state(t)
	var building bool
	l.writerDo(func() { building = st.building })
	st.mu.Lock()
	defer st.mu.Unlock()
	return !building && (st.mem == nil || !st.mem.Full()) && index.Mergeable(st.segs) == nil
}
