package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/access"
	attestevent "github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// TestTwoPersonRuleHolds checks the ways one admin could make a second
// approver of their own: creating an admin with users.manage alone, or
// taking over a peer admin with an enrolment link.
func TestTwoPersonRuleHolds(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		a1 := ts.enrol(c, tenant.Default, "a1@example.com", "admin")
		a2 := ts.enrol(c, tenant.Default, "a2@example.com", "admin")
		tok := ts.elevate(c, a1, a2, `["users.manage"]`)
		ts.do("POST", "/api/v1/users", tok, nil, `{"email":"puppet@example.com","name":"P","role":"admin"}`,
			http.StatusForbidden, nil)
		ts.do("POST", "/api/v1/users/"+a2.id+"/enrolment", tok, nil, "", http.StatusForbidden, nil)
		var m struct{ User struct{ ID string } }
		ts.do("POST", "/api/v1/users", tok, nil, `{"email":"member@example.com","name":"M"}`, http.StatusCreated, &m)
		ts.do("POST", "/api/v1/users/"+m.User.ID+"/enrolment", tok, nil, "", http.StatusCreated, nil)
		// Admins hold no SCIM key: it could deprovision owners.
		admin := ts.key(tenant.Default, "admin")
		ts.do("POST", "/api/v1/apikeys", admin, nil, `{"role":"scim","name":"s"}`, http.StatusForbidden, nil)
	})
}

// TestReviewsCannotStripOwners checks that an access review takes away only
// what its decider could grant, and never ownership unattended.
func TestReviewsCannotStripOwners(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	co := ts.enrol(c, tenant.Default, "co@example.com", "compliance_officer")
	owner := ts.enrol(c, tenant.Default, "own@example.com", "owner")
	ts.enrol(c, tenant.Default, "own2@example.com", "owner")
	adm := ts.enrol(c, tenant.Default, "adm@example.com", "admin")
	var rv struct{ Campaign struct{ ID string } }
	ts.do("POST", "/api/v1/reviews", co.session, nil, `{"name":"grab","roles":["owner","admin"],"reviewer":"`+co.id+`"}`,
		http.StatusCreated, &rv)
	for _, it := range []struct{ user, role string }{{owner.id, "owner"}, {adm.id, "admin"}} {
		ts.do("POST", fmt.Sprintf("/api/v1/reviews/%s/items/%s/%s/decision", rv.Campaign.ID, it.user, it.role), co.session, nil,
			`{"decision":"revoke","reason":"grab"}`, http.StatusForbidden, nil)
	}
	ts.do("POST", fmt.Sprintf("/api/v1/reviews/%s/items/%s/admin/decision", rv.Campaign.ID, adm.id), co.session, nil,
		`{"decision":"keep","reason":"still needed"}`, http.StatusOK, nil)
}

// TestSCIMKeepsTheLastOwner checks that an identity provider cannot leave
// a tenant without an owner.
func TestSCIMKeepsTheLastOwner(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ts.do("POST", "/api/v1/tenants", ts.operator, nil, `{"name":"solo"}`, http.StatusCreated, nil)
	o := ts.enrol(c, "solo", "only@solo.example", "owner")
	scimKey := ts.key("solo", "scim")
	hdr := map[string]string{"Content-Type": "application/scim+json"}
	ts.do("PATCH", "/scim/v2/Users/"+o.id, scimKey, hdr, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],`+
		`"Operations":[{"op":"replace","value":{"active":false}}]}`, http.StatusBadRequest, nil)
	ts.do("DELETE", "/scim/v2/Users/"+o.id, scimKey, nil, "", http.StatusBadRequest, nil)
	ts.do("POST", "/api/v1/users/"+o.id+"/disable", ts.operator, map[string]string{"Attest-Tenant": "solo"}, "",
		http.StatusConflict, nil)
	ts.do("GET", "/api/v1/me", o.session, nil, "", http.StatusOK, nil)
}

// TestAuditorSeesThePeriod checks that an auditor's queries keep to the
// audit period and single events are not theirs to read.
func TestAuditorSeesThePeriod(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	ing := ts.key(tenant.Default, "ingest")
	var ingested []ingestResp
	for _, at := range []string{"2026-10-15T10:00:00Z", "2026-11-20T10:00:00Z"} {
		var r ingestResp
		ts.do("POST", "/api/v1/audit/events", ing, nil, `{"occurred_at":"`+at+`","source":"svc","actor":{"type":"user","id":"u"},`+
			`"action":"transcript.read","category":"data_access","outcome":{"result":"success"}}`, http.StatusOK, &r)
		if len(r.Results) != 1 || r.Results[0].Sequence == nil {
			t.Fatalf("ingest: %+v", r)
		}
		ingested = append(ingested, r)
	}
	aud := ts.enrol(c, tenant.Default, "aud@example.com", "")
	ts.do("PUT", "/api/v1/users/"+aud.id+"/roles/auditor", ts.operator, map[string]string{"Attest-Tenant": tenant.Default},
		`{"period_start":"2026-10-01T00:00:00Z","period_end":"2026-11-01T00:00:00Z"}`, http.StatusOK, nil)
	var page struct {
		Items []struct {
			Event struct {
				OccurredAt string `json:"occurred_at"`
			}
		}
	}
	ts.do("GET", "/api/v1/compliance/audit-trail?action=transcript.read", aud.session, nil, "", http.StatusOK, &page)
	if len(page.Items) != 1 || !strings.HasPrefix(page.Items[0].Event.OccurredAt, "2026-10-15") {
		t.Errorf("the auditor saw %+v, want the October event alone", page.Items)
	}
	ts.do("GET", "/api/v1/compliance/audit-trail?action=transcript.read&occurred_from=2026-11-01T00:00:00Z", aud.session,
		nil, "", http.StatusOK, &page)
	if len(page.Items) != 0 {
		t.Errorf("a query past the period answered %d events", len(page.Items))
	}
	ts.do("GET", "/api/v1/audit/events/1", aud.session, nil, "", http.StatusForbidden, nil)
	ts.do("GET", "/api/v1/audit/checkpoint", aud.session, nil, "", 0, nil)

	// Inclusion proofs keep to the period too, by sequence or leaf hash:
	// the October event proves, the November one does not.
	oct, nov := ingested[0].Results[0], ingested[1].Results[0]
	size := *nov.Sequence + 1
	ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?sequence=%d&tree_size=%d", *oct.Sequence, size),
		aud.session, nil, "", http.StatusOK, nil)
	ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?leaf_hash=%s&tree_size=%d", url.QueryEscape(oct.LeafHash), size),
		aud.session, nil, "", http.StatusOK, nil)
	ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?sequence=%d&tree_size=%d", *nov.Sequence, size),
		aud.session, nil, "", http.StatusForbidden, nil)
	// By leaf hash, an event of another period is answered as a hash that
	// names none, whatever the tree size asked, so that it is not
	// confirmed to exist.
	var unknown, other struct{ Detail string }
	ts.do("GET", "/api/v1/audit/proofs/inclusion?leaf_hash="+url.QueryEscape(base64.StdEncoding.EncodeToString(make([]byte, 32))),
		aud.session, nil, "", http.StatusNotFound, &unknown)
	for _, n := range []int64{size, 1} {
		ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?leaf_hash=%s&tree_size=%d", url.QueryEscape(nov.LeafHash), n),
			aud.session, nil, "", http.StatusNotFound, &other)
		if other != unknown {
			t.Errorf("at tree size %d an out-of-period hash is answered %q, an unknown one %q", n, other.Detail, unknown.Detail)
		}
	}
	// By sequence, out of the period is refused before the tree size is
	// looked at.
	ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?sequence=%d&tree_size=1", *nov.Sequence),
		aud.session, nil, "", http.StatusForbidden, nil)
	ts.do("GET", "/api/v1/audit/proofs/inclusion?sequence=99999", aud.session, nil, "", http.StatusBadRequest, nil)
	// A reader's key, bounded to no period, proves it.
	ts.do("GET", fmt.Sprintf("/api/v1/audit/proofs/inclusion?sequence=%d&tree_size=%d", *nov.Sequence, size),
		ts.key(tenant.Default, "reader"), nil, "", http.StatusOK, nil)
}

// TestEnrolmentResetEndsSessions checks that the first step of a link for
// an existing account, which replaces its password, ends its sessions
// then, not only at the second step.
func TestEnrolmentResetEndsSessions(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "reset@example.com", "")
	var link struct{ Token string }
	ts.do("POST", "/api/v1/users/"+p.id+"/enrolment", ts.operator, map[string]string{"Attest-Tenant": tenant.Default}, "",
		http.StatusCreated, &link)
	// A weak password is refused with its field named once.
	var prob struct{ Field, Detail string }
	ts.do("POST", "/api/v1/auth/enrol", "", nil, `{"token":"`+link.Token+`","password":"short"}`, http.StatusBadRequest, &prob)
	if prob.Field != "password" || !strings.HasPrefix(prob.Detail, "password must have at least") {
		t.Errorf("a short password is refused with %+v", prob)
	}
	ts.do("POST", "/api/v1/auth/enrol", "", nil, `{"token":"`+link.Token+`","password":"a brand new passphrase"}`, http.StatusOK, nil)
	ts.do("GET", "/api/v1/me", p.session, nil, "", http.StatusUnauthorized, nil)
}

// TestTokensRedactedInTrail sends people's tokens where a client controls
// the text: the trail keeps none of them.
func TestTokensRedactedInTrail(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "tok@example.com", "")
	ts.do("GET", "/api/v1/users/"+p.session, p.session, map[string]string{"User-Agent": "agent " + p.session}, "", 0, nil)
	ts.do("GET", "/api/v1/nowhere/"+p.session, "", nil, "", http.StatusNotFound, nil)
	time.Sleep(100 * time.Millisecond)
	for _, tn := range []string{tenant.Default, tenant.Operator} {
		b := ts.waitTrail(tn, "", 1)
		if strings.Contains(string(b), p.session[4:]) {
			t.Errorf("the %s trail holds a session token", tn)
		}
	}
}

// TestAuthzBatch asks several questions at once: each is answered in
// order and each is its own event in the trail.
func TestAuthzBatch(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	p := ts.enrol(c, tenant.Default, "batch@example.com", "security_analyst")
	authz := ts.key(tenant.Default, "authz")
	body := fmt.Sprintf(`{"checks":[{"subject":%q,"action":"audit.log.read"},{"subject":%q,"action":"users.manage"},`+
		`{"subject":"usr_nobody","action":"audit.log.read"},{"subject":%q,"action":"audit.log.read","resource":{"tenant":"operator"}}]}`,
		p.id, p.id, p.id)
	var out struct{ Results []struct{ Allow bool } }
	ts.do("POST", "/api/v1/authz/check/batch", authz, nil, body, http.StatusOK, &out)
	want := []bool{true, false, false, false}
	if len(out.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(out.Results), len(want))
	}
	for i, w := range want {
		if out.Results[i].Allow != w {
			t.Errorf("question %d: allow %v, want %v", i, out.Results[i].Allow, w)
		}
	}
	trail := ts.waitTrail(tenant.Default, "&action=authz.check", 4)
	if n := strings.Count(string(trail), `"action":"authz.check"`); n != 4 {
		t.Errorf("%d authz.check events, want 4", n)
	}
	ts.do("POST", "/api/v1/authz/check/batch", authz, nil, `{"checks":[]}`, http.StatusBadRequest, nil)
	resp := ts.do("POST", "/api/v1/authz/check/batch", authz, nil, `{"checks":[{"subject":"x","action":""}]}`,
		http.StatusBadRequest, nil)
	if f := problemField(t, resp); f != "checks.0.action" {
		t.Errorf("field %q, want checks.0.action", f)
	}
	ts.do("POST", "/api/v1/authz/check/batch", ts.key(tenant.Default, "reader"), nil, body, http.StatusForbidden, nil)
}

// TestNoHomeMadeApprovers checks that a person an admin made or promoted
// cannot approve that admin's elevations, and that nobody grants
// themselves a role.
func TestNoHomeMadeApprovers(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	a1 := ts.enrol(c, tenant.Default, "a1@example.com", "admin")
	a2 := ts.enrol(c, tenant.Default, "a2@example.com", "admin")
	m := ts.enrol(c, tenant.Default, "m@example.com", "")
	tok := ts.elevate(c, a1, a2, `["roles.manage"]`)
	ts.do("PUT", "/api/v1/users/"+a1.id+"/roles/compliance_officer", tok, nil, "", http.StatusForbidden, nil)
	ts.do("PUT", "/api/v1/users/"+m.id+"/roles/admin", tok, nil, "", http.StatusOK, nil)
	var el struct{ ID string }
	ts.do("POST", "/api/v1/elevations", a1.session, nil, `{"reason":"more","permissions":["users.manage"]}`, http.StatusCreated, &el)
	m.session = ts.login(c, tenant.Default, m)
	ts.do("POST", "/api/v1/elevations/"+el.ID+"/approve", m.session, nil, "", http.StatusForbidden, nil)
	ts.do("POST", "/api/v1/elevations/"+el.ID+"/approve", a2.session, nil, "", http.StatusOK, nil)
}

// TestKeysFollowTheirOrigin checks that a person's keys go with the role
// that allowed them, and a key's children with the key.
func TestKeysFollowTheirOrigin(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	h := map[string]string{"Attest-Tenant": tenant.Default}
	p := ts.enrol(c, tenant.Default, "keys@example.com", "admin")
	def, _ := ts.in.Tenants.ByName(t.Context(), tenant.Default)
	tok, _, err := ts.in.CreateKey(t.Context(), def, "reader", "mine", time.Time{}, attestevent.Actor{Type: "user", ID: p.id}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.do("GET", "/api/v1/compliance/audit-trail", tok.Reveal(), nil, "", http.StatusOK, nil)
	ts.do("DELETE", "/api/v1/users/"+p.id+"/roles/admin", ts.operator, h, "", http.StatusOK, nil)
	ts.do("GET", "/api/v1/compliance/audit-trail", tok.Reveal(), nil, "", http.StatusUnauthorized, nil)

	parent := ts.key(tenant.Default, "admin")
	var child struct{ ID, Key string }
	ts.do("POST", "/api/v1/apikeys", parent, nil, `{"role":"reader","name":"child"}`, http.StatusCreated, &child)
	var pk struct{ ID string }
	for _, k := range listKeyIDs(ts, parent) {
		if k.Name == "test admin" {
			pk.ID = k.ID
		}
	}
	ts.do("DELETE", "/api/v1/apikeys/"+pk.ID, ts.operator, h, "", http.StatusOK, nil)
	ts.do("GET", "/api/v1/compliance/audit-trail", child.Key, nil, "", http.StatusUnauthorized, nil)
}

func listKeyIDs(ts *testServer, key string) []struct{ ID, Name string } {
	var out struct {
		Keys []struct{ ID, Name string } `json:"api_keys"`
	}
	ts.do("GET", "/api/v1/apikeys", key, nil, "", http.StatusOK, &out)
	return out.Keys
}

// TestOwnersOutOfAdminsReach checks that the inactivity job never
// disables an owner, and that an admin key does not unlock one.
func TestOwnersOutOfAdminsReach(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	c := newClock(time.Now())
	ts := startClocked(t, opts, c, server.Config{})
	o := ts.enrol(c, tenant.Default, "idle-owner@example.com", "owner")
	admin := ts.key(tenant.Default, "admin")
	ts.do("POST", "/api/v1/users/"+o.id+"/unlock", admin, nil, "", http.StatusForbidden, nil)
	ts.do("PUT", "/api/v1/settings/sessions", admin, nil, `{"inactive_days":1}`, http.StatusBadRequest, nil)
	c.Add(400 * 24 * time.Hour)
	if _, err := ts.in.DisableInactive(t.Context()); err != nil {
		t.Fatal(err)
	}
	var u struct{ Status string }
	ts.do("GET", "/api/v1/users/"+o.id, admin, nil, "", http.StatusOK, &u)
	if u.Status != "active" {
		t.Errorf("the idle owner is %s", u.Status)
	}
}

// TestOneLinkOneAccount sends the first step of one new-account link
// twice at once, with two emails: one makes the account, the other is
// refused, and the link's role is granted once.
func TestOneLinkOneAccount(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		ten, err := ts.in.Tenants.ByName(t.Context(), tenant.Default)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := ts.in.IssueEnrolment(t.Context(), ten, "", access.RoleOwner, identity.DefaultEnrolmentTTL,
			instance.SystemActor(), nil)
		if err != nil {
			t.Fatal(err)
		}
		status := make([]int, 2)
		var wg sync.WaitGroup
		for i := range status {
			wg.Go(func() {
				body := fmt.Sprintf(`{"token":%q,"email":"own%d@example.com","name":"Owner %d","password":"a brand new passphrase"}`,
					tok, i, i)
				resp, err := ts.client.Post(ts.url+"/api/v1/auth/enrol", "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				status[i] = resp.StatusCode
			})
		}
		wg.Wait()
		if ok := slices.Index(status, http.StatusOK); ok < 0 || slices.Index(status[ok+1:], http.StatusOK) >= 0 ||
			slices.Contains(status, 0) {
			t.Errorf("the two first steps answered %v, want one 200", status)
		}
		var list struct {
			Users []struct {
				Email string
				Roles []struct{ Role string }
			}
		}
		ts.do("GET", "/api/v1/users", ts.operator, map[string]string{"Attest-Tenant": tenant.Default}, "", http.StatusOK, &list)
		var owners []string
		for _, u := range list.Users {
			if slices.ContainsFunc(u.Roles, func(r struct{ Role string }) bool { return r.Role == access.RoleOwner }) {
				owners = append(owners, u.Email)
			}
		}
		if len(owners) != 1 {
			t.Fatalf("one owner link made the owners %v", owners)
		}

		// A first step refused for an email in use names no account in
		// its event: none was made.
		tok, _, err = ts.in.IssueEnrolment(t.Context(), ten, "", access.RoleMember, identity.DefaultEnrolmentTTL,
			instance.SystemActor(), nil)
		if err != nil {
			t.Fatal(err)
		}
		// A bad address is refused with its field named once.
		var prob struct{ Field, Detail string }
		ts.do("POST", "/api/v1/auth/enrol", "", nil, fmt.Sprintf(`{"token":%q,"email":"bad","name":"Again",`+
			`"password":"a brand new passphrase"}`, tok), http.StatusBadRequest, &prob)
		if prob.Field != "email" || strings.Count(prob.Detail, "email") != 1 {
			t.Errorf("a bad address is refused with %+v", prob)
		}
		ts.do("POST", "/api/v1/auth/enrol", "", nil, fmt.Sprintf(`{"token":%q,"email":%q,"name":"Again",`+
			`"password":"a brand new passphrase"}`, tok, owners[0]), http.StatusConflict, nil)
		type item struct {
			Event struct {
				Target  struct{ Type, ID string }
				Outcome struct{ Result string }
			}
		}
		var page struct{ Items []item }
		// Of the two at once, one was refused too, and so was the bad address.
		b := ts.waitTrail(tenant.Default, "&action=user.enrol.start", 4)
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		refused := slices.DeleteFunc(page.Items, func(it item) bool { return it.Event.Outcome.Result == "success" })
		if len(refused) != 3 {
			t.Fatalf("%d refused first steps in the trail, want 3: %s", len(refused), b)
		}
		for _, it := range refused {
			if it.Event.Target.ID != "" {
				t.Errorf("a refused first step names the account %+v", it.Event.Target)
			}
		}
	})
}
