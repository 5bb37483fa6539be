package index

import (
	"slices"
	"sort"
)

// SegmentSize is the number of events a level-0 segment covers. Segments
// start at multiples of it.
const SegmentSize = 16384

// Doc is what the index keeps of one event.
type Doc struct {
	Seq int64
	ID  string
	// IDTerm and LeafTerm are the hashes of the event's id and leaf terms,
	// which every event has and no two share.
	IDTerm, LeafTerm int64
	// Terms are the event's other terms, without the text trigrams.
	Terms []Term
	// Text is the text indexed as trigrams; empty when it is personal.
	Text     string
	Action   string
	Occurred int64 // unix microseconds
	Received int64 // unix microseconds
	// IPErased is set when the event's client IP has been erased, so that
	// its keyed term, which the index may still list, cannot be rebuilt.
	IPErased bool
}

// Memtable holds the docs of the events after the last segment, in flat
// arrays that only grow, so that appending costs a few copies and a reader
// can scan a captured prefix without holding a lock. Only the log writer
// changes a memtable.
type Memtable struct {
	base    int64 // first sequence number covered; a multiple of SegmentSize
	terms   []Term
	offs    []int32 // doc i's terms are terms[offs[i]:offs[i+1]]
	idTerms []int64
	leaves  []int64
	texts   []string
	actions []string
	occ     []int64
	rcv     []int64
	ids     map[string]int64
}

// NewMemtable returns an empty memtable starting at base.
func NewMemtable(base int64) *Memtable {
	// Sized for one segment's events, which is what a memtable holds
	// unless segment building falls behind, so that it rarely grows.
	const n = SegmentSize
	m := &Memtable{base: base, terms: make([]Term, 0, 8*n), offs: make([]int32, 1, n+1),
		idTerms: make([]int64, 0, n), leaves: make([]int64, 0, n), texts: make([]string, 0, n),
		actions: make([]string, 0, n), occ: make([]int64, 0, n), rcv: make([]int64, 0, n),
		ids: make(map[string]int64, n)}
	return m
}

// Base is the first sequence number the memtable covers.
func (m *Memtable) Base() int64 { return m.base }

// Size is one past the last sequence number the memtable covers.
func (m *Memtable) Size() int64 { return m.base + int64(len(m.idTerms)) }

// Add appends the next event; d.Seq must equal Size.
func (m *Memtable) Add(d *Doc) {
	if d.Seq != m.Size() {
		panic("index: memtable add out of order")
	}
	m.terms = append(m.terms, d.Terms...)
	m.offs = append(m.offs, int32(len(m.terms)))
	m.idTerms = append(m.idTerms, d.IDTerm)
	m.leaves = append(m.leaves, d.LeafTerm)
	m.texts = append(m.texts, d.Text)
	m.actions = append(m.actions, d.Action)
	m.occ = append(m.occ, d.Occurred)
	m.rcv = append(m.rcv, d.Received)
	if d.ID != "" {
		m.ids[d.ID] = d.Seq
	}
}

// LookupID returns the sequence number of the event with the given id, if
// the memtable holds it.
func (m *Memtable) LookupID(id string) (int64, bool) {
	s, ok := m.ids[id]
	return s, ok
}

// Full reports whether the memtable covers at least a whole segment.
func (m *Memtable) Full() bool { return len(m.idTerms) >= SegmentSize }

// Snapshot is an immutable view of a memtable's first n docs.
type Snapshot struct {
	Base    int64
	terms   []Term
	offs    []int32
	idTerms []int64
	leaves  []int64
	texts   []string
	actions []string
	occ     []int64
	rcv     []int64
}

// Snapshot captures the memtable's docs as they are now. The caller must
// hold whatever orders it against Add; the snapshot can then be read
// without it.
func (m *Memtable) Snapshot() *Snapshot {
	n := len(m.idTerms)
	return &Snapshot{Base: m.base, terms: m.terms[:len(m.terms):len(m.terms)], offs: m.offs[: n+1 : n+1],
		idTerms: m.idTerms[:n:n], leaves: m.leaves[:n:n], texts: m.texts[:n:n], actions: m.actions[:n:n],
		occ: m.occ[:n:n], rcv: m.rcv[:n:n]}
}

// Size is one past the last sequence number the snapshot covers.
func (s *Snapshot) Size() int64 { return s.Base + int64(len(s.idTerms)) }

// Rebase returns a memtable holding the docs of m from seq on, after the
// ones before it have gone into a segment.
func (m *Memtable) Rebase(seq int64) *Memtable {
	k := int(seq - m.base)
	r := NewMemtable(seq)
	start := m.offs[k]
	// The rest is appended to the new memtable's slices, which are sized
	// for a segment, so that its next adds do not grow them.
	r.terms = append(r.terms, m.terms[start:]...)
	for _, o := range m.offs[k+1:] {
		r.offs = append(r.offs, o-start)
	}
	r.idTerms = append(r.idTerms, m.idTerms[k:]...)
	r.leaves = append(r.leaves, m.leaves[k:]...)
	r.texts = append(r.texts, m.texts[k:]...)
	r.actions = append(r.actions, m.actions[k:]...)
	r.occ = append(r.occ, m.occ[k:]...)
	r.rcv = append(r.rcv, m.rcv[k:]...)
	for id, s := range m.ids {
		if s >= seq {
			r.ids[id] = s
		}
	}
	return r
}

// BuildSegment makes the segment of the snapshot's first SegmentSize docs:
// the inverted index of every field, text trigrams included. It counts
// each term's postings first and then fills one flat array, so that
// building costs one map lookup per posting and no allocation per term.
func (s *Snapshot) BuildSegment() *SegmentData {
	const n = SegmentSize
	type slot struct {
		term Term
		n    int32 // postings
		last int32 // the last doc counted, to count each doc once
	}
	index := newTermTable(4 * n)
	var slots []slot
	occ := make([]int32, 0, 48*n) // the slot of each posting, doc by doc
	var grams []Term
	see := func(t Term, doc int32) {
		k := index.slot(t, int32(len(slots)))
		if k == int32(len(slots)) {
			slots = append(slots, slot{term: t, last: -1})
		}
		if sl := &slots[k]; sl.last != doc {
			sl.n++
			sl.last = doc
			occ = append(occ, k)
		}
	}
	ends := make([]int32, n) // doc i's postings are occ[ends[i-1]:ends[i]]
	for i := 0; i < n; i++ {
		doc := int32(i)
		for _, t := range s.terms[s.offs[i]:s.offs[i+1]] {
			see(t, doc)
		}
		see(Term{Field: FieldID, Hash: s.idTerms[i]}, doc)
		see(Term{Field: FieldLeaf, Hash: s.leaves[i]}, doc)
		grams = appendTrigrams(grams[:0], 0, s.texts[i])
		for _, t := range grams {
			see(t, doc)
		}
		ends[i] = int32(len(occ))
	}
	order := make([]int32, len(slots))
	for k := range order {
		order[k] = int32(k)
	}
	slices.SortFunc(order, func(a, b int32) int { return compareTerms(slots[a].term, slots[b].term) })
	sd := &SegmentData{First: s.Base, End: s.Base + n, Terms: make([]Term, len(slots)),
		Offs: make([]int32, len(slots)+1), Postings: make([]int32, len(occ))}
	next := make([]int32, len(slots)) // where each slot's next posting goes
	var off int32
	for r, k := range order {
		sd.Terms[r] = slots[k].term
		sd.Offs[r] = off
		next[k] = off
		off += slots[k].n
	}
	sd.Offs[len(slots)] = off
	start := int32(0)
	for i := 0; i < n; i++ {
		for _, k := range occ[start:ends[i]] {
			sd.Postings[next[k]] = int32(i)
			next[k]++
		}
		start = ends[i]
	}
	seen := map[string]bool{}
	for _, a := range s.actions[:n] {
		if !seen[a] {
			seen[a] = true
			sd.Actions = append(sd.Actions, a)
		}
	}
	sort.Strings(sd.Actions)
	sd.IDTerms = s.idTerms[:n:n]
	sd.Occurred, sd.Received = s.occ[:n:n], s.rcv[:n:n]
	return sd
}

// MemView is what a query needs of a memtable.
type MemView struct {
	Base, Size int64
	// Postings holds, for each requested term, its sequence numbers in
	// ascending order.
	Postings [][]int64
	Occurred []int64
	Received []int64
	Actions  []string

	terms []Term
}

// View computes, from a snapshot, the postings of terms and the columns.
// It scans the snapshot's docs, which is cheap for a memtable's few
// thousand events and needs no lock.
func (s *Snapshot) View(terms []Term) *MemView {
	v := &MemView{Base: s.Base, Size: s.Size(), Occurred: s.occ, Received: s.rcv, terms: slices.Clone(terms),
		Postings: make([][]int64, len(terms))}
	text := slices.ContainsFunc(terms, func(t Term) bool { return t.Field == FieldText })
	var grams []Term
	for i := range s.idTerms {
		seq := s.Base + int64(i)
		if text {
			grams = appendTrigrams(grams[:0], 0, s.texts[i])
		}
		doc := s.terms[s.offs[i]:s.offs[i+1]]
		for j, t := range terms {
			var hit bool
			switch t.Field {
			case FieldID:
				hit = s.idTerms[i] == t.Hash
			case FieldLeaf:
				hit = s.leaves[i] == t.Hash
			case FieldText:
				hit = slices.Contains(grams, t)
			default:
				hit = slices.Contains(doc, t)
			}
			if hit {
				v.Postings[j] = append(v.Postings[j], seq)
			}
		}
	}
	seen := map[string]bool{}
	for _, a := range s.actions {
		if !seen[a] {
			seen[a] = true
			v.Actions = append(v.Actions, a)
		}
	}
	sort.Strings(v.Actions)
	return v
}

// termTable maps the terms of a segment being built to their slots. Term
// hashes are well spread, so an open-addressed table probed linearly from
// a multiplicative hash does the work of a map at a fraction of its cost.
type termTable struct {
	terms []Term
	slots []int32 // slot+1 of terms[i]; 0 for an empty cell
	shift uint
	used  int
}

func newTermTable(hint int) *termTable {
	bits := uint(4)
	for 1<<bits < 2*hint {
		bits++
	}
	return &termTable{terms: make([]Term, 1<<bits), slots: make([]int32, 1<<bits), shift: 64 - bits}
}

// slot returns t's slot, giving it next when t is new.
func (tt *termTable) slot(t Term, next int32) int32 {
	mask := uint64(len(tt.slots) - 1)
	i := ((uint64(t.Hash) ^ uint64(t.Field)<<56) * 0x9e3779b97f4a7c15) >> tt.shift
	for {
		switch s := tt.slots[i]; {
		case s == 0:
			tt.terms[i], tt.slots[i] = t, next+1
			if tt.used++; 2*tt.used > len(tt.slots) {
				tt.grow()
			}
			return next
		case tt.terms[i] == t:
			return s - 1
		}
		i = (i + 1) & mask
	}
}

func (tt *termTable) grow() {
	old := *tt
	*tt = *newTermTable(len(old.slots))
	for i, s := range old.slots {
		if s != 0 {
			tt.slot(old.terms[i], s-1)
		}
	}
}
