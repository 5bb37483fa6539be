package server

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/prometheus/client_golang/prometheus"
)

func (s *Server) alertRoutes() []*route {
	return []*route{
		{method: "GET", pattern: "/api/v1/compliance/alerts", name: "compliance.alerts.list", category: "data_access",
			perm: access.PermComplianceRead, params: []string{"status", "cursor", "limit"}, handle: s.listAlerts},
		{method: "GET", pattern: "/api/v1/compliance/alerts/{id}", name: "compliance.alert.read", category: "data_access",
			perm: access.PermComplianceRead, handle: s.getAlert},
		{method: "POST", pattern: "/api/v1/compliance/alerts/{id}/acknowledge", name: "control.alert.acknowledge",
			category: "security", perm: access.PermComplianceManage, handle: s.acknowledgeAlert, selfAudited: true},
	}
}

// Timing of the compliance jobs.
const (
	// controlsEvery is how often serve looks for control tests that are
	// due, unless Config.ControlsInterval says otherwise.
	controlsEvery = 15 * time.Second
	// watchDebounce gathers the watched changes of a burst into one run.
	watchDebounce = time.Second
	// watchQueue bounds the watched changes waiting for a run; beyond it
	// they are dropped and the periodic run catches up.
	watchQueue = 1024
	// deliverEvery is how often waiting webhook deliveries are tried;
	// an alert raised in this process wakes the deliverer at once.
	deliverEvery = 2 * time.Second
	// Advisory lock keys of the schedulers, so that one replica at a time
	// runs each on PostgreSQL.
	controlsJobLockKey = 7461746576
	webhookJobLockKey  = 7461746577
)

// alertJobs run control tests on their schedule and after the changes
// they watch, and deliver the alerts they raise.
type alertJobs struct {
	triggers  chan trigger
	wake      chan struct{}
	deliverer *controls.Deliverer
	dropped   prometheus.Counter
	runs      *prometheus.CounterVec
}

// trigger asks for controls of a tenant to run, after a change they watch.
type trigger struct {
	t   *tenant.Tenant
	ids []string
}

func newAlertJobs(in *instance.Instance, cfg Config) *alertJobs {
	j := &alertJobs{triggers: make(chan trigger, watchQueue), wake: make(chan struct{}, 1),
		deliverer: controls.NewDeliverer(in, cfg.WebhookClient)}
	j.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "attest_control_watch_dropped_total",
		Help: "Watched changes whose control run was dropped because the queue was full; the periodic run covers them."})
	j.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "attest_control_runs_total",
		Help: "Control test runs by serve, by trigger (schedule, watch) and result (ok, error)."}, []string{"trigger", "result"})
	cfg.Registry.MustRegister(j.dropped, j.runs)
	return j
}

// runAlertJobs runs the control scheduler, the watch of changes and the
// webhook deliverer until ctx ends.
func (s *Server) runAlertJobs(ctx context.Context) {
	var wg sync.WaitGroup
	if s.cfg.ControlsInterval >= 0 {
		stop := s.in.Log.Observe(s.observeWatched(controls.Watchers()))
		defer stop()
		wg.Add(2)
		go func() { defer wg.Done(); s.runControlSchedule(ctx) }()
		go func() { defer wg.Done(); s.runWatches(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.runDeliveries(ctx) }()
	wg.Wait()
}

// observeWatched is the audit log observer that asks for the controls
// watching a committed event's action. It never waits: when the queue is
// full the change is counted as dropped.
func (s *Server) observeWatched(watch map[string][]string) auditlog.Observer {
	return func(t *tenant.Tenant, ev *event.Event) {
		ids, ok := watch[ev.Action]
		// Only attest's own records of a change that happened count:
		// ingested events cannot claim its source.
		if !ok || ev.Source.Name != event.SelfSource || ev.Outcome.Result != "success" {
			return
		}
		if t.Name != tenant.Operator {
			ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
				_, ok := controls.ForByID(t, id)
				return !ok
			})
			if len(ids) == 0 {
				return
			}
		}
		select {
		case s.alerts.triggers <- trigger{t: t, ids: ids}:
		default:
			s.alerts.dropped.Inc()
		}
	}
}

// runWatches runs the controls that watched changes ask for, gathering
// those that arrive within watchDebounce of the first into one run.
func (s *Server) runWatches(ctx context.Context) {
	type asked struct {
		t   *tenant.Tenant
		ids []string
	}
	pending := map[int64]*asked{}
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case tr := <-s.alerts.triggers:
			a := pending[tr.t.ID]
			if a == nil {
				a = &asked{t: tr.t}
				pending[tr.t.ID] = a
			}
			for _, id := range tr.ids {
				if !slices.Contains(a.ids, id) {
					a.ids = append(a.ids, id)
				}
			}
			if fire == nil {
				fire = time.After(watchDebounce)
			}
		case <-fire:
			fire = nil
			batch := pending
			pending = map[int64]*asked{}
			for _, a := range batch {
				s.runControls(ctx, a.t, a.ids, "watch")
			}
		}
	}
}

func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// runControls runs controls ids of tenant t as the system, and wakes the
// deliverer when a result raised an alert.
func (s *Server) runControls(ctx context.Context, t *tenant.Tenant, ids []string, why string) error {
	res, err := controls.Validate(ctx, s.in, t, ids, instance.SystemActor(), func(ev *event.Event) {
		ev.Source = event.Source{Name: event.SelfSource, Host: s.host, Version: s.cfg.Version}
	})
	if err != nil {
		s.alerts.runs.WithLabelValues(why, "error").Inc()
		if ctx.Err() == nil {
			s.log.Error("control run failed", "tenant", t.Name, "controls", strings.Join(ids, ","), "trigger", why,
				"error", err)
		}
		return err
	}
	s.alerts.runs.WithLabelValues(why, "ok").Inc()
	s.alertsRaised(res)
	return nil
}

// alertsRaised wakes the deliverer when a result raised an alert.
func (s *Server) alertsRaised(res []*controls.Stored) {
	for _, r := range res {
		if r.Alert != "" {
			select {
			case s.alerts.wake <- struct{}{}:
			default:
			}
			return
		}
	}
}

// runControlSchedule runs, every ControlsInterval, each tenant's control
// tests that are due.
func (s *Server) runControlSchedule(ctx context.Context) {
	every := s.cfg.ControlsInterval
	if every == 0 {
		every = controlsEvery
	}
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.leading(ctx, "controls job", controlsJobLockKey, s.controlsRound)
		t.Reset(every)
	}
}

// controlsRound runs the due tests of the operator, and of every tenant
// that has people or compliance settings.
func (s *Server) controlsRound(ctx context.Context) {
	rows, err := s.in.DB.Read.QueryContext(ctx, s.in.DB.Rebind(`SELECT id FROM tenants WHERE name = ?
		OR id IN (SELECT tenant_id FROM users) OR id IN (SELECT tenant_id FROM compliance_settings) ORDER BY id`),
		tenant.Operator)
	if err != nil {
		s.log.Error("control schedule: reading tenants failed", "error", err)
		return
	}
	ids, err := scanIDs(rows)
	if err != nil {
		s.log.Error("control schedule: reading tenants failed", "error", err)
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		t, err := s.in.Tenants.ByID(ctx, id)
		if err != nil {
			s.log.Error("control schedule: reading a tenant failed", "error", err)
			continue
		}
		due, err := controls.Due(ctx, s.in, t, s.in.Now())
		if err != nil {
			s.log.Error("control schedule: reading last runs failed", "tenant", t.Name, "error", err)
			continue
		}
		if len(due) == 0 || s.runControls(ctx, t, due, "schedule") == nil || len(due) == 1 {
			continue
		}
		// One broken test must not hold the others back.
		for _, c := range due {
			s.runControls(ctx, t, []string{c}, "schedule")
		}
	}
}

// runDeliveries delivers alerts to their webhooks every deliverEvery, and
// at once when this process raised one.
func (s *Server) runDeliveries(ctx context.Context) {
	tick := time.NewTicker(deliverEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.alerts.wake:
		}
		s.leading(ctx, "webhook job", webhookJobLockKey, func(ctx context.Context) {
			if _, err := s.alerts.deliverer.Round(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("webhook delivery: recording an attempt failed", "error", err)
			}
		})
	}
}

// alertView is an alert with its control's status now.
type alertView struct {
	*controls.Alert
	// Current is the control's latest status: an alert stays as raised,
	// and this says whether the control has recovered since.
	Current controls.Status `json:"current_status"`
}

func (s *Server) viewAlerts(ctx context.Context, t *tenant.Tenant, as []*controls.Alert) ([]alertView, error) {
	latest, err := controls.Latest(ctx, s.in, t)
	if err != nil {
		return nil, err
	}
	out := make([]alertView, len(as))
	for i, a := range as {
		out[i] = alertView{Alert: a, Current: controls.NoEvidence}
		if l := latest[a.Control]; l != nil {
			out[i].Current = l.Status
		}
	}
	return out, nil
}

// listAlerts answers the tenant's alerts, newest first, a page at a time.
func (s *Server) listAlerts(rq *request) error {
	q := rq.r.URL.Query()
	f := controls.AlertFilter{Limit: 100}
	switch q.Get("status") {
	case "":
	case "open":
		f.Open = true
	case "acknowledged":
		f.Acknowledged = true
	default:
		return badRequest("status", "status must be open or acknowledged")
	}
	if v := q.Get("limit"); v != "" {
		n, ok := parseCanonical(v)
		if !ok || n < 1 || n > 1000 {
			return badRequest("limit", "limit must be a whole number from 1 to 1000, in decimal without a sign "+
				"or leading zeros")
		}
		f.Limit = int(n)
	}
	if v := q.Get("cursor"); v != "" {
		at, id, ok := decodeAlertCursor(v)
		if !ok {
			return badRequest("cursor", "cursor is not one this API gave")
		}
		f.BeforeAt, f.BeforeID = at, id
	}
	ctx := rq.r.Context()
	as, err := controls.Alerts(ctx, s.in, rq.tenant, f)
	if err != nil {
		return err
	}
	full := len(as) == f.Limit
	var last *controls.Alert
	if full {
		last = as[len(as)-1]
	}
	as = slices.DeleteFunc(as, func(a *controls.Alert) bool { return !alertInBound(rq, a) })
	vs, err := s.viewAlerts(ctx, rq.tenant, as)
	if err != nil {
		return err
	}
	out := map[string]any{"alerts": vs}
	if full {
		out["next_cursor"] = encodeAlertCursor(last.RaisedAt, last.ID)
	}
	rq.details = map[string]any{"alerts": len(as)}
	return writeJSON(rq.w, http.StatusOK, out)
}

func encodeAlertCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + id))
}

func decodeAlertCursor(c string) (time.Time, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", false
	}
	at, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || !strings.HasPrefix(id, "alr_") || !store.StorableText(id) {
		return time.Time{}, "", false
	}
	return time.UnixMicro(n), id, true
}

// targetAlert loads the alert the path names, in the request's tenant
// alone: another tenant's answers 404.
func (s *Server) targetAlert(rq *request) (*controls.Alert, error) {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "control_alert", ID: id}
	if !store.StorableText(id) {
		return nil, notFound("no such alert")
	}
	a, err := controls.AlertByID(rq.r.Context(), s.in, s.in.DB.Read, rq.tenant, id)
	if err == nil && !alertInBound(rq, a) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("no such alert")
	}
	return a, err
}

func (s *Server) getAlert(rq *request) error {
	a, err := s.targetAlert(rq)
	if err != nil {
		return err
	}
	vs, err := s.viewAlerts(rq.r.Context(), rq.tenant, []*controls.Alert{a})
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"alert": vs[0]})
}

// acknowledgeAlert records that someone took an alert on, with a note, in
// the same transaction as its audit event.
func (s *Server) acknowledgeAlert(rq *request) error {
	a, err := s.targetAlert(rq)
	if err != nil {
		return err
	}
	// Acknowledging says someone on call has taken the failure up, which
	// only a person can.
	if rq.pr == nil {
		return forbidden("an alert is acknowledged by a signed-in person; an API key cannot")
	}
	var body struct {
		Note string `json:"note"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	note := strings.TrimSpace(body.Note)
	if note == "" || len(note) > 2000 || access.UnsafeText(note) || !store.StorableText(note) {
		return badRequest("note", "note is required: at most 2000 bytes of text saying what is being done")
	}
	rq.target = event.Target{Type: "control", ID: a.Control, Name: a.Name}
	ack, err := controls.Acknowledge(rq.r.Context(), s.in, rq.tenant, a.ID, note, rq.actor(),
		rq.changeDecorator(http.StatusOK))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("no such alert")
	case errors.Is(err, controls.ErrAcknowledged):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "the alert is already acknowledged"}
	case err != nil:
		return err
	}
	rq.audited = true
	vs, err := s.viewAlerts(rq.r.Context(), rq.tenant, []*controls.Alert{ack})
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"alert": vs[0]})
}
