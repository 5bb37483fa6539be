package auditlog

import (
	"context"
	"testing"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

// TestChangesCounted appends producers' events and attest's own, of every
// kind IsChange tells apart, and reads the count the writer kept: only
// attest's successful changes count, and an event sent again counts once.
func TestChangesCounted(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		tl := newTestLog(t, db, t.TempDir(), 200)
		if n, err := tl.l.Changes(ctx, tl.t.ID); err != nil || n[tl.t.ID] != 0 || len(n) != 1 {
			t.Fatalf("after producers' events alone: %v changes, %v", n, err)
		}
		g := eventgen.New(11, time.Now())
		self := func(category, action, method, result string) *event.Event {
			ev := g.Next()
			ev.Source = event.Source{Name: event.SelfSource}
			ev.Category, ev.Action, ev.Outcome.Result = category, action, result
			ev.Request.Method = method
			return ev
		}
		evs := []*event.Event{
			self("admin", "user.disable", "POST", "success"),              // a change
			self("configuration", "retention.update", "", "success"),      // a change, from the host
			self("admin", "user.list", "GET", "success"),                  // a read
			self("data_access", "audit.trail.query", "", "success"),       // a read
			self("admin", "user.disable", "POST", "denied"),               // refused
			self("security", "security.login.burst", "", "success"),       // a security event
			self("authorization", "authz.check", "POST", "success"),       // a question
			self("data_change", "audit.events.ingest", "POST", "success"), // producers' sending
		}
		want := []bool{true, true, false, false, false, false, false, false, false}
		for i, ev := range evs {
			if got := IsChange(ev); got != want[i] {
				t.Errorf("IsChange(%s %s %s %s) = %v", ev.Category, ev.Action, ev.Request.Method, ev.Outcome.Result, got)
			}
		}
		evs = append(evs, evs[0]) // sent again: a duplicate
		var ps []*Prepared
		for _, ev := range evs {
			p, err := tl.l.Prepare(ctx, tl.t, ev)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		if _, err := tl.l.Append(ctx, tl.t, ps); err != nil {
			t.Fatal(err)
		}
		if n, err := tl.l.Changes(ctx, tl.t.ID, 424242); err != nil || n[tl.t.ID] != 2 || len(n) != 1 {
			t.Fatalf("%v changes counted (%v), want 2 of the tenant's alone", n, err)
		}
	})
}
