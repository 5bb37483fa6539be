package index

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/attest/attest/internal/store"
)

// Digest is an order-independent fingerprint of what a segment says about
// its events: the sum of a keyed hash of every (field, term, sequence)
// entry of its postings and every (column, value, sequence) entry of its
// columns. Verification sums what the log says the segment must hold and
// what it does hold, and compares, in memory that does not grow with the
// segment. The key is chosen afresh by each verification, so that nobody
// who edits the index can aim at a sum. Sums are kept per SegmentSize part
// of the segment, to say where a difference lies.
type Digest struct {
	seed  maphash.Seed
	first int64
	parts []uint64
	buf   [17]byte
	terms []Term
}

// NewDigest returns an empty digest for segment m, keyed by seed.
func NewDigest(seed maphash.Seed, m *Meta) *Digest {
	n := (m.End - m.First + SegmentSize - 1) / SegmentSize
	return &Digest{seed: seed, first: m.First, parts: make([]uint64, n)}
}

func (d *Digest) add(f Field, v, seq int64) {
	off := seq - d.first
	if off < 0 || off >= int64(len(d.parts))*SegmentSize {
		// Outside the segment: make the part it would fall in differ.
		off = 0
		v ^= -1
	}
	d.buf[0] = byte(f)
	binary.LittleEndian.PutUint64(d.buf[1:], uint64(v))
	binary.LittleEndian.PutUint64(d.buf[9:], uint64(seq))
	d.parts[off/SegmentSize] += maphash.Bytes(d.seed, d.buf[:])
}

// AddDoc adds what a segment must hold of one event: its terms, the
// trigrams of its text, and its times.
func (d *Digest) AddDoc(doc *Doc) {
	d.terms = docTerms(d.terms[:0], doc.Terms, doc.IDTerm, doc.LeafTerm, doc.Text)
	for _, t := range d.terms {
		d.add(t.Field, t.Hash, doc.Seq)
	}
	d.add(colOccurred, doc.Occurred, doc.Seq)
	d.add(colReceived, doc.Received, doc.Seq)
}

// docTerms appends every term an event is listed under in a segment, each
// once, in order.
func docTerms(out, terms []Term, id, leaf int64, text string) []Term {
	start := len(out)
	out = append(out, terms...)
	out = append(out, Term{Field: FieldID, Hash: id}, Term{Field: FieldLeaf, Hash: leaf})
	out = appendTrigrams(out, 0, text)
	tail := out[start:]
	slices.SortFunc(tail, compareTerms)
	return append(out[:start], slices.Compact(tail)...)
}

func compareTerms(a, b Term) int {
	if a.Field != b.Field {
		return int(a.Field) - int(b.Field)
	}
	switch {
	case a.Hash < b.Hash:
		return -1
	case a.Hash > b.Hash:
		return 1
	}
	return 0
}

// Equal reports whether the digests agree; when they do not, it returns the
// range of sequence numbers of the first part that differs.
func (d *Digest) Equal(o *Digest) (ok bool, from, to int64) {
	for i := range d.parts {
		if i >= len(o.parts) || d.parts[i] != o.parts[i] {
			return false, d.first + int64(i)*SegmentSize, d.first + int64(i+1)*SegmentSize
		}
	}
	if len(o.parts) != len(d.parts) {
		return false, d.first, d.first + SegmentSize
	}
	return true, 0, 0
}

// Digest reads the whole stored segment and sums it. skip leaves out the
// entries the caller cannot rebuild, such as the keyed terms of erased
// values.
func (m *Meta) Digest(ctx context.Context, db *store.DB, q store.Querier, seed maphash.Seed, skip func(f Field, seq int64) bool) (*Digest, error) {
	d := NewDigest(seed, m)
	rows, err := q.QueryContext(ctx, db.Rebind(`SELECT field, first_term, data FROM postings WHERE segment_id = ?`), m.ID)
	if err != nil {
		return nil, fmt.Errorf("index: read segment %d: %w", m.ID, err)
	}
	defer rows.Close()
	var vals []int64
	for rows.Next() {
		var f, first int64
		var data []byte
		if err := rows.Scan(&f, &first, &data); err != nil {
			return nil, fmt.Errorf("index: read segment %d: %w", m.ID, err)
		}
		field := Field(f)
		if field == colOccurred || field == colReceived {
			if vals, err = decodeColumn(data, vals[:0]); err != nil {
				return nil, fmt.Errorf("index: segment %d: %w", m.ID, err)
			}
			for i, v := range vals {
				d.add(field, v, m.First+first+int64(i))
			}
			continue
		}
		it := &termIter{base: m.First, pages: []page{{field: field, first: first, data: data}}}
		for {
			if err := it.next(); err != nil {
				return nil, fmt.Errorf("index: segment %d: %w", m.ID, err)
			}
			if !it.ok {
				break
			}
			for _, seq := range it.post {
				if skip == nil || !skip(field, seq) {
					d.add(field, it.term, seq)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: read segment %d: %w", m.ID, err)
	}
	return d, nil
}
