package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
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

// streamPoll is how often, while streams are open, the hub reads each of
// their tenants' count of changes.
const streamPoll = 250 * time.Millisecond

// streamPollGap is the least time between two rounds of reading.
const streamPollGap = 50 * time.Millisecond

// streamHub hands each tenant's changes to its open streams. The writer
// of every process counts a tenant's changes in its log state, in the
// transaction that appends them (auditlog.IsChange says what counts), so
// a change committed by a host command or another replica reaches the
// page as one committed here does. While streams are open the hub reads
// the counts of their tenants, in one query, every streamPoll and at once
// when this process commits a change: one row a tenant, however many
// streams it has. What an event costs the log's writer does not grow with
// the streams: while any is open, a test of the event and at most one
// channel send.
type streamHub struct {
	log  *auditlog.Log
	kick chan struct{} // a change committed here: read the counts now

	mu       sync.RWMutex // guards feeds, sessions, open, stopPoll, stopObs and closed
	feeds    map[int64]*streamFeed
	sessions map[string]int
	open     int
	stopPoll chan struct{} // closed to end the poller, which runs while open > 0
	stopObs  func()        // ends the observing of this process's changes
	closed   bool
	done     chan struct{}
}

// streamFeed is one tenant's changes: the count of its log's changes last
// read, which only grows, and a channel closed when it grows for those
// waiting on it.
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

// advance takes the count of changes read from the log, waking those
// waiting when it grew.
func (f *streamFeed) advance(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n <= f.changes {
		return
	}
	f.changes = n
	if f.next != nil {
		close(f.next)
		f.next = nil
	}
}

// closedChan is a channel closed already: waiting on it ends at once.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newStreamHub(l *auditlog.Log) *streamHub {
	return &streamHub{log: l, kick: make(chan struct{}, 1), feeds: map[int64]*streamFeed{}, sessions: map[string]int{},
		done: make(chan struct{})}
}

// observe wakes the poller at a change committed by this process, so that
// its streams need not wait for the next round.
func (h *streamHub) observe(_ *tenant.Tenant, ev *event.Event) {
	if !auditlog.IsChange(ev) {
		return
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

var (
	errStreamsClosed = &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable",
		detail: "attest is shutting down: connect again in a moment"}
	errTooManyStreams = &apiError{status: http.StatusTooManyRequests, title: "Too many requests",
		detail: fmt.Sprintf("this session holds %d change streams open already: close a console tab", maxStreamsPerSession)}
)

// subscribe opens a stream of tenant id's changes for a session. The
// stream counts changes from the log's count now.
func (h *streamHub) subscribe(ctx context.Context, id int64, session string) (*streamFeed, error) {
	if err := h.admits(session); err != nil {
		return nil, err
	}
	counts, err := h.log.Changes(ctx, id)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.admitsLocked(session); err != nil {
		return nil, err
	}
	h.sessions[session]++
	f := h.feeds[id]
	if f == nil {
		f = &streamFeed{}
		h.feeds[id] = f
	}
	f.subs++
	f.advance(counts[id])
	if h.open++; h.open == 1 {
		h.stopPoll = make(chan struct{})
		go h.poll(h.stopPoll)
		h.stopObs = h.log.Observe(h.observe)
	}
	return f, nil
}

// admits refuses a stream while attest shuts down or when the session
// holds its most already, before anything is read for it.
func (h *streamHub) admits(session string) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.admitsLocked(session)
}

func (h *streamHub) admitsLocked(session string) error {
	switch {
	case h.closed:
		return errStreamsClosed
	case h.sessions[session] >= maxStreamsPerSession:
		return errTooManyStreams
	}
	return nil
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
	if h.open--; h.open == 0 {
		h.stopObs()
		close(h.stopPoll)
	}
}

// poll reads the counts of changes of the tenants with open streams, in
// one query, every streamPoll and when kicked, until stop is closed.
// Counts that cannot be read now are read at the next round.
func (h *streamHub) poll(stop <-chan struct{}) {
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	var ids []int64
	feeds := map[int64]*streamFeed{}
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		case <-h.kick:
		}
		ids = ids[:0]
		clear(feeds)
		h.mu.RLock()
		for id, f := range h.feeds {
			ids = append(ids, id)
			feeds[id] = f
		}
		h.mu.RUnlock()
		ctx, cancel := context.WithTimeout(context.Background(), streamPoll)
		counts, err := h.log.Changes(ctx, ids...)
		cancel()
		if err == nil {
			for id, n := range counts {
				feeds[id].advance(n)
			}
		}
		// However fast changes come, rounds keep this far apart: a
		// stream gathers a burst for streamGather anyway.
		select {
		case <-stop:
			return
		case <-time.After(streamPollGap):
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
	feed, err := s.streams.subscribe(rq.r.Context(), rq.tenant.ID, sid)
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
	seen, next := feed.wait()
	// Each notice carries the count of changes as its id, which a browser
	// reconnecting after a drop sends back: the changes made while it was
	// away, here or in any other process, are announced at once. A count
	// ahead of the log's, or none, counts from now.
	if last, err := strconv.ParseInt(rq.r.Header.Get("Last-Event-ID"), 10, 64); err == nil && last >= 0 && last < seen {
		seen, next = last, closedChan
	}
	// The retry field sets how soon the browser reconnects after a drop.
	if !send("retry: 2000\nid: %d\n: attest change stream\n\n", seen) {
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
			// A notice goes only to a session and permission that still
			// stand, not merely to those that stood at the last check; the
			// stream itself ends at that check, so that a page showing why
			// the session ended, such as a changed password, keeps it on
			// show until then.
			now := feed.count()
			if s.streamStands(rq, tok) == "" {
				if !send("id: %d\nevent: change\ndata: {\"changes\":%d}\n\n", now, now-seen) {
					return nil
				}
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
