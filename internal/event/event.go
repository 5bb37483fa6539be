// Package event defines the audit event: the contract every producer writes
// to, its strict JSON decoder, and the canonical form (RFC 8785) that a log
// leaf commits to.
//
// An event exists in two encodings. The producer form is what clients send:
// it may not carry the fields attest sets (tenant for tenant credentials,
// received_at, sequence). The leaf form is what the log stores and hashes:
// the producer's fields plus tenant, received_at and sequence, with each
// personal value replaced by a keyed commitment under "personal", so that
// erasing a subject's key removes the value without changing the leaf.
package event

import (
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// LeafVersion is the version of the leaf form, written as "v".
const LeafVersion = 1

// Event is one audit event.
type Event struct {
	ID         string
	Tenant     string
	OccurredAt time.Time
	ReceivedAt time.Time
	Sequence   int64
	Source     Source
	Actor      Actor
	Action     string
	Category   string
	Target     Target
	Outcome    Outcome
	Request    Request
	Data       Data
	// Details is bounded free-form JSON from the producer, in canonical form.
	Details jsontext.Value
	// Original is the source record an importer mapped the event from, in
	// canonical form. It is personal: stored encrypted, committed in the leaf.
	Original jsontext.Value
}

// SelfSource is the source name of attest's own events, the record of what
// was done through its API and CLI. No producer may send an event under it.
const SelfSource = "attest"

// Source is the producing system.
type Source struct {
	Name    string
	Host    string
	Version string
}

// Actor is who acted.
type Actor struct {
	Type      string
	ID        string
	Name      string
	Email     string
	IP        string
	UserAgent string
	SessionID string
	Auth      Auth
}

// Auth says how the actor authenticated.
type Auth struct {
	Method string
	// MFA is nil when the producer did not say.
	MFA *bool
}

// Target is what was acted on.
type Target struct {
	Type string
	ID   string
	Name string
}

// Outcome is how the action ended.
type Outcome struct {
	Result string
	Reason string
	// Status is a protocol status code, zero when absent.
	Status int
}

// Request describes the request that carried the action.
type Request struct {
	ID     string
	Method string
	Path   string
	Status int
	// DurationMicros is the request's duration; -1 when absent.
	DurationMicros int64
}

// Data describes the data the action touched.
type Data struct {
	Classification string
	Fields         []string
	// RecordCount is -1 when absent.
	RecordCount int64
}

// Categories, actor types and results are closed sets.
var (
	Categories = []string{"authentication", "authorization", "data_access", "data_change",
		"configuration", "admin", "security", "system"}
	ActorTypes = []string{"user", "service", "system", "anonymous"}
	Results    = []string{"success", "failure", "denied", "error"}
)

// Personal field paths. Values at these paths are personal data: the leaf
// carries a keyed commitment instead of the value, and the value is stored
// encrypted under the subject's key.
const (
	PathActorName      = "actor.name"
	PathActorEmail     = "actor.email"
	PathActorIP        = "actor.ip"
	PathActorUserAgent = "actor.user_agent"
	PathActorSessionID = "actor.session_id"
	PathTargetName     = "target.name"
	PathRequestPath    = "request.path"
	PathDetails        = "details"
	PathOriginal       = "original"
)

// DefaultPersonal is the personal field set used unless configured.
var DefaultPersonal = []string{PathActorName, PathActorEmail, PathActorIP, PathActorUserAgent}

// ConfigurablePersonal lists the paths that may be declared personal.
// "original" is always personal and cannot be removed.
var ConfigurablePersonal = []string{PathActorName, PathActorEmail, PathActorIP, PathActorUserAgent,
	PathActorSessionID, PathTargetName, PathRequestPath, PathDetails}

// New returns an event with the "absent" markers of its numeric fields set.
func New() *Event {
	return &Event{Request: Request{DurationMicros: -1}, Data: Data{RecordCount: -1}}
}

// PersonalValue returns the value at a personal path as it enters the
// commitment and the encrypted store: strings as their bytes, JSON values in
// canonical form. ok is false when the field is empty.
func (e *Event) PersonalValue(path string) (v []byte, ok bool) {
	var s string
	switch path {
	case PathActorName:
		s = e.Actor.Name
	case PathActorEmail:
		s = e.Actor.Email
	case PathActorIP:
		s = e.Actor.IP
	case PathActorUserAgent:
		s = e.Actor.UserAgent
	case PathActorSessionID:
		s = e.Actor.SessionID
	case PathTargetName:
		s = e.Target.Name
	case PathRequestPath:
		s = e.Request.Path
	case PathDetails:
		return e.Details, len(e.Details) > 0
	case PathOriginal:
		return e.Original, len(e.Original) > 0
	}
	return []byte(s), s != ""
}

// SetPersonalValue stores v at a personal path; the inverse of PersonalValue.
func (e *Event) SetPersonalValue(path string, v []byte) {
	switch path {
	case PathActorName:
		e.Actor.Name = string(v)
	case PathActorEmail:
		e.Actor.Email = string(v)
	case PathActorIP:
		e.Actor.IP = string(v)
	case PathActorUserAgent:
		e.Actor.UserAgent = string(v)
	case PathActorSessionID:
		e.Actor.SessionID = string(v)
	case PathTargetName:
		e.Target.Name = string(v)
	case PathRequestPath:
		e.Request.Path = string(v)
	case PathDetails:
		e.Details = jsontext.Value(v)
	case PathOriginal:
		e.Original = jsontext.Value(v)
	}
}

// Subject returns the data subject whose key protects the event's personal
// values: the actor's id, or "anonymous" when the actor has none.
func (e *Event) Subject() string {
	if e.Actor.ID != "" {
		return e.Actor.ID
	}
	return AnonymousSubject
}

// AnonymousSubject owns the personal values of events whose actor has no id.
const AnonymousSubject = "anonymous"
