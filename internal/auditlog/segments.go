package auditlog

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/attest/attest/internal/index"
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
	var meta *index.Meta
	o := &op{t: st.t, done: make(chan struct{})}
	o.change = func(ctx context.Context, tx *sql.Tx) error {
		// Another process may have stored this segment already.
		var n int
		if err := tx.QueryRowContext(ctx, l.db.Rebind(`SELECT COUNT(*) FROM segments WHERE tenant_id = ? AND first_seq = ?`),
			st.t.ID, sd.First).Scan(&n); err != nil {
			return fmt.Errorf("auditlog: look for segment: %w", err)
		}
		if n > 0 {
			return nil
		}
		var err error
		meta, err = index.WriteSegment(ctx, l.db, tx, st.t.ID, sd)
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
	}
}

// writerDo runs f in the writer goroutine.
func (l *Log) writerDo(f func()) {
	o := &op{done: make(chan struct{}), after: f}
	if l.submit(context.Background(), o) == nil {
		<-o.done
	}
}
