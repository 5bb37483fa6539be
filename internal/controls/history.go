package controls

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// MaxHistory bounds the results History returns.
const MaxHistory = 1000

// History returns tenant t's results of a control checked in [from, to),
// newest first, at most limit of them (100 when limit is 0 or less, never
// more than MaxHistory). An unknown control is ErrUnknownControl.
func History(ctx context.Context, in *instance.Instance, t *tenant.Tenant, control string, from, to time.Time,
	limit int) ([]*Stored, error) {
	if _, ok := ForByID(t, control); !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownControl, control)
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxHistory)
	rows, err := in.DB.Read.QueryContext(ctx, in.DB.Rebind(`SELECT id, result, sha256 FROM control_results
		WHERE tenant_id = ? AND control_id = ? AND checked_at >= ? AND checked_at < ?
		ORDER BY checked_at DESC, id DESC LIMIT ?`), t.ID, control, from.UnixMicro(), to.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("controls: read history: %w", err)
	}
	defer rows.Close()
	out := []*Stored{}
	for rows.Next() {
		var id string
		var b, sum []byte
		if err := rows.Scan(&id, &b, &sum); err != nil {
			return nil, fmt.Errorf("controls: read history: %w", err)
		}
		r := &Result{}
		if err := json.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("controls: read result %s: %w", id, err)
		}
		out = append(out, &Stored{ID: id, SHA256: hex.EncodeToString(sum), Result: r})
	}
	return out, rows.Err()
}
