package auditlog

import (
	"sync"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tenant"
)

// Observer sees an event of tenant t once it has committed to t's log.
// It runs in the log's writer goroutine, so it must return at once:
// hand the work to another goroutine, never wait on one. It must not
// change ev or keep it past its return.
type Observer func(t *tenant.Tenant, ev *event.Event)

// observers are the functions that see committed events.
type observers struct {
	mu   sync.Mutex // guards list and next
	list map[int]Observer
	next int
}

// Observe makes f see every event this process commits from now on, until
// the returned function is called. Events that other processes commit to
// the same database are not seen.
func (l *Log) Observe(f Observer) (stop func()) {
	l.obs.mu.Lock()
	defer l.obs.mu.Unlock()
	if l.obs.list == nil {
		l.obs.list = map[int]Observer{}
	}
	id := l.obs.next
	l.obs.next++
	l.obs.list[id] = f
	return func() {
		l.obs.mu.Lock()
		defer l.obs.mu.Unlock()
		delete(l.obs.list, id)
	}
}

// snapshot returns the observers, or nil when there are none.
func (o *observers) snapshot() []Observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.list) == 0 {
		return nil
	}
	out := make([]Observer, 0, len(o.list))
	for _, f := range o.list {
		out = append(out, f)
	}
	return out
}

// notify shows the observers the events a committed batch stored: not
// those refused, nor duplicates of events logged before.
func (l *Log) notify(batch []*op) {
	fs := l.obs.snapshot()
	if fs == nil {
		return
	}
	for _, o := range batch {
		if o.t == nil || o.err != nil {
			continue
		}
		for i, p := range o.events {
			if i >= len(o.results) || o.results[i].Err != nil || o.results[i].Duplicate {
				continue
			}
			for _, f := range fs {
				f(o.t, p.Event)
			}
		}
	}
}
