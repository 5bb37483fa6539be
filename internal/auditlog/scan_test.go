package auditlog

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/attest/attest/internal/archive"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/eventgen"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// TestScanMatchesQueries checks that one scan over several filters returns,
// for each filter, exactly the records that paging through Query returns,
// in the same order, over a trail with archived and expired entries, an
// erased subject and personal target names, below a size bound.
func TestScanMatchesQueries(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, opts storetest.Options) {
		ctx := context.Background()
		dir := opts.DataDir
		if dir == "" {
			dir = t.TempDir()
		}
		arch, err := archive.NewDir(filepath.Join(dir, "archive"))
		if err != nil {
			t.Fatal(err)
		}
		paths := append(slices.Clone(event.DefaultPersonal), event.PathTargetName)
		rl := newRetentionLogWith(t, db, dir, Config{Archive: arch, Personal: paths})
		g := eventgen.New(9, rl.clock.now())
		start := rl.clock.now()
		rl.add(t, g, 3000) // day 0
		rl.clock.set(start.Add(300 * 24 * time.Hour))
		rl.add(t, g, 2000) // day 300
		rl.clock.set(start.Add(900 * 24 * time.Hour))
		rl.add(t, g, 500) // day 900
		rl.run(t)         // archives the first 4992 entries
		rl.clock.set(start.Add((2557 + 10) * 24 * time.Hour))
		rl.run(t) // expires the day-0 segments
		if h := rl.head(t); h.Expired == 0 || h.Archived <= h.Expired {
			t.Fatalf("head = %+v, want expired and archived entries", h)
		}
		rl.add(t, g, 700)
		size := rl.head(t).Size
		rl.add(t, g, 300) // beyond the size bound

		// Erase the busiest actor's values: their records read as erased.
		probe, err := rl.l.Query(ctx, rl.t, Filter{Asc: true, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		erased := probe.Items[0].Event.Actor.ID
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := rl.l.Keyring().EraseTx(ctx, tx, rl.t.ID, erased)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		rl.l.Keyring().Forget()

		mid := start.Add(300 * 24 * time.Hour)
		ip := probe.Items[3].Event.Actor.IP
		fs := []Filter{
			{Action: "user.login", Outcome: "success"},
			{Category: "security"},
			{Category: "configuration", Outcome: "success", ReceivedFrom: mid, ReceivedTo: mid.Add(time.Hour)},
			{ActorID: erased},
			{ActionPrefix: "call."},
			{Text: "mfa.ver"},
			{ClientIP: ip},
			{Action: "no.such.action"},
			{Category: "data_access", ReceivedFrom: mid.Add(24 * time.Hour)},
		}
		want := make([][]*Record, len(fs))
		for i, f := range fs {
			want[i] = queryAll(t, rl.l, rl, f, size)
			if len(want[i]) == 0 && f.Action != "no.such.action" {
				t.Fatalf("filter %d matches nothing: the test proves little", i)
			}
		}

		got := make([][]*Record, len(fs))
		last := int64(-1)
		treeSize, err := rl.l.Scan(ctx, rl.t, fs, ScanOptions{Size: size}, func(r *Record, matched []int) error {
			if r.Sequence <= last {
				t.Fatalf("scan passed %d after %d", r.Sequence, last)
			}
			last = r.Sequence
			for _, i := range matched {
				got[i] = append(got[i], r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if treeSize != size {
			t.Fatalf("scan read a tree of %d entries, want %d", treeSize, size)
		}
		var seenErased, seenTarget bool
		for i := range fs {
			if len(got[i]) != len(want[i]) {
				t.Fatalf("filter %d: scan found %d records, queries %d", i, len(got[i]), len(want[i]))
			}
			for j, w := range want[i] {
				g := got[i][j]
				if !sameRecord(g, w) {
					t.Fatalf("filter %d, record %d: scan has %+v, query %+v", i, j, g.Event, w.Event)
				}
				seenErased = seenErased || len(w.Erased) > 0
				seenTarget = seenTarget || w.Event.Target.Name != ""
			}
		}
		if !seenErased || !seenTarget {
			t.Fatalf("erased records seen %v, restored target names seen %v", seenErased, seenTarget)
		}

		// Asked for values no record holds, a scan restores only the
		// records a filter on personal values matched.
		n := 0
		_, err = rl.l.Scan(ctx, rl.t, fs, ScanOptions{Size: size, Personal: []string{"request.path"}},
			func(r *Record, matched []int) error {
				w := want[matched[0]][slices.IndexFunc(want[matched[0]], func(w *Record) bool { return w.Sequence == r.Sequence })]
				if slices.ContainsFunc(matched, func(i int) bool { return fs[i].onPersonal() }) {
					if !sameRecord(r, w) {
						t.Fatalf("record %d matched on personal values differs from the query's", r.Sequence)
					}
					return nil
				}
				if r.Event.Actor.Name != "" || r.Event.Actor.IP != "" || r.Erased != nil {
					t.Fatalf("record %d was restored", r.Sequence)
				}
				if r.Event.Action != w.Event.Action || r.Event.Target.ID != w.Event.Target.ID ||
					!r.Event.ReceivedAt.Equal(w.Event.ReceivedAt) {
					t.Fatalf("record %d differs from the query's: %+v", r.Sequence, r.Event)
				}
				n++
				return nil
			})
		if err != nil || n == 0 {
			t.Fatalf("scan without personal values: %v, %d records", err, n)
		}
		// Asked for target names, it restores every record that has one.
		_, err = rl.l.Scan(ctx, rl.t, fs, ScanOptions{Size: size, Personal: []string{event.PathTargetName}},
			func(r *Record, matched []int) error {
				w := want[matched[0]][slices.IndexFunc(want[matched[0]], func(w *Record) bool { return w.Sequence == r.Sequence })]
				if !sameRecord(r, w) {
					t.Fatalf("record %d with its target name differs from the query's: %+v", r.Sequence, r.Event)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}

		// A log whose configuration no longer declares target names
		// personal still restores the records that commit to one.
		kek, _, err := personal.LoadOrCreateKEK(filepath.Join(dir, "kek.key"))
		if err != nil {
			t.Fatal(err)
		}
		other, err := Open(db, Config{Instance: "retention.test", Now: rl.clock.now, Archive: arch},
			personal.NewKeyring(db, kek, nil), tenant.NewRegistry(db, kek), rl.key)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		var public []Filter
		var wantOf [][]*Record
		for i, f := range fs {
			if !f.onPersonal() {
				public, wantOf = append(public, f), append(wantOf, want[i])
			}
		}
		n = 0
		_, err = other.Scan(ctx, rl.t, public, ScanOptions{Size: size, Personal: []string{event.PathTargetName}},
			func(r *Record, matched []int) error {
				w := wantOf[matched[0]][slices.IndexFunc(wantOf[matched[0]], func(w *Record) bool { return w.Sequence == r.Sequence })]
				if !sameRecord(r, w) {
					t.Fatalf("record %d read by another configuration differs from the query's: %+v", r.Sequence, r.Event)
				}
				n++
				return nil
			})
		if err != nil || n == 0 {
			t.Fatalf("scan by another configuration: %v, %d records", err, n)
		}
	})
}

// queryAll pages through f, oldest first, 97 records a page, keeping the
// records below size.
func queryAll(t *testing.T, l *Log, rl *retentionLog, f Filter, size int64) []*Record {
	t.Helper()
	f.Asc, f.Limit = true, 97
	var out []*Record
	for {
		page, err := l.Query(context.Background(), rl.t, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			if r.Sequence < size {
				out = append(out, r)
			}
		}
		if page.Next == "" {
			return out
		}
		f.Cursor = page.Next
	}
}

// sameRecord compares records, their committed and erased paths as sets.
func sameRecord(a, b *Record) bool {
	set := func(ps []string) []string { return slices.Sorted(slices.Values(ps)) }
	return a.Sequence == b.Sequence && a.LeafHash == b.LeafHash && reflect.DeepEqual(a.Leaf, b.Leaf) &&
		reflect.DeepEqual(a.Event, b.Event) && slices.Equal(set(a.Erased), set(b.Erased)) &&
		slices.Equal(set(a.Committed), set(b.Committed))
}
