package controls_test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

const day = 24 * time.Hour

// clock is a test clock the instance reads.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// fixture is an instance on a real database, with a clock the test moves.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	in    *instance.Instance
	op    *tenant.Tenant
	def   *tenant.Tenant
	clock *clock
	dir   string
}

// each runs f on SQLite and on PostgreSQL.
func each(t *testing.T, f func(t *testing.T, fx *fixture)) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		c := newClock(time.Now().Truncate(time.Second))
		in, err := instance.Open(ctx, instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL,
			Name: "controls.example/attest", Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		op, _ := in.Tenants.ByName(ctx, tenant.Operator)
		def, _ := in.Tenants.ByName(ctx, tenant.Default)
		f(t, &fixture{t: t, ctx: ctx, in: in, op: op, def: def, clock: c, dir: opts.DataDir})
	})
}

// check runs control id against tenant tn and checks its status; it
// answers the result.
func (fx *fixture) check(id string, tn *tenant.Tenant, want controls.Status) *controls.Result {
	fx.t.Helper()
	c, ok := controls.ByID(id)
	if !ok {
		fx.t.Fatalf("no control %s", id)
	}
	r, err := c.Test(fx.ctx, controls.Scope{In: fx.in, Tenant: tn, Now: fx.clock.Now()})
	if err != nil {
		fx.t.Fatalf("%s: %v", id, err)
	}
	if r.Status != want {
		fx.t.Fatalf("%s: %s with findings %v, evidence %v; want %s", id, r.Status, r.Findings, r.Evidence, want)
	}
	if want != controls.Pass && r.Remediation == "" {
		fx.t.Errorf("%s: %s without a remediation", id, r.Status)
	}
	return r
}

// failsOn checks that control id fails with a finding about resource.
func (fx *fixture) failsOn(id string, tn *tenant.Tenant, resource string) *controls.Result {
	fx.t.Helper()
	r := fx.check(id, tn, controls.Fail)
	for _, f := range r.Findings {
		if f.Resource == resource {
			return r
		}
	}
	fx.t.Fatalf("%s: findings %v name no %s", id, r.Findings, resource)
	return nil
}

func (fx *fixture) exec(q string, args ...any) {
	fx.t.Helper()
	if _, err := fx.in.DB.Write.ExecContext(fx.ctx, fx.in.DB.Rebind(q), args...); err != nil {
		fx.t.Fatalf("%s: %v", q, err)
	}
}

func (fx *fixture) user(tn *tenant.Tenant, email string) *identity.User {
	fx.t.Helper()
	u := &identity.User{ID: identity.NewUserID(), TenantID: tn.ID, Email: email, Name: "Test Person", Display: email}
	err := fx.in.DB.InTx(fx.ctx, func(tx *sql.Tx) error { return fx.in.Identity.Users.Create(fx.ctx, tx, u) })
	if err != nil {
		fx.t.Fatal(err)
	}
	return u
}

// record appends events to tenant tn's trail.
func (fx *fixture) record(tn *tenant.Tenant, evs ...*event.Event) {
	fx.t.Helper()
	for _, ev := range evs {
		ev.Clean()
	}
	ps, err := fx.in.Log.PrepareAll(fx.ctx, tn, evs)
	if err != nil {
		fx.t.Fatal(err)
	}
	rs, err := fx.in.Log.Append(fx.ctx, tn, ps)
	if err != nil {
		fx.t.Fatal(err)
	}
	for _, r := range rs {
		if r.Err != nil {
			fx.t.Fatal(r.Err)
		}
	}
}

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func auditFilter(action string) auditlog.Filter { return auditlog.Filter{Action: action, Limit: 100} }

func TestSessionsHaveSecondFactor(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("IAM-06", fx.op, controls.NoEvidence)
		u := fx.user(fx.op, "person@example.com")
		now := fx.clock.Now()
		session := func(id, factor string, expires time.Time) {
			fx.exec(`INSERT INTO sessions (id, token_hash, tenant_id, user_id, factor, mfa_at, ip, user_agent, created_at,
				last_active_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, '127.0.0.1', 'test', ?, ?, ?)`, id, []byte(id), fx.op.ID,
				u.ID, factor, micros(now), micros(now), micros(now), micros(expires))
		}
		session("ses_totp", "totp", now.Add(time.Hour))
		session("ses_old", "password", now.Add(-time.Minute))
		fx.check("IAM-06", fx.op, controls.Pass)
		session("ses_pw", "password", now.Add(time.Hour))
		fx.failsOn("IAM-06", fx.op, "session:ses_pw")
		fx.exec(`UPDATE sessions SET revoked_at = ? WHERE id = 'ses_pw'`, micros(now))
		fx.check("IAM-06", fx.op, controls.Pass)
	})
}

func TestElevationsApprovedAndBounded(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("IAM-07", fx.op, controls.NoEvidence)
		req, other := fx.user(fx.op, "req@example.com"), fx.user(fx.op, "other@example.com")
		now := fx.clock.Now()
		elevation := func(id string, dur time.Duration, ran time.Duration, approver string) {
			fx.exec(`INSERT INTO elevations (id, tenant_id, user_id, permissions, reason, duration_seconds, approvals_needed,
				status, requested_at, decided_at, activated_at, expires_at) VALUES (?, ?, ?, 'users.manage', 'test', ?, 1,
				'active', ?, ?, ?, ?)`, id, fx.op.ID, req.ID, int64(dur/time.Second), micros(now), micros(now), micros(now),
				micros(now.Add(ran)))
			fx.exec(`INSERT INTO elevation_decisions (elevation_id, approver_id, decision, reason, decided_at)
				VALUES (?, ?, 'approve', 'ok', ?)`, id, approver, micros(now))
		}
		elevation("elv_good", time.Hour, time.Hour, other.ID)
		fx.check("IAM-07", fx.op, controls.Pass)
		elevation("elv_self", time.Hour, time.Hour, req.ID)
		r := fx.failsOn("IAM-07", fx.op, "elevation:elv_self")
		if len(r.Findings) != 2 {
			t.Errorf("a self-approved elevation: findings %v, want its own decision and its missing approval", r.Findings)
		}
		fx.exec(`DELETE FROM elevation_decisions WHERE elevation_id = 'elv_self'`)
		fx.exec(`DELETE FROM elevations WHERE id = 'elv_self'`)
		elevation("elv_long", 4*time.Hour, 6*time.Hour, other.ID)
		fx.failsOn("IAM-07", fx.op, "elevation:elv_long")
		// Elevations older than 90 days are out of the window.
		fx.clock.Add(91 * day)
		fx.check("IAM-07", fx.op, controls.NoEvidence)
	})
}

func TestPasswordHashesCurrent(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("IAM-08", fx.op, controls.NoEvidence)
		good, err := identity.Hasher{Params: identity.DefaultArgon2}.Hash(fx.ctx, "correct horse battery staple 7")
		if err != nil {
			t.Fatal(err)
		}
		weak, err := identity.Hasher{Params: identity.MinArgon2}.Hash(fx.ctx, "correct horse battery staple 7")
		if err != nil {
			t.Fatal(err)
		}
		a, b := fx.user(fx.op, "a@example.com"), fx.user(fx.op, "b@example.com")
		fx.exec(`UPDATE users SET password_hash = ? WHERE id = ?`, good, a.ID)
		fx.check("IAM-08", fx.op, controls.Pass)
		fx.exec(`UPDATE users SET password_hash = ? WHERE id = ?`, weak, b.ID)
		fx.failsOn("IAM-08", fx.op, "user:"+b.ID)
		fx.exec(`UPDATE users SET password_hash = ? WHERE id = ?`, "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", b.ID)
		fx.failsOn("IAM-08", fx.op, "user:"+b.ID)
		fx.exec(`UPDATE users SET password_hash = ? WHERE id = ?`, good, b.ID)
		fx.check("IAM-08", fx.op, controls.Pass)
	})
}

func TestBreakGlassSealed(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("IAM-09", fx.op, controls.NoEvidence)
		pass, err := fx.in.SetBreakGlass(fx.ctx, false, instance.SystemActor(), nil)
		if err != nil {
			t.Fatal(err)
		}
		fx.check("IAM-09", fx.op, controls.Pass)
		_, key, err := fx.in.UseBreakGlass(fx.ctx, pass, "the identity provider is down", instance.SystemActor(), nil)
		if err != nil {
			t.Fatal(err)
		}
		r := fx.failsOn("IAM-09", fx.op, "break_glass:emergency")
		if len(r.Findings) != 2 || r.Findings[1].Resource != "apikey:"+key.ID {
			t.Errorf("after a use: findings %v, want the account and the key it minted", r.Findings)
		}
		if _, err := fx.in.SetBreakGlass(fx.ctx, true, instance.SystemActor(), nil); err != nil {
			t.Fatal(err)
		}
		fx.check("IAM-09", fx.op, controls.Pass)
	})
}

func TestAPIKeysRotated(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("IAM-10", fx.op, controls.NoEvidence)
		_, old, err := fx.in.CreateKey(fx.ctx, fx.op, access.RoleOperator, "old", time.Time{}, instance.SystemActor(), nil)
		if err != nil {
			t.Fatal(err)
		}
		// A key that expires within the year stops working on time.
		if _, _, err := fx.in.CreateKey(fx.ctx, fx.op, access.RoleOperator, "short", fx.clock.Now().Add(30*day),
			instance.SystemActor(), nil); err != nil {
			t.Fatal(err)
		}
		fx.check("IAM-10", fx.op, controls.Pass)
		fx.clock.Add(366 * day)
		r := fx.failsOn("IAM-10", fx.op, "apikey:"+old.ID)
		if len(r.Findings) != 1 {
			t.Errorf("findings %v, want the old key alone: the expired one no longer works", r.Findings)
		}
		if _, _, err := fx.in.CreateKey(fx.ctx, fx.op, access.RoleOperator, "new", time.Time{}, instance.SystemActor(), nil); err != nil {
			t.Fatal(err)
		}
		fx.exec(`UPDATE api_keys SET revoked_at = ? WHERE id = ?`, micros(fx.clock.Now()), old.ID)
		fx.check("IAM-10", fx.op, controls.Pass)
	})
}

func TestNoSelfAccessChange(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("IAM-11", fx.def, controls.NoEvidence)
		admin, u := fx.user(fx.def, "admin@example.com"), fx.user(fx.def, "u@example.com")
		grant := func(action, actor, target string) {
			ev := fx.in.ChangeEvent(action, "admin", event.Actor{Type: "user", ID: actor},
				event.Target{Type: "user", ID: target})
			ev.Details = []byte(`{"role":"admin"}`)
			fx.record(fx.def, ev)
		}
		grant("role.grant", admin.ID, u.ID)
		fx.check("IAM-11", fx.def, controls.Pass)
		grant("role.revoke", u.ID, u.ID)
		fx.failsOn("IAM-11", fx.def, "event:1")
		// Through an API key the person owns, it is still their own change.
		_, key, err := fx.in.CreateOwnedKey(fx.ctx, fx.def, access.RoleAdmin, "mine", time.Time{}, admin.ID,
			instance.SystemActor(), nil)
		if err != nil {
			t.Fatal(err)
		}
		grant("role.grant", "apikey:"+key.ID, admin.ID)
		r := fx.check("IAM-11", fx.def, controls.Fail)
		if len(r.Findings) != 2 {
			t.Errorf("findings %v, want the self-revocation and the grant through the person's own key", r.Findings)
		}
		// A quarter later the changes are out of the window.
		fx.clock.Add(93 * day)
		fx.check("IAM-11", fx.def, controls.NoEvidence)
	})
}

func TestLogsVerified(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		// The operator's trail has entries (the tenants' creation); the
		// default tenant's gets one. Neither is verified yet.
		fx.record(fx.def, fx.in.ChangeEvent("tenant.create", "admin", instance.SystemActor(),
			event.Target{Type: "tenant", ID: "x"}))
		// Logs under a day old are not yet due their first verification.
		r := fx.check("LOG-02", fx.op, controls.NoEvidence)
		if len(stringsOfTest(r.Evidence["not_yet_due"])) != 2 {
			t.Errorf("evidence %v, want both logs not yet due", r.Evidence)
		}
		fx.clock.Add(25 * day / 24)
		r = fx.failsOn("LOG-02", fx.op, "log:"+tenant.Default)
		if len(r.Findings) != 2 {
			t.Errorf("findings %v, want both logs", r.Findings)
		}
		verifyAll := func() {
			// Serve signs checkpoints within a second of each entry.
			if _, err := fx.in.Log.PublishCheckpoints(fx.ctx); err != nil {
				t.Fatal(err)
			}
			for _, tn := range []*tenant.Tenant{fx.op, fx.def} {
				if _, err := fx.in.RecordVerification(fx.ctx, tn, instance.SystemActor(), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		verifyAll()
		fx.check("LOG-02", fx.op, controls.Pass)
		fx.clock.Add(25 * day / 24)
		fx.failsOn("LOG-02", fx.op, "log:"+tenant.Operator)
		verifyAll()
		fx.check("LOG-02", fx.op, controls.Pass)

		// A stored entry changed behind attest's back is found.
		var leaves []byte
		var first int64
		err := fx.in.DB.Read.QueryRowContext(fx.ctx, fx.in.DB.Rebind(`SELECT first_seq, leaves FROM entries
			WHERE tenant_id = ? ORDER BY first_seq LIMIT 1`), fx.def.ID).Scan(&first, &leaves)
		if err != nil {
			t.Fatal(err)
		}
		tampered := []byte(strings.Replace(string(leaves), "tenant.create", "tenant.delete", 1))
		if string(tampered) == string(leaves) {
			tampered[len(tampered)-1] ^= 1
		}
		fx.exec(`UPDATE entries SET leaves = ? WHERE tenant_id = ? AND first_seq = ?`, tampered, fx.def.ID, first)
		fx.clock.Add(time.Second)
		v, err := fx.in.RecordVerification(fx.ctx, fx.def, instance.SystemActor(), nil)
		if v == nil || v.OK {
			t.Fatalf("verification of a tampered log: %+v, %v; want it recorded as failed", v, err)
		}
		r = fx.failsOn("LOG-02", fx.op, "log:"+tenant.Default)
		if len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Problem, "damaged") {
			t.Errorf("findings %v, want the damaged log alone", r.Findings)
		}
		// Each verification is on record in the operator's trail.
		recs, err := fx.in.Log.Query(fx.ctx, fx.op, auditFilter("audit.log.verify"))
		if err != nil || len(recs.Items) != 5 {
			t.Fatalf("audit.log.verify events: %v, %v; want 5", recs, err)
		}
		if recs.Items[0].Event.Outcome.Result != "failure" {
			t.Errorf("the newest verification event: %+v, want a failure", recs.Items[0].Event.Outcome)
		}
	})
}

// posture stores a posture row as serve does.
func (fx *fixture) posture(process, addr, tlsMin string, notAfter time.Time, rateLimits, selfAudit bool) {
	now := micros(fx.clock.Now())
	fx.exec(`INSERT INTO service_posture (process, addr, tls_min, tls_max, cert_subject, cert_not_after, rate_limits,
		self_audit, started_at, seen_at) VALUES (?, ?, ?, 'TLS 1.3', 'CN=localhost', ?, ?, ?, ?, ?)`, process, addr, tlsMin,
		micros(notAfter), rateLimits, selfAudit, now, now)
}

func TestServicePosture(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		for _, id := range []string{"LOG-03", "NET-01", "NET-02", "NET-03"} {
			fx.check(id, fx.op, controls.NoEvidence)
		}
		year := fx.clock.Now().Add(365 * day)
		fx.posture("elsewhere 10.0.0.1:8443 a", "10.0.0.1:8443", "TLS 1.3", year, true, true)
		for _, id := range []string{"LOG-03", "NET-01", "NET-02", "NET-03"} {
			fx.check(id, fx.op, controls.Pass)
		}
		fx.posture("elsewhere 10.0.0.2:8443 b", "10.0.0.2:8443", "TLS 1.2", fx.clock.Now().Add(-day), false, false)
		for _, id := range []string{"LOG-03", "NET-01", "NET-02", "NET-03"} {
			fx.failsOn(id, fx.op, "process:elsewhere 10.0.0.2:8443 b")
		}
		r := fx.failsOn("NET-02", fx.op, "process:elsewhere 10.0.0.2:8443 b")
		if !strings.Contains(r.Findings[0].Problem, "expired") {
			t.Errorf("NET-02 finding %v, want the certificate named expired", r.Findings)
		}
		fx.exec(`UPDATE service_posture SET cert_not_after = ? WHERE process = 'elsewhere 10.0.0.2:8443 b'`,
			micros(fx.clock.Now().Add(10*day)))
		fx.failsOn("NET-02", fx.op, "process:elsewhere 10.0.0.2:8443 b")
		// A process not seen for 15 minutes no longer counts.
		fx.clock.Add(10 * time.Minute)
		fx.exec(`UPDATE service_posture SET seen_at = ? WHERE process = 'elsewhere 10.0.0.1:8443 a'`, micros(fx.clock.Now()))
		fx.clock.Add(6 * time.Minute)
		for _, id := range []string{"LOG-03", "NET-01", "NET-02", "NET-03"} {
			fx.check(id, fx.op, controls.Pass)
		}
	})
}

// listen serves TLS on loopback with the lowest version given, answering
// each handshake and closing.
func listen(t *testing.T, dir string, minVersion uint16) string {
	t.Helper()
	cert, _, err := server.LoadCertificate("", "", dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: minVersion, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestTLS12Probe(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		host, _ := os.Hostname()
		year := fx.clock.Now().Add(365 * day)
		// The row claims TLS 1.3, but the listener takes TLS 1.2: the probe
		// finds it.
		lax := listen(t, filepath.Join(fx.dir, "lax"), tls.VersionTLS12)
		fx.posture(host+" "+lax+" lax", lax, "TLS 1.3", year, true, true)
		r := fx.failsOn("NET-01", fx.op, "process:"+host+" "+lax+" lax")
		if !strings.Contains(r.Findings[0].Problem, "TLS 1.2 handshake") {
			t.Errorf("NET-01 finding %v, want the probe's handshake", r.Findings)
		}
		fx.exec(`DELETE FROM service_posture`)
		strict := listen(t, filepath.Join(fx.dir, "strict"), tls.VersionTLS13)
		fx.posture(host+" "+strict+" strict", strict, "TLS 1.3", year, true, true)
		r = fx.check("NET-01", fx.op, controls.Pass)
		probes := r.Evidence["probes"].(map[string]string)
		if got := probes[host+" "+strict+" strict"]; !strings.HasPrefix(got, "refused TLS 1.2") {
			t.Errorf("probe evidence %q, want the refusal", got)
		}
		// A listener that is gone proves nothing: the evidence says so.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		gone := ln.Addr().String()
		ln.Close()
		fx.posture(host+" "+gone+" gone", gone, "TLS 1.3", year, true, true)
		r = fx.check("NET-01", fx.op, controls.Pass)
		probes = r.Evidence["probes"].(map[string]string)
		if got := probes[host+" "+gone+" gone"]; !strings.HasPrefix(got, "could not connect") {
			t.Errorf("probe evidence %q, want that it could not connect", got)
		}
	})
}

func TestRetentionControls(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		// Nothing expired yet: each tenant's log state is the evidence.
		fx.check("RET-02", fx.op, controls.Pass)
		fx.check("RET-03", fx.op, controls.Pass)
		var evs []*event.Event
		for i := range 130 {
			evs = append(evs, fx.in.ChangeEvent("doc.read", "data_access", event.Actor{Type: "service", ID: "svc"},
				event.Target{Type: "doc", ID: fmt.Sprint(i)}))
		}
		fx.record(fx.def, evs...)
		keep, hot := 365, 1
		if _, err := fx.in.SetRetention(fx.ctx, fx.def, &keep, &hot, instance.SystemActor(), nil); err != nil {
			t.Fatal(err)
		}
		fx.clock.Add(400 * day)
		reps, err := fx.in.RunRetention(fx.ctx, fx.def, nil)
		if err != nil || reps[0].ExpiredEntries == 0 {
			t.Fatalf("retention: %+v, %v; want entries expired", reps, err)
		}
		fx.check("RET-02", fx.op, controls.Pass)
		fx.check("RET-03", fx.op, controls.Pass)

		// An expiry 30 days after the entries arrived came too early.
		var first int64
		var last int64
		if err := fx.in.DB.Read.QueryRowContext(fx.ctx, fx.in.DB.Rebind(`SELECT first_seq, last_received FROM archives
			WHERE tenant_id = ? AND expired_at IS NOT NULL ORDER BY first_seq LIMIT 1`), fx.def.ID).Scan(&first, &last); err != nil {
			t.Fatal(err)
		}
		var expiredAt int64
		fx.in.DB.Read.QueryRowContext(fx.ctx, fx.in.DB.Rebind(`SELECT expired_at FROM archives WHERE tenant_id = ?
			AND first_seq = ?`), fx.def.ID, first).Scan(&expiredAt)
		fx.exec(`UPDATE archives SET expired_at = ? WHERE tenant_id = ? AND first_seq = ?`, last+int64(30*day/time.Microsecond),
			fx.def.ID, first)
		r := fx.check("RET-02", fx.op, controls.Fail)
		if !strings.HasPrefix(r.Findings[0].Resource, "log:default:") {
			t.Errorf("RET-02 findings %v, want the early range", r.Findings)
		}
		fx.exec(`UPDATE archives SET expired_at = ? WHERE tenant_id = ? AND first_seq = ?`, expiredAt, fx.def.ID, first)
		fx.check("RET-02", fx.op, controls.Pass)

		// Expiring past the archive leaves a range nobody kept.
		var size, archived, expired int64
		fx.in.DB.Read.QueryRowContext(fx.ctx, fx.in.DB.Rebind(`SELECT size, archived_end, expired_end FROM log_state
			WHERE tenant_id = ?`), fx.def.ID).Scan(&size, &archived, &expired)
		fx.exec(`UPDATE log_state SET expired_end = ? WHERE tenant_id = ?`, size, fx.def.ID)
		fx.failsOn("RET-03", fx.op, "log:"+tenant.Default)
		fx.failsOn("RET-02", fx.op, fmt.Sprintf("log:default:%d-%d", archived, size))
		fx.exec(`UPDATE log_state SET expired_end = ? WHERE tenant_id = ?`, expired, fx.def.ID)
		fx.check("RET-03", fx.op, controls.Pass)
	})
}

func TestSigningKeyFresh(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("KEY-01", fx.op, controls.Pass)
		fx.clock.Add(366 * day)
		r := fx.failsOn("KEY-01", fx.op, "signing_key:"+fx.in.SigningKey.ID)
		if !strings.Contains(r.Remediation, "cannot rotate") {
			t.Errorf("remediation %q, want it to say that rotation does not exist", r.Remediation)
		}
		fx.exec(`UPDATE signing_keys SET created_at = ?`, micros(fx.clock.Now()))
		fx.check("KEY-01", fx.op, controls.Pass)
		fx.exec(`INSERT INTO signing_keys (id, algorithm, public_key, created_at) VALUES ('other', 'ed25519', ?, ?)`,
			[]byte("x"), micros(fx.clock.Now()))
		fx.failsOn("KEY-01", fx.op, "signing_key:other")
	})
}

func TestBackupRecent(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("BAK-01", fx.op, controls.NoEvidence)
		backup := func(name string) {
			if _, err := fx.in.Backup(fx.ctx, filepath.Join(t.TempDir(), name), instance.SystemActor(), nil); err != nil {
				t.Fatal(err)
			}
		}
		backup("one")
		fx.check("BAK-01", fx.op, controls.Pass)
		fx.clock.Add(25 * time.Hour)
		fx.failsOn("BAK-01", fx.op, "backups")
		backup("two")
		fx.check("BAK-01", fx.op, controls.Pass)
	})
}

func TestAlertControls(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		// No alert and no control run: nothing shows that alerting works.
		fx.check("MON-01", fx.op, controls.NoEvidence)
		if _, err := controls.Validate(fx.ctx, fx.in, fx.op, []string{"IAM-01"}, instance.SystemActor(), nil); err != nil {
			t.Fatal(err)
		}
		fx.check("MON-01", fx.op, controls.Pass)
		now := fx.clock.Now()
		alert := func(id string, raised time.Time, state string) {
			fx.exec(`INSERT INTO control_alerts (id, tenant_id, control_id, result_id, previous, status, raised_at,
				webhook_state, webhook_attempts, webhook_error) VALUES (?, ?, 'IAM-01', 'res_x', 'pass', 'fail', ?, ?, 3, ?)`,
				id, fx.op.ID, micros(raised), state, map[bool]string{true: "connection refused"}[state == "failed"])
		}
		alert("alr_old", now.Add(-30*time.Hour), "delivered")
		// An alert whose control passed again within the day was dealt
		// with, acknowledged or not.
		alert("alr_mended", now.Add(-40*time.Hour), "delivered")
		fx.exec(`INSERT INTO control_results (id, tenant_id, control_id, status, result, sha256, checked_at)
			VALUES ('res_mended', ?, 'IAM-01', 'pass', ?, ?, ?)`, fx.op.ID, []byte(`{}`), []byte{0}, micros(now.Add(-39*time.Hour)))
		r0 := fx.failsOn("MON-01", fx.op, "alert:alr_old")
		for _, f := range r0.Findings {
			if f.Resource == "alert:alr_mended" {
				t.Errorf("MON-01 counts an alert whose control passed again within the day")
			}
		}
		fx.exec(`UPDATE control_alerts SET acknowledged_by = 'usr_x', acknowledged_at = ? WHERE id = 'alr_old'`, micros(now))
		r := fx.check("MON-01", fx.op, controls.Pass)
		if r.Evidence["acknowledged_late_30d"] != 1 {
			t.Errorf("evidence %v, want the late acknowledgement counted", r.Evidence)
		}

		fx.failsOn("MON-02", fx.op, "settings:webhook_url")
		err := fx.in.DB.InTx(fx.ctx, func(tx *sql.Tx) error {
			return controls.SaveSettings(fx.ctx, fx.in.DB, tx, fx.op.ID, &controls.Settings{
				Categories: []controls.Category{controls.Security}, WebhookURL: "https://hooks.example.com/attest",
				WebhookSecret: "s3cret"}, now)
		})
		if err != nil {
			t.Fatal(err)
		}
		fx.check("MON-02", fx.op, controls.Pass)
		// A webhook no delivery has reached yet is not shown to work.
		err = fx.in.DB.InTx(fx.ctx, func(tx *sql.Tx) error {
			return controls.SaveSettings(fx.ctx, fx.in.DB, tx, fx.def.ID, &controls.Settings{
				Categories: []controls.Category{controls.Security}, WebhookURL: "https://hooks.example.com/acme",
				WebhookSecret: "s3cret"}, now)
		})
		if err != nil {
			t.Fatal(err)
		}
		fx.check("MON-02", fx.def, controls.NoEvidence)
		alert("alr_failed", now.Add(-time.Hour), "failed")
		fx.failsOn("MON-02", fx.op, "alert:alr_failed")
		alert("alr_new", now.Add(-time.Minute), "delivered")
		fx.check("MON-02", fx.op, controls.Pass)
	})
}

func TestErasedKeysDestroyed(t *testing.T) {
	each(t, func(t *testing.T, fx *fixture) {
		fx.check("PRV-02", fx.def, controls.NoEvidence)
		ev := fx.in.ChangeEvent("doc.read", "data_access", event.Actor{Type: "user", ID: "usr_gone", Email: "gone@example.com"},
			event.Target{Type: "doc", ID: "1"})
		fx.record(fx.def, ev)
		if _, err := fx.in.EraseSubject(fx.ctx, fx.def, "usr_gone", "the person asked", instance.SystemActor(), nil); err != nil {
			t.Fatal(err)
		}
		r := fx.check("PRV-02", fx.def, controls.Pass)
		// A key put back behind attest's back is found.
		fx.exec(`UPDATE subjects SET wrapped_key = ? WHERE tenant_id = ? AND subject = 'usr_gone'`, []byte("key"), fx.def.ID)
		r = fx.check("PRV-02", fx.def, controls.Fail)
		if len(r.Findings) != 1 || !strings.HasPrefix(r.Findings[0].Resource, "erasure:") {
			t.Errorf("findings %v, want the erasure", r.Findings)
		}
		// The subject's next event starts a new key, which is no fault.
		fx.exec(`UPDATE subjects SET wrapped_key = NULL WHERE tenant_id = ? AND subject = 'usr_gone'`, fx.def.ID)
		fx.clock.Add(time.Second)
		fx.record(fx.def, fx.in.ChangeEvent("doc.read", "data_access", event.Actor{Type: "user", ID: "usr_gone",
			Email: "back@example.com"}, event.Target{Type: "doc", ID: "2"}))
		fx.check("PRV-02", fx.def, controls.Pass)
	})
}

// stringsOfTest reads a list of strings from a result's evidence, as
// stored or as decoded from JSON.
func stringsOfTest(v any) []string {
	switch v := v.(type) {
	case []string:
		return v
	case []any:
		var out []string
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}
