package server

import (
	"context"
	"math"
	"net/http"
	"strconv"

	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
)

// RateLimits are the token buckets requests draw on. Each request takes a
// token from its client address's bucket before anything else, then from
// its API key's or account's; the login routes draw on stricter buckets
// per address and per account named, whether or not the account exists.
type RateLimits struct {
	IP, Key, Account      ratelimit.Limit
	LoginIP, LoginAccount ratelimit.Limit
}

// DefaultRateLimits suit one attest replica serving a platform: generous
// for machines, tight for guessing passwords.
var DefaultRateLimits = RateLimits{
	IP:           ratelimit.Limit{Rate: 200, Burst: 1000},
	Key:          ratelimit.Limit{Rate: 1000, Burst: 2000},
	Account:      ratelimit.Limit{Rate: 20, Burst: 100},
	LoginIP:      ratelimit.Limit{Rate: 1.0 / 3, Burst: 20},
	LoginAccount: ratelimit.Limit{Rate: 1.0 / 6, Burst: 10},
}

type limitMetrics struct {
	limited *prometheus.CounterVec
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	m := &limitMetrics{limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "attest_rate_limited_total",
		Help: "Requests refused by a rate limit, by bucket (ip, key, account, login_ip, login_account), or by " +
			"an unreachable limiter (error)."}, []string{"bucket"})}
	reg.MustRegister(m.limited)
	return m
}

// errLimiterDown answers a request whose rate limit cannot be checked:
// deny rather than let it through unmetered.
var errLimiterDown = &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable",
	detail: "the rate limiter cannot be reached; try again shortly"}

// take draws one token from bucket key of shape l, answering 429 with
// Retry-After when it is empty.
func (s *Server) take(rq *request, bucket, key string, l ratelimit.Limit) error {
	if s.limiter == nil {
		return nil
	}
	d, err := s.limiter.Take(context.WithoutCancel(rq.r.Context()), bucket+"\x00"+key, l, 1)
	if err != nil {
		s.limits.limited.WithLabelValues("error").Inc()
		s.log.Error("rate limiter unreachable", "request_id", rq.id, "error", err)
		rq.reason = "rate limiter unreachable"
		return errLimiterDown
	}
	if d.Allowed {
		return nil
	}
	s.limits.limited.WithLabelValues(bucket).Inc()
	secs := int(math.Ceil(d.RetryAfter.Seconds()))
	rq.w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	rq.reason = "rate limited: " + bucket
	return &apiError{status: http.StatusTooManyRequests, title: "Too many requests",
		detail: "too many requests: slow down and retry after the time in Retry-After"}
}

// limitClient applies the client address's bucket, the login one on the
// login routes.
func (s *Server) limitClient(rq *request) error {
	group := identity.AddressGroup(rq.ip)
	if rq.route.login {
		return s.take(rq, "login_ip", group, s.rates.LoginIP)
	}
	return s.take(rq, "ip", group, s.rates.IP)
}

// limitCaller applies the authenticated caller's bucket.
func (s *Server) limitCaller(rq *request) error {
	switch {
	case rq.key != nil:
		return s.take(rq, "key", rq.key.ID, s.rates.Key)
	case rq.pr != nil:
		return s.take(rq, "account", rq.pr.User.ID, s.rates.Account)
	}
	return nil
}
