package server

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/store"
)

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// QueryParams lists the query parameters of the audit trail search.
var QueryParams = []string{"occurred_from", "occurred_to", "received_from", "received_to", "actor_id", "action",
	"action_prefix", "category", "target_type", "target_id", "outcome", "source", "client_ip", "q", "limit",
	"cursor", "order"}

// ParseFilter reads an audit trail filter from URL query parameters,
// refusing unknown parameters and malformed values by name.
func ParseFilter(q url.Values) (auditlog.Filter, error) {
	var f auditlog.Filter
	known := map[string]bool{}
	for _, p := range QueryParams {
		known[p] = true
	}
	for k, v := range q {
		if !known[k] {
			return f, badRequest(k, "unknown query parameter "+strconv.Quote(k))
		}
		if len(v) > 1 {
			return f, badRequest(k, k+" may be given once")
		}
		if v[0] == "" {
			return f, badRequest(k, k+" is empty: give it a value or leave it out")
		}
	}
	times := []struct {
		name string
		dst  *time.Time
	}{{"occurred_from", &f.OccurredFrom}, {"occurred_to", &f.OccurredTo}, {"received_from", &f.ReceivedFrom},
		{"received_to", &f.ReceivedTo}}
	for _, t := range times {
		s := q.Get(t.name)
		if s == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, badRequest(t.name, t.name+" must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		// The zero time would read as no bound at all; no event is that old.
		if event.CheckEarliest(t.name, v) != nil {
			return f, badRequest(t.name, t.name+" is before 1990-01-01; no event is that old")
		}
		*t.dst = v.UTC()
	}
	f.ActorID, f.Action, f.ActionPrefix = q.Get("actor_id"), q.Get("action"), q.Get("action_prefix")
	f.Category, f.TargetType, f.TargetID = q.Get("category"), q.Get("target_type"), q.Get("target_id")
	f.Outcome, f.Source, f.ClientIP, f.Text = q.Get("outcome"), q.Get("source"), q.Get("client_ip"), q.Get("q")
	f.Cursor = q.Get("cursor")
	if s := q.Get("limit"); s != "" {
		n, ok := parseCanonical(s)
		if !ok || n < 1 || n > 1000 {
			return f, badRequest("limit", "limit must be a whole number from 1 to 1000, in decimal without a sign "+
				"or leading zeros")
		}
		f.Limit = int(n)
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		f.Asc = true
	default:
		return f, badRequest("order", "order must be asc or desc")
	}
	return f, nil
}

type pageView struct {
	Items      []recordView `json:"items"`
	NextCursor string       `json:"next_cursor,omitempty"`
	TreeSize   int64        `json:"tree_size"`
}

// query searches the tenant's audit trail.
func (s *Server) query(rq *request) error {
	f, err := ParseFilter(rq.r.URL.Query())
	if err != nil {
		return err
	}
	if p := rq.decision.Period; p != nil {
		// An auditor sees the events of the audit period alone.
		if f.OccurredFrom.IsZero() || f.OccurredFrom.Before(p.PeriodStart) {
			f.OccurredFrom = p.PeriodStart
		}
		if f.OccurredTo.IsZero() || f.OccurredTo.After(p.PeriodEnd) {
			f.OccurredTo = p.PeriodEnd
		}
		rq.details = map[string]any{"period_start": fmtTime(p.PeriodStart), "period_end": fmtTime(p.PeriodEnd)}
	}
	page, err := s.in.Log.Query(rq.r.Context(), rq.tenant, f)
	if err != nil {
		return err
	}
	out := pageView{Items: make([]recordView, 0, len(page.Items)), NextCursor: page.Next, TreeSize: page.TreeSize}
	for _, r := range page.Items {
		out.Items = append(out.Items, viewOf(r, false))
	}
	if rq.details == nil {
		rq.details = map[string]any{}
	}
	rq.details["results"] = len(out.Items)
	return writeJSON(rq.w, http.StatusOK, out)
}
