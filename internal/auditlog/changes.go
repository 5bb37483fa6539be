package auditlog

import (
	"context"
	"fmt"
	"net/http"

	"github.com/attest/attest/internal/event"
)

// IsChange reports attest's own records of something done in a tenant, as
// a page showing the tenant would need to read again. Reads are not, in
// whatever category (a GET of the users is an admin event): counting a
// page's own requests would make each reload announce the next. Nor are
// failures, which anyone can cause without a credential; security events,
// which failed attempts give rise to; authorization questions; or the
// events producers send and attest's record of their sending, which come
// as fast as the platform works.
func IsChange(ev *event.Event) bool {
	if ev.Source.Name != event.SelfSource || ev.Outcome.Result != "success" {
		return false
	}
	switch {
	case ev.Category == "data_access" || ev.Category == "security":
		return false
	case ev.Request.Method == http.MethodGet || ev.Request.Method == http.MethodHead:
		return false
	}
	switch ev.Action {
	case "audit.events.ingest", "authz.check", "authz.check.batch":
		return false
	}
	return true
}

// Changes answers how many changes, as IsChange counts them, tenant
// tenantID's log holds: a count that only grows, kept by the writer of
// every process in the transaction that appends them.
func (l *Log) Changes(ctx context.Context, tenantID int64) (int64, error) {
	var n int64
	err := l.db.Read.QueryRowContext(ctx, l.db.Rebind(`SELECT changes FROM log_state WHERE tenant_id = ?`), tenantID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("auditlog: read the count of changes: %w", err)
	}
	return n, nil
}
