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
	// that its session still stands, unless Config.StreamCheck says
	// otherwise.
	streamCheck = 15 * time.Second
)

func (s *Server) streamRoutes() []*route {
	return []*route{
		{method: "GET", pattern: "/api/v1/stream", name: "console.stream", category: "data_access",
			perm: access.PermComplianceRead, handle: s.stream},
	}
}

// streamHub hands each tenant's committed changes to its open streams. It
// observes the audit log only while a stream is open, and sees the events
// of this process alone: a change committed by another replica reaches the
// page at its next reload.
type streamHub struct {
	log *auditlog.Log

	mu     sync.Mutex // guards subs, stop and closed
	subs   map[int64]map[*streamSub]struct{}
	stop   func()
	closed bool
	// open counts the streams, so that the observer costs one atomic load
	// per event while there are none.
	open atomic.Int64
	done chan struct{}
}

// streamSub is one open stream: the changes seen since its last notice,
// and a wake-up for it.
type streamSub struct {
	wake    chan struct{}
	changes atomic.Int64
}

func newStreamHub(l *auditlog.Log) *streamHub {
	return &streamHub{log: l, subs: map[int64]map[*streamSub]struct{}{}, done: make(chan struct{})}
}

// subscribe opens a stream of tenant id's changes; ok is false once the
// hub has closed for shutdown.
func (h *streamHub) subscribe(id int64) (sub *streamSub, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	sub = &streamSub{wake: make(chan struct{}, 1)}
	if h.subs[id] == nil {
		h.subs[id] = map[*streamSub]struct{}{}
	}
	h.subs[id][sub] = struct{}{}
	if h.open.Add(1) == 1 {
		h.stop = h.log.Observe(h.observe)
	}
	return sub, true
}

func (h *streamHub) unsubscribe(id int64, sub *streamSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[id], sub)
	if len(h.subs[id]) == 0 {
		delete(h.subs, id)
	}
	if h.open.Add(-1) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

// observe counts a committed event for the streams of its tenant. Reads
// are not changes: every page's own requests are recorded as data_access,
// and counting them would make each reload announce the next.
func (h *streamHub) observe(t *tenant.Tenant, ev *event.Event) {
	if h.open.Load() == 0 || ev.Category == "data_access" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[t.ID] {
		sub.changes.Add(1)
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
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
// of changes, within streamGather of each burst of changes committed in
// the caller's tenant, and a comment every streamCheck to keep proxies from
// closing the connection. The notice says nothing of what changed: the
// page asks the API again, which answers what the caller may see. The
// stream ends when the session does, with an "end" notice.
func (s *Server) stream(rq *request) error {
	if rq.pr == nil {
		return errNeedsSession
	}
	tok, _, err := credential(rq.r)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(rq.w)
	sub, ok := s.streams.subscribe(rq.tenant.ID)
	if !ok {
		return &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable",
			detail: "attest is shutting down: connect again in a moment"}
	}
	defer s.streams.unsubscribe(rq.tenant.ID, sub)
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.streams.done:
			send("event: end\ndata: {\"reason\":\"shutting down\"}\n\n")
			return nil
		case <-check.C:
			if _, err := s.in.Identity.Sessions.Validate(ctx, tok, false); err != nil {
				if ctx.Err() == nil && isSessionGone(err) {
					send("event: end\ndata: {\"reason\":\"session ended\"}\n\n")
				}
				return nil
			}
			if !send(": keep-alive\n\n") {
				return nil
			}
		case <-sub.wake:
			select {
			case <-time.After(streamGather):
			case <-ctx.Done():
				return nil
			}
			n := sub.changes.Swap(0)
			if n > 0 && !send("event: change\ndata: {\"changes\":%d}\n\n", n) {
				return nil
			}
		}
	}
}

// isSessionGone reports the errors of a session that no longer stands.
func isSessionGone(err error) bool {
	return errors.Is(err, identity.ErrNoSession) || errors.Is(err, identity.ErrSessionEnded) ||
		errors.Is(err, identity.ErrNotActive)
}
