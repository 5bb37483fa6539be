package auditlog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/archive"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
)

// Retention defaults: seven years of retention, of which the newest 400
// days stay in the database.
const (
	DefaultRetentionDays = 2557
	DefaultHotDays       = 400
	// MinRetentionDays is the shortest retention a policy may set: a year,
	// the longest audit period, so that no period's evidence is deleted
	// before it can be examined.
	MinRetentionDays = 365
	MaxRetentionDays = 36500
	// DefaultSegmentEntries is how many entries an archive segment holds
	// at most.
	DefaultSegmentEntries = 65536
)

// Policy is a tenant's retention policy.
type Policy struct {
	RetentionDays int
	HotDays       int
	LegalHold     bool
	HoldReason    string
	UpdatedAt     time.Time
	// Default is set when the tenant has no policy of its own.
	Default bool
}

// DefaultPolicy is the policy of a tenant that has set none.
func DefaultPolicy() Policy {
	return Policy{RetentionDays: DefaultRetentionDays, HotDays: DefaultHotDays, Default: true}
}

// PolicyError says which field of a policy is wrong.
type PolicyError struct{ Field, Reason string }

func (e *PolicyError) Error() string { return e.Field + ": " + e.Reason }

// Validate checks a policy's values, naming the field at fault.
func (p *Policy) Validate() error {
	switch {
	case p.RetentionDays < MinRetentionDays || p.RetentionDays > MaxRetentionDays:
		return &PolicyError{"retention_days", fmt.Sprintf("must be between %d and %d", MinRetentionDays, MaxRetentionDays)}
	case p.HotDays < 1 || p.HotDays > p.RetentionDays:
		return &PolicyError{"hot_days", "must be at least 1 and at most retention_days"}
	case p.LegalHold && p.HoldReason == "":
		return &PolicyError{"reason", "a legal hold needs a reason"}
	}
	return nil
}

// Policy returns tenant's retention policy as q reads it.
func (l *Log) Policy(ctx context.Context, q store.Querier, tenantID int64) (Policy, error) {
	p := Policy{}
	var hold bool
	var updated int64
	err := q.QueryRowContext(ctx, l.db.Rebind(`SELECT retention_days, hot_days, legal_hold, hold_reason, updated_at
		FROM retention WHERE tenant_id = ?`), tenantID).Scan(&p.RetentionDays, &p.HotDays, &hold, &p.HoldReason, &updated)
	if isNoRows(err) {
		return DefaultPolicy(), nil
	}
	if err != nil {
		return p, fmt.Errorf("auditlog: read retention policy: %w", err)
	}
	p.LegalHold, p.UpdatedAt = hold, time.UnixMicro(updated).UTC()
	return p, nil
}

// WritePolicy stores a tenant's policy in tx. It is meant for the change
// function of Do, whose event records the change.
func (l *Log) WritePolicy(ctx context.Context, tx *sql.Tx, tenantID int64, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if !p.LegalHold {
		p.HoldReason = ""
	}
	_, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO retention (tenant_id, retention_days, hot_days, legal_hold,
		hold_reason, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET retention_days = excluded.retention_days, hot_days = excluded.hot_days,
		legal_hold = excluded.legal_hold, hold_reason = excluded.hold_reason, updated_at = excluded.updated_at`),
		tenantID, p.RetentionDays, p.HotDays, p.LegalHold, p.HoldReason, l.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("auditlog: write retention policy: %w", err)
	}
	return nil
}

// RetentionOptions tune RunRetention.
type RetentionOptions struct {
	// Event makes the audit event of one step; required.
	Event func(action string, target event.Target, details map[string]any) *event.Event
	// SegmentEntries bounds the entries of one archive segment; zero means
	// DefaultSegmentEntries. It is rounded down to whole blocks.
	SegmentEntries int64
	// Progress, when set, is told of each step as it completes.
	Progress func(step string, seg ArchiveSegment)
}

// RetentionReport says what one retention run did for a tenant.
type RetentionReport struct {
	Tenant          string
	Policy          Policy
	Archived        []ArchiveSegment
	ArchivedEntries int64
	Expired         []ArchiveSegment
	ExpiredEntries  int64
	// ObjectsDeleted counts archive objects of expired segments removed
	// from the store, including those a run interrupted earlier had left.
	ObjectsDeleted int
	// HeldEntries counts entries whose retention has ended but which a
	// legal hold keeps.
	HeldEntries int64
	// OrphansDeleted counts objects that interrupted runs had written
	// without recording them, deleted by this run.
	OrphansDeleted int
}

// errRetentionRace means another process moved the tenant's archive or
// expiry boundary while a step was being prepared.
var errRetentionRace = errors.New("auditlog: another retention run changed this tenant's log meanwhile")

// RunRetention applies tenant t's policy: it moves whole blocks of entries
// received before the hot window into archive segments, then, unless a
// legal hold is set, deletes the payloads of segments whose newest entry
// was received before the retention period, keeping their leaf hashes in
// the tree. Each step commits with its audit event; a run interrupted
// anywhere leaves the log as it was before that step, and running again
// finishes the work.
func (l *Log) RunRetention(ctx context.Context, t *tenant.Tenant, opts RetentionOptions) (*RetentionReport, error) {
	if opts.Event == nil {
		return nil, errors.New("auditlog: retention needs an event maker")
	}
	seg := opts.SegmentEntries
	if seg <= 0 {
		seg = DefaultSegmentEntries
	}
	seg = max(seg-seg%blockSize, blockSize)
	pol, err := l.Policy(ctx, l.db.Read, t.ID)
	if err != nil {
		return nil, err
	}
	rep := &RetentionReport{Tenant: t.Name, Policy: pol}
	if l.cfg.Archive == nil {
		return rep, ErrNoArchive
	}
	ls, err := l.acquireLease(ctx, t.ID)
	if err != nil {
		return rep, err
	}
	defer ls.release(ctx)
	if rep.OrphansDeleted, err = l.cleanPending(ctx, t.ID); err != nil {
		return rep, err
	}
	if err := l.archiveDue(ctx, t, pol, seg, opts, ls, rep); err != nil {
		return rep, err
	}
	if err := l.expireDue(ctx, t, pol, opts, ls, rep); err != nil {
		return rep, err
	}
	return rep, l.deleteExpiredObjects(ctx, t, rep)
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// nextStep begins a step of a run: it stops when ctx is done, renews the
// lease and reads the log's head afresh.
func (l *Log) nextStep(ctx context.Context, t *tenant.Tenant, ls *lease) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	if err := ls.renew(ctx); err != nil {
		return State{}, err
	}
	return l.Head(ctx, l.db.Read, t.ID)
}

// archiveDue archives, segment by segment, the whole blocks received before
// the hot window.
func (l *Log) archiveDue(ctx context.Context, t *tenant.Tenant, pol Policy, seg int64, opts RetentionOptions,
	ls *lease, rep *RetentionReport) error {
	cutoff := l.now().Add(-days(pol.HotDays))
	for {
		head, err := l.nextStep(ctx, t, ls)
		if err != nil {
			return err
		}
		full := head.Size - head.Size%blockSize
		if full-head.Archived < blockSize {
			return nil
		}
		// The first entry received inside the hot window.
		hot, err := searchReceived(full-head.Archived, cutoff, func(i int64) (time.Time, error) {
			return l.receivedAt(ctx, l.db.Read, t.ID, head.Archived+i)
		})
		if err != nil {
			return err
		}
		end := head.Archived + hot
		end -= end % blockSize
		end = min(end, (head.Archived/seg+1)*seg)
		if end <= head.Archived {
			return nil
		}
		s, err := l.archiveSegment(ctx, t, pol, head.Archived, end, opts, ls)
		if errors.Is(err, errRetentionRace) {
			continue
		}
		if err != nil {
			return err
		}
		rep.Archived = append(rep.Archived, *s)
		rep.ArchivedEntries += s.End - s.First
		if opts.Progress != nil {
			opts.Progress("archived", *s)
		}
	}
}

// receivedAt returns when entry seq was received.
func (l *Log) receivedAt(ctx context.Context, q store.Querier, tenantID, seq int64) (time.Time, error) {
	leaf, _, err := l.entry(ctx, q, tenantID, seq)
	if err != nil {
		return time.Time{}, err
	}
	ev, _, err := event.DecodeLeaf(leaf)
	if err != nil {
		return time.Time{}, &CorruptError{Sequence: seq, Err: err}
	}
	return ev.ReceivedAt, nil
}

// archiveSegment writes the object and manifest of [first, end), then, in
// one transaction with its audit event, records the segment and deletes
// its entries from the database. A step that fails after writing deletes
// what it wrote; one killed meanwhile leaves a pending record, by which
// the next run deletes it.
func (l *Log) archiveSegment(ctx context.Context, t *tenant.Tenant, pol Policy, first, end int64,
	opts RetentionOptions, ls *lease) (s *ArchiveSegment, err error) {
	var rows []entryRow
	var root tree.Hash
	var last time.Time
	err = l.db.ReadTx(ctx, func(tx *sql.Tx) error {
		head, err := l.Head(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		if head.Archived != first {
			return errRetentionRace
		}
		if rows, err = l.dbRows(ctx, tx, t.ID, first, end); err != nil {
			return err
		}
		if err := l.checkLeaves(ctx, tx, t.ID, rows); err != nil {
			return err
		}
		if root, err = tree.TreeHash(ctx, tree.NewReader(l.db, tx, t.ID), end); err != nil {
			return err
		}
		last, err = l.receivedAt(ctx, tx, t.ID, end-1)
		return err
	})
	if err != nil {
		return nil, err
	}
	obj, err := encodeArchive(rows)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(obj)
	s = &ArchiveSegment{First: first, End: end, Object: archiveObject(t.ID, first, end), Size: int64(len(obj)),
		SHA256: sum[:], LastReceived: last, CreatedAt: l.now()}
	m := &Manifest{Origin: l.Origin(t.Name), First: first, End: end, TreeRoot: root, LastReceived: last,
		Object: s.Object, Size: s.Size, SHA256: s.SHA256}
	if s.Manifest, err = l.signManifest(m); err != nil {
		return nil, err
	}
	if err := l.addPending(ctx, t.ID, s.Object); err != nil {
		return nil, err
	}
	// Whatever stops this step from committing, the object it wrote is not
	// left behind, unless a segment records it after all.
	name := s.Object
	defer func() {
		if err != nil {
			if _, derr := l.dropOrphan(context.WithoutCancel(ctx), t.ID, name); derr != nil {
				l.log.Warn("an archive object written by a step that did not commit is left; the next retention run "+
					"deletes it", "object", name, "error", derr)
			}
		}
	}()
	// Object lock, where the store has it, keeps the object until its
	// retention ends.
	po := archive.PutOptions{RetainUntil: last.Add(days(pol.RetentionDays))}
	if err := l.cfg.Archive.Put(ctx, s.Object, obj, po); err != nil {
		return nil, fmt.Errorf("auditlog: store archive segment: %w", err)
	}
	if err := l.cfg.Archive.Put(ctx, ManifestObject(s.Object), s.Manifest, po); err != nil {
		return nil, fmt.Errorf("auditlog: store archive manifest: %w", err)
	}
	ev := opts.Event("audit.archive.create", event.Target{Type: "archive_segment", ID: s.Object}, map[string]any{
		"first": first, "end": end, "entries": end - first, "bytes": s.Size, "sha256": hex.EncodeToString(s.SHA256),
		"tree_root": base64.StdEncoding.EncodeToString(root[:]), "last_received": last.Format(time.RFC3339Nano)})
	p, err := l.Prepare(ctx, t, ev)
	if err != nil {
		return nil, err
	}
	_, err = l.Do(ctx, t, func(ctx context.Context, tx *sql.Tx) error {
		if err := ls.held(ctx, tx); err != nil {
			return err
		}
		if err := l.donePending(ctx, tx, t.ID, s.Object); err != nil {
			return err
		}
		var archived int64
		if err := tx.QueryRowContext(ctx, l.db.Rebind(`SELECT archived_end FROM log_state WHERE tenant_id = ?`),
			t.ID).Scan(&archived); err != nil {
			return fmt.Errorf("auditlog: read log state: %w", err)
		}
		if archived != first {
			return errRetentionRace
		}
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO archives (tenant_id, first_seq, end_seq, object,
			object_size, sha256, last_received, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			t.ID, first, end, s.Object, s.Size, s.SHA256, last.UnixMicro(), s.Manifest, s.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("auditlog: record archive segment: %w", err)
		}
		res, err := tx.ExecContext(ctx, l.db.Rebind(`DELETE FROM entries WHERE tenant_id = ? AND first_seq >= ? AND first_seq < ?`),
			t.ID, first, end)
		if err != nil {
			return fmt.Errorf("auditlog: delete archived entries: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(rows)) {
			return fmt.Errorf("auditlog: archived entries changed while they were archived (%d rows deleted, %d archived)",
				n, len(rows))
		}
		_, err = tx.ExecContext(ctx, l.db.Rebind(`UPDATE log_state SET archived_end = ? WHERE tenant_id = ?`), end, t.ID)
		return err
	}, p)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// dbRows reads the database's entry rows of [first, end), which must hold
// exactly that range.
func (l *Log) dbRows(ctx context.Context, q store.Querier, tenantID, first, end int64) ([]entryRow, error) {
	rows, err := l.storedRows(ctx, q, tenantID, first, end, true)
	if err != nil {
		return nil, err
	}
	next := first
	for _, r := range rows {
		if r.first != next {
			break
		}
		next = r.first + r.count
	}
	if next != end {
		return nil, fmt.Errorf("auditlog: entry %d is missing from the stored log; run attest verify", next)
	}
	return rows, nil
}

// checkLeaves compares the leaves of rows with the tree, so that nothing
// altered is ever archived as if it were the log.
func (l *Log) checkLeaves(ctx context.Context, q store.Querier, tenantID int64, rows []entryRow) error {
	tiles := tree.NewReader(l.db, q, tenantID)
	h := tree.NewHasher()
	for i := range rows {
		b, err := rows[i].decodeInto(nil, false)
		if err != nil {
			return fmt.Errorf("auditlog: %w; run attest verify", err)
		}
		for k, leaf := range b.leaves {
			seq := b.first + int64(k)
			if want, err := leafHash(ctx, tiles, seq); err != nil || h.Leaf(leaf) != want {
				return fmt.Errorf("auditlog: entry %d does not match the tree, so it is not archived; run attest verify", seq)
			}
		}
	}
	return nil
}

// expireDue deletes the payloads of the archive segments, oldest first,
// whose newest entry was received before the retention period.
func (l *Log) expireDue(ctx context.Context, t *tenant.Tenant, pol Policy, opts RetentionOptions, ls *lease,
	rep *RetentionReport) error {
	cutoff := l.now().Add(-days(pol.RetentionDays))
	for {
		head, err := l.nextStep(ctx, t, ls)
		if err != nil {
			return err
		}
		segs, err := l.archiveSegments(ctx, l.db.Read, t.ID, head.Expired, head.Expired+1)
		if err != nil {
			return err
		}
		if len(segs) == 0 || segs[0].First != head.Expired || !segs[0].LastReceived.Before(cutoff) {
			return nil
		}
		s := segs[0]
		if pol.LegalHold {
			rep.HeldEntries += s.End - s.First
			// Count what else the hold keeps, for the report.
			rest, err := l.archiveSegments(ctx, l.db.Read, t.ID, s.End, head.Archived)
			if err != nil {
				return err
			}
			for _, r := range rest {
				if r.LastReceived.Before(cutoff) {
					rep.HeldEntries += r.End - r.First
				}
			}
			return nil
		}
		ev := opts.Event("audit.archive.expire", event.Target{Type: "archive_segment", ID: s.Object}, map[string]any{
			"first": s.First, "end": s.End, "entries": s.End - s.First, "last_received": s.LastReceived.Format(time.RFC3339Nano),
			"retention_days": pol.RetentionDays})
		p, err := l.Prepare(ctx, t, ev)
		if err != nil {
			return err
		}
		now := l.now()
		_, err = l.Do(ctx, t, func(ctx context.Context, tx *sql.Tx) error {
			if err := ls.held(ctx, tx); err != nil {
				return err
			}
			var expired int64
			if err := tx.QueryRowContext(ctx, l.db.Rebind(`SELECT expired_end FROM log_state WHERE tenant_id = ?`),
				t.ID).Scan(&expired); err != nil {
				return fmt.Errorf("auditlog: read log state: %w", err)
			}
			if expired != s.First {
				return errRetentionRace
			}
			// A hold set since the policy was read wins.
			cur, err := l.Policy(ctx, tx, t.ID)
			if err != nil {
				return err
			}
			if cur.LegalHold {
				return ErrLegalHold
			}
			// So does a retention lengthened since.
			if !s.LastReceived.Before(now.Add(-days(cur.RetentionDays))) {
				return errPolicyChanged
			}
			if _, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE archives SET expired_at = ? WHERE tenant_id = ? AND first_seq = ?`),
				now.UnixMicro(), t.ID, s.First); err != nil {
				return fmt.Errorf("auditlog: expire archive segment: %w", err)
			}
			_, err = tx.ExecContext(ctx, l.db.Rebind(`UPDATE log_state SET expired_end = ? WHERE tenant_id = ?`), s.End, t.ID)
			return err
		}, p)
		switch {
		case errors.Is(err, errRetentionRace):
			continue
		case errors.Is(err, ErrLegalHold):
			rep.HeldEntries += s.End - s.First
			return nil
		case errors.Is(err, errPolicyChanged):
			return nil
		case err != nil:
			return err
		}
		l.bundles.dropTenant(t.ID, s.End)
		s.ExpiredAt = now
		rep.Expired = append(rep.Expired, s)
		rep.ExpiredEntries += s.End - s.First
		if opts.Progress != nil {
			opts.Progress("expired", s)
		}
	}
}

// errPolicyChanged means the tenant's retention was lengthened while a run
// was deciding what had expired.
var errPolicyChanged = errors.New("auditlog: the retention policy changed during the run")

// ErrLegalHold means a legal hold on the tenant forbids the deletion asked
// for.
var ErrLegalHold = errors.New("the tenant is under legal hold, which forbids deleting its audit data")

// deleteExpiredObjects removes the objects of expired segments from the
// store. Deleting happens after the expiry commits, so a run interrupted
// between the two leaves an object that this step of a later run removes.
// The signed manifests stay: they record what was kept and until when.
func (l *Log) deleteExpiredObjects(ctx context.Context, t *tenant.Tenant, rep *RetentionReport) error {
	rows, err := l.db.Read.QueryContext(ctx, l.db.Rebind(`SELECT first_seq, object FROM archives
		WHERE tenant_id = ? AND expired_at IS NOT NULL AND object_deleted_at IS NULL ORDER BY first_seq`), t.ID)
	if err != nil {
		return fmt.Errorf("auditlog: read archive segments: %w", err)
	}
	type due struct {
		first  int64
		object string
	}
	var dues []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.first, &d.object); err != nil {
			rows.Close()
			return fmt.Errorf("auditlog: read archive segments: %w", err)
		}
		dues = append(dues, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("auditlog: read archive segments: %w", err)
	}
	for _, d := range dues {
		if err := l.cfg.Archive.Delete(ctx, d.object); err != nil {
			return fmt.Errorf("auditlog: delete expired archive object: %w", err)
		}
		if _, err := l.db.Write.ExecContext(ctx, l.db.Rebind(`UPDATE archives SET object_deleted_at = ?
			WHERE tenant_id = ? AND first_seq = ?`), l.now().UnixMicro(), t.ID, d.first); err != nil {
			return fmt.Errorf("auditlog: record deleted archive object: %w", err)
		}
		rep.ObjectsDeleted++
	}
	return nil
}

// ArchiveSegments returns tenant t's archive segments, oldest first.
func (l *Log) ArchiveSegments(ctx context.Context, q store.Querier, t *tenant.Tenant) ([]ArchiveSegment, error) {
	return l.archiveSegments(ctx, q, t.ID, 0, 1<<62)
}
