package server_test

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

type reviewItem struct {
	UserID    string `json:"user_id"`
	UserEmail string `json:"user_email"`
	UserName  string `json:"user_name"`
	Role      string
	Reviewer  string `json:"reviewer_id"`
	Decision  string
	Reason    string
	DecidedBy string `json:"decided_by"`
	DecidedAt string `json:"decided_at"`
}

type reviewCampaign struct {
	ID          string
	Name        string
	Status      string
	Roles       []string
	OnDeadline  string `json:"on_deadline"`
	EscalateTo  string `json:"escalate_to"`
	StartedAt   string `json:"started_at"`
	Deadline    string
	EscalatedAt string `json:"escalated_at"`
	CompletedAt string `json:"completed_at"`
	ItemCount   int    `json:"item_count"`
	Decided     int    `json:"decided_count"`
}

type reviewAnswer struct {
	Campaign reviewCampaign
	Items    []reviewItem
}

// item returns the item of a user's role, failing the test without one.
func (a reviewAnswer) item(t *testing.T, userID, role string) reviewItem {
	t.Helper()
	for _, it := range a.Items {
		if it.UserID == userID && it.Role == role {
			return it
		}
	}
	t.Fatalf("campaign %s has no item for %s/%s: %+v", a.Campaign.ID, userID, role, a.Items)
	return reviewItem{}
}

// reviewerOf is who reviews subject by default: the first user by id of
// managers who is not the subject.
func reviewerOf(subject string, managers ...string) string {
	managers = slices.Clone(managers)
	slices.Sort(managers)
	for _, m := range managers {
		if m != subject {
			return m
		}
	}
	return ""
}

func decision(verdict, reason string) string {
	return fmt.Sprintf(`{"decision":%q,"reason":%q}`, verdict, reason)
}

func decisionPath(campaign, user, role string) string {
	return "/api/v1/reviews/" + campaign + "/items/" + user + "/" + role + "/decision"
}

func problemField(t *testing.T, resp *http.Response) string {
	t.Helper()
	var p struct{ Field string }
	if err := jsonDecode(resp, &p); err != nil {
		t.Fatal(err)
	}
	return p.Field
}

func TestReviewCampaign(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		def := map[string]string{"Attest-Tenant": "default"}
		alice := ts.enrol(c, "default", "alice@example.com", "compliance_officer")
		bea := ts.enrol(c, "default", "bea@example.com", "compliance_officer")
		bob := ts.enrol(c, "default", "bob@example.com", "member")
		olga := ts.enrol(c, "default", "olga@example.com", "owner")
		managers := []string{alice.id, bea.id, olga.id} // the owner role carries reviews.manage too

		// A member may not start a campaign; a compliance officer may.
		ts.do("POST", "/api/v1/reviews", bob.session, nil, `{"name":"Q1"}`, http.StatusForbidden, nil)
		var started reviewAnswer
		ts.do("POST", "/api/v1/reviews", alice.session, nil, `{"name":"2026 Q1 access review"}`, http.StatusCreated, &started)
		cid := started.Campaign.ID
		start, _ := time.Parse(time.RFC3339, started.Campaign.StartedAt)
		deadline, _ := time.Parse(time.RFC3339, started.Campaign.Deadline)
		if started.Campaign.Status != "open" || started.Campaign.ItemCount != 4 || len(started.Items) != 4 ||
			deadline.Sub(start) != 14*24*time.Hour || started.Campaign.OnDeadline != "revoke" {
			t.Fatalf("started %+v", started)
		}
		for _, p := range []*person{alice, bea, bob, olga} {
			role := map[*person]string{alice: "compliance_officer", bea: "compliance_officer", bob: "member", olga: "owner"}[p]
			it := started.item(t, p.id, role)
			if it.UserEmail != p.email || it.UserName != "Test Person" || it.Decision != "" {
				t.Errorf("item of %s: %+v", p.email, it)
			}
			if want := reviewerOf(p.id, managers...); it.Reviewer != want || it.Reviewer == p.id {
				t.Errorf("item of %s goes to %s, want %s", p.email, it.Reviewer, want)
			}
		}

		// The scope froze at the start: a later account is not in it.
		dan := ts.enrol(c, "default", "dan@example.com", "member")
		var got reviewAnswer
		ts.do("GET", "/api/v1/reviews/"+cid, alice.session, nil, "", http.StatusOK, &got)
		if len(got.Items) != 4 || slices.ContainsFunc(got.Items, func(it reviewItem) bool { return it.UserID == dan.id }) {
			t.Errorf("the campaign changed after its start: %+v", got.Items)
		}

		// Bad decisions are refused by field.
		bobItem := started.item(t, bob.id, "member")
		reviewer := map[string]*person{alice.id: alice, bea.id: bea, olga.id: olga}[bobItem.Reviewer]
		for _, tc := range []struct{ body, field string }{
			{`{"decision":"keep"}`, "reason"},
			{`{"decision":"keep","reason":"  "}`, "reason"},
			{`{"decision":"maybe","reason":"x"}`, "decision"},
			{`{"decision":"keep","reason":"x","extra":1}`, "extra"},
		} {
			resp := ts.do("POST", decisionPath(cid, bob.id, "member"), reviewer.session, nil, tc.body, http.StatusBadRequest, nil)
			if f := problemField(t, resp); f != tc.field {
				t.Errorf("%s: field %q, want %q", tc.body, f, tc.field)
			}
		}
		ts.do("POST", decisionPath(cid, bob.id, "nope"), reviewer.session, nil, decision("keep", "x"), http.StatusNotFound, nil)

		// Nobody decides on their own access, even holding reviews.manage;
		// someone neither assigned nor a manager decides nothing.
		ts.do("POST", decisionPath(cid, alice.id, "compliance_officer"), alice.session, nil,
			decision("keep", "I need it"), http.StatusForbidden, nil)
		ts.do("POST", decisionPath(cid, bea.id, "compliance_officer"), bob.session, nil,
			decision("revoke", "why not"), http.StatusForbidden, nil)

		// Keep, with the reason; a second decision is refused.
		var kept struct {
			Item     reviewItem
			Campaign reviewCampaign
		}
		ts.do("POST", decisionPath(cid, bob.id, "member"), reviewer.session, nil, decision("keep", "works on support"),
			http.StatusOK, &kept)
		if kept.Item.Decision != "keep" || kept.Item.Reason != "works on support" || kept.Item.DecidedBy != reviewer.id ||
			kept.Item.DecidedAt == "" || kept.Campaign.Decided != 1 {
			t.Errorf("kept: %+v", kept)
		}
		ts.do("POST", decisionPath(cid, bob.id, "member"), reviewer.session, nil, decision("revoke", "second thoughts"),
			http.StatusConflict, nil)

		// Revoke takes the role away at once. A role with privileged
		// permissions goes only by someone who may manage roles: not the
		// reviewer unelevated, but an admin key.
		beaReviewer := map[string]*person{alice.id: alice, olga.id: olga}[started.item(t, bea.id, "compliance_officer").Reviewer]
		ts.do("GET", "/api/v1/reviews", bea.session, nil, "", http.StatusOK, nil)
		ts.do("POST", decisionPath(cid, bea.id, "compliance_officer"), beaReviewer.session, nil,
			decision("revoke", "moved to sales"), http.StatusForbidden, nil)
		ts.do("POST", decisionPath(cid, bea.id, "compliance_officer"), ts.operator, def,
			decision("revoke", "moved to sales"), http.StatusOK, nil)
		var user struct{ Roles []struct{ Role string } }
		ts.do("GET", "/api/v1/users/"+bea.id, ts.operator, def, "", http.StatusOK, &user)
		if len(user.Roles) != 0 {
			t.Errorf("bea still holds %+v", user.Roles)
		}
		ts.do("GET", "/api/v1/reviews", bea.session, nil, "", http.StatusForbidden, nil)

		// The last owner keeps the owner role: 409, and the item stays open.
		resp := ts.do("POST", decisionPath(cid, olga.id, "owner"), ts.operator, def, decision("revoke", "test"),
			http.StatusConflict, nil)
		if d := detail(t, resp); !strings.Contains(d, "last owner") {
			t.Errorf("last owner refusal: %q", d)
		}
		ts.do("GET", "/api/v1/reviews/"+cid, alice.session, nil, "", http.StatusOK, &got)
		if it := got.item(t, olga.id, "owner"); it.Decision != "" || got.Campaign.Decided != 2 {
			t.Errorf("after the refusal: %+v, %+v", it, got.Campaign)
		}
		ts.do("POST", decisionPath(cid, olga.id, "owner"), ts.operator, def, decision("keep", "founder"), http.StatusOK, nil)

		// The last decision completes the campaign.
		aliceReviewer := map[string]*person{bea.id: bea, olga.id: olga}[started.item(t, alice.id, "compliance_officer").Reviewer]
		ts.do("POST", decisionPath(cid, alice.id, "compliance_officer"), aliceReviewer.session, nil,
			decision("keep", "runs the audit"), http.StatusOK, &kept)
		if kept.Campaign.Status != "completed" || kept.Campaign.CompletedAt == "" || kept.Campaign.Decided != 4 {
			t.Errorf("after the last decision: %+v", kept.Campaign)
		}
		var list struct {
			Campaigns []reviewCampaign
			NextDue   string `json:"next_due"`
		}
		ts.do("GET", "/api/v1/reviews", alice.session, nil, "", http.StatusOK, &list)
		if len(list.Campaigns) != 1 || list.NextDue != start.AddDate(0, 3, 0).Format(time.RFC3339) {
			t.Errorf("list: %+v", list)
		}

		// The evidence, in JSON and CSV, each export on record.
		var exported struct {
			Tenant     string
			ExportedAt string `json:"exported_at"`
			reviewAnswer
		}
		resp = ts.do("GET", "/api/v1/reviews/"+cid+"/export", alice.session, nil, "", http.StatusOK, &exported)
		if exported.Tenant != "default" || exported.Campaign.Name != "2026 Q1 access review" ||
			exported.Campaign.Status != "completed" || len(exported.Items) != 4 ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("json export: %+v", exported)
		}
		if it := exported.item(t, bea.id, "compliance_officer"); it.Decision != "revoke" || it.Reason != "moved to sales" ||
			!strings.HasPrefix(it.DecidedBy, "apikey:") || it.Reviewer != beaReviewer.id || it.DecidedAt == "" {
			t.Errorf("exported item: %+v", it)
		}
		resp = ts.do("GET", "/api/v1/reviews/"+cid+"/export?format=csv", alice.session, nil, "", http.StatusOK, nil)
		rows, err := csv.NewReader(resp.Body).ReadAll()
		if err != nil || len(rows) != 5 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("csv export: %v, %v", err, rows)
		}
		col := map[string]int{}
		for i, name := range rows[0] {
			col[name] = i
		}
		var sawOwner bool
		for _, r := range rows[1:] {
			if r[col["campaign_id"]] != cid || r[col["campaign_status"]] != "completed" || r[col["decided_at"]] == "" {
				t.Errorf("csv row: %v", r)
			}
			if r[col["user_id"]] == olga.id {
				sawOwner = true
				if r[col["role"]] != "owner" || r[col["decision"]] != "keep" || r[col["reason"]] != "founder" ||
					r[col["decided_by"]] != "apikey:"+strings.Split(ts.operator, "_")[1] || r[col["user_email"]] != olga.email {
					t.Errorf("csv row of the owner: %v", r)
				}
			}
		}
		if !sawOwner {
			t.Errorf("csv: no row for the owner: %v", rows)
		}
		ts.do("GET", "/api/v1/reviews/"+cid+"/export?format=xml", alice.session, nil, "", http.StatusBadRequest, nil)
		var trail struct {
			Items []struct {
				Event struct {
					Actor   struct{ ID string }
					Target  struct{ ID string }
					Details map[string]any
				}
			}
		}
		ts.do("GET", "/api/v1/compliance/audit-trail?action=review.campaign.export.start", alice.session, nil, "",
			http.StatusOK, &trail)
		if len(trail.Items) != 2 || trail.Items[0].Event.Target.ID != cid || trail.Items[0].Event.Actor.ID != alice.id {
			t.Errorf("export records: %+v", trail.Items)
		}
		ts.do("GET", "/api/v1/compliance/audit-trail?outcome=success&action=review.item.decide", alice.session, nil, "",
			http.StatusOK, &trail)
		if len(trail.Items) != 4 {
			t.Errorf("%d decisions on record, want 4: %+v", len(trail.Items), trail.Items)
		}

		// Another tenant sees no such campaign.
		ts.do("POST", "/api/v1/tenants", ts.operator, nil, `{"name":"acme"}`, http.StatusCreated, nil)
		acme := map[string]string{"Attest-Tenant": "acme"}
		ts.do("GET", "/api/v1/reviews/"+cid, ts.operator, acme, "", http.StatusNotFound, nil)
		ts.do("GET", "/api/v1/reviews/"+cid+"/export", ts.operator, acme, "", http.StatusNotFound, nil)
		ts.do("POST", decisionPath(cid, dan.id, "member"), ts.operator, acme, decision("keep", "x"), http.StatusNotFound, nil)
		eve := ts.enrol(c, "acme", "eve@example.com", "compliance_officer")
		ts.do("GET", "/api/v1/reviews/"+cid, eve.session, nil, "", http.StatusNotFound, nil)
		ts.do("GET", "/api/v1/reviews", eve.session, nil, "", http.StatusOK, &list)
		if len(list.Campaigns) != 0 {
			t.Errorf("acme lists %+v", list.Campaigns)
		}
	})
}

func TestReviewCreateRefusals(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		alice := ts.enrol(c, "default", "alice@example.com", "compliance_officer")
		soon := c.Now().Add(8 * 24 * time.Hour).Format(time.RFC3339)
		for _, tc := range []struct{ body, field string }{
			{`{}`, "name"},
			{`{"name":"Q1","on_deadline":"ignore"}`, "on_deadline"},
			{`{"name":"Q1","on_deadline":"escalate"}`, "escalate_to"},
			{`{"name":"Q1","escalate_to":"` + alice.id + `"}`, "escalate_to"},
			{`{"name":"Q1","on_deadline":"escalate","escalate_to":"usr_nobody"}`, "escalate_to"},
			{`{"name":"Q1","reviewer":"usr_nobody"}`, "reviewer"},
			{`{"name":"Q1","deadline":"tomorrow"}`, "deadline"},
			{`{"name":"Q1","deadline":"2020-01-01T00:00:00Z"}`, "deadline"},
			{`{"name":"Q1","deadline":"` + c.Now().Add(time.Hour).Format(time.RFC3339) + `"}`, "deadline"},
			{`{"name":"Q1","roles":["nope"]}`, "roles"},
			{`{"name":"Q1","roles":["member","member"]}`, "roles"},
			{`{"name":"Q1","colour":"red"}`, "colour"},
		} {
			resp := ts.do("POST", "/api/v1/reviews", alice.session, nil, tc.body, http.StatusBadRequest, nil)
			if f := problemField(t, resp); f != tc.field {
				t.Errorf("%s: field %q, want %q", tc.body, f, tc.field)
			}
		}
		// The only one who could review her own access is nobody's reviewer.
		resp := ts.do("POST", "/api/v1/reviews", alice.session, nil, `{"name":"Q1"}`, http.StatusBadRequest, nil)
		if f := problemField(t, resp); f != "reviewer" {
			t.Errorf("self-review only: field %q", f)
		}
		// A named reviewer takes every item but their own, and a campaign
		// limited to roles nobody holds has nothing to do.
		bob := ts.enrol(c, "default", "bob@example.com", "member")
		var got reviewAnswer
		ts.do("POST", "/api/v1/reviews", alice.session, nil, `{"name":"Q1","reviewer":"`+bob.id+`","deadline":"`+soon+`"}`,
			http.StatusCreated, &got)
		if it := got.item(t, alice.id, "compliance_officer"); it.Reviewer != bob.id {
			t.Errorf("alice's item goes to %s, want %s", it.Reviewer, bob.id)
		}
		if it := got.item(t, bob.id, "member"); it.Reviewer != alice.id {
			t.Errorf("bob's item goes to %s, want %s", it.Reviewer, alice.id)
		}
		// The named reviewer decides without holding reviews.manage.
		ts.do("POST", decisionPath(got.Campaign.ID, alice.id, "compliance_officer"), bob.session, nil,
			decision("keep", "needed"), http.StatusOK, nil)
		ts.do("POST", "/api/v1/reviews", alice.session, nil, `{"name":"Auditors","roles":["auditor"]}`, http.StatusCreated, &got)
		if got.Campaign.Status != "completed" || len(got.Items) != 0 || !slices.Equal(got.Campaign.Roles, []string{"auditor"}) {
			t.Errorf("empty campaign: %+v", got)
		}
	})
}

func TestReviewDeadline(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		ctx := t.Context()
		def := map[string]string{"Attest-Tenant": "default"}
		alice := ts.enrol(c, "default", "alice@example.com", "compliance_officer")
		bea := ts.enrol(c, "default", "bea@example.com", "compliance_officer")
		bob := ts.enrol(c, "default", "bob@example.com", "member")
		carl := ts.enrol(c, "default", "carl@example.com", "member")
		olga := ts.enrol(c, "default", "olga@example.com", "owner")

		// One campaign revokes at its deadline, in 14 days; another hands
		// its undecided items to bea after 8 days.
		var revoking, escalating reviewAnswer
		ts.do("POST", "/api/v1/reviews", ts.operator, def, `{"name":"revoking","roles":["member","owner"]}`,
			http.StatusCreated, &revoking)
		in3 := c.Now().Add(8 * 24 * time.Hour).Format(time.RFC3339)
		ts.do("POST", "/api/v1/reviews", ts.operator, def, fmt.Sprintf(`{"name":"escalating","roles":["member"],`+
			`"reviewer":%q,"deadline":%q,"on_deadline":"escalate","escalate_to":%q}`, alice.id, in3, bea.id),
			http.StatusCreated, &escalating)
		if len(revoking.Items) != 3 || len(escalating.Items) != 2 {
			t.Fatalf("items: %+v, %+v", revoking.Items, escalating.Items)
		}
		ts.do("POST", decisionPath(revoking.Campaign.ID, bob.id, "member"), ts.operator, def, decision("keep", "on call"),
			http.StatusOK, nil)
		if n, err := ts.in.CloseDueReviews(ctx); err != nil || n != 0 {
			t.Fatalf("before any deadline: %d, %v", n, err)
		}

		// At the first deadline, the escalating campaign's items go to bea
		// and its deadline moves a week on.
		c.Add(8*24*time.Hour + time.Minute)
		if n, err := ts.in.CloseDueReviews(ctx); err != nil || n != 2 {
			t.Fatalf("first deadline: %d, %v", n, err)
		}
		var got reviewAnswer
		ts.do("GET", "/api/v1/reviews/"+escalating.Campaign.ID, ts.operator, def, "", http.StatusOK, &got)
		was, _ := time.Parse(time.RFC3339, escalating.Campaign.Deadline)
		if got.Campaign.Status != "open" || got.Campaign.EscalatedAt == "" ||
			got.Campaign.Deadline != was.Add(7*24*time.Hour).Format(time.RFC3339) {
			t.Errorf("escalated campaign: %+v", got.Campaign)
		}
		for _, it := range got.Items {
			if it.Reviewer != bea.id || it.Decision != "" {
				t.Errorf("escalated item: %+v", it)
			}
		}
		bea.session = ts.login(c, "default", bea)
		ts.do("POST", decisionPath(escalating.Campaign.ID, bob.id, "member"), bea.session, nil, decision("keep", "on call"),
			http.StatusOK, nil)
		if n, err := ts.in.CloseDueReviews(ctx); err != nil || n != 0 {
			t.Fatalf("escalated once: %d, %v", n, err)
		}

		// At the extended deadline what is left is revoked, and at the
		// other campaign's the same; the last owner keeps the owner role.
		c.Add(8 * 24 * time.Hour)
		if n, err := ts.in.CloseDueReviews(ctx); err != nil || n != 3 {
			t.Fatalf("later deadlines: %d, %v", n, err)
		}
		for _, a := range []*reviewAnswer{&revoking, &escalating} {
			ts.do("GET", "/api/v1/reviews/"+a.Campaign.ID, ts.operator, def, "", http.StatusOK, &got)
			if got.Campaign.Status != "completed" || got.Campaign.CompletedAt == "" {
				t.Errorf("%s: %+v", a.Campaign.Name, got.Campaign)
			}
			it := got.item(t, carl.id, "member")
			if it.Decision != "revoke" || it.Reason != "not reviewed by the deadline" || it.DecidedBy != "attest" {
				t.Errorf("%s: carl's item %+v", a.Campaign.Name, it)
			}
			if a == &revoking {
				if it := got.item(t, olga.id, "owner"); it.Decision != "keep" || !strings.Contains(it.Reason, "never revoked automatically") {
					t.Errorf("the owner's item: %+v", it)
				}
			}
		}
		var user struct{ Roles []struct{ Role string } }
		ts.do("GET", "/api/v1/users/"+carl.id, ts.operator, def, "", http.StatusOK, &user)
		if len(user.Roles) != 0 {
			t.Errorf("carl still holds %+v", user.Roles)
		}
		ts.do("GET", "/api/v1/users/"+bob.id, ts.operator, def, "", http.StatusOK, &user)
		if len(user.Roles) != 1 {
			t.Errorf("bob holds %+v", user.Roles)
		}
		if n, err := ts.in.CloseDueReviews(ctx); err != nil || n != 0 {
			t.Fatalf("after everything: %d, %v", n, err)
		}

		// Each change the deadline made is on record.
		for action, want := range map[string]int{"review.item.escalate": 2, "review.campaign.escalate": 1,
			"review.item.deadline": 3} {
			var trail struct{ Items []any }
			ts.do("GET", "/api/v1/compliance/audit-trail?outcome=success&action="+action, ts.operator, def, "",
				http.StatusOK, &trail)
			if len(trail.Items) != want {
				t.Errorf("%s: %d events, want %d", action, len(trail.Items), want)
			}
		}
		resp := ts.do("GET", "/api/v1/reviews/"+revoking.Campaign.ID+"/export?format=csv", ts.operator, def, "",
			http.StatusOK, nil)
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "not reviewed by the deadline") {
			t.Errorf("csv: %s", b)
		}
	})
}
