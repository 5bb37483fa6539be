package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
)

func (s *Server) listCriteria(rq *request) error {
	return writeJSON(rq.w, http.StatusOK, map[string]any{"criteria": controls.Criteria, "categories": controls.Categories})
}

type controlView struct {
	ID          string           `json:"id"`
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Owner       string           `json:"owner"`
	Frequency   string           `json:"frequency"`
	Criteria    []string         `json:"criteria"`
	Latest      *controls.Stored `json:"latest,omitempty"`
	Status      controls.Status  `json:"status"`
	// Excepted is the approved exception holding now, if any: a failure
	// under it is an accepted risk, still a failure.
	Excepted *controls.Exception `json:"excepted,omitempty"`
}

// listControls answers the catalog with each control's latest result; a
// control never run reads as no evidence.
func (s *Server) listControls(rq *request) error {
	latest, err := controls.Latest(rq.r.Context(), s.in, rq.tenant)
	if _, to, ok := auditBound(rq); ok {
		latest, err = controls.LatestBefore(rq.r.Context(), s.in, rq.tenant, to)
	}
	if err != nil {
		return err
	}
	exs, err := controls.Exceptions(rq.r.Context(), s.in, rq.tenant)
	if err != nil {
		return err
	}
	at := s.in.Now()
	if _, to, ok := auditBound(rq); ok && to.Before(at) {
		at = to.Add(-time.Microsecond)
	}
	out := []controlView{}
	for _, c := range controls.For(rq.tenant) {
		v := controlView{ID: c.ID, Name: c.Name, Description: c.Description, Owner: c.Owner,
			Frequency: c.Every(), Criteria: c.Criteria, Latest: latest[c.ID], Status: controls.NoEvidence,
			Excepted: controls.ActiveException(exs, c.ID, at)}
		if v.Latest != nil {
			v.Status = v.Latest.Status
		}
		out = append(out, v)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"controls": out})
}

// validateControls runs control tests now: all of them, or those named.
// Each result is recorded with its digest in the trail.
func (s *Server) validateControls(rq *request) error {
	var body struct {
		Controls []string `json:"controls"`
	}
	if rq.r.ContentLength != 0 {
		if err := decodeJSON(rq, &body); err != nil {
			return err
		}
	}
	if len(body.Controls) > len(controls.Catalog) {
		return badRequest("controls", fmt.Sprintf("at most %d controls, each once", len(controls.Catalog)))
	}
	rq.target = event.Target{Type: "tenant", ID: rq.tenant.Name, Name: rq.tenant.Name}
	start := time.Now()
	res, err := controls.Validate(rq.r.Context(), s.in, rq.tenant, body.Controls, rq.actor(), rq.changeDecorator(http.StatusOK))
	if errors.Is(err, controls.ErrUnknownControl) {
		return badRequest("controls", err.Error()[len("controls: "):])
	}
	if err != nil {
		return err
	}
	s.alertsRaised(res)
	rq.details = map[string]any{"controls": len(res)}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"results": res,
		"duration_ms": float64(time.Since(start).Microseconds()) / 1000})
}
