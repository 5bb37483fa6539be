package index

import (
	"context"
	"slices"

	"github.com/attest/attest/internal/store"
)

// Range is an inclusive range of unix microseconds; a zero bound is open.
type Range struct {
	From, To int64
}

func (r *Range) contains(v int64) bool {
	return (r.From == 0 || v >= r.From) && (r.To == 0 || v <= r.To)
}

func (r *Range) overlaps(lo, hi int64) bool {
	return (r.From == 0 || hi >= r.From) && (r.To == 0 || lo <= r.To)
}

// Query says which events to find. All its conditions must hold.
type Query struct {
	// All are terms every event must carry.
	All []Term
	// AnyOf are groups of alternatives; an event must satisfy at least one
	// alternative of every group, and satisfies an alternative when it
	// carries all of its terms.
	AnyOf [][][]Term
	// Occurred and Received bound the event times when set.
	Occurred *Range
	Received *Range
	// Lo and Hi bound the sequence numbers: Lo <= seq < Hi.
	Lo, Hi int64
	// Asc asks for oldest first; the default is newest first.
	Asc bool
}

// Terms returns every term the query uses.
func (q *Query) Terms() []Term {
	ts := slices.Clone(q.All)
	for _, g := range q.AnyOf {
		for _, alt := range g {
			ts = append(ts, alt...)
		}
	}
	return ts
}

// Searcher finds candidate events in one snapshot of a tenant's index.
type Searcher struct {
	DB *store.DB
	// Q runs the reads; make it a read transaction so that the segments
	// and the log are read from one snapshot.
	Q store.Querier
	// Segments are the tenant's segments in ascending order of First.
	Segments []*Meta
	// Mem is the memtable view, or nil when the memtable is not available
	// to this process; then Tail must cover the events after the segments.
	Mem *MemView
	// Tail, when Mem is nil, returns the docs of the events from seq from
	// up to the snapshot size, read from the log.
	Tail func(ctx context.Context, from int64) (*MemView, error)
}

// source is one part of the index: a segment or the memtable.
type source struct {
	first, end int64
	seg        *Meta
	mem        *MemView
}

// Run calls emit with the candidate sequence numbers of each part of the
// index in the query's order, until emit returns false or the index is
// exhausted. A candidate satisfies every condition the index can see; the
// caller must still check the event itself.
func (s *Searcher) Run(ctx context.Context, q *Query, emit func(seqs []int64) bool) error {
	srcs, err := s.sources(ctx, q)
	if err != nil {
		return err
	}
	if !q.Asc {
		slices.Reverse(srcs)
	}
	for _, src := range srcs {
		if src.end <= q.Lo || src.first >= q.Hi {
			continue
		}
		if src.seg != nil && !zoneMatch(src.seg, q) {
			continue
		}
		cands, err := s.candidates(ctx, q, src)
		if err != nil {
			return err
		}
		if len(cands) == 0 {
			continue
		}
		if !q.Asc {
			slices.Reverse(cands)
		}
		if !emit(cands) {
			return nil
		}
	}
	return nil
}

func zoneMatch(m *Meta, q *Query) bool {
	if q.Occurred != nil && !q.Occurred.overlaps(m.MinOccurred, m.MaxOccurred) {
		return false
	}
	if q.Received != nil && !q.Received.overlaps(m.MinReceived, m.MaxReceived) {
		return false
	}
	return true
}

func (s *Searcher) sources(ctx context.Context, q *Query) ([]source, error) {
	var srcs []source
	var end int64
	for _, m := range s.Segments {
		if m.First < end {
			continue // covered by a larger segment already listed
		}
		srcs = append(srcs, source{first: m.First, end: m.End, seg: m})
		end = m.End
	}
	mem := s.Mem
	if mem == nil || mem.Base > end {
		if s.Tail == nil {
			return srcs, nil
		}
		v, err := s.Tail(ctx, end)
		if err != nil {
			return nil, err
		}
		mem = v
	}
	if mem != nil && mem.Size > end {
		srcs = append(srcs, source{first: max(end, mem.Base), end: mem.Size, mem: mem})
	}
	return srcs, nil
}

// candidates returns the ascending sequence numbers in one source that meet
// the query's index conditions.
func (s *Searcher) candidates(ctx context.Context, q *Query, src source) ([]int64, error) {
	lo, hi := max(src.first, q.Lo), min(src.end, q.Hi)
	var cands []int64
	all := true
	intersect := func(p []int64) {
		if all {
			// A copy: the range filters below edit cands in place.
			cands, all = slices.Clone(clip(p, lo, hi)), false
			return
		}
		cands = intersectSorted(cands, p)
	}
	chosen := selective(src, q.All)
	for _, t := range chosen {
		p, err := s.postings(ctx, src, t)
		if err != nil {
			return nil, err
		}
		intersect(p)
		if len(cands) == 0 {
			return nil, nil
		}
	}
	// When the rare terms still leave many candidates, the common terms
	// are worth their long postings after all: a posting page costs less
	// than reading the events it rules out.
	if !all && len(cands) > worthReading {
		for _, t := range skipped(src, q.All, chosen) {
			if !worthNarrowing(src, t, len(cands)) {
				break
			}
			p, err := s.postings(ctx, src, t)
			if err != nil {
				return nil, err
			}
			cands = intersectSorted(cands, p)
			if len(cands) <= worthReading {
				break
			}
		}
	}
	for _, group := range q.AnyOf {
		var union []int64
		for _, alt := range group {
			chosen := selective(src, alt)
			var conj []int64
			for i, t := range chosen {
				p, err := s.postings(ctx, src, t)
				if err != nil {
					return nil, err
				}
				if i == 0 {
					conj = clip(p, lo, hi)
				} else {
					conj = intersectSorted(conj, p)
				}
				if len(conj) == 0 {
					break
				}
			}
			for _, t := range skipped(src, alt, chosen) {
				if len(conj) <= worthReading || !worthNarrowing(src, t, len(conj)) {
					break
				}
				p, err := s.postings(ctx, src, t)
				if err != nil {
					return nil, err
				}
				conj = intersectSorted(conj, p)
			}
			union = append(union, conj...)
		}
		intersect(sortedUnique(union))
		if len(cands) == 0 {
			return nil, nil
		}
	}
	if all {
		var ranges [][2]int64
		if src.seg != nil {
			ranges = src.seg.zoneRanges(q, lo, hi)
		} else {
			ranges = [][2]int64{{lo, hi}}
		}
		n := int64(0)
		for _, r := range ranges {
			n += r[1] - r[0]
		}
		cands = make([]int64, 0, n)
		for _, r := range ranges {
			for i := r[0]; i < r[1]; i++ {
				cands = append(cands, i)
			}
		}
	} else if src.seg != nil {
		cands = src.seg.inZones(q, cands)
	}
	for _, c := range []struct {
		r   *Range
		col Field
	}{{q.Occurred, colOccurred}, {q.Received, colReceived}} {
		if c.r == nil || len(cands) == 0 {
			continue
		}
		vals, err := s.column(ctx, src, c.col, cands)
		if err != nil {
			return nil, err
		}
		kept := cands[:0]
		for i, seq := range cands {
			if c.r.contains(vals[i]) {
				kept = append(kept, seq)
			}
		}
		cands = kept
	}
	return cands, nil
}

func (s *Searcher) postings(ctx context.Context, src source, t Term) ([]int64, error) {
	if src.mem != nil {
		for i, mt := range src.mem.terms {
			if mt == t {
				return src.mem.Postings[i], nil
			}
		}
		return nil, nil
	}
	return src.seg.Postings(ctx, s.DB, s.Q, t)
}

// column returns the values of a per-event column for the ascending
// candidates cands of a source.
func (s *Searcher) column(ctx context.Context, src source, f Field, cands []int64) ([]int64, error) {
	if src.mem != nil {
		vals := src.mem.Occurred
		if f == colReceived {
			vals = src.mem.Received
		}
		out := make([]int64, len(cands))
		for i, seq := range cands {
			out[i] = vals[seq-src.mem.Base]
		}
		return out, nil
	}
	return src.seg.ColumnAt(ctx, s.DB, s.Q, f, cands)
}

// maxIntersect bounds the terms of one conjunction looked up per segment.
// Beyond a few rare terms, each more costs a read and narrows little: a
// text's dozen trigrams are mostly implied by any three of them.
const maxIntersect = 3

// selective returns the terms of a conjunction worth intersecting in a
// segment: up to maxIntersect of its terms that are not common there, or,
// when all are, the least common. The terms left out are checked on each
// candidate event instead.
func selective(src source, terms []Term) []Term {
	if src.seg == nil || len(terms) < 2 {
		return terms
	}
	var out []Term
	least, leastN := -1, 0
	for i, t := range terms {
		n := src.seg.CommonCount(t)
		if n == 0 {
			out = append(out, t)
			continue
		}
		if least < 0 || n < leastN {
			least, leastN = i, n
		}
	}
	if len(out) == 0 {
		out = append(out, terms[least])
	}
	if len(out) > maxIntersect {
		// The first, a middle and the last: neighbouring trigrams
		// overlap, distant ones narrow more.
		out = []Term{out[0], out[len(out)/2], out[len(out)-1]}
	}
	return out
}

// worthReading is the number of candidates in a segment below which they are
// read and checked rather than narrowed further with common terms.
const worthReading = 8

// narrowRatio is about how many postings can be decoded in the time it
// takes to read and check one candidate event.
const narrowRatio = 8192

// worthNarrowing reports whether the postings of t are worth reading to
// narrow n candidates in src: when decoding them costs less than reading
// the candidates they are expected to rule out, taking the share of the
// segment's events that carry t as the share of candidates that do. A term
// nearly every event carries rules out nearly nothing, and a rare value
// whose every trigram the candidates already share would otherwise have
// the longest lists of a segment read for nothing. Terms that are not
// common have short lists and are always read.
func worthNarrowing(src source, t Term, n int) bool {
	if src.seg == nil {
		return true
	}
	count := src.seg.CommonCount(t)
	if count == 0 {
		return true
	}
	kept := float64(count) / float64(src.end-src.first)
	return float64(count) < narrowRatio*float64(n)*(1-kept)
}

// skipped returns the terms of all that chosen left out, least common first.
func skipped(src source, all, chosen []Term) []Term {
	var out []Term
	for _, t := range all {
		if !slices.Contains(chosen, t) {
			out = append(out, t)
		}
	}
	if src.seg != nil {
		slices.SortFunc(out, func(a, b Term) int { return src.seg.CommonCount(a) - src.seg.CommonCount(b) })
	}
	return out
}

// clip returns the part of an ascending list within [lo, hi).
func clip(p []int64, lo, hi int64) []int64 {
	i, _ := slices.BinarySearch(p, lo)
	j, _ := slices.BinarySearch(p, hi)
	return p[i:j]
}

func intersectSorted(a, b []int64) []int64 {
	out := make([]int64, 0, min(len(a), len(b)))
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
