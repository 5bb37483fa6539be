package server

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/tenant"
)

// Timing of the change stream.
const (
	// streamGather is how long a stream gathers the changes of a burst
	// into one notice after the first.
	streamGather = 200 * time.Millisecond
	// streamCheck is how often a stream sends a keep-alive and checks
	// that its session and permission still stand, unless
	// Config.StreamCheck says otherwise.
	streamCheck = 15 * time.Second
)

func (s *Server) streamRoutes() []*route {
	return []*route{
		// An auditor's grant is bounded to its period, and the stream tells
		// of changes now: it is not theirs.
		{method: "GET", pattern: "/api/v1/stream", name: "console.stream", category: "data_access",
			perm: access.PermComplianceRead, unbounded: true, background: true, handle: s.stream},
	}
}

// maxStreamsPerSession bounds the streams one session holds open: a
// console tab holds one.
const maxStreamsPerSession = 4

// streamHub hands each tenant's changes to its open streams. It observes
// the audit log only while a stream is open, and sees the events of this
// process alone: a change committed by another replica reaches the page
// at its next reload. What an event costs the log's writer does not grow
// with the streams: one map read and, for a tenant with streams, one
// counter and at most one channel close.
type streamHub struct {
	log *auditlog.Log

	mu       sync.RWMutex // guards feeds, sessions, stop and closed
	feeds    map[int64]*streamFeed
	sessions map[string]int
	stop     func()
	closed   bool
	// open counts the streams, so that the observer costs one atomic load
	// per event while there are none.
	open atomic.Int64
	done chan struct{}
}

// streamFeed is one tenant's changes: a count that only grows, and a
// channel closed at the next change for those waiting on it.
type streamFeed struct {
	mu      sync.Mutex // guards changes and next
	changes int64
	next    chan struct{}
	subs    int // guarded by the hub's mu
}

// wait answers the count of changes so far and a channel closed at the
// next change.
func (f *streamFeed) wait() (int64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = make(chan struct{})
	}
	return f.changes, f.next
}

func (f *streamFeed) count() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes
}

// closedChan is a channel closed already: waiting on it ends at once.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newStreamHub(l *auditlog.Log) *streamHub {
	return &streamHub{log: l, feeds: map[int64]*streamFeed{}, sessions: map[string]int{}, done: make(chan struct{})}
}

var (
	errStreamsClosed = &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable",
		detail: "attest is shutting down: connect again in a moment"}
	errTooManyStreams = &apiError{status: http.StatusTooManyRequests, title: "Too many requests",
		detail: fmt.Sprintf("this session holds %d change streams open already: close a console tab", maxStreamsPerSession)}
)

// subscribe opens a stream of tenant id's changes for a session.
func (h *streamHub) subscribe(id int64, session string) (*streamFeed, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, errStreamsClosed
	case h.sessions[session] >= maxStreamsPerSession:
		return nil, errTooManyStreams
	}
	h.sessions[session]++
	f := h.feeds[id]
	if f == nil {
		f = &streamFeed{}
		h.feeds[id] = f
	}
	f.subs++
	if h.open.Add(1) == 1 {
		h.stop = h.log.Observe(h.observe)
	}
	return f, nil
}

func (h *streamHub) unsubscribe(id int64, session string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[session]--; h.sessions[session] <= 0 {
		delete(h.sessions, session)
	}
	if f := h.feeds[id]; f != nil {
		if f.subs--; f.subs <= 0 {
			delete(h.feeds, id)
		}
	}
	if h.open.Add(-1) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

// observe counts a change for the streams of its tenant. A change is
// attest's own record of something done: reads are not (counting a page's
// own requests would make each reload announce the next), nor are
// failures, which anyone can cause without a credential, nor are the
// events producers send or attest's record of their sending, which come as
// fast as the platform works.
func (h *streamHub) observe(t *tenant.Tenant, ev *event.Event) {
	if h.open.Load() == 0 || ev.Source.Name != event.SelfSource || ev.Outcome.Result != "success" || readOnly(ev) {
		return
	}
	h.mu.RLock()
	f := h.feeds[t.ID]
	h.mu.RUnlock()
	if f == nil {
		return
	}
	f.mu.Lock()
	f.changes++
	if f.next != nil {
		close(f.next)
		f.next = nil
	}
	f.mu.Unlock()
}

// readOnly reports attest's records that change nothing a page shows:
// reads, whatever their category (a GET of the users is an admin event),
// authorization questions, the ingest of producers' events, and security
// events, which failed attempts anyone can make give rise to.
func readOnly(ev *event.Event) bool {
	switch {
	case ev.Category == "data_access" || ev.Category == "security":
		return true
	case ev.Request.Method == http.MethodGet || ev.Request.Method == http.MethodHead:
		return true
	}
	switch ev.Action {
	case "audit.events.ingest", "authz.check", "authz.check.batch":
		return true
	}
	return false
}

// close ends every stream, so that a graceful shutdown need not wait for
// them, and refuses new ones.
func (h *streamHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// stream answers server-sent events: a "change" notice, carrying the count
// of changes, within streamGather of each burst of changes in the caller's
// tenant, and a comment every Config.StreamCheck to keep proxies from
// closing the connection. The notice says nothing of what changed: the
// page asks the API again, which answers what the caller may see. At each
// check the session and the permission are read again: the stream ends,
// with an "end" notice, when either is gone.
func (s *Server) stream(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	tok, _, err := credential(rq.r)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(rq.w)
	sid := rq.pr.Session.ID
	feed, err := s.streams.subscribe(rq.tenant.ID, sid)
	if err != nil {
		return err
	}
	defer s.streams.unsubscribe(rq.tenant.ID, sid)
	h := rq.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	rq.w.WriteHeader(http.StatusOK)
	send := func(format string, args ...any) bool {
		if _, err := fmt.Fprintf(rq.w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The retry field sets how soon the browser reconnects after a drop.
	if !send("retry: 2000\n: attest change stream\n\n") {
		return nil
	}
	ctx := rq.r.Context()
	check := time.NewTicker(s.cfg.StreamCheck)
	defer check.Stop()
	seen, next := feed.wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.streams.done:
			send("event: end\ndata: {\"reason\":\"shutting down\"}\n\n")
			return nil
		case <-check.C:
			if reason := s.streamStands(rq, tok); reason != "" {
				if ctx.Err() == nil {
					send("event: end\ndata: {\"reason\":%q}\n\n", reason)
				}
				return nil
			}
			if !send(": keep-alive\n\n") {
				return nil
			}
		case <-next:
			select {
			case <-time.After(streamGather):
			case <-ctx.Done():
				return nil
			}
			now := feed.count()
			if !send("event: change\ndata: {\"changes\":%d}\n\n", now-seen) {
				return nil
			}
			// The changes counted are in this notice; any since wake the
			// next one at once.
			var c int64
			seen = now
			if c, next = feed.wait(); c > seen {
				next = closedChan
			}
		}
	}
}

// streamStands reads the stream's session and its holder's roles again,
// answering why the stream must end, or "" while it may go on.
func (s *Server) streamStands(rq *request, tok string) string {
	ctx := rq.r.Context()
	pr, err := s.in.Identity.Sessions.Validate(ctx, tok, false)
	switch {
	case err != nil && isSessionGone(err):
		return "session ended"
	case err != nil:
		return "session unreadable"
	}
	sub, err := s.subjectOf(rq, pr, rq.tenant)
	if err != nil {
		return "session unreadable"
	}
	if d := sub.Check(rq.route.perm, s.in.Now()); !d.Allow || d.Period != nil {
		return "permission withdrawn"
	}
	return ""
}

// isSessionGone reports the errors of a session that no longer stands.
func isSessionGone(err error) bool {
	return errors.Is(err, identity.ErrNoSession) || errors.Is(err, identity.ErrSessionEnded) ||
		errors.Is(err, identity.ErrNotActive)
}
