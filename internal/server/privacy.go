package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/personal"
)

// erasureView is the answer to an erasure.
type erasureView struct {
	Tenant  string `json:"tenant"`
	Subject string `json:"subject"`
	// Generations is the number of the subject's keys destroyed by this
	// request: zero when an earlier erasure destroyed them all.
	Generations int64  `json:"generations"`
	ErasedAt    string `json:"erased_at"`
}

// eraseSubject destroys the keys of a subject's personal values in the
// request's tenant, which comes from the caller's key: an operator key
// names it with the Attest-Tenant header, like every other request.
func (s *Server) eraseSubject(rq *request) error {
	var body struct {
		Subject string `json:"subject"`
		Reason  string `json:"reason"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	rq.target = event.Target{Type: "subject", ID: event.CleanText(body.Subject, event.MaxActorID)}
	var ee *instance.ErasureError
	if err := instance.CheckErasure(body.Subject, body.Reason); errors.As(err, &ee) {
		return badRequest(ee.Field, ee.Field+": "+ee.Reason)
	}
	// The trail of what attest's own actors did is not theirs to erase:
	// only an operator erases an API key's or a host user's values, and
	// no key its own.
	if instance.OwnActor(body.Subject) {
		if body.Subject == rq.actor().ID {
			return forbidden("a key may not erase the personal values of its own requests")
		}
		if !rq.operatorKey() {
			return forbidden("only an operator key may erase the personal values of attest's own actors (API keys and host users)")
		}
	}
	done, err := s.in.EraseSubject(rq.r.Context(), rq.tenant, body.Subject, body.Reason, rq.actor(), rq.changeDecorator(http.StatusOK))
	if errors.Is(err, personal.ErrUnknownSubject) {
		return notFound("tenant " + rq.tenant.Name + " holds no personal values of this subject: check the actor id")
	}
	if err != nil {
		return err
	}
	rq.audited = true
	return writeJSON(rq.w, http.StatusOK, erasureView{Tenant: rq.tenant.Name, Subject: body.Subject,
		Generations: done.Generations, ErasedAt: done.ErasedAt.Format(time.RFC3339Nano)})
}
