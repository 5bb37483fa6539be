package auditlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/store"
	"github.com/google/uuid"
)

// One retention run at a time works on a tenant: it holds the tenant's
// lease, a row of retention_runs that it renews at every step and that
// every step's transaction checks it still holds. A run that stalls past
// its lease loses it, and its next transaction fails instead of
// committing behind the back of the run that took over.
const leaseTTL = 10 * time.Minute

// ErrRetentionBusy means another retention run holds the tenant's lease.
var ErrRetentionBusy = errors.New("auditlog: another retention run is working on this tenant; try again when it ends")

// errLeaseLost means a run's lease ran out, and another run may have taken
// it: the run stops without committing its step.
var errLeaseLost = errors.New("auditlog: this retention run lost its lease on the tenant, so it stopped; the next run goes on")

// lease is a retention run's hold on one tenant, renewed in the
// background while the run works, so that a long step (a large upload)
// keeps it.
type lease struct {
	l        *Log
	tenantID int64
	holder   string
	stop     chan struct{}
	done     chan struct{}
}

// acquireLease takes the tenant's lease; it fails with ErrRetentionBusy
// when another run holds it.
func (l *Log) acquireLease(ctx context.Context, tenantID int64) (*lease, error) {
	ls := &lease{l: l, tenantID: tenantID, holder: uuid.NewString(), stop: make(chan struct{}), done: make(chan struct{})}
	if err := ls.renew(ctx); err != nil {
		return nil, err
	}
	go ls.keep(context.WithoutCancel(ctx))
	return ls, nil
}

// keep renews the lease every fifth of its time until release.
func (ls *lease) keep(ctx context.Context) {
	defer close(ls.done)
	t := time.NewTicker(leaseTTL / 5)
	defer t.Stop()
	for {
		select {
		case <-ls.stop:
			return
		case <-t.C:
			if err := ls.renew(ctx); err != nil {
				ls.l.log.Warn("retention: the lease on a tenant could not be renewed", "error", err)
			}
		}
	}
}

func (ls *lease) renew(ctx context.Context) error {
	now, err := ls.l.dbNow(ctx, ls.l.db.Write)
	if err != nil {
		return err
	}
	res, err := ls.l.db.Write.ExecContext(ctx, ls.l.db.Rebind(`INSERT INTO retention_runs (tenant_id, holder, expires_at)
		VALUES (?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE retention_runs.expires_at < ? OR retention_runs.holder = excluded.holder`),
		ls.tenantID, ls.holder, now.Add(leaseTTL).UnixMicro(), now.UnixMicro())
	if err != nil {
		return fmt.Errorf("auditlog: retention lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrRetentionBusy
	}
	return nil
}

// held checks, in tx, that the lease is still this run's, locking its row
// until tx ends.
func (ls *lease) held(ctx context.Context, tx *sql.Tx) error {
	var holder string
	var expires int64
	err := tx.QueryRowContext(ctx, ls.l.db.Rebind(`SELECT holder, expires_at FROM retention_runs WHERE tenant_id = ?`+
		ls.l.db.Types().ForUpdate), ls.tenantID).Scan(&holder, &expires)
	if err != nil && !isNoRows(err) {
		return fmt.Errorf("auditlog: retention lease: %w", err)
	}
	now, err := ls.l.dbNow(ctx, tx)
	if err != nil {
		return err
	}
	if holder != ls.holder || expires < now.UnixMicro() {
		return errLeaseLost
	}
	return nil
}

// dbNow is the time leases are measured by: on PostgreSQL the database
// server's clock, which every replica shares; on SQLite, whose processes
// share a machine, the machine's.
func (l *Log) dbNow(ctx context.Context, q store.Querier) (time.Time, error) {
	if l.db.Dialect != store.Postgres {
		return time.Now(), nil
	}
	var us int64
	if err := q.QueryRowContext(ctx, `SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint`).Scan(&us); err != nil {
		return time.Time{}, fmt.Errorf("auditlog: read the database's clock: %w", err)
	}
	return time.UnixMicro(us), nil
}

func (ls *lease) release(ctx context.Context) {
	close(ls.stop)
	<-ls.done
	ls.l.db.Write.ExecContext(context.WithoutCancel(ctx), ls.l.db.Rebind(`DELETE FROM retention_runs
		WHERE tenant_id = ? AND holder = ?`), ls.tenantID, ls.holder)
}

// An archive object is recorded as pending before it is written, and the
// record is deleted in the transaction that records its segment. A run
// that stops in between leaves the record, and the next run, holding the
// lease, deletes the object it names unless a segment records it.

func (l *Log) addPending(ctx context.Context, tenantID int64, object string) error {
	_, err := l.db.Write.ExecContext(ctx, l.db.Rebind(`INSERT INTO archive_pending (tenant_id, object, created_at)
		VALUES (?, ?, ?) ON CONFLICT (tenant_id, object) DO NOTHING`), tenantID, object, l.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("auditlog: record pending archive object: %w", err)
	}
	return nil
}

// donePending deletes the pending record of object in tx; it fails when the
// record is gone, which means a cleanup may be deleting the object.
func (l *Log) donePending(ctx context.Context, tx *sql.Tx, tenantID int64, object string) error {
	res, err := tx.ExecContext(ctx, l.db.Rebind(`DELETE FROM archive_pending WHERE tenant_id = ? AND object = ?`),
		tenantID, object)
	if err != nil {
		return fmt.Errorf("auditlog: pending archive object: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errRetentionRace
	}
	return nil
}

// cleanPending deletes the objects that runs which did not finish left
// behind: those of pending records that no live segment names. It returns
// how many it deleted.
func (l *Log) cleanPending(ctx context.Context, tenantID int64) (int, error) {
	rows, err := l.db.Read.QueryContext(ctx, l.db.Rebind(`SELECT object FROM archive_pending WHERE tenant_id = ?`), tenantID)
	if err != nil {
		return 0, fmt.Errorf("auditlog: read pending archive objects: %w", err)
	}
	var objects []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			rows.Close()
			return 0, fmt.Errorf("auditlog: read pending archive objects: %w", err)
		}
		objects = append(objects, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("auditlog: read pending archive objects: %w", err)
	}
	n := 0
	for _, o := range objects {
		deleted, err := l.dropOrphan(ctx, tenantID, o)
		if err != nil {
			return n, err
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// dropOrphan deletes object unless a segment that is not expired names it,
// and its manifest too unless a segment names it at all. It first claims
// the object's pending record: a step whose record is gone cannot commit,
// so once the claim succeeds no segment can come to need the object; and
// when the claim fails, whoever took the record decides.
func (l *Log) dropOrphan(ctx context.Context, tenantID int64, object string) (bool, error) {
	res, err := l.db.Write.ExecContext(ctx, l.db.Rebind(`DELETE FROM archive_pending WHERE tenant_id = ? AND object = ?`),
		tenantID, object)
	if err != nil {
		return false, fmt.Errorf("auditlog: pending archive object: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, err
	}
	var named, live int
	if err := l.db.Read.QueryRowContext(ctx, l.db.Rebind(`SELECT COUNT(*), COUNT(*) - COUNT(expired_at) FROM archives
		WHERE tenant_id = ? AND object = ?`), tenantID, object).Scan(&named, &live); err != nil {
		return false, fmt.Errorf("auditlog: read archive segments: %w", err)
	}
	if live > 0 {
		return false, nil
	}
	if err := l.cfg.Archive.Delete(ctx, object); err != nil {
		// The record goes back, for the next run to try again.
		if perr := l.addPending(ctx, tenantID, object); perr != nil {
			l.log.Warn("an archive object no segment records is left in the store", "object", object, "error", perr)
		}
		return false, fmt.Errorf("auditlog: delete unrecorded archive object: %w", err)
	}
	if named == 0 {
		if err := l.cfg.Archive.Delete(ctx, ManifestObject(object)); err != nil {
			return true, fmt.Errorf("auditlog: delete unrecorded archive manifest: %w", err)
		}
	}
	return true, nil
}
