package auditlog_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func openInstance(t *testing.T, opts storetest.Options) *instance.Instance {
	t.Helper()
	in, err := instance.Open(context.Background(), instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL,
		Name: "test.example/attest"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func appendN(t *testing.T, in *instance.Instance, ten *tenant.Tenant, g *eventgen.Generator, n, batch int) []auditlog.Result {
	t.Helper()
	ctx := context.Background()
	var out []auditlog.Result
	for i := 0; i < n; i += batch {
		var ps []*auditlog.Prepared
		for j := i; j < min(i+batch, n); j++ {
			p, err := in.Log.Prepare(ctx, ten, g.Next())
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		rs, err := in.Log.Append(ctx, ten, ps)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rs...)
	}
	return out
}

func TestAppendReadQueryProve(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ctx := context.Background()
		in := openInstance(t, opts)
		ten, err := in.Tenants.ByName(ctx, tenant.Default)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		g := eventgen.New(1, start)
		const n = 40000 // more than two index segments
		rs := appendN(t, in, ten, g, n, 3000)
		for i, r := range rs {
			if r.Duplicate || r.Err != nil || r.Sequence != int64(i) {
				t.Fatalf("result %d = %+v", i, r)
			}
		}

		// Duplicates are recognised from the memtable and from segments.
		g2 := eventgen.New(1, start)
		var again []*auditlog.Prepared
		for i := 0; i < n; i++ {
			ev := g2.Next()
			if i == 5 || i == 20000 || i == n-1 {
				p, err := in.Log.Prepare(ctx, ten, ev)
				if err != nil {
					t.Fatal(err)
				}
				again = append(again, p)
			}
		}
		dr, err := in.Log.Append(ctx, ten, again)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []int64{5, 20000, n - 1} {
			if !dr[i].Duplicate || dr[i].Sequence != want || dr[i].LeafHash != rs[want].LeafHash {
				t.Errorf("duplicate %d: got %+v, want sequence %d", i, dr[i], want)
			}
		}

		// A record reads back with its personal values.
		var rec *auditlog.Record
		err = in.DB.ReadTx(ctx, func(tx *sql.Tx) error {
			var err error
			rec, err = in.Log.Read(ctx, tx, ten, 12345)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if rec.LeafHash != rs[12345].LeafHash || rec.Event.Actor.IP == "" || rec.Event.Actor.Email == "" && rec.Event.Actor.Type == "user" {
			t.Fatalf("record 12345: %+v", rec.Event.Actor)
		}

		// Queries agree with a scan of everything appended.
		g3 := eventgen.New(1, start)
		var all []*event.Event
		for i := 0; i < n; i++ {
			all = append(all, g3.Next())
		}
		probe := all[31337]
		for _, tc := range []struct {
			name string
			f    auditlog.Filter
			want func(*event.Event) bool
		}{
			{"actor", auditlog.Filter{ActorID: probe.Actor.ID}, func(e *event.Event) bool { return e.Actor.ID == probe.Actor.ID }},
			{"action", auditlog.Filter{Action: "role.grant"}, func(e *event.Event) bool { return e.Action == "role.grant" }},
			{"prefix", auditlog.Filter{ActionPrefix: "user."}, func(e *event.Event) bool { return len(e.Action) > 5 && e.Action[:5] == "user." }},
			{"category+outcome", auditlog.Filter{Category: "admin", Outcome: "denied"}, func(e *event.Event) bool {
				return e.Category == "admin" && e.Outcome.Result == "denied"
			}},
			{"target", auditlog.Filter{TargetType: probe.Target.Type, TargetID: probe.Target.ID}, func(e *event.Event) bool {
				return e.Target.Type == probe.Target.Type && e.Target.ID == probe.Target.ID
			}},
			{"ip", auditlog.Filter{ClientIP: probe.Actor.IP}, func(e *event.Event) bool { return e.Actor.IP == probe.Actor.IP }},
			{"text in action", auditlog.Filter{Text: "MFA.ver"}, func(e *event.Event) bool { return e.Action == "user.mfa.verify" }},
			{"text in target", auditlog.Filter{Text: textProbe(probe)}, func(e *event.Event) bool {
				return strings.Contains(strings.ToLower(e.Target.Name), strings.ToLower(textProbe(probe)))
			}},
			{"short text", auditlog.Filter{Text: "Ex", Category: "admin"}, func(e *event.Event) bool {
				return e.Category == "admin" && (strings.Contains(strings.ToLower(e.Target.Name), "ex") ||
					strings.Contains(e.Action, "ex"))
			}},
			{"occurred", auditlog.Filter{OccurredFrom: all[100].OccurredAt, OccurredTo: all[100].OccurredAt}, func(e *event.Event) bool {
				return e.OccurredAt.Equal(all[100].OccurredAt)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var want []int64
				for i := n - 1; i >= 0; i-- {
					if tc.want(all[i]) {
						want = append(want, int64(i))
					}
				}
				var got []int64
				f := tc.f
				f.Limit = 200
				for pages := 0; ; pages++ {
					p, err := in.Log.Query(ctx, ten, f)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range p.Items {
						got = append(got, r.Sequence)
					}
					if p.Next == "" || pages > 1000 {
						break
					}
					f.Cursor = p.Next
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("got %d results, want %d (first got %v, first want %v)", len(got), len(want), head(got), head(want))
				}
			})
		}

		// A cursor is good only for the query and tenant it was issued
		// for, and only as it was issued.
		first, err := in.Log.Query(ctx, ten, auditlog.Filter{Limit: 10})
		if err != nil || first.Next == "" {
			t.Fatalf("first page: %v, next %q", err, first.Next)
		}
		if _, err := in.Log.Query(ctx, ten, auditlog.Filter{Limit: 10, Cursor: first.Next}); err != nil {
			t.Fatalf("second page: %v", err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(first.Next)
		var c map[string]any
		json.Unmarshal(raw, &c)
		c["n"] = c["n"].(float64) + 5
		forged, _ := json.Marshal(c)
		opTenant, err := in.Tenants.ByName(ctx, tenant.Operator)
		if err != nil {
			t.Fatal(err)
		}
		for name, q := range map[string]struct {
			t *tenant.Tenant
			f auditlog.Filter
		}{
			"moved":          {ten, auditlog.Filter{Limit: 10, Cursor: base64.RawURLEncoding.EncodeToString(forged)}},
			"another filter": {ten, auditlog.Filter{Limit: 10, Source: "dialer", Cursor: first.Next}},
			"another tenant": {opTenant, auditlog.Filter{Limit: 10, Cursor: first.Next}},
		} {
			if _, err := in.Log.Query(ctx, q.t, q.f); !errors.Is(err, auditlog.ErrBadCursor) {
				t.Errorf("cursor %s: %v, want ErrBadCursor", name, err)
			}
		}

		// Proofs verify with an independent implementation against a
		// checkpoint signed by the log's key.
		if _, err := in.Log.PublishCheckpoints(ctx); err != nil {
			t.Fatal(err)
		}
		var cpNote []byte
		var inc *auditlog.Inclusion
		var cons *auditlog.Consistency
		err = in.DB.ReadTx(ctx, func(tx *sql.Tx) error {
			var err error
			if inc, err = in.Log.ProveInclusion(ctx, tx, ten, 777, 0); err != nil {
				return err
			}
			cpNote = inc.Checkpoint
			cons, err = in.Log.ProveConsistency(ctx, tx, ten, 1000, 0)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		vk, _ := in.Log.VerifierKey(ten.Name)
		cp, err := checkpoint.Open(cpNote, in.Log.Origin(ten.Name), vk)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != n || cp.Root != inc.Root {
			t.Fatalf("checkpoint %d %x, proof for %d %x", cp.Size, cp.Root, inc.TreeSize, inc.Root)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 777, uint64(cp.Size), rs[777].LeafHash[:], hb(inc.Hashes), cp.Root[:]); err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 1000, uint64(cp.Size), hb(cons.Hashes), cons.OldRoot[:], cp.Root[:]); err != nil {
			t.Fatal(err)
		}
		seq, err := in.Log.FindLeaf(ctx, ten, rs[33333].LeafHash)
		if err != nil || seq != 33333 {
			t.Fatalf("find leaf: %d %v", seq, err)
		}

		// Another process appending moves the log on; this one catches up.
		other := openInstance(t, opts)
		ot, _ := other.Tenants.ByName(ctx, tenant.Default)
		g4 := eventgen.New(99, start)
		appendN(t, other, ot, g4, 100, 100)
		more := appendN(t, in, ten, g4, 10, 10)
		if more[0].Sequence != n+100 {
			t.Fatalf("after another process appended 100, next sequence is %d, want %d", more[0].Sequence, n+100)
		}
	})
}

// textProbe is a piece of a target's name: its number and part of the street.
func textProbe(e *event.Event) string {
	f := strings.Fields(e.Target.Name)
	return " " + f[1] + " MAPL"
}

func head(s []int64) []int64 {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

func hb(hs []tree.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func openInstanceB(b *testing.B, opts storetest.Options) *instance.Instance {
	b.Helper()
	in, err := instance.Open(context.Background(), instance.Options{DataDir: opts.DataDir, Name: "bench.example/attest"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close() })
	return in
}

// TestTextSearchWholeName finds text anywhere in a long target name, in
// the memtable and in a segment.
func TestTextSearchWholeName(t *testing.T) {
	in := openInstance(t, storetest.Options{DataDir: t.TempDir()})
	ctx := context.Background()
	ten, err := in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	g := eventgen.New(11, time.Now().Add(-time.Hour))
	name := func(i int) string {
		return strings.Repeat("x", 70+i%5) + fmt.Sprintf(" zebrafish%d É ΣΊΣΥΦΟΣ", i%3)
	}
	n := index.SegmentSize + 500
	var ps []*auditlog.Prepared
	for i := 0; i < n; i++ {
		ev := g.Next()
		if i%100 == 0 {
			ev.Target.Name = name(i)
		}
		p, err := in.Log.Prepare(ctx, ten, ev)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for i := 0; i < n; i += 2000 {
		if _, err := in.Log.Append(ctx, ten, ps[i:min(i+2000, n)]); err != nil {
			t.Fatal(err)
		}
	}
	for !in.Log.IndexIdle(ten) {
		time.Sleep(20 * time.Millisecond)
	}
	want := 0
	for i := 0; i < n; i += 100 {
		if strings.Contains(name(i), "zebrafish1") {
			want++
		}
	}
	// Case differs throughout, a final sigma included.
	page, err := in.Log.Query(ctx, ten, auditlog.Filter{Text: "ZEBRAFISH1 é σίσυφος", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != want {
		t.Fatalf("text past the 64th character: %d events, want %d", len(page.Items), want)
	}
	seg := 0
	for _, r := range page.Items {
		if r.Sequence < index.SegmentSize {
			seg++
		}
	}
	if seg == 0 || seg == len(page.Items) {
		t.Fatalf("%d of %d matches in the segment; the test needs both the segment and the memtable", seg, len(page.Items))
	}
}

// TestDamagedIDFilter damages the id filter of a stored segment: the
// writer stops trusting it and still finds a retried event's original, and
// verify --deep names the damage.
func TestDamagedIDFilter(t *testing.T) {
	dir := t.TempDir()
	in := openInstance(t, storetest.Options{DataDir: dir})
	ctx := context.Background()
	ten, err := in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	g := eventgen.New(21, start)
	var ps []*auditlog.Prepared
	for i := 0; i < index.SegmentSize+100; i++ {
		p, err := in.Log.Prepare(ctx, ten, g.Next())
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for i := 0; i < len(ps); i += 2000 {
		if _, err := in.Log.Append(ctx, ten, ps[i:min(i+2000, len(ps))]); err != nil {
			t.Fatal(err)
		}
	}
	for !in.Log.IndexIdle(ten) {
		time.Sleep(20 * time.Millisecond)
	}
	in.Close()

	// Every bit of the filter cleared: it would rule every id out.
	db, err := sql.Open("sqlite", dir+"/attest.db")
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	var mj []byte
	if err := db.QueryRow(`SELECT id, meta FROM segments ORDER BY id LIMIT 1`).Scan(&id, &mj); err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	json.Unmarshal(mj, &meta)
	bf, _ := base64.StdEncoding.DecodeString(meta["id_bloom"].(string))
	for i := 32; i < len(bf); i++ { // past the filter's header
		bf[i] = 0
	}
	meta["id_bloom"] = base64.StdEncoding.EncodeToString(bf)
	mj, _ = json.Marshal(meta)
	if _, err := db.Exec(`UPDATE segments SET meta = ? WHERE id = ?`, mj, id); err != nil {
		t.Fatal(err)
	}
	db.Close()

	in = openInstance(t, storetest.Options{DataDir: dir})
	ten, _ = in.Tenants.ByName(ctx, tenant.Default)
	// The same event as the sixth, made again.
	g = eventgen.New(21, start)
	for range 5 {
		g.Next()
	}
	p, err := in.Log.Prepare(ctx, ten, g.Next())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := in.Log.Append(ctx, ten, []*auditlog.Prepared{p})
	if err != nil || len(rs) != 1 || !rs[0].Duplicate || rs[0].Sequence != 5 {
		t.Fatalf("an event sent again past a damaged filter: %+v, %v", rs, err)
	}
	rep, err := in.Log.Verify(ctx, ten, auditlog.VerifyOptions{Deep: true})
	if err != nil || rep.Problem == nil || !strings.Contains(rep.Problem.What, "does not match its checksum") {
		t.Fatalf("verify --deep: %+v, %v", rep.Problem, err)
	}
}
