package server

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// retentionView is a tenant's retention policy and how far it has been
// applied.
type retentionView struct {
	Tenant        string `json:"tenant"`
	RetentionDays int    `json:"retention_days"`
	HotDays       int    `json:"hot_days"`
	LegalHold     bool   `json:"legal_hold"`
	HoldReason    string `json:"hold_reason,omitempty"`
	// Default is set while the tenant has no policy of its own.
	Default   bool   `json:"default"`
	UpdatedAt string `json:"updated_at,omitempty"`
	// Entries is the log's size; entries below ArchivedBelow live in
	// archive segments, and those below ExpiredBelow have only their leaf
	// hashes left.
	Entries       int64  `json:"entries"`
	ArchivedBelow int64  `json:"archived_below"`
	ExpiredBelow  int64  `json:"expired_below"`
	Segments      int    `json:"segments"`
	ArchiveStore  string `json:"archive_store,omitempty"`
}

func (s *Server) retentionOf(ctx context.Context, t *tenant.Tenant) (*retentionView, error) {
	v := &retentionView{Tenant: t.Name}
	err := s.in.DB.ReadTx(ctx, func(tx *sql.Tx) error {
		p, err := s.in.Log.Policy(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		head, err := s.in.Log.Head(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		segs, err := s.in.Log.ArchiveSegments(ctx, tx, t)
		if err != nil {
			return err
		}
		v.RetentionDays, v.HotDays, v.LegalHold, v.HoldReason, v.Default = p.RetentionDays, p.HotDays, p.LegalHold,
			p.HoldReason, p.Default
		if !p.UpdatedAt.IsZero() {
			v.UpdatedAt = p.UpdatedAt.Format(time.RFC3339Nano)
		}
		v.Entries, v.ArchivedBelow, v.ExpiredBelow, v.Segments = head.Size, head.Archived, head.Expired, len(segs)
		return nil
	})
	return v, err
}

// retention answers the request tenant's retention policy.
func (s *Server) retention(rq *request) error {
	v, err := s.retentionOf(rq.r.Context(), rq.tenant)
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, v)
}

// setRetention changes the request tenant's retention days and hot window.
func (s *Server) setRetention(rq *request) error {
	var body struct {
		RetentionDays *int `json:"retention_days"`
		HotDays       *int `json:"hot_days"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	rq.target = event.Target{Type: "retention_policy", ID: rq.tenant.Name}
	if _, err := s.in.SetRetention(rq.r.Context(), rq.tenant, body.RetentionDays, body.HotDays, rq.actor(),
		rq.changeDecorator(http.StatusOK)); err != nil {
		return err
	}
	rq.audited = true
	return s.retention(rq)
}

// setLegalHold sets or releases the request tenant's legal hold.
func (s *Server) setLegalHold(rq *request) error {
	var body struct {
		Hold   *bool  `json:"hold"`
		Reason string `json:"reason"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	rq.target = event.Target{Type: "retention_policy", ID: rq.tenant.Name}
	if body.Hold == nil {
		return badRequest("hold", "hold is required: true sets the legal hold, false releases it")
	}
	if err := instance.CheckReason(body.Reason); err != nil {
		return err
	}
	if _, err := s.in.SetLegalHold(rq.r.Context(), rq.tenant, *body.Hold, body.Reason, rq.actor(),
		rq.changeDecorator(http.StatusOK)); err != nil {
		return err
	}
	rq.audited = true
	return s.retention(rq)
}

// runRetention applies every tenant's retention policy now and then, first
// a minute after start. On PostgreSQL one replica at a time does it: the
// one holding the advisory lock.
func (s *Server) runRetention(ctx context.Context) {
	if s.cfg.RetentionInterval < 0 {
		return
	}
	timer := time.NewTimer(s.cfg.RetentionDelay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		next := s.cfg.RetentionInterval
		if busy := s.retentionRound(ctx); busy {
			// Another run holds a tenant, or one that crashed still does
			// until its lease ends: try again sooner.
			next = min(next, retentionRetry)
		}
		timer.Reset(next)
	}
}

// retentionLockKey is the advisory lock of the retention job.
const retentionLockKey = 7461746574

// retentionRetry is how soon the job runs again when a tenant was busy.
const retentionRetry = 15 * time.Minute

// retentionRound runs the retention of every tenant once; it reports
// whether a tenant was busy with another run.
func (s *Server) retentionRound(ctx context.Context) (busy bool) {
	s.leading(ctx, "retention", retentionLockKey, func(ctx context.Context) { busy = s.retentionWork(ctx) })
	return busy
}

func (s *Server) retentionWork(ctx context.Context) (busy bool) {
	start := time.Now()
	reps, err := s.in.RunRetention(ctx, nil, func(t *tenant.Tenant, step string, seg auditlog.ArchiveSegment) {
		s.log.Info("retention: "+step+" an archive segment", "tenant", t.Name, "first", seg.First, "end", seg.End,
			"object", seg.Object)
	})
	var archived, expired int64
	for _, r := range reps {
		archived += r.ArchivedEntries
		expired += r.ExpiredEntries
	}
	busy = errors.Is(err, auditlog.ErrRetentionBusy)
	if err != nil && ctx.Err() == nil {
		s.log.Error("retention run failed", "error", err, "archived", archived, "expired", expired)
		return busy
	}
	if archived+expired > 0 {
		s.log.Info("retention run done", "archived", archived, "expired", expired, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return false
}
