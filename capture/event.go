// Package capture records a service's actions in a running attest: an
// embedded client that sends audit events in batches, retries, and keeps
// what it could not send in a bounded buffer on disk, and net/http
// middleware that records every request through it.
//
// A client never drops an event silently. While attest is unreachable,
// events go to the buffer directory and are sent, oldest first, once it is
// back, even by a later process using the same directory. When the buffer
// is full, Record returns ErrBufferFull and the client counts the event as
// dropped (Stats), so the service can alarm on it. Events attest rejects
// (a field it refuses) are reported to Config.OnRejected; retrying them
// would never succeed.
//
// Every event gets an id when it has none, so that a batch sent again after
// a lost answer is stored once: attest answers the copies as duplicates.
package capture

import (
	"encoding/json"
	"time"
)

// Event is an audit event in attest's producer schema. Source defaults to
// the client's Config.Source, OccurredAt to the time of Record, and ID to a
// new UUIDv7.
type Event struct {
	ID         string          `json:"id,omitempty"`
	OccurredAt time.Time       `json:"occurred_at"`
	Source     string          `json:"source,omitempty"`
	Actor      Actor           `json:"actor"`
	Action     string          `json:"action"`
	Category   string          `json:"category"`
	Target     *Target         `json:"target,omitempty"`
	Outcome    Outcome         `json:"outcome"`
	Request    *Request        `json:"request,omitempty"`
	Details    json.RawMessage `json:"details,omitempty"`
}

// Actor is who acted. Name, Email, IP and UserAgent are personal data:
// attest keeps them only as commitments in the log, sealed under a key of
// the actor's own that an erasure destroys.
type Actor struct {
	Type      string `json:"type"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Email     string `json:"email,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	SessionID string `json:"session_id,omitempty"`
}

// Target is what was acted on.
type Target struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// Outcome is how it ended: Result is success, failure, denied or error.
type Outcome struct {
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
}

// Request describes the request that carried the action.
type Request struct {
	ID         string  `json:"id,omitempty"`
	Method     string  `json:"method,omitempty"`
	Path       string  `json:"path,omitempty"`
	Status     int     `json:"status,omitempty"`
	DurationMs float64 `json:"duration_ms,omitempty"`
}
