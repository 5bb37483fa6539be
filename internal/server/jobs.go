package server

import (
	"context"
	"time"

	"github.com/attest/attest/internal/store"
)

// identityJobLockKey is the advisory lock of the identity job, so that one
// replica at a time runs it on PostgreSQL.
const identityJobLockKey = 7461746575

// runIdentityJobs disables accounts unused past their tenant's limit, and
// closes access reviews whose deadline has passed, every IdentityInterval.
func (s *Server) runIdentityJobs(ctx context.Context) {
	if s.cfg.IdentityInterval < 0 {
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
		s.identityRound(ctx)
		timer.Reset(s.cfg.IdentityInterval)
	}
}

func (s *Server) identityRound(ctx context.Context) {
	s.leading(ctx, "identity job", identityJobLockKey, s.identityWork)
}

func (s *Server) identityWork(ctx context.Context) {
	if n, err := s.in.DisableInactive(ctx); err != nil {
		s.log.Error("identity job: disabling inactive accounts failed", "error", err)
	} else if n > 0 {
		s.log.Info("identity job: disabled inactive accounts", "accounts", n)
	}
	if n, err := s.in.CloseDueReviews(ctx); err != nil {
		s.log.Error("identity job: closing due access reviews failed", "error", err)
	} else if n > 0 {
		s.log.Info("identity job: closed due access review items", "items", n)
	}
}

// leading runs f and reports true unless, on PostgreSQL, another replica
// holds the advisory lock key, so that one replica at a time runs the job
// named.
func (s *Server) leading(ctx context.Context, job string, key int64, f func(context.Context)) bool {
	if s.in.DB.Dialect != store.Postgres {
		f(ctx)
		return true
	}
	conn, err := s.in.DB.Write.Conn(ctx)
	if err != nil {
		s.log.Warn(job+": no database connection", "error", err)
		return false
	}
	defer conn.Close()
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil || !got {
		return false
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
	f(ctx)
	return true
}
