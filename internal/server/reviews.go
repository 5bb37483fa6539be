package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
)

type campaignView struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Status      string   `json:"status"`
	Roles       []string `json:"roles"`
	OnDeadline  string   `json:"on_deadline"`
	EscalateTo  string   `json:"escalate_to,omitempty"`
	CreatedBy   string   `json:"created_by"`
	StartedAt   string   `json:"started_at"`
	Deadline    string   `json:"deadline"`
	EscalatedAt string   `json:"escalated_at,omitempty"`
	CompletedAt string   `json:"completed_at,omitempty"`
	Items       int      `json:"item_count"`
	Decided     int      `json:"decided_count"`
}

func viewCampaign(c *access.Campaign) campaignView {
	v := campaignView{ID: c.ID, Name: c.Name, Status: c.Status, Roles: c.Roles, OnDeadline: c.OnDeadline,
		EscalateTo: c.EscalateTo, CreatedBy: c.CreatedBy, StartedAt: fmtTime(c.StartedAt), Deadline: fmtTime(c.Deadline),
		EscalatedAt: fmtTime(c.EscalatedAt), CompletedAt: fmtTime(c.CompletedAt), Items: c.Items, Decided: c.Decided}
	if v.Roles == nil {
		v.Roles = []string{}
	}
	return v
}

// reviewItemView is an item as the API and the evidence export show it;
// the decision fields are empty strings while it is undecided.
type reviewItemView struct {
	UserID    string `json:"user_id"`
	UserEmail string `json:"user_email"`
	UserName  string `json:"user_name"`
	Role      string `json:"role"`
	Reviewer  string `json:"reviewer_id"`
	Decision  string `json:"decision"`
	Reason    string `json:"reason"`
	DecidedBy string `json:"decided_by"`
	DecidedAt string `json:"decided_at"`
}

func viewItem(it *access.ReviewItem) reviewItemView {
	return reviewItemView{UserID: it.UserID, UserEmail: it.UserEmail, UserName: it.UserName, Role: it.Role,
		Reviewer: it.ReviewerID, Decision: it.Decision, Reason: it.Reason, DecidedBy: it.DecidedBy,
		DecidedAt: fmtTime(it.DecidedAt)}
}

func viewItems(items []*access.ReviewItem) []reviewItemView {
	out := make([]reviewItemView, 0, len(items))
	for _, it := range items {
		out = append(out, viewItem(it))
	}
	return out
}

// reviewError maps the review store's errors.
func reviewError(err error) error {
	var ce *access.CampaignError
	switch {
	case errors.As(err, &ce):
		return badRequest(ce.Field, ce.Error())
	case errors.Is(err, access.ErrNoCampaign):
		return notFound("no such review campaign")
	case errors.Is(err, access.ErrNoReviewItem):
		return notFound("the campaign has no item for this user and role")
	case errors.Is(err, access.ErrSelfReview):
		return forbidden("nobody reviews their own access")
	case errors.Is(err, access.ErrDecided):
		return &apiError{status: http.StatusConflict, title: "Conflict",
			detail: "the item is decided already, and a decision is final"}
	case errors.Is(err, access.ErrLastOwner):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "the tenant's last owner keeps the " +
			"owner role, so it cannot be revoked: the item stays undecided; make someone else an owner first"}
	}
	return err
}

// createReview starts an access review campaign: every role the tenant's
// active users hold now (or those of the roles named) becomes an item,
// and later changes to users and roles leave the campaign as it is.
func (s *Server) createReview(rq *request) error {
	var body struct {
		Name       string   `json:"name"`
		Roles      []string `json:"roles"`
		Reviewer   string   `json:"reviewer"`
		Deadline   string   `json:"deadline"`
		OnDeadline string   `json:"on_deadline"`
		EscalateTo string   `json:"escalate_to"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	c := &access.Campaign{ID: access.NewCampaignID(), TenantID: rq.tenant.ID, Name: body.Name, Roles: body.Roles,
		OnDeadline: body.OnDeadline, EscalateTo: body.EscalateTo, CreatedBy: rq.actor().ID}
	if body.Deadline != "" {
		t, err := time.Parse(time.RFC3339, body.Deadline)
		if err != nil {
			return badRequest("deadline", "deadline must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		c.Deadline = t
	}
	if err := access.PlanCampaign(c, s.in.Now()); err != nil {
		return reviewError(err)
	}
	rq.target = event.Target{Type: "review_campaign", ID: c.ID, Name: c.Name}
	rq.details = map[string]any{"roles": strings.Join(c.Roles, ","), "reviewer": body.Reviewer,
		"deadline": fmtTime(c.Deadline), "on_deadline": c.OnDeadline, "escalate_to": c.EscalateTo}
	var items []*access.ReviewItem
	err := s.commit(rq, rq.tenant, http.StatusCreated, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		items, err = s.in.Reviews().Start(ctx, tx, c, body.Reviewer)
		return err
	})
	if err != nil {
		return reviewError(err)
	}
	return writeJSON(rq.w, http.StatusCreated, map[string]any{"campaign": viewCampaign(c), "items": viewItems(items)})
}

// listReviews lists the tenant's campaigns, newest first, and when the
// next quarterly review is due: now, when there has been none.
func (s *Server) listReviews(rq *request) error {
	cs, err := s.in.Reviews().Campaigns(rq.r.Context(), s.in.DB.Read, rq.tenant.ID)
	if err != nil {
		return err
	}
	out := []campaignView{}
	for _, c := range cs {
		out = append(out, viewCampaign(c))
	}
	due := s.in.Now()
	if len(cs) > 0 {
		due = access.NextReviewDue(cs[0].StartedAt)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"campaigns": out, "next_due": fmtTime(due)})
}

// campaignWithItems reads a campaign of the caller's tenant and its items
// in one read transaction, so the two agree.
func (s *Server) campaignWithItems(rq *request) (*access.Campaign, []*access.ReviewItem, error) {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "review_campaign", ID: id}
	rv := s.in.Reviews()
	var c *access.Campaign
	var items []*access.ReviewItem
	ctx := rq.r.Context()
	err := s.in.DB.ReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = rv.Campaign(ctx, tx, rq.tenant.ID, id); err != nil {
			return err
		}
		items, err = rv.Items(ctx, tx, rq.tenant.ID, id)
		return err
	})
	if err != nil {
		return nil, nil, reviewError(err)
	}
	rq.target.Name = c.Name
	return c, items, nil
}

func (s *Server) getReview(rq *request) error {
	c, items, err := s.campaignWithItems(rq)
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"campaign": viewCampaign(c), "items": viewItems(items)})
}

// isSubject reports whether the caller is the user an item is about: the
// person signed in, or the person whose API key it is.
func (rq *request) isSubject(userID string) bool {
	return (rq.pr != nil && rq.pr.User.ID == userID) || (rq.key != nil && rq.key.UserID != "" && rq.key.UserID == userID)
}

// decideReview keeps or revokes one item, with a reason. The item's
// reviewer decides, or anyone holding reviews.manage; never the user it
// is about. A revocation takes the role away in the same transaction as
// the decision and its record.
func (s *Server) decideReview(rq *request) error {
	var body struct {
		Decision string `json:"decision"`
		Reason   string `json:"reason"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	body.Reason = strings.TrimSpace(body.Reason)
	if err := access.CheckDecision(body.Decision, body.Reason); err != nil {
		return reviewError(err)
	}
	id, userID, role := rq.r.PathValue("id"), rq.r.PathValue("user"), rq.r.PathValue("role")
	rq.target = event.Target{Type: "user", ID: userID}
	rv := s.in.Reviews()
	it, err := rv.Item(rq.r.Context(), s.in.DB.Read, rq.tenant.ID, id, userID, role)
	if err != nil {
		return reviewError(err)
	}
	by := rq.actor().ID
	switch {
	case rq.isSubject(userID):
		return forbidden("nobody reviews their own access")
	case it.ReviewerID != by && !rq.holds(access.PermReviewsManage):
		return forbidden("only the item's reviewer, or someone holding reviews.manage, decides it")
	case it.Decision != "":
		return reviewError(access.ErrDecided)
	}
	if body.Decision == access.DecisionRevoke {
		// Nobody takes away a role they could not grant, and a role with
		// privileged permissions goes only by someone elevated to manage
		// roles.
		perms, err := s.in.Grants.RolePermissions(rq.r.Context(), s.in.DB.Read, rq.tenant.ID, role)
		if err == nil {
			if err := rq.canGrantRole(role, perms); err != nil {
				return err
			}
			if access.AnyPrivileged(perms) && !rq.holds(access.PermRolesManage) {
				return forbidden("this role carries privileged permissions: revoking it needs roles.manage, elevated")
			}
		}
	}
	rq.details = map[string]any{"campaign": id, "role": role, "decision": body.Decision, "reason": body.Reason,
		"reviewer": it.ReviewerID}
	var c *access.Campaign
	err = s.commit(rq, rq.tenant, http.StatusOK, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		it, c, err = rv.Decide(ctx, tx, rq.tenant.ID, id, userID, role, body.Decision, body.Reason, by)
		return err
	})
	if err != nil {
		return reviewError(err)
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"item": viewItem(it), "campaign": viewCampaign(c)})
}

// reviewCSVColumns are the columns of a campaign's CSV evidence: the
// campaign's own fields repeat on every row, so that any row stands alone.
var reviewCSVColumns = []string{"campaign_id", "campaign_name", "campaign_status", "scope_roles", "created_by",
	"started_at", "deadline", "on_deadline", "escalate_to", "escalated_at", "completed_at", "user_id", "user_email",
	"user_name", "role", "reviewer_id", "decision", "reason", "decided_by", "decided_at"}

// exportReview hands a campaign over as evidence, in JSON or CSV. The
// export is on record in the trail before a byte of it leaves.
func (s *Server) exportReview(rq *request) error {
	format := rq.r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		return badRequest("format", "format must be json (the default) or csv")
	}
	c, items, err := s.campaignWithItems(rq)
	if err != nil {
		return err
	}
	now := s.in.Now().UTC()
	var buf bytes.Buffer
	contentType := "application/json"
	if format == "json" {
		err = json.NewEncoder(&buf).Encode(map[string]any{"tenant": rq.tenant.Name, "exported_at": fmtTime(now),
			"campaign": viewCampaign(c), "items": viewItems(items)})
	} else {
		contentType = "text/csv; charset=utf-8"
		err = writeReviewCSV(&buf, c, items)
	}
	if err != nil {
		return err
	}
	details := map[string]any{"campaign": c.ID, "format": format, "items": len(items), "status": c.Status}
	decorate := rq.changeDecorator(http.StatusOK)
	target := rq.target
	if err := s.in.RecordAccess(rq.r.Context(), rq.tenant, "review.campaign.export.start", rq.actor(), details,
		func(ev *event.Event) { decorate(ev); ev.Target = target }); err != nil {
		return &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable",
			detail: "the export could not be recorded in the audit trail, so it is withheld; try again"}
	}
	rq.details = details
	h := rq.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="access-review-`+c.ID+`.`+format+`"`)
	rq.w.WriteHeader(http.StatusOK)
	_, err = rq.w.Write(buf.Bytes())
	return err
}

func writeReviewCSV(buf *bytes.Buffer, c *access.Campaign, items []*access.ReviewItem) error {
	cw := csv.NewWriter(buf)
	cw.Write(reviewCSVColumns)
	meta := []string{c.ID, c.Name, c.Status, strings.Join(c.Roles, " "), c.CreatedBy, fmtTime(c.StartedAt),
		fmtTime(c.Deadline), c.OnDeadline, c.EscalateTo, fmtTime(c.EscalatedAt), fmtTime(c.CompletedAt)}
	for _, it := range items {
		row := append(append([]string{}, meta...), it.UserID, it.UserEmail, it.UserName, it.Role, it.ReviewerID,
			it.Decision, it.Reason, it.DecidedBy, fmtTime(it.DecidedAt))
		cw.Write(defuseCells(row))
	}
	cw.Flush()
	return cw.Error()
}

// defuseCells prefixes with an apostrophe every cell a spreadsheet would
// run as a formula: names and reasons are whatever people typed.
func defuseCells(row []string) []string { return auditlog.DefuseCells(row) }
