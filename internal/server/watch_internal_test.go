package server

import (
	"testing"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tenant"
	"github.com/prometheus/client_golang/prometheus"
)

// TestWatchOnlyAttestsOwnChanges feeds the observer events: only attest's
// own record of a successful watched change asks for a run, and a full
// queue drops and counts rather than waits.
func TestWatchOnlyAttestsOwnChanges(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := &Server{alerts: newAlertJobs(nil, Config{Registry: reg})}
	obs := s.observeWatched(map[string][]string{"user.create": {"IAM-01"}})
	tn := &tenant.Tenant{ID: 7, Name: "acme"}
	ev := func(source, action, result string) *event.Event {
		return &event.Event{Source: event.Source{Name: source}, Action: action, Outcome: event.Outcome{Result: result}}
	}
	for _, e := range []*event.Event{
		ev("voice-api", "user.create", "success"),
		ev(event.SelfSource, "user.create", "failure"),
		ev(event.SelfSource, "user.list", "success"),
	} {
		obs(tn, e)
	}
	if n := len(s.alerts.triggers); n != 0 {
		t.Fatalf("%d runs asked for by events that are not attest's own successful watched changes", n)
	}
	obs(tn, ev(event.SelfSource, "user.create", "success"))
	if tr := <-s.alerts.triggers; tr.t != tn || len(tr.ids) != 1 || tr.ids[0] != "IAM-01" {
		t.Fatalf("trigger = %+v", tr)
	}
	for range watchQueue + 3 {
		obs(tn, ev(event.SelfSource, "user.create", "success"))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "attest_control_watch_dropped_total" {
			got = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if got != 3 {
		t.Errorf("dropped = %v, want 3", got)
	}
}

// BenchmarkObserveUnwatched is what the watch adds to the commit of one
// ingested event whose action no control watches.
func BenchmarkObserveUnwatched(b *testing.B) {
	s := &Server{alerts: newAlertJobs(nil, Config{Registry: prometheus.NewRegistry()})}
	obs := s.observeWatched(map[string][]string{"user.create": {"IAM-01"}})
	tn := &tenant.Tenant{ID: 7, Name: "acme"}
	ev := &event.Event{Source: event.Source{Name: "voice-api"}, Action: "transcript.read",
		Outcome: event.Outcome{Result: "success"}}
	for b.Loop() {
		obs(tn, ev)
	}
}
