package auditlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tree"
)

// StoredCheckpoint is a signed checkpoint kept in the log's history.
type StoredCheckpoint struct {
	Size      int64
	Root      tree.Hash
	KeyID     string
	Note      []byte
	CreatedAt time.Time
}

// RegisterKey records the signing key in the key history, if it is new.
func (l *Log) RegisterKey(ctx context.Context) error {
	_, err := l.db.Write.ExecContext(ctx, l.db.Rebind(`INSERT INTO signing_keys (id, algorithm, public_key, created_at)
		VALUES (?, 'ed25519', ?, ?) ON CONFLICT (id) DO NOTHING`), l.key.ID, []byte(l.key.Public), l.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("auditlog: record signing key: %w", err)
	}
	return nil
}

// KeyHistory returns every signing key the log has used, oldest first.
func (l *Log) KeyHistory(ctx context.Context, q store.Querier) ([]SigningKey, error) {
	// SQLite keeps whatever a row was given: the casts read a time written
	// as text as 0 rather than failing the whole history.
	rows, err := q.QueryContext(ctx, `SELECT id, algorithm, public_key, CAST(created_at AS BIGINT), CAST(retired_at AS BIGINT)
		FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("auditlog: read key history: %w", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var created int64
		var retired sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PublicKey, &created, &retired); err != nil {
			return nil, fmt.Errorf("auditlog: read key history: %w", err)
		}
		k.CreatedAt = time.UnixMicro(created).UTC()
		if retired.Valid {
			k.RetiredAt = time.UnixMicro(retired.Int64).UTC()
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// SigningKey is one entry of the key history.
type SigningKey struct {
	ID        string
	Algorithm string
	PublicKey []byte
	CreatedAt time.Time
	RetiredAt time.Time
}

// PublishCheckpoints signs a checkpoint for every tenant whose log has grown
// since its latest checkpoint, or that has none, and returns how many it
// signed. Each covers the committed state of the log as read, once the
// stored tiles prove it and prove that it extends the checkpoints signed
// before; a log that fails this is left unsigned, with ErrRefusedToSign.
func (l *Log) PublishCheckpoints(ctx context.Context) (int, error) {
	type head struct {
		tenant int64
		name   string
		size   int64
		last   sql.NullInt64
	}
	var heads []head
	// A tenant whose log has no state row yet has an empty log, which gets
	// a checkpoint of size zero.
	rows, err := l.db.Read.QueryContext(ctx, `SELECT t.id, t.name, COALESCE(s.size, 0),
		(SELECT MAX(c.size) FROM checkpoints c WHERE c.tenant_id = t.id)
		FROM tenants t LEFT JOIN log_state s ON s.tenant_id = t.id`)
	if err != nil {
		return 0, fmt.Errorf("auditlog: read log heads: %w", err)
	}
	for rows.Next() {
		var h head
		if err := rows.Scan(&h.tenant, &h.name, &h.size, &h.last); err != nil {
			rows.Close()
			return 0, fmt.Errorf("auditlog: read log heads: %w", err)
		}
		// A log smaller than its newest checkpoint or its witness is
		// taken too, so that its refusal is reported.
		if !h.last.Valid || h.size != h.last.Int64 || l.witnessSize(h.name) > h.size {
			heads = append(heads, h)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("auditlog: read log heads: %w", err)
	}
	// A tenant whose log is refused a checkpoint does not hold up the rest.
	n := 0
	var errs []error
	for _, h := range heads {
		t, err := l.tenants.ByID(ctx, h.tenant)
		if err != nil {
			return n, err
		}
		switch err := l.signAndStore(ctx, t.Name, h.tenant); {
		case errors.Is(err, errNothingToSign):
		case errors.Is(err, ErrRefusedToSign):
			errs = append(errs, err)
		case err != nil:
			return n, err
		default:
			n++
		}
	}
	return n, errors.Join(errs...)
}

// signAndStore signs the tenant's log state as it is now, once proven.
func (l *Log) signAndStore(ctx context.Context, tenantName string, tenantID int64) error {
	head, err := l.provenHead(ctx, tenantID, tenantName)
	if err != nil {
		return err
	}
	size, root := head.Size, head.Root
	s, err := l.key.Signer(l.Origin(tenantName))
	if err != nil {
		return err
	}
	note, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: l.Origin(tenantName), Size: size, Root: root}, s)
	if err != nil {
		return err
	}
	_, err = l.db.Write.ExecContext(ctx, l.db.Rebind(`INSERT INTO checkpoints (tenant_id, size, root, key_id, note, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, size) DO NOTHING`), tenantID, size, root[:], l.key.ID, note,
		l.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("auditlog: store checkpoint: %w", err)
	}
	return l.recordWitness(tenantName, size, note)
}

// RunCheckpoints publishes checkpoints every interval until ctx ends, so
// that new entries are covered by a signed checkpoint within that interval
// plus the time to sign. Failures are logged and retried on the next tick.
func (l *Log) RunCheckpoints(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	// The same failure is logged once a minute, not at every tick.
	var lastErr string
	var lastAt time.Time
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*interval+5*time.Second)
		if _, err := l.PublishCheckpoints(rctx); err != nil && ctx.Err() == nil {
			if msg := err.Error(); msg != lastErr || time.Since(lastAt) >= time.Minute {
				l.log.Error("publishing checkpoints failed", "error", err)
				lastErr, lastAt = msg, time.Now()
			}
		}
		if l.metrics != nil {
			l.updateCheckpointAge(rctx)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *Log) updateCheckpointAge(ctx context.Context) {
	rows, err := l.db.Read.QueryContext(ctx, `SELECT t.name, MAX(c.created_at) FROM checkpoints c
		JOIN tenants t ON t.id = c.tenant_id GROUP BY t.name`)
	if err != nil {
		return
	}
	defer rows.Close()
	now := l.now()
	for rows.Next() {
		var name string
		var at int64
		if rows.Scan(&name, &at) == nil {
			l.metrics.CheckpointAge.WithLabelValues(name).Set(now.Sub(time.UnixMicro(at)).Seconds())
		}
	}
}

// ErrNoCheckpoint means no checkpoint has been signed yet.
var ErrNoCheckpoint = errors.New("auditlog: no checkpoint yet")

// LatestCheckpoint returns a tenant's newest checkpoint.
func (l *Log) LatestCheckpoint(ctx context.Context, q store.Querier, tenantID int64) (*StoredCheckpoint, error) {
	cps, err := l.checkpoints(ctx, q, `tenant_id = ? ORDER BY size DESC LIMIT 1`, tenantID)
	if err != nil {
		return nil, err
	}
	if len(cps) == 0 {
		return nil, ErrNoCheckpoint
	}
	return &cps[0], nil
}

// CheckpointAt returns the checkpoint of a tenant's log at exactly size.
func (l *Log) CheckpointAt(ctx context.Context, q store.Querier, tenantID, size int64) (*StoredCheckpoint, error) {
	cps, err := l.checkpoints(ctx, q, `tenant_id = ? AND size = ?`, tenantID, size)
	if err != nil {
		return nil, err
	}
	if len(cps) == 0 {
		return nil, store.ErrNotFound
	}
	return &cps[0], nil
}

// Checkpoints returns every stored checkpoint of a tenant, by size.
func (l *Log) Checkpoints(ctx context.Context, q store.Querier, tenantID int64) ([]StoredCheckpoint, error) {
	return l.checkpoints(ctx, q, `tenant_id = ? ORDER BY size`, tenantID)
}

func (l *Log) checkpoints(ctx context.Context, q store.Querier, where string, args ...any) ([]StoredCheckpoint, error) {
	rows, err := q.QueryContext(ctx, l.db.Rebind(`SELECT size, root, key_id, note, created_at FROM checkpoints WHERE `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("auditlog: read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []StoredCheckpoint
	for rows.Next() {
		var c StoredCheckpoint
		var root []byte
		var created int64
		if err := rows.Scan(&c.Size, &root, &c.KeyID, &c.Note, &created); err != nil {
			return nil, fmt.Errorf("auditlog: read checkpoints: %w", err)
		}
		if len(root) != tree.HashSize {
			return nil, fmt.Errorf("auditlog: checkpoint at size %d has a malformed root", c.Size)
		}
		c.Root = tree.Hash(root)
		c.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
