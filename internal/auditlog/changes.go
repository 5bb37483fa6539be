package auditlog

import (
	"context"
	"fmt"
	"net/http"
	"strings"

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
	case "audit.events.ingest", "authz.check", "authz.check.batch",
		// A password's first step opens no session, only a pending login:
		// it changes nothing a page shows, and anyone holding a password
		// could repeat it.
		"user.login.password", "user.login.webauthn.begin":
		return false
	}
	return true
}

// Changes answers how many changes, as IsChange counts them, the logs of
// the tenants ids hold: counts that only grow, kept by the writer of every
// process in the transactions that append them. A tenant with no log yet
// is left out.
func (l *Log) Changes(ctx context.Context, ids ...int64) (map[int64]int64, error) {
	out := make(map[int64]int64, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := l.db.Read.QueryContext(ctx, l.db.Rebind(`SELECT tenant_id, changes FROM log_state
			WHERE tenant_id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("auditlog: read the count of changes: %w", err)
		}
		for rows.Next() {
			var id, n int64
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("auditlog: read the count of changes: %w", err)
			}
			out[id] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("auditlog: read the count of changes: %w", err)
		}
	}
	return out, nil
}
