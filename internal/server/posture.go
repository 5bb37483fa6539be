package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
)

// How often serve reports its posture, and verifies every log. The
// verification runs twice a day so that a slow or missed round does not
// let the 24 hours of control LOG-02 lapse.
const (
	postureInterval = time.Minute
	verifyInterval  = 12 * time.Hour
)

// verifyJobLockKey is the advisory lock of the verification job, so that
// one replica at a time verifies the logs on PostgreSQL.
const verifyJobLockKey = 7461746578

// Posture is how this process serves, as service_posture keeps it for the
// controls that judge the service itself (NET-01 to NET-03, LOG-03).
type Posture struct {
	// Process names the process: host, listen address and start time.
	Process      string
	Addr         string
	TLSMin       string
	TLSMax       string
	CertSubject  string
	CertNotAfter time.Time
	RateLimits   bool
	SelfAudit    bool
	StartedAt    time.Time
}

// posture describes the process serving conf on addr since started.
func (s *Server) posture(addr string, conf *tls.Config, started time.Time) (*Posture, error) {
	if len(conf.Certificates) == 0 || len(conf.Certificates[0].Certificate) == 0 {
		return nil, fmt.Errorf("server: posture: the listener has no certificate")
	}
	leaf, err := x509.ParseCertificate(conf.Certificates[0].Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("server: posture: parse the serving certificate: %w", err)
	}
	// A zero MaxVersion is the highest version crypto/tls supports.
	maxv := conf.MaxVersion
	if maxv == 0 {
		maxv = tls.VersionTLS13
	}
	started = started.UTC().Truncate(time.Microsecond)
	return &Posture{Process: s.host + " " + addr + " " + started.Format(time.RFC3339Nano), Addr: addr,
		TLSMin: tls.VersionName(conf.MinVersion), TLSMax: tls.VersionName(maxv), CertSubject: leaf.Subject.String(),
		CertNotAfter: leaf.NotAfter.UTC(), RateLimits: s.limiter != nil, SelfAudit: !s.cfg.WithoutSelfAudit,
		StartedAt: started}, nil
}

// writePosture stores p, seen at now.
func (s *Server) writePosture(ctx context.Context, p *Posture, now time.Time) error {
	_, err := s.in.DB.Write.ExecContext(ctx, s.in.DB.Rebind(`INSERT INTO service_posture (process, addr, tls_min, tls_max,
		cert_subject, cert_not_after, rate_limits, self_audit, started_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (process) DO UPDATE SET seen_at = excluded.seen_at`), p.Process, p.Addr, p.TLSMin, p.TLSMax,
		p.CertSubject, p.CertNotAfter.UnixMicro(), p.RateLimits, p.SelfAudit, p.StartedAt.UnixMicro(), now.UTC().UnixMicro())
	if err != nil {
		return fmt.Errorf("server: store posture: %w", err)
	}
	return nil
}

// startPosture starts the jobs that keep the evidence of the service's
// own state: its posture, every minute, and a verification of every log,
// twice a day. The channel closes once both have ended with ctx.
func (s *Server) startPosture(ctx context.Context, ln net.Listener, cert tls.Certificate) <-chan struct{} {
	done := make(chan struct{})
	p, err := s.posture(ln.Addr().String(), TLSConfig(cert), s.in.Now())
	if err != nil {
		s.log.Error("posture job: not started", "error", err)
	}
	go func() {
		defer close(done)
		vdone := make(chan struct{})
		go func() {
			defer close(vdone)
			s.runVerifications(ctx)
		}()
		if p != nil {
			s.runPosture(ctx, p)
		}
		<-vdone
	}()
	return done
}

func (s *Server) runPosture(ctx context.Context, p *Posture) {
	ticker := time.NewTicker(postureInterval)
	defer ticker.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.writePosture(rctx, p, s.in.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("posture job: not recorded", "error", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// runVerifications verifies every log with entries, first as long after
// start as the retention job waits, then every verifyInterval.
func (s *Server) runVerifications(ctx context.Context) {
	timer := time.NewTimer(s.cfg.RetentionDelay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s.verifyRound(ctx)
		timer.Reset(verifyInterval)
	}
}

func (s *Server) verifyRound(ctx context.Context) {
	s.leading(ctx, "verification job", verifyJobLockKey, s.verifyWork)
}

func (s *Server) verifyWork(ctx context.Context) {
	ts, err := s.in.Tenants.List(ctx)
	if err != nil {
		s.log.Error("verification job: cannot list tenants", "error", err)
		return
	}
	decorate := func(ev *event.Event) {
		ev.Source = event.Source{Name: event.SelfSource, Host: s.host, Version: s.cfg.Version}
	}
	for _, t := range ts {
		head, err := s.in.Log.Head(ctx, s.in.DB.Read, t.ID)
		if err != nil || head.Size == 0 {
			continue
		}
		v, err := s.in.RecordVerification(ctx, t, instance.SystemActor(), decorate)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("verification job: a log could not be verified", "tenant", t.Name, "error", err)
		case err == nil && !v.OK:
			s.log.Error("verification job: a log is damaged; run attest verify", "tenant", t.Name, "security", true)
		}
	}
}
