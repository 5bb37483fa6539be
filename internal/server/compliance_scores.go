package server

import (
	"context"
	"database/sql"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tenant"
)

func (s *Server) scoreRoutes() []*route {
	return []*route{
		{method: "GET", pattern: "/api/v1/compliance/dashboard", name: "compliance.dashboard.read", category: "data_access",
			perm: access.PermComplianceRead, params: []string{"from", "to"}, handle: s.dashboard},
		{method: "GET", pattern: "/api/v1/compliance/controls/{id}", name: "compliance.control.read", category: "data_access",
			perm: access.PermComplianceRead, params: []string{"from", "to", "limit"}, handle: s.controlDetail},
		{method: "GET", pattern: "/api/v1/compliance/settings", name: "compliance.settings.read", category: "configuration",
			perm: access.PermComplianceRead, handle: s.complianceSettings},
		{method: "PUT", pattern: "/api/v1/compliance/settings", name: "compliance.settings.update", category: "configuration",
			perm: access.PermComplianceManage, handle: s.setComplianceSettings, selfAudited: true},
	}
}

// defaultScorePeriod is the period a score covers when the request names
// none: the last 90 days.
const defaultScorePeriod = 90 * 24 * time.Hour

// maxScorePeriod bounds the period a score may cover, and with it the work
// of one request.
const maxScorePeriod = 3660 * 24 * time.Hour

// scorePeriod reads the from and to parameters, RFC 3339 times; to
// defaults to now and from to 90 days before to. An auditor's period
// bounds both.
func (s *Server) scorePeriod(rq *request) (from, to time.Time, err error) {
	q := rq.r.URL.Query()
	to = s.in.Now().UTC()
	if v := q.Get("to"); v != "" {
		if to, err = time.Parse(time.RFC3339, v); err != nil {
			return from, to, badRequest("to", "to must be an RFC 3339 time, such as 2025-04-01T00:00:00Z")
		}
	}
	from = to.Add(-defaultScorePeriod)
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse(time.RFC3339, v); err != nil {
			return from, to, badRequest("from", "from must be an RFC 3339 time, such as 2025-01-01T00:00:00Z")
		}
	}
	// Nothing has stood later than now: a future end would read every
	// control as without evidence.
	if now := s.in.Now().UTC(); to.After(now) {
		to = now
	}
	if p := rq.decision.Period; p != nil {
		if from.Before(p.PeriodStart) {
			from = p.PeriodStart
		}
		if to.After(p.PeriodEnd) {
			to = p.PeriodEnd
		}
	}
	if !from.Before(to) {
		return from, to, badRequest("from", "from must be before to")
	}
	if to.Sub(from) > maxScorePeriod {
		return from, to, badRequest("from", "the period from from to to is at most ten years (3,660 days)")
	}
	rq.details = map[string]any{"from": fmtTime(from), "to": fmtTime(to)}
	return from.UTC(), to.UTC(), nil
}

// controlItem is a control needing attention on the dashboard.
type controlItem struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Owner       string              `json:"owner"`
	Status      controls.Status     `json:"status"`
	CheckedAt   *time.Time          `json:"checked_at,omitempty"`
	Findings    []controls.Finding  `json:"findings,omitempty"`
	Remediation string              `json:"remediation"`
	Exception   *controls.Exception `json:"exception,omitempty"`
}

type categoryView struct {
	*controls.CategoryScore
	Status controls.Status `json:"status"`
}

type dashboardView struct {
	From       time.Time                  `json:"from"`
	To         time.Time                  `json:"to"`
	Readiness  float64                    `json:"readiness"`
	Formula    string                     `json:"formula"`
	Categories []categoryView             `json:"categories"`
	Criteria   []*controls.CriterionScore `json:"criteria"`
	Inherited  []string                   `json:"inherited,omitempty"`
	Failing    []controlItem              `json:"failing"`
	NoEvidence []controlItem              `json:"no_evidence"`
	Excepted   []controlItem              `json:"excepted"`
	Changes    []controls.Change          `json:"recent_changes"`
	Trend      []controls.TrendPoint      `json:"trend"`
}

// maxRecentChanges bounds the dashboard's recent changes.
const maxRecentChanges = 20

// dashboard answers the tenant's readiness and what needs attention.
func (s *Server) dashboard(rq *request) error {
	from, to, err := s.scorePeriod(rq)
	if err != nil {
		return err
	}
	sc, err := controls.Score(rq.r.Context(), s.in, rq.tenant, from, to)
	if err != nil {
		return err
	}
	v := dashboardView{From: sc.From, To: sc.To, Readiness: sc.Readiness, Formula: sc.Formula, Criteria: sc.Criteria,
		Failing: []controlItem{}, NoEvidence: []controlItem{}, Excepted: []controlItem{}, Trend: sc.Trend,
		Changes: sc.Changes[:min(len(sc.Changes), maxRecentChanges)], Inherited: sc.Inherited}
	for _, cat := range sc.ByCategory {
		v.Categories = append(v.Categories, categoryView{cat, categoryStatus(cat.Category, sc.Criteria)})
	}
	for _, cs := range sc.Controls {
		if cs.Status == controls.Pass {
			continue
		}
		it := itemOf(cs)
		switch {
		case cs.Excepted != nil:
			v.Excepted = append(v.Excepted, it)
		case cs.Status == controls.Fail:
			v.Failing = append(v.Failing, it)
		default:
			v.NoEvidence = append(v.NoEvidence, it)
		}
	}
	return writeJSON(rq.w, http.StatusOK, v)
}

// categoryStatus is fail when a criterion of cat fails, pass when all
// pass, and otherwise no evidence.
func categoryStatus(cat controls.Category, crs []*controls.CriterionScore) controls.Status {
	st := controls.Pass
	for _, cr := range crs {
		c, _ := controls.CriterionByID(cr.Criterion)
		switch {
		case c.Category != cat:
		case cr.Status == controls.Fail:
			return controls.Fail
		case cr.Status == controls.NoEvidence:
			st = controls.NoEvidence
		}
	}
	return st
}

// itemOf describes a control that does not pass at to, and what to do.
func itemOf(cs *controls.ControlScore) controlItem {
	c, _ := controls.ByID(cs.Control)
	it := controlItem{ID: c.ID, Name: c.Name, Owner: c.Owner, Status: cs.Status, Exception: cs.Excepted}
	l := cs.Latest
	if l != nil {
		at := l.CheckedAt
		it.CheckedAt, it.Findings, it.Remediation = &at, l.Findings, l.Remediation
	}
	const run = "POST /api/v1/compliance/controls/validate"
	switch {
	case l != nil && l.Status == cs.Status && l.Remediation != "":
	case c.Manual != nil:
		it.Remediation = "supply the evidence it requires: " + c.Manual.Requirement
	case l == nil:
		it.Remediation = "it has never run: run it with " + run
	case l.Status != cs.Status:
		it.Remediation = "its latest result, of " + fmtTime(l.CheckedAt) + ", is older than twice its frequency (" +
			(2 * c.Frequency).String() + "): check that serve runs it, or run it with " + run
	default:
		it.Remediation = "run it again with " + run + " and read its findings"
	}
	return it
}

type manualView struct {
	Requirement string `json:"requirement"`
	MaxAgeDays  int    `json:"max_age_days"`
}

type controlDetailView struct {
	controlView
	Manual        *manualView           `json:"manual,omitempty"`
	From          time.Time             `json:"from"`
	To            time.Time             `json:"to"`
	Runs          int                   `json:"runs"`
	Passed        int                   `json:"passed"`
	Failed        int                   `json:"failed"`
	NoEvidence    int                   `json:"no_evidence"`
	Effectiveness *float64              `json:"effectiveness"`
	Excepted      *controls.Exception   `json:"excepted,omitempty"`
	History       []*controls.Stored    `json:"history"`
	Evidence      []*controls.Evidence  `json:"evidence"`
	Exceptions    []*controls.Exception `json:"exceptions"`
}

// controlDetail answers one control: what it is, its standing, its record
// over the period, its evidence and its exceptions.
func (s *Server) controlDetail(rq *request) error {
	c, ok := controls.ForByID(rq.tenant, rq.r.PathValue("id"))
	if !ok && rq.r.PathValue("id") == "validate" {
		rq.w.Header().Set("Allow", http.MethodPost)
		return &apiError{status: http.StatusMethodNotAllowed, title: "Method Not Allowed",
			detail: "validate runs control tests: POST it"}
	}
	if !ok {
		return notFound("no such control")
	}
	rq.target = event.Target{Type: "control", ID: c.ID, Name: c.Name}
	from, to, err := s.scorePeriod(rq)
	if err != nil {
		return err
	}
	limit := 100
	if v := rq.r.URL.Query().Get("limit"); v != "" {
		n, ok := parseCanonical(v)
		if !ok || n < 1 || n > controls.MaxHistory {
			return badRequest("limit", "limit must be a whole number from 1 to "+strconv.Itoa(controls.MaxHistory)+
				", in decimal without a sign or leading zeros")
		}
		limit = int(n)
	}
	ctx := rq.r.Context()
	cs, err := controls.ScoreControl(ctx, s.in, rq.tenant, c.ID, from, to)
	if err != nil {
		return err
	}
	v := controlDetailView{controlView: controlView{ID: c.ID, Name: c.Name, Description: c.Description, Owner: c.Owner,
		Frequency: c.Every(), Criteria: c.Criteria, Latest: cs.Latest, Status: cs.Status},
		From: from, To: to, Runs: cs.Runs, Passed: cs.Passed, Failed: cs.Failed, NoEvidence: cs.NoEvidence,
		Effectiveness: cs.Effectiveness, Excepted: cs.Excepted, Exceptions: []*controls.Exception{}}
	if c.Manual != nil {
		v.Manual = &manualView{Requirement: c.Manual.Requirement, MaxAgeDays: int(c.Manual.MaxAge / (24 * time.Hour))}
	}
	if v.History, err = controls.History(ctx, s.in, rq.tenant, c.ID, from, to, limit); err != nil {
		return err
	}
	es, err := controls.EvidenceList(ctx, s.in, rq.tenant, c.ID)
	if err != nil {
		return err
	}
	v.Evidence = slices.DeleteFunc(es, func(e *controls.Evidence) bool { return !evidenceInBound(rq, e) })
	exs, err := controls.Exceptions(ctx, s.in, rq.tenant)
	if err != nil {
		return err
	}
	for _, e := range exs {
		if e.Control == c.ID && exceptionInBound(rq, e) {
			v.Exceptions = append(v.Exceptions, e)
		}
	}
	return writeJSON(rq.w, http.StatusOK, v)
}

type settingsView struct {
	Categories       []controls.Category `json:"categories"`
	WebhookURL       string              `json:"webhook_url"`
	WebhookSecretSet bool                `json:"webhook_secret_set"`
	UpdatedAt        string              `json:"updated_at,omitempty"`
}

// viewSettings answers st. The webhook's whole URL goes only to those who
// may change it, since its path often carries a token; others see its
// host.
func viewSettings(rq *request, st *controls.Settings) settingsView {
	hook := st.WebhookURL
	if u, err := url.Parse(hook); hook != "" && !rq.holds(access.PermComplianceManage) {
		hook = ""
		if err == nil {
			hook = "https://" + u.Host + "/..."
		}
	}
	return settingsView{Categories: st.Categories, WebhookURL: hook, WebhookSecretSet: st.WebhookSecret != "",
		UpdatedAt: fmtTime(st.UpdatedAt)}
}

// complianceSettings answers the tenant's compliance settings; the webhook
// secret is never answered, only whether one is set.
func (s *Server) complianceSettings(rq *request) error {
	st, err := controls.LoadSettings(rq.r.Context(), s.in.DB, s.in.DB.Read, rq.tenant.ID)
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, viewSettings(rq, st))
}

// Bounds of the webhook settings.
const (
	maxWebhookURL    = 2048
	minWebhookSecret = 16
	maxWebhookSecret = 256
)

// setComplianceSettings changes the categories in scope and the alert
// webhook. A member left out keeps its value; an empty webhook_url
// removes the webhook and its secret. The change and its audit event,
// which never holds the secret nor the webhook's path, commit together.
func (s *Server) setComplianceSettings(rq *request) error {
	var body struct {
		Categories    *[]string `json:"categories"`
		WebhookURL    *string   `json:"webhook_url"`
		WebhookSecret *string   `json:"webhook_secret"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	var cats []controls.Category
	if body.Categories != nil {
		var err error
		if cats, err = controls.ParseCategories(*body.Categories); err != nil {
			return badRequest("categories", strings.TrimPrefix(err.Error(), "controls: "))
		}
	}
	if body.WebhookURL != nil {
		if err := checkWebhookURL(*body.WebhookURL); err != nil {
			return err
		}
		if u, err := url.Parse(*body.WebhookURL); err == nil && *body.WebhookURL != "" {
			if err := webhookHost(u.Hostname(), rq.tenant.Name == tenant.Operator); err != nil {
				return err
			}
		}
	}
	if s := body.WebhookSecret; s != nil && *s != "" && (len(*s) < minWebhookSecret || len(*s) > maxWebhookSecret) {
		return badRequest("webhook_secret", "webhook_secret must be 16 to 256 bytes long")
	}
	if s := body.WebhookSecret; s != nil && strings.ContainsFunc(*s, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return badRequest("webhook_secret", "webhook_secret must be printable ASCII without spaces, so that a "+
			"receiver can hold it in its configuration as it is")
	}
	rq.target = event.Target{Type: "compliance_settings", ID: rq.tenant.Name, Name: rq.tenant.Name}
	var st *controls.Settings
	change := func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if st, err = controls.LoadSettings(ctx, s.in.DB, tx, rq.tenant.ID); err != nil {
			return err
		}
		if cats != nil {
			st.Categories = cats
		}
		if body.WebhookURL != nil {
			st.WebhookURL = *body.WebhookURL
		}
		if body.WebhookSecret != nil {
			st.WebhookSecret = *body.WebhookSecret
		}
		if st.WebhookURL == "" && body.WebhookSecret != nil && *body.WebhookSecret != "" {
			return badRequest("webhook_url", "a webhook_secret signs a webhook's deliveries: set webhook_url with it")
		}
		if st.WebhookURL == "" {
			st.WebhookSecret = ""
		}
		if st.WebhookURL != "" && st.WebhookSecret == "" {
			return badRequest("webhook_secret", "a webhook needs a webhook_secret, 16 to 256 bytes, to sign its deliveries")
		}
		st.UpdatedAt = s.in.Now().UTC().Truncate(time.Microsecond)
		return controls.SaveSettings(ctx, s.in.DB, tx, rq.tenant.ID, st, st.UpdatedAt)
	}
	rq.details = settingsDetails(body.Categories != nil, cats, body.WebhookURL, body.WebhookSecret != nil)
	if err := s.commit(rq, rq.tenant, http.StatusOK, change); err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, viewSettings(rq, st))
}

// settingsDetails says what a settings change set, for its audit event:
// the categories, the webhook's host alone (its path may carry a token),
// and whether the secret changed, never the secret.
func settingsDetails(setCats bool, cats []controls.Category, webhook *string, secret bool) map[string]any {
	d := map[string]any{"webhook_secret_changed": secret}
	if setCats {
		d["categories"] = cats
	}
	if webhook != nil {
		host := ""
		if u, err := url.Parse(*webhook); err == nil {
			host = u.Host
		}
		d["webhook_host"] = host
	}
	return d
}

// checkWebhookURL accepts an empty URL (no webhook) or an absolute https
// URL with a host and no credentials.
func checkWebhookURL(raw string) error {
	if raw == "" {
		return nil
	}
	if len(raw) > maxWebhookURL {
		return badRequest("webhook_url", "webhook_url is longer than 2048 bytes")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return badRequest("webhook_url", "webhook_url is not a URL")
	case u.Scheme != "https":
		return badRequest("webhook_url", "webhook_url must be an https URL")
	case u.User != nil:
		return badRequest("webhook_url", "webhook_url must not carry credentials: the deliveries are signed with "+
			"webhook_secret instead")
	case u.Hostname() == "" || u.Opaque != "":
		return badRequest("webhook_url", "webhook_url must name a host")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return badRequest("webhook_url", "webhook_url must not have a fragment")
	}
	return nil
}

// webhookHost checks the host a webhook names, as far as its name tells:
// delivery checks each address it dials as well. Loopback, link-local and
// the like are refused for everyone, private addresses for all but the
// operator's tenant, and numeric forms other than dotted IPv4 and IPv6
// literals (127.1, 0x7f000001, 2130706433) for being ambiguous.
func webhookHost(host string, operator bool) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return badRequest("webhook_url", "webhook_url names a loopback, link-local or unspecified address, which "+
			"webhooks may not reach")
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		// No top-level domain is a number: a name that ends in one is an
		// address in some shorthand.
		last := h[strings.LastIndexByte(h, '.')+1:]
		if last != "" && (strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x")) {
			return badRequest("webhook_url", "webhook_url names a number that is not a dotted IPv4 address: name the "+
				"host, or write its address in full")
		}
		return nil
	}
	local, private := controls.AddrClass(ip)
	switch {
	case local:
		return badRequest("webhook_url", "webhook_url names a loopback, link-local or unspecified address, which "+
			"webhooks may not reach")
	case private && !operator:
		return badRequest("webhook_url", "webhook_url names a private address, which only the operator's webhook "+
			"may reach")
	}
	return nil
}
