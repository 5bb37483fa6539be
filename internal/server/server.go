// Package server is attest's HTTP API: the route table, TLS 1.3 listener,
// authentication, the permission check every route passes, and the self
// audit that turns every API request into an event of source "attest".
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/console"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/ratelimit"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the server. Zero values have the documented defaults.
type Config struct {
	// Addr is the listen address; default 127.0.0.1:8443.
	Addr string
	// TLSCertFile and TLSKeyFile name a certificate; both empty means the
	// self-signed certificate for localhost in the data directory.
	TLSCertFile, TLSKeyFile string
	// MaxBodyBytes bounds a request body, after decompression; default 32 MiB.
	MaxBodyBytes int64
	// MaxEvents bounds the events of one ingest request; default 100000.
	// A request carrying more is refused whole, before any is stored.
	MaxEvents int
	// TrustedProxies are the peers whose X-Forwarded-For header is believed.
	TrustedProxies []netip.Prefix
	// CheckpointInterval is how often new entries are checkpointed;
	// default 500ms, which keeps them covered within one second.
	CheckpointInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown; default 30s.
	ShutdownTimeout time.Duration
	// StreamCheck is how often a console's change stream checks that its
	// session stands and sends a keep-alive; default 15s.
	StreamCheck time.Duration
	// WithoutSelfAudit leaves requests unrecorded. It exists for attest
	// bench alone, which serves the same routes with and without the self
	// audit to measure what it costs; serve has no way to set it.
	WithoutSelfAudit bool
	// RetentionInterval is how often every tenant's retention policy is
	// applied; zero means daily, negative never.
	RetentionInterval time.Duration
	// RetentionDelay is how long after start the first retention run
	// waits; zero means a minute. The identity job waits as long.
	RetentionDelay time.Duration
	// IdentityInterval is how often accounts unused past their tenant's
	// limit are disabled and overdue access reviews closed; zero means
	// hourly, negative never.
	IdentityInterval time.Duration
	// ControlsInterval is how often each tenant's control tests that are
	// due are run; zero means every 15 seconds, negative never. Negative
	// also stops the runs after watched changes.
	ControlsInterval time.Duration
	// WebhookClient posts alerts to tenants' webhooks; nil means one that
	// trusts the system's roots and refuses loopback and link-local
	// addresses. Its redirect policy and timeout are replaced.
	WebhookClient *http.Client
	// Limiter keeps the rate-limit buckets; nil means in process. Give a
	// ratelimit.Redis to share them between replicas.
	Limiter ratelimit.Limiter
	// RateLimits shape the buckets; nil means DefaultRateLimits.
	RateLimits *RateLimits
	// WithoutRateLimits serves without any rate limit, for attest bench
	// alone, which measures the API's own capacity.
	WithoutRateLimits bool
	// Version is reported in the audit events' source.
	Version string
	// Registry collects the Prometheus metrics; nil makes a new one.
	Registry *prometheus.Registry
	// Logger receives operational messages; nil means slog.Default().
	Logger *slog.Logger
}

// Server serves attest's API for one instance.
type Server struct {
	in      *instance.Instance
	cfg     Config
	log     *slog.Logger
	host    string
	routes  []*route
	handler http.Handler
	metrics *httpMetrics
	ready   atomic.Bool

	logins   *prometheus.CounterVec
	lockouts *prometheus.CounterVec
	detector *detector
	streams  *streamHub
	limiter  ratelimit.Limiter
	rates    RateLimits
	limits   *limitMetrics
	alerts   *alertJobs

	mux            *http.ServeMux
	metricsHandler http.Handler
}

// New builds the server's route table for in.
func New(in *instance.Instance, cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8443"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 32 << 20
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 100000
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 500 * time.Millisecond
	}
	if cfg.RetentionInterval == 0 {
		cfg.RetentionInterval = 24 * time.Hour
	}
	if cfg.IdentityInterval == 0 {
		cfg.IdentityInterval = time.Hour
	}
	if cfg.RetentionDelay <= 0 {
		cfg.RetentionDelay = time.Minute
	}
	if cfg.StreamCheck <= 0 {
		cfg.StreamCheck = streamCheck
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = slog.New(redactingHandler{cfg.Logger.Handler()})
	host, _ := os.Hostname()
	s := &Server{in: in, cfg: cfg, log: cfg.Logger, host: host, metrics: newHTTPMetrics(cfg.Registry), detector: newDetector()}
	s.logins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "attest_login_attempts_total",
		Help: "Login steps, by step (password, totp, recovery, enrol) and result (success, failure, throttled)."},
		[]string{"step", "result"})
	s.lockouts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "attest_login_lockouts_total",
		Help: "Failure counters that reached their limit and locked, by step and what locked (account, client_ip); " +
			"step unlock counts admins' unlocks."},
		[]string{"step", "kind"})
	cfg.Registry.MustRegister(s.logins, s.lockouts)
	s.limits = newLimitMetrics(cfg.Registry)
	s.alerts = newAlertJobs(in, cfg)
	go identity.Prepare()
	s.rates = DefaultRateLimits
	if cfg.RateLimits != nil {
		s.rates = *cfg.RateLimits
	}
	if !cfg.WithoutRateLimits {
		s.limiter = cfg.Limiter
		if s.limiter == nil {
			s.limiter = ratelimit.NewMemory(in.Now)
		}
	}
	s.streams = newStreamHub(in.Log)
	s.routes = s.routeTable()
	mux := http.NewServeMux()
	s.mux = mux
	for _, rt := range s.routes {
		mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.metricsHandler = promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})
	// Everything else under the API answers as an audited 404, or 405 when
	// the path is a route's but the method is not.
	// They need no credential, since the OpenAPI document lists the routes
	// anyway and a public route's wrong method must say 405, not 401; one
	// given is checked, so that the request lands in its tenant's trail.
	notFoundRoute := &route{name: "api.unknown", category: "system", perm: access.PermAny, anonymous: true,
		handle: s.unknownRoute}
	mux.Handle("/api/", s.wrap(notFoundRoute))
	mux.Handle("/logs/", s.wrap(notFoundRoute))
	// The web console: static pages that speak to the API like any client.
	ui := console.Handler()
	mux.Handle("GET /{$}", ui)
	mux.Handle("GET /assets/", ui)
	s.handler = securityHeaders(mux)
	return s, nil
}

// unknownRoute answers a request that no route matches.
func (s *Server) unknownRoute(rq *request) error {
	allow := s.allowedMethods(rq.r)
	if len(allow) == 0 {
		return notFound("no such API route")
	}
	rq.w.Header().Set("Allow", strings.Join(allow, ", "))
	return &apiError{status: http.StatusMethodNotAllowed, title: "Method not allowed",
		detail: fmt.Sprintf("%s is not allowed here; use %s", rq.r.Method, strings.Join(allow, " or "))}
}

// allowedMethods lists the methods that routes serve on r's path.
func (s *Server) allowedMethods(r *http.Request) []string {
	var out []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		probe := *r
		probe.Method = m
		if _, pattern := s.mux.Handler(&probe); strings.Contains(pattern, " ") {
			out = append(out, m)
		}
	}
	return out
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists the method and pattern of every API route.
func (s *Server) Routes() []string {
	out := make([]string, len(s.routes))
	for i, rt := range s.routes {
		out[i] = rt.method + " " + rt.pattern
	}
	return out
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !s.ready.Load() {
		http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
		return
	}
	if err := s.in.DB.Read.PingContext(ctx); err != nil {
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ready")
}

// Run serves TLS on ln, a TCP listener, until ctx ends, then shuts down
// gracefully: it stops accepting requests, lets those in flight finish,
// commits every pending audit event and signs a last checkpoint.
func (s *Server) Run(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         TLSConfig(cert),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Change streams never finish by themselves: they end as the shutdown
	// begins, so that it waits for requests alone.
	srv.RegisterOnShutdown(s.streams.close)
	cpCtx, stopCheckpoints := context.WithCancel(context.WithoutCancel(ctx))
	cpDone := make(chan struct{})
	retDone := make(chan struct{})
	go func() {
		defer close(cpDone)
		s.in.Log.RunCheckpoints(cpCtx, s.cfg.CheckpointInterval)
	}()
	idDone := make(chan struct{})
	go func() {
		defer close(retDone)
		s.runRetention(cpCtx)
	}()
	go func() {
		defer close(idDone)
		s.runIdentityJobs(cpCtx)
	}()
	postureDone := s.startPosture(cpCtx, ln, cert)
	alertsDone := make(chan struct{})
	go func() {
		defer close(alertsDone)
		s.runAlertJobs(cpCtx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	s.ready.Store(true)
	s.log.Info("attest is serving", "addr", ln.Addr().String(), "tls", "1.3 only", "http2", true)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.ready.Store(false)
	s.log.Info("shutting down: finishing requests and flushing the audit log")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	stopCheckpoints()
	<-cpDone
	<-retDone
	<-idDone
	<-postureDone
	<-alertsDone
	if err := s.in.Log.Close(); err != nil && shutErr == nil {
		shutErr = err
	}
	if _, err := s.in.Log.PublishCheckpoints(sctx); err != nil && shutErr == nil {
		shutErr = err
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return shutErr
}

// route is one API route. Every route names the permission it needs, and
// the audit action and category its requests are recorded under.
type route struct {
	method, pattern string
	name            string
	category        string
	perm            access.Permission
	// params are the query parameters the route takes, each at most once.
	params []string
	handle func(*request) error
	// selfAudited routes record their own success event in the same
	// transaction as their change; the middleware records only failures.
	selfAudited bool
	// pathTenant routes name their tenant in the path (the tiled log).
	pathTenant bool
	// keysOnly routes take an API key, never a person's session.
	keysOnly bool
	// login routes take no credential, and draw on the stricter login
	// rate limits.
	login bool
	// mintsSession routes begin sessions: each passes identity's Gate.
	mintsSession bool
	// anonymous routes check a credential when one is given, and serve
	// without one.
	anonymous bool
	// unbounded routes hand out entries of the log by position, which no
	// audit period limits: a grant bounded to a period may not use them.
	unbounded bool
	// background routes are no person's doing whatever the request says,
	// such as a page's change stream reconnecting: they do not keep the
	// session alive.
	background bool
}

// request carries one API request through its handler.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	s      *Server
	route  *route
	id     string
	start  time.Time
	ip     string
	key    *access.Key
	tenant *tenant.Tenant
	// A person's request carries their session, the subject the
	// authorizer saw, and its decision.
	pr       *identity.Principal
	subject  *access.Subject
	decision access.Decision
	// as, when set, is the actor of the request's events instead of the
	// caller: the account a login step is for.
	as *event.Actor
	// loginAccount and passwordTag describe a password step to the
	// threat detector, as a hash and a keyed hash.
	loginAccount string
	passwordTag  string

	// What the handler says about the request, for its audit event.
	target  event.Target
	details map[string]any
	audited bool
	status  int
	reason  string
}

func newRequestID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// statusWriter remembers the status written, and the first write that
// failed: the server's writes fail only when the client has gone.
type statusWriter struct {
	http.ResponseWriter
	status   int
	writeErr error
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	if err != nil && w.writeErr == nil {
		w.writeErr = err
	}
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap is the middleware every API route runs in: request id, client IP,
// authentication, tenant, permission, the handler, error mapping and the
// self audit, in that order.
func (s *Server) wrap(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		rq := &request{w: sw, r: r, s: s, route: rt, id: newRequestID(), start: time.Now(), ip: s.clientIP(r)}
		sw.Header().Set("X-Request-Id", rq.id)
		defer func() {
			p := recover()
			switch {
			case p == http.ErrAbortHandler:
				// A streamed answer that could not be finished: recorded,
				// and the connection cut so that the client sees it broken.
				rq.status = http.StatusInternalServerError
			case p != nil:
				s.log.Error("panic in handler", "request_id", rq.id, "route", rt.name, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					writeProblem(sw, rq.id, classify(errors.New("panic")))
				}
				rq.status, rq.reason = http.StatusInternalServerError, "internal error"
			}
			if rq.status == 0 {
				rq.status = sw.status
			}
			s.metrics.observe(rt.name, rq.status, time.Since(rq.start))
			s.audit(rq)
			if p == http.ErrAbortHandler {
				panic(p)
			}
		}()
		if err := s.limitClient(rq); err != nil {
			s.fail(rq, err)
			return
		}
		if rt.login {
			if err := s.loginOrigin(r); err != nil {
				s.fail(rq, err)
				return
			}
		}
		if err := s.authorize(rq); err != nil {
			s.fail(rq, err)
			return
		}
		if err := s.limitCaller(rq); err != nil {
			s.fail(rq, err)
			return
		}
		if rt.pattern != "" {
			if err := checkQuery(rq.r, rt.params); err != nil {
				s.fail(rq, err)
				return
			}
		}
		err := rt.handle(rq)
		if err == nil && sw.writeErr != nil {
			err = sw.writeErr // a handler that cannot report it
		}
		if err != nil {
			s.fail(rq, err)
		}
	})
}

// statusClientClosed records a request whose client disconnected before it
// was complete, as some proxies do; no client ever sees it.
const statusClientClosed = 499

var errClientGone = &apiError{status: statusClientClosed, title: "Client closed request",
	detail: "the client disconnected before the request was complete"}

// clientGone reports whether err comes from the client disconnecting: its
// body broke off, the request's context ended with it, or an answer could
// not be written.
func (rq *request) clientGone(err error) bool {
	if errors.Is(err, errClientGone) {
		return true
	}
	// Once the client has gone, whatever failed failed for that reason:
	// a read transaction rolled back with the request's context closes
	// its statements, and their next use says so rather than "canceled".
	if rq.r.Context().Err() != nil {
		return true
	}
	sw, ok := rq.w.(*statusWriter)
	return ok && sw.writeErr != nil
}

func (s *Server) fail(rq *request, err error) {
	if rq.clientGone(err) {
		// Routine on any network, and no fault of the server's.
		s.log.Info("client disconnected", "request_id", rq.id, "route", rq.route.name)
		rq.status, rq.reason = statusClientClosed, errClientGone.detail
		return
	}
	ae := classify(err)
	if ae.status >= 500 {
		s.log.Error("request failed", "request_id", rq.id, "route", rq.route.name, "error", err)
	}
	rq.status, rq.reason = ae.status, ae.detail
	if sw, ok := rq.w.(*statusWriter); ok && sw.status != 0 {
		return // the handler already answered
	}
	if ae.status == http.StatusUnauthorized {
		rq.w.Header().Set("WWW-Authenticate", `Bearer realm="attest"`)
	}
	writeProblem(rq.w, rq.id, ae)
}

var errUnauthenticated = &apiError{status: http.StatusUnauthorized, title: "Unauthorized",
	detail: "a valid session or API key is required: sign in, or send it as Authorization: Bearer <API key>"}

// authorize authenticates the request, settles its tenant and checks the
// route's permission. The tenant comes from the key; only an operator key
// may name one, in the Attest-Tenant header (or in the path of the tiled
// log), and a tenant that is not the caller's answers 404.
func (s *Server) authorize(rq *request) error {
	if rq.route.perm == access.PermNone {
		return nil
	}
	ctx := rq.r.Context()
	for _, h := range []string{"Authorization", "Attest-Tenant"} {
		if len(rq.r.Header.Values(h)) > 1 {
			return badRequest(h, h+" may be given once")
		}
	}
	tok, fromCookie, err := credential(rq.r)
	if err != nil {
		return err
	}
	if tok == "" {
		if rq.route.anonymous {
			return nil
		}
		rq.reason = "no credential"
		return errUnauthenticated
	}
	if identity.IsSessionToken(tok) {
		return s.authorizeSession(rq, tok, fromCookie)
	}
	if fromCookie {
		rq.reason = "the session cookie holds no session token"
		return errUnauthenticated
	}
	key, err := s.in.Keys.Authenticate(ctx, tok)
	if err != nil {
		switch {
		case errors.Is(err, access.ErrMalformedToken), errors.Is(err, access.ErrUnknownKey):
			rq.reason = "unknown or malformed API key"
		case errors.Is(err, access.ErrRevoked):
			rq.key, rq.reason = key, "API key revoked"
		case errors.Is(err, access.ErrExpired):
			rq.key, rq.reason = key, "API key expired"
		default:
			return err
		}
		return errUnauthenticated
	}
	rq.key = key
	own, err := s.in.Tenants.ByID(ctx, key.TenantID)
	if err != nil {
		return err
	}
	rq.tenant = own
	named := rq.r.Header.Get("Attest-Tenant")
	if rq.route.pathTenant {
		named = rq.r.PathValue("tenant")
	}
	if named != "" && named != own.Name {
		if key.Role != access.RoleOperator {
			return notFound("no such tenant")
		}
		t, err := s.in.Tenants.ByName(ctx, named)
		if err != nil {
			return notFound("no such tenant")
		}
		rq.tenant = t
	}
	if !key.Role.Allows(rq.route.perm) {
		return forbidden(fmt.Sprintf("an API key with role %s may not %s", key.Role, rq.route.perm))
	}
	if rq.route.perm.OperatorTenantOnly() && own.Name != tenant.Operator {
		return forbidden(fmt.Sprintf("only a key of the %s tenant may %s", tenant.Operator, rq.route.perm))
	}
	return nil
}

// serveMetrics answers the Prometheus metrics.
func (s *Server) serveMetrics(rq *request) error {
	s.metricsHandler.ServeHTTP(rq.w, rq.r)
	return nil
}

// bearerToken returns the credential of an Authorization header of the
// Bearer scheme, whose name is case-insensitive (RFC 9110, section 11.1).
func bearerToken(authz string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authz), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// checkQuery refuses a query string that does not parse, or that holds a
// parameter the route does not take, one given twice or one left empty.
func checkQuery(r *http.Request, params []string) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest("query", "the query string is malformed")
	}
	for name, vs := range q {
		if !slices.Contains(params, name) {
			return badRequest(name, "unknown query parameter "+strconv.Quote(name))
		}
		if len(vs) > 1 {
			return badRequest(name, name+" may be given once")
		}
		if vs[0] == "" {
			return badRequest(name, name+" is empty: give it a value or leave it out")
		}
	}
	return nil
}

// clientIP is the socket peer, unless the peer is a trusted proxy: then the
// rightmost address in X-Forwarded-For that is not itself a trusted proxy.
// A malformed header is ignored, so it can never widen what a caller gets.
func (s *Server) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	ip := peer.Addr().Unmap().WithZone("")
	if !s.trusted(ip) {
		return ip.String()
	}
	xff := r.Header.Values("X-Forwarded-For")
	var hops []string
	for _, v := range xff {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip.String()
		}
		// A zone names an interface of the proxy's host, not the client.
		a = a.Unmap().WithZone("")
		if !s.trusted(a) {
			return a.String()
		}
	}
	return ip.String()
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// actor is who made the request, for its audit event.
func (rq *request) actor() event.Actor {
	a := event.Actor{Type: "anonymous", IP: rq.ip, UserAgent: rq.r.UserAgent()}
	switch {
	case rq.key != nil:
		a.Type, a.ID, a.Name = "service", "apikey:"+rq.key.ID, rq.key.Name
		a.Auth = event.Auth{Method: "api_key"}
	case rq.pr != nil:
		mfa := true
		a.Type, a.ID, a.Name, a.Email = "user", rq.pr.User.ID, rq.pr.User.Name, rq.pr.User.Email
		a.SessionID = rq.pr.Session.ID
		a.Auth = event.Auth{Method: "session:" + rq.pr.Session.Factor, MFA: &mfa}
	}
	return a
}

// changeDecorator completes the audit event of a change committed with it,
// which records the status the request is about to answer.
func (rq *request) changeDecorator(status int) func(*event.Event) {
	return func(ev *event.Event) {
		rq.decorate(ev)
		ev.Request.Status = status
		ev.Outcome.Status = status
	}
}

// decorate completes an audit event of this request, removes from it any
// API key the client put where it does not belong, and cleans what the
// client sent into text the log can read back.
func (rq *request) decorate(ev *event.Event) {
	ev.Actor = rq.actor()
	ev.Source = event.Source{Name: event.SelfSource, Host: rq.s.host, Version: rq.s.cfg.Version}
	ev.Request = event.Request{ID: rq.id, Method: rq.r.Method, Path: rq.r.URL.Path,
		DurationMicros: time.Since(rq.start).Microseconds()}
	redactEvent(ev)
	ev.Clean()
}

// audit records the request in its tenant's log, or in the operator's when
// it has no tenant. Routes that record their own success in their
// transaction are skipped when they did.
func (s *Server) audit(rq *request) {
	if rq.audited || s.cfg.WithoutSelfAudit {
		return
	}
	ctx := context.WithoutCancel(rq.r.Context())
	t := rq.tenant
	if t == nil {
		var err error
		if t, err = s.in.Operator(ctx); err != nil {
			s.log.Error("self audit: no operator tenant", "request_id", rq.id, "error", err)
			return
		}
	}
	ev := event.New()
	ev.OccurredAt = rq.start.UTC()
	ev.Action = rq.route.name
	ev.Category = rq.route.category
	ev.Target = rq.target
	ev.Outcome = event.Outcome{Result: resultOf(rq.status), Status: rq.status, Reason: rq.reason}
	if len(rq.details) > 0 {
		ev.Details = detailsValue(rq.details)
	}
	rq.decorate(ev)
	if rq.as != nil {
		ev.Actor = *rq.as
	}
	ev.Request.Status = rq.status
	p, err := s.in.Log.Prepare(ctx, t, ev)
	if err == nil {
		err = s.in.Log.Enqueue(ctx, t, []*auditlog.Prepared{p})
	}
	if err != nil {
		s.log.Error("self audit failed", "request_id", rq.id, "route", rq.route.name, "error", err)
	}
}

func resultOf(status int) string {
	switch {
	case status < 400:
		return "success"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "denied"
	case status < 500:
		return "failure"
	}
	return "error"
}

// loginOrigin refuses a sign-in step a browser sent from a page of another
// origin, even of the same site: it could sign the browser into the
// sender's account (login CSRF), which the session cookie's SameSite does
// not stop between sibling hosts. A browser that sends Sec-Fetch-Site has
// judged the origins itself, whatever a proxy did to the Host; for one that
// sends only Origin, it is compared with the host asked for, or with the
// X-Forwarded-Host of a trusted proxy. Clients that are not browsers send
// neither header.
func (s *Server) loginOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		if site != "same-origin" && site != "none" {
			return forbidden("a sign-in step sent by another site's page is refused: sign in on attest's own page")
		}
		return nil
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "https://"+r.Host {
		return nil
	}
	if fwd := r.Header.Get("X-Forwarded-Host"); fwd != "" && o == "https://"+strings.TrimSpace(strings.Split(fwd, ",")[0]) {
		if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && s.trusted(peer.Addr().Unmap().WithZone("")) {
			return nil
		}
	}
	return forbidden("a sign-in step sent by a page of another origin (" + sanitizeOrigin(o) + ") is refused: " +
		"sign in on attest's own page")
}

// sanitizeOrigin keeps an Origin header fit to quote: at most 100 bytes,
// printable ASCII.
func sanitizeOrigin(o string) string {
	b := []byte(o)
	if len(b) > 100 {
		b = b[:100]
	}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// securityHeaders sets the headers every response carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

// httpMetrics count API requests.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "attest_http_requests_total",
			Help: "API requests, by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "attest_http_request_seconds",
			Help: "API request durations, by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// detailsValue encodes a details map in canonical form.
func detailsValue(m map[string]any) jsontext.Value {
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	v := jsontext.Value(b)
	if v.Canonicalize() != nil {
		return nil
	}
	return v
}
