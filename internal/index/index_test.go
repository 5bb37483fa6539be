package index

import (
	"context"
	"database/sql"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

const testTenant = 1

var words = []string{"call", "with", "the", "lees", "about", "elm", "street", "offer", "viewing", "Größe", "déjà", "vu"}

// testDocs returns n docs with a few busy and many rare values per field.
func testDocs(n int, seed uint64) []*Doc {
	r := rand.New(rand.NewPCG(seed, 1))
	docs := make([]*Doc, n)
	for i := range docs {
		d := &Doc{Seq: int64(i), ID: fmt.Sprintf("ev-%d-%d", seed, i), Occurred: 1_700_000_000_000_000 + int64(i)*1000 - r.Int64N(5000),
			Received: 1_700_000_000_000_000 + int64(i)*1000, Action: []string{"call.read", "call.update", "user.login"}[r.IntN(3)]}
		d.IDTerm = HashValue(FieldID, d.ID).Hash
		d.LeafTerm = int64(r.Uint64())
		d.Terms = []Term{
			HashValue(FieldActor, fmt.Sprintf("usr-%d", min(r.IntN(50), r.IntN(5000)))),
			HashValue(FieldAction, d.Action),
			HashValue(FieldCategory, []string{"data_access", "authentication"}[r.IntN(2)]),
			HashValue(FieldOutcome, "success"),
			TargetTerm("call", fmt.Sprintf("c-%d", r.IntN(20000))),
		}
		if r.IntN(10) == 0 {
			d.Terms = append(d.Terms, d.Terms[0]) // a repeated term counts once
		}
		d.Text = words[r.IntN(len(words))] + " " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]
		docs[i] = d
	}
	return docs
}

// expected returns, for every term of docs, its ascending postings.
func expected(docs []*Doc) map[Term][]int64 {
	out := map[Term][]int64{}
	for _, d := range docs {
		for _, t := range docTerms(nil, d.Terms, d.IDTerm, d.LeafTerm, d.Text) {
			out[t] = append(out[t], d.Seq)
		}
	}
	return out
}

// storeSegments builds and stores a segment of each full SegmentSize of docs.
func storeSegments(t *testing.T, db *store.DB, docs []*Doc) []*Meta {
	t.Helper()
	ctx := context.Background()
	mem := NewMemtable(0)
	var metas []*Meta
	for _, d := range docs {
		mem.Add(d)
		if !mem.Full() {
			continue
		}
		sd := mem.Snapshot().BuildSegment()
		enc, err := EncodeSegment(sd)
		if err != nil {
			t.Fatal(err)
		}
		var m *Meta
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			m, err = enc.Store(ctx, db, tx, testTenant)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		metas = append(metas, m)
		mem = mem.Rebase(sd.End)
	}
	return metas
}

// checkPostings compares the stored postings of a sample of the docs' terms,
// the busiest among them always included, with the docs'.
func checkPostings(t *testing.T, db *store.DB, m *Meta, want map[Term][]int64) {
	t.Helper()
	ctx := context.Background()
	terms := make([]Term, 0, len(want))
	for term := range want {
		terms = append(terms, term)
	}
	slices.SortFunc(terms, func(a, b Term) int {
		if c := len(want[b]) - len(want[a]); c != 0 {
			return c
		}
		return compareTerms(a, b)
	})
	const sample = 400
	step := max(1, len(terms)/sample)
	n := 0
	for i, term := range terms {
		if i >= 50 && i%step != 0 {
			continue
		}
		seqs := want[term]
		var in []int64
		for _, s := range seqs {
			if s >= m.First && s < m.End {
				in = append(in, s)
			}
		}
		if len(in) == 0 {
			continue
		}
		got, err := m.Postings(ctx, db, db.Read, term)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, in) {
			t.Fatalf("segment [%d, %d) term %v: %d postings, want %d", m.First, m.End, term, len(got), len(in))
		}
		n++
	}
	if n == 0 {
		t.Fatal("no term checked")
	}
	missing, err := m.Postings(ctx, db, db.Read, HashValue(FieldActor, "nobody"))
	if err != nil || len(missing) != 0 {
		t.Fatalf("an absent term has postings %v (%v)", missing, err)
	}
}

func TestSegmentPostingsAndColumns(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, _ storetest.Options) {
		docs := testDocs(2*SegmentSize+100, 1)
		metas := storeSegments(t, db, docs)
		if len(metas) != 2 {
			t.Fatalf("%d segments, want 2", len(metas))
		}
		want := expected(docs)
		for _, m := range metas {
			checkPostings(t, db, m, want)
		}
		m := metas[1]
		seqs := []int64{m.First, m.First + 7, m.First + 9000, m.End - 1}
		occ, err := m.ColumnAt(context.Background(), db, db.Read, colOccurred, seqs)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range seqs {
			if occ[i] != docs[s].Occurred {
				t.Fatalf("occurred of %d = %d, want %d", s, occ[i], docs[s].Occurred)
			}
		}
		if _, err := m.ColumnAt(context.Background(), db, db.Read, colOccurred, []int64{m.End}); err == nil {
			t.Fatal("a column value past the segment's end was returned")
		}
	})
}

func TestMergeSegments(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, _ storetest.Options) {
		ctx := context.Background()
		docs := testDocs(Fanout*SegmentSize+10, 2)
		metas := storeSegments(t, db, docs)
		if Mergeable(metas[:Fanout-1]) != nil {
			t.Fatal("seven segments are mergeable")
		}
		group := Mergeable(metas)
		if len(group) != Fanout {
			t.Fatalf("mergeable group of %d, want %d", len(group), Fanout)
		}
		var enc *Encoded
		if err := db.ReadTx(ctx, func(tx *sql.Tx) error {
			var err error
			enc, err = MergeSegments(ctx, db, tx, group)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var m *Meta
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			m, err = enc.Store(ctx, db, tx, testTenant)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		stored, err := LoadMetas(ctx, db, db.Read, testTenant)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != 1 || stored[0].ID != m.ID || m.Level != 1 || m.First != 0 || m.End != LevelSize(1) {
			t.Fatalf("after the merge: %d segments, merged %+v", len(stored), m)
		}
		for _, old := range metas {
			if old.ID == m.ID {
				t.Fatalf("the merged segment reuses the id %d of a replaced one", old.ID)
			}
		}
		m = stored[0] // as another process loads it
		want := expected(docs)
		checkPostings(t, db, m, want)
		for _, d := range docs[:m.End] {
			if !m.MightContainID(NewIDProbe(Term{Field: FieldID, Hash: d.IDTerm})) {
				t.Fatalf("the merged id filter lacks event %d", d.Seq)
			}
		}
		if m.CommonCount(HashValue(FieldOutcome, "success")) != int(m.End) {
			t.Fatalf("outcome success is common in every event: count %d", m.CommonCount(HashValue(FieldOutcome, "success")))
		}
		if !slices.Equal(m.Actions, []string{"call.read", "call.update", "user.login"}) {
			t.Fatalf("actions = %v", m.Actions)
		}
		occ, err := m.ColumnAt(ctx, db, db.Read, colReceived, []int64{0, SegmentSize, m.End - 1})
		if err != nil || occ[1] != docs[SegmentSize].Received || occ[2] != docs[m.End-1].Received {
			t.Fatalf("merged received column: %v (%v)", occ, err)
		}

		// The digest of the docs matches the stored segment, under any key,
		// and stops matching when a page is lost.
		seed := maphash.MakeSeed()
		digest := func() *Digest {
			d := NewDigest(seed, m)
			for _, doc := range docs[:m.End] {
				d.AddDoc(doc)
			}
			return d
		}
		got, err := m.Digest(ctx, db, db.Read, seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok, from, to := digest().Equal(got); !ok {
			t.Fatalf("digest of an intact merged segment differs in [%d, %d)", from, to)
		}
		if _, err := db.Write.ExecContext(ctx, db.Rebind(`DELETE FROM postings WHERE segment_id = ? AND field = ?
			AND first_term = (SELECT MIN(first_term) FROM postings WHERE segment_id = ? AND field = ?)`),
			m.ID, int64(FieldTarget), m.ID, int64(FieldTarget)); err != nil {
			t.Fatal(err)
		}
		got, err = m.Digest(ctx, db, db.Read, seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _, _ := digest().Equal(got); ok {
			t.Fatal("digest matches with a postings page removed")
		}
	})
}

func TestSearcherMatchesBruteForce(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, _ storetest.Options) {
		ctx := context.Background()
		docs := testDocs(2*SegmentSize+3000, 3)
		metas := storeSegments(t, db, docs)
		mem := NewMemtable(metas[len(metas)-1].End)
		for _, d := range docs[mem.Base():] {
			mem.Add(d)
		}
		actor := docs[5].Terms[0]
		text := TextTerms("elm street")
		for _, tc := range []struct {
			name  string
			q     Query
			match func(d *Doc) bool
		}{
			{"actor", Query{All: []Term{actor}}, func(d *Doc) bool { return slices.Contains(d.Terms, actor) }},
			{"actor and category", Query{All: []Term{actor, HashValue(FieldCategory, "authentication")}}, func(d *Doc) bool {
				return slices.Contains(d.Terms, actor) && slices.Contains(d.Terms, HashValue(FieldCategory, "authentication"))
			}},
			{"text", Query{AnyOf: [][][]Term{{text}}}, func(d *Doc) bool {
				grams := appendTrigrams(nil, 0, d.Text)
				for _, g := range text {
					if !slices.Contains(grams, g) {
						return false
					}
				}
				return true
			}},
			{"occurred range", Query{All: []Term{actor}, Occurred: &Range{From: docs[10000].Occurred, To: docs[30000].Occurred}},
				func(d *Doc) bool {
					return slices.Contains(d.Terms, actor) && d.Occurred >= docs[10000].Occurred && d.Occurred <= docs[30000].Occurred
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var want []int64
				for _, d := range docs {
					if tc.match(d) {
						want = append(want, d.Seq)
					}
				}
				if err := db.ReadTx(ctx, func(tx *sql.Tx) error {
					s := &Searcher{DB: db, Q: tx, Segments: metas, Mem: mem.Snapshot().View(tc.q.Terms())}
					q := tc.q
					q.Hi, q.Asc = int64(len(docs)), true
					var got []int64
					err := s.Run(ctx, &q, func(seqs []int64) bool { got = append(got, seqs...); return true })
					// The index narrows; every true match must be among the candidates.
					for _, w := range want {
						if _, ok := slices.BinarySearch(got, w); !ok {
							t.Fatalf("event %d matches but is not a candidate (%d candidates, %d matches)", w, len(got), len(want))
						}
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if len(want) == 0 {
					t.Fatal("the query matches nothing; the test proves nothing")
				}
			})
		}
	})
}

func BenchmarkBuildSegment(b *testing.B) {
	mem := NewMemtable(0)
	for _, d := range testDocs(SegmentSize, 4) {
		mem.Add(d)
	}
	snap := mem.Snapshot()
	b.ResetTimer()
	for range b.N {
		snap.BuildSegment()
	}
	b.ReportMetric(float64(b.N*SegmentSize)/b.Elapsed().Seconds(), "docs/s")
}

func TestFold(t *testing.T) {
	for _, pair := range [][2]string{{"σίσυφος", "ΣΊΣΥΦΟΣ"}, {"k", "\u212a"}, {"straße", "STRAßE"}, {"Elm", "eLM"}} {
		if Fold(pair[0]) != Fold(pair[1]) {
			t.Errorf("Fold(%q) = %q, Fold(%q) = %q; want them equal", pair[0], Fold(pair[0]), pair[1], Fold(pair[1]))
		}
		if !slices.Equal(TextTerms(pair[0]+"xx"), TextTerms(pair[1]+"xx")) {
			t.Errorf("trigrams of %q and %q differ", pair[0], pair[1])
		}
	}
	if Fold("a") == Fold("b") {
		t.Error("a and b fold alike")
	}
}
