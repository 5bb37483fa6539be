package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// TestSegmentsMerge fills a log until eight segments merge into one, with
// two other writers on the same database that still hold the segments from
// before the merge, as other processes would. Their queries and their
// duplicate checks must see the merged segment, and deep verification must
// check it and catch a page removed from it.
func TestSegmentsMerge(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		merging, release := make(chan struct{}, 1), make(chan struct{})
		beforeMerge = func() {
			select {
			case merging <- struct{}{}:
			default:
			}
			<-release
		}
		released := false
		defer func() {
			beforeMerge = nil
			if !released {
				close(release)
			}
		}()

		tl := newTestLog(t, db, opts.DataDir, 0)
		n := int(index.LevelSize(1)) + 1000
		base := time.Now().Add(-3 * time.Hour)
		g := eventgen.New(5, base)
		for i := 0; i < n; i += 2000 {
			var ps []*Prepared
			for j := i; j < min(i+2000, n); j++ {
				p, err := tl.l.Prepare(ctx, tl.t, g.Next())
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			if _, err := tl.l.Append(ctx, tl.t, ps); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-merging:
		case <-time.After(2 * time.Minute):
			t.Fatal("no merge began after eight segments were built")
		}
		// Two more writers load the log while the merge waits.
		stale := []*Log{tl.otherLog(t), tl.otherLog(t)}
		for _, l := range stale {
			if err := l.Sync(ctx, tl.t); err != nil {
				t.Fatal(err)
			}
		}
		close(release)
		released = true
		waitFor(t, func() bool {
			return countSegments(t, tl, 1) == 1 && countSegments(t, tl, 0) == 0
		})

		// Events again, from the same generator.
		again := eventgen.New(5, base)
		var evs []*Prepared
		for i := 0; i < 300; i++ {
			p, err := tl.l.Prepare(ctx, tl.t, again.Next())
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, p)
		}

		// A query through a stale view notices the merge and retries.
		target := evs[200].Event
		page, err := stale[0].Query(ctx, tl.t, Filter{TargetType: target.Target.Type, TargetID: target.Target.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range page.Items {
			found = found || r.Sequence == 200
		}
		if !found {
			t.Fatalf("a writer that loaded the log before the merge does not find event 200 by its target (%d items)", len(page.Items))
		}

		// A duplicate sent to a stale writer is recognised in the merged segment.
		rs, err := stale[1].Append(ctx, tl.t, evs[100:101])
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Err != nil || !rs[0].Duplicate || rs[0].Sequence != 100 {
			t.Fatalf("event 100 sent again to a writer that loaded the log before the merge: %+v", rs[0])
		}

		rep := tl.verify(t, VerifyOptions{Deep: true})
		if rep.Problem != nil {
			t.Fatalf("deep verification of the merged index: %v", rep.Problem)
		}
		if rep.Indexed != index.LevelSize(1) || rep.Size != int64(n) {
			t.Fatalf("report = %+v; want %d events indexed of %d", rep, index.LevelSize(1), n)
		}

		// A time range inside the merged segment is answered from the
		// pages its zones allow, and still finds its events.
		rec, err := tl.l.Read(ctx, tl.db.Read, tl.t, 5000)
		if err != nil {
			t.Fatal(err)
		}
		at := rec.Event.OccurredAt
		page, err = tl.l.Query(ctx, tl.t, Filter{OccurredFrom: at, OccurredTo: at.Add(time.Millisecond), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		found = false
		for _, r := range page.Items {
			found = found || r.Sequence == 5000
		}
		if !found {
			t.Fatalf("an occurred_at range around event 5000 does not find it (%d items)", len(page.Items))
		}

		// Page bounds that leave out an event's time would hide it from
		// range queries: deep verification catches them.
		var id int64
		var meta []byte
		if err := tl.db.Read.QueryRowContext(ctx, tl.db.Rebind(`SELECT id, meta FROM segments WHERE tenant_id = ? AND level = 1`),
			tl.t.ID).Scan(&id, &meta); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(meta, &m); err != nil {
			t.Fatal(err)
		}
		zones, _ := m["zones"].([]any)
		if len(zones) != int(index.LevelSize(1)/index.SegmentSize) {
			t.Fatalf("the merged segment has %d page zones, want %d", len(zones), index.LevelSize(1)/index.SegmentSize)
		}
		z := zones[3].(map[string]any)
		z["o1"] = z["o0"]
		bad, _ := json.Marshal(m)
		tl.exec(t, `UPDATE segments SET meta = ? WHERE id = ?`, bad, id)
		rep = tl.verify(t, VerifyOptions{Deep: true})
		wantProblem(t, rep, 3*index.SegmentSize, "would hide events from queries")
		tl.exec(t, `UPDATE segments SET meta = ? WHERE id = ?`, meta, id)

		// A page removed from the merged segment hides events from queries.
		tl.exec(t, `DELETE FROM postings WHERE segment_id = (SELECT id FROM segments WHERE tenant_id = ? AND level = 1)
			AND field = ? AND first_term = (SELECT MAX(first_term) FROM postings p JOIN segments s ON s.id = p.segment_id
				WHERE s.tenant_id = ? AND p.field = ?)`, tl.t.ID, int64(index.FieldActor), tl.t.ID, int64(index.FieldActor))
		rep = tl.verify(t, VerifyOptions{Deep: true})
		if rep.Problem == nil {
			t.Fatal("deep verification passes with a page of the merged index removed")
		}
		t.Logf("with a page removed: %v", rep.Problem)
	})
}

// otherLog opens another writer on the test log's database, as another
// process would.
func (tl *testLog) otherLog(t *testing.T) *Log {
	t.Helper()
	kek, _, err := personal.LoadOrCreateKEK(filepath.Join(tl.dir, "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(tl.db, Config{Instance: "verify.test"}, personal.NewKeyring(tl.db, kek, nil), tenant.NewRegistry(tl.db, kek), tl.key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func countSegments(t *testing.T, tl *testLog, level int) int {
	t.Helper()
	var n int
	if err := tl.db.Read.QueryRowContext(context.Background(), tl.db.Rebind(`SELECT COUNT(*) FROM segments
		WHERE tenant_id = ? AND level = ?`), tl.t.ID, level).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDamagedEntryDoesNotStopTheLog damages one stored entry: a writer that
// loads the log afterwards still appends, a query that reaches the entry
// fails as a damaged log, not as a bad request, and verification names it.
func TestDamagedEntryDoesNotStopTheLog(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		tl := newTestLog(t, db, opts.DataDir, 600)
		tl.rewriteRow(t, 590, func(b *bundle) {
			b.leaves[590-b.first] = []byte(`{"v":1,"id":"x","unknown":true}`)
		})
		l := tl.otherLog(t)
		g := eventgen.New(99, time.Now().Add(-time.Hour))
		var ps []*Prepared
		for i := 0; i < 20; i++ {
			p, err := l.Prepare(ctx, tl.t, g.Next())
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		rs, err := l.Append(ctx, tl.t, ps)
		if err != nil {
			t.Fatalf("append after an entry was damaged: %v", err)
		}
		for i, r := range rs {
			if r.Err != nil || r.Sequence != int64(600+i) {
				t.Fatalf("result %d = %+v", i, r)
			}
		}
		_, err = l.Query(ctx, tl.t, Filter{Limit: 1000})
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Sequence != 590 {
			t.Fatalf("query over the damaged entry: %v; want a CorruptError for 590", err)
		}
		var fe *event.FieldError
		if errors.As(err, &fe) {
			t.Fatalf("query over the damaged entry reports a field error: %v", err)
		}
		wantProblem(t, tl.verify(t, VerifyOptions{}), 590, "altered")
	})
}
