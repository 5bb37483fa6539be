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
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Event is an audit event in attest's producer schema. Source defaults to
// the client's Config.Source, OccurredAt to the time of Record, and ID to
// one unique to the client and the event.
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
	Status     int     `json:"status,omitzero"`
	DurationMs float64 `json:"duration_ms,omitzero"`
}

// appendJSON appends ev as one line of JSON, leaving out empty members.
// Strings are quoted by jsontext, which makes any text valid JSON.
func appendJSON(b []byte, ev *Event) ([]byte, error) {
	w := jsonWriter{b: append(b, '{')}
	w.str("id", ev.ID)
	w.key("occurred_at")
	w.b = append(w.b, '"')
	w.b = ev.OccurredAt.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
	w.str("source", ev.Source)
	w.open("actor")
	w.str("type", ev.Actor.Type)
	w.str("id", ev.Actor.ID)
	w.str("name", ev.Actor.Name)
	w.str("email", ev.Actor.Email)
	w.str("ip", ev.Actor.IP)
	w.str("user_agent", ev.Actor.UserAgent)
	w.str("session_id", ev.Actor.SessionID)
	w.close()
	w.str("action", ev.Action)
	w.str("category", ev.Category)
	if t := ev.Target; t != nil {
		w.open("target")
		w.str("type", t.Type)
		w.str("id", t.ID)
		w.str("name", t.Name)
		w.close()
	}
	w.open("outcome")
	w.str("result", ev.Outcome.Result)
	w.str("reason", ev.Outcome.Reason)
	w.close()
	if r := ev.Request; r != nil {
		w.open("request")
		w.str("id", r.ID)
		w.str("method", r.Method)
		w.str("path", r.Path)
		if r.Status != 0 {
			w.key("status")
			w.b = strconv.AppendInt(w.b, int64(r.Status), 10)
		}
		if r.DurationMs != 0 {
			w.key("duration_ms")
			w.b = strconv.AppendFloat(w.b, r.DurationMs, 'f', -1, 64)
		}
		w.close()
	}
	if len(ev.Details) > 0 {
		// One line: the details are checked and compacted, so that no
		// newline of theirs splits the event.
		v := jsontext.Value(bytes.Clone(ev.Details))
		if err := v.Compact(); err != nil {
			return nil, fmt.Errorf("capture: details: %w", err)
		}
		w.key("details")
		w.b = append(w.b, v...)
	}
	return append(w.b, '}'), nil
}

// jsonWriter writes the members of nested objects, with commas.
type jsonWriter struct {
	b []byte
}

func (w *jsonWriter) key(k string) {
	if n := len(w.b); n > 0 && w.b[n-1] != '{' {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) str(k, v string) {
	if v == "" {
		return
	}
	w.key(k)
	w.b, _ = jsontext.AppendQuote(w.b, v)
}

func (w *jsonWriter) open(k string) {
	w.key(k)
	w.b = append(w.b, '{')
}

func (w *jsonWriter) close() { w.b = append(w.b, '}') }
