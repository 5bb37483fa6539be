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
	// Terms are the event's other terms.
	Terms    []Term
	Action   string
	Occurred int64 // unix microseconds
	Received int64 // unix microseconds
}

// Memtable indexes the events after the last segment, in memory. Only the
// log writer changes it; readers capture a MemView under the lock that
// orders them against the writer.
type Memtable struct {
	base int64 // first sequence number covered; a multiple of SegmentSize
	size int64 // one past the last sequence number covered
	// idx maps each term to its list in lists; a list holds offsets from
	// base, ascending. Lists only grow, so captured prefixes stay valid.
	idx     map[Term]int32
	lists   [][]int32
	ids     map[string]int64
	idTerms []int64 // by offset
	leaves  []int64 // by offset
	actions map[string]bool
	occ     []int64
	rcv     []int64
}

// NewMemtable returns an empty memtable starting at base.
func NewMemtable(base int64) *Memtable {
	return &Memtable{base: base, size: base, idx: map[Term]int32{}, ids: map[string]int64{},
		actions: map[string]bool{}}
}

// Base is the first sequence number the memtable covers.
func (m *Memtable) Base() int64 { return m.base }

// Size is one past the last sequence number the memtable covers.
func (m *Memtable) Size() int64 { return m.size }

// Add indexes the next event; d.Seq must equal Size.
func (m *Memtable) Add(d *Doc) {
	if d.Seq != m.size {
		panic("index: memtable add out of order")
	}
	off := int32(d.Seq - m.base)
	for _, t := range d.Terms {
		i, ok := m.idx[t]
		if !ok {
			i = int32(len(m.lists))
			m.idx[t] = i
			m.lists = append(m.lists, make([]int32, 0, 4))
		}
		l := m.lists[i]
		if len(l) > 0 && l[len(l)-1] == off {
			continue // the same term twice in one event
		}
		m.lists[i] = append(l, off)
	}
	m.ids[d.ID] = d.Seq
	m.idTerms = append(m.idTerms, d.IDTerm)
	m.leaves = append(m.leaves, d.LeafTerm)
	if !m.actions[d.Action] {
		m.actions[d.Action] = true
	}
	m.occ = append(m.occ, d.Occurred)
	m.rcv = append(m.rcv, d.Received)
	m.size++
}

// LookupID returns the sequence number of the event with the given id, if
// the memtable holds it.
func (m *Memtable) LookupID(id string) (int64, bool) {
	s, ok := m.ids[id]
	return s, ok
}

// Full reports whether the memtable covers a whole segment.
func (m *Memtable) Full() bool { return m.size-m.base >= SegmentSize }

// Cut returns the segment data for the first SegmentSize events and a new
// memtable holding the rest. The memtable must be Full. It does not change m,
// which readers may still be using.
func (m *Memtable) Cut() (*SegmentData, *Memtable) {
	const n = SegmentSize
	end := m.base + n
	sd := &SegmentData{First: m.base, End: end, Fields: map[Field]map[int64][]int64{}}
	rest := NewMemtable(end)
	for t, i := range m.idx {
		l := m.lists[i]
		k := sort.Search(len(l), func(j int) bool { return l[j] >= n })
		if k > 0 {
			f := sd.Fields[t.Field]
			if f == nil {
				f = map[int64][]int64{}
				sd.Fields[t.Field] = f
			}
			abs := make([]int64, k)
			for j, off := range l[:k] {
				abs[j] = m.base + int64(off)
			}
			f[t.Hash] = abs
		}
		if k < len(l) {
			moved := make([]int32, len(l)-k)
			for j, off := range l[k:] {
				moved[j] = off - n
			}
			rest.idx[t] = int32(len(rest.lists))
			rest.lists = append(rest.lists, moved)
		}
	}
	for _, fl := range []struct {
		f    Field
		vals []int64
	}{{FieldID, m.idTerms[:n]}, {FieldLeaf, m.leaves[:n]}} {
		f := make(map[int64][]int64, n)
		for off, h := range fl.vals {
			f[h] = append(f[h], m.base+int64(off))
		}
		sd.Fields[fl.f] = f
	}
	for id, s := range m.ids {
		if s >= end {
			rest.ids[id] = s
		} else {
			sd.IDs = append(sd.IDs, id)
		}
	}
	rest.idTerms = slices.Clone(m.idTerms[n:])
	rest.leaves = slices.Clone(m.leaves[n:])
	sd.Occurred, sd.Received = m.occ[:n:n], m.rcv[:n:n]
	rest.occ, rest.rcv = slices.Clone(m.occ[n:]), slices.Clone(m.rcv[n:])
	rest.size = m.size
	// Which actions belong to which side is not tracked; both get all of
	// them, a superset being harmless for prefix search.
	for a := range m.actions {
		sd.Actions = append(sd.Actions, a)
		rest.actions[a] = true
	}
	sort.Strings(sd.Actions)
	return sd, rest
}

// MemView is what a query needs of a memtable, captured under the lock that
// orders readers against the writer.
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

// View captures the postings of terms and the columns. The caller must hold
// the lock that orders it against Add and Cut.
func (m *Memtable) View(terms []Term) *MemView {
	v := &MemView{Base: m.base, Size: m.size, Occurred: m.occ[:len(m.occ):len(m.occ)],
		Received: m.rcv[:len(m.rcv):len(m.rcv)], terms: slices.Clone(terms)}
	for _, t := range terms {
		var p []int64
		switch t.Field {
		case FieldID, FieldLeaf:
			vals := m.idTerms
			if t.Field == FieldLeaf {
				vals = m.leaves
			}
			for off, h := range vals {
				if h == t.Hash {
					p = append(p, m.base+int64(off))
				}
			}
		default:
			if i, ok := m.idx[t]; ok {
				l := m.lists[i]
				p = make([]int64, len(l))
				for j, off := range l {
					p[j] = m.base + int64(off)
				}
			}
		}
		v.Postings = append(v.Postings, p)
	}
	for a := range m.actions {
		v.Actions = append(v.Actions, a)
	}
	sort.Strings(v.Actions)
	return v
}
