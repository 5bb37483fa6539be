package server

import (
	"time"

	"github.com/attest/attest/internal/controls"
)

// An auditor's grant bounds the compliance records it reaches to its audit
// period, as it bounds the trail: results as they stood at the period's
// end, evidence and exceptions that held during it, alerts raised in it.
// Callers whose grant names no period see everything of their tenant.

// auditBound returns the period the caller's grant is bounded to, if any.
func auditBound(rq *request) (from, to time.Time, ok bool) {
	if rq.decision.Period == nil {
		return time.Time{}, time.Time{}, false
	}
	return rq.decision.Period.PeriodStart, rq.decision.Period.PeriodEnd, true
}

// evidenceInBound reports whether e held at some time within the caller's
// period: its effective range overlaps it, and it was submitted by its end.
func evidenceInBound(rq *request, e *controls.Evidence) bool {
	from, to, ok := auditBound(rq)
	return !ok || (e.EffectiveAt.Before(to) && e.ExpiresAt.After(from) && e.SubmittedAt.Before(to))
}

// exceptionInBound reports whether e's term overlaps the caller's period
// and it was requested by the period's end.
func exceptionInBound(rq *request, e *controls.Exception) bool {
	from, to, ok := auditBound(rq)
	return !ok || (e.StartsAt.Before(to) && e.ExpiresAt.After(from) && e.RequestedAt.Before(to))
}

// alertInBound reports whether a was raised within the caller's period.
func alertInBound(rq *request, a *controls.Alert) bool {
	from, to, ok := auditBound(rq)
	return !ok || (!a.RaisedAt.Before(from) && a.RaisedAt.Before(to))
}
