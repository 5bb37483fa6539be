// Package eventgen makes realistic synthetic audit events for tests and for
// attest bench: a platform's users and services reading and changing calls,
// transcripts and recordings, with the skewed distributions of real traffic
// (a few busy actors, many rare targets, mostly successes).
package eventgen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/attest/attest/internal/event"
)

// Generator produces events deterministically from a seed.
type Generator struct {
	r     *rand.Rand
	start time.Time
	n     int64
	// Actors, Targets and IPs are the population sizes.
	Actors, Targets, IPs int
}

// New returns a generator whose events start at start.
func New(seed uint64, start time.Time) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), start: start,
		Actors: 5000, Targets: 200000, IPs: 3000}
}

var actions = []struct {
	action, category, target string
	weight                   int
}{
	{"transcript.read", "data_access", "transcript", 30},
	{"recording.play", "data_access", "recording", 14},
	{"call.create", "data_change", "call", 12},
	{"call.update", "data_change", "call", 8},
	{"transcript.export", "data_access", "transcript", 2},
	{"user.login", "authentication", "session", 10},
	{"user.logout", "authentication", "session", 5},
	{"user.mfa.verify", "authentication", "session", 6},
	{"role.grant", "authorization", "user", 1},
	{"role.revoke", "authorization", "user", 1},
	{"settings.update", "configuration", "tenant", 1},
	{"apikey.create", "admin", "api_key", 1},
	{"lead.update", "data_change", "lead", 6},
	{"listing.read", "data_access", "listing", 9},
	{"alert.raise", "security", "alert", 1},
	{"job.run", "system", "job", 3},
}

var totalWeight = func() int {
	n := 0
	for _, a := range actions {
		n += a.weight
	}
	return n
}()

var sources = []string{"voice-api", "dialer", "transcriber", "crm-sync", "web-app", "billing"}
var agents = []string{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/128.0 Safari/537.36", "voice-api-client/2.3.1", "okhttp/4.12.0"}

// zipf picks from [0, n) with a skew towards small numbers.
func (g *Generator) zipf(n int) int {
	f := g.r.Float64()
	return int(float64(n) * f * f * f)
}

// Next returns the next event. Its id is unique for the generator's seed.
func (g *Generator) Next() *event.Event {
	g.n++
	ev := event.New()
	ev.ID = fmt.Sprintf("evt-%x-%d", g.r.Uint32(), g.n)
	ev.OccurredAt = g.start.Add(time.Duration(g.n) * 3 * time.Millisecond).Add(-time.Duration(g.r.IntN(2000)) * time.Millisecond).UTC()
	w := g.r.IntN(totalWeight)
	a := actions[0]
	for _, x := range actions {
		if w < x.weight {
			a = x
			break
		}
		w -= x.weight
	}
	ev.Action, ev.Category = a.action, a.category
	ev.Source = event.Source{Name: sources[g.zipf(len(sources))], Version: "1.4.2"}
	actor := g.zipf(g.Actors)
	if actor%17 == 0 {
		ev.Actor = event.Actor{Type: "service", ID: fmt.Sprintf("svc-%d", actor)}
	} else {
		ev.Actor = event.Actor{Type: "user", ID: fmt.Sprintf("usr-%05d", actor), Name: fmt.Sprintf("Agent %d", actor),
			Email: fmt.Sprintf("agent%d@brokerage.example", actor)}
		mfa := actor%5 != 0
		ev.Actor.Auth = event.Auth{Method: "password", MFA: &mfa}
		ev.Actor.SessionID = fmt.Sprintf("ses-%d", actor*7+int(g.n/5000))
	}
	ev.Actor.IP = fmt.Sprintf("10.%d.%d.%d", actor%200, (actor/200)%250, 1+actor%250)
	ev.Actor.UserAgent = agents[actor%len(agents)]
	t := g.zipf(g.Targets)
	ev.Target = event.Target{Type: a.target, ID: fmt.Sprintf("%s-%06d", a.target, t), Name: fmt.Sprintf("%s %d Maple Street", a.target, t)}
	switch r := g.r.IntN(100); {
	case r < 93:
		ev.Outcome = event.Outcome{Result: "success", Status: 200}
	case r < 97:
		ev.Outcome = event.Outcome{Result: "denied", Reason: "missing permission", Status: 403}
	case r < 99:
		ev.Outcome = event.Outcome{Result: "failure", Reason: "validation failed", Status: 422}
	default:
		ev.Outcome = event.Outcome{Result: "error", Reason: "upstream timeout", Status: 504}
	}
	ev.Request = event.Request{ID: fmt.Sprintf("req-%x", g.r.Uint64()), Method: "GET", Path: "/v1/" + a.target + "s/" + ev.Target.ID,
		Status: ev.Outcome.Status, DurationMicros: int64(g.r.IntN(200000))}
	if a.category == "data_access" {
		ev.Data = event.Data{Classification: "confidential", Fields: []string{"transcript", "caller_phone"}, RecordCount: 1}
	}
	return ev
}
