package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json/jsontext"
)

// hostRecord is what a command run on the host did, for its audit event:
// the counterpart of an API request's self audit, with the host user as
// the actor and the command line as the request.
type hostRecord struct {
	cmd      string // such as "import"
	action   string
	category string
	start    time.Time
	target   event.Target
	outcome  event.Outcome
	// details holds counts and settings, never the data itself.
	details map[string]any
	// tx, when set, writes what the command records alongside its event,
	// in the same transaction.
	tx func(ctx context.Context, tx *sql.Tx) error
}

// record appends the command's audit event to tenant t's log and waits for
// the commit, so that a command does not end unrecorded.
func (h *hostRecord) record(ctx context.Context, in *instance.Instance, t *tenant.Tenant) error {
	ev := in.ChangeEvent(h.action, h.category, hostActor(), h.target)
	ev.OccurredAt = h.start.UTC()
	hostDecorate(h.cmd)(ev)
	ev.Request.DurationMicros = time.Since(h.start).Microseconds()
	ev.Outcome = h.outcome
	if len(h.details) > 0 {
		b, err := json.Marshal(h.details)
		if err != nil {
			return fmt.Errorf("encode details: %w", err)
		}
		v := jsontext.Value(b)
		if err := v.Canonicalize(); err != nil {
			return fmt.Errorf("encode details: %w", err)
		}
		ev.Details = v
	}
	if h.tx != nil {
		return in.RecordWith(ctx, t, ev, h.tx)
	}
	return in.Record(ctx, t, ev)
}
