package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/attest/attest/internal/store"
)

// Segments merge in tiers, so that a tenant's count of segments grows with
// the logarithm of its log instead of linearly: Fanout consecutive segments
// of one level, covering an aligned range, become one segment of the next
// level. A query then reads a few long postings instead of many short ones,
// and the writer tests a new event's id against a few filters.
const (
	Fanout = 8
	// MaxLevel is the highest level merges make: a segment of it covers
	// SegmentSize * Fanout^MaxLevel events (1,048,576).
	MaxLevel = 2
)

// LevelSize returns the number of events a segment of the level covers.
func LevelSize(level int) int64 {
	n := int64(SegmentSize)
	for range level {
		n *= Fanout
	}
	return n
}

// Mergeable returns the next group of segments to merge, or nil: Fanout
// consecutive segments of one level below MaxLevel that together cover an
// aligned range of the next level. segs must be ascending and disjoint.
func Mergeable(segs []*Meta) []*Meta {
	for i, m := range segs {
		if m.Level >= MaxLevel || m.First%LevelSize(m.Level+1) != 0 || i+Fanout > len(segs) {
			continue
		}
		group := segs[i : i+Fanout]
		ok := true
		for j, g := range group {
			if g.Level != m.Level || g.End-g.First != LevelSize(m.Level) || j > 0 && g.First != group[j-1].End {
				ok = false
				break
			}
		}
		if ok {
			return slices.Clone(group)
		}
	}
	return nil
}

// MergeSegments reads the segments of group, ascending and contiguous, from
// q and encodes the one segment that replaces them. Their ranges are
// disjoint, so a term's merged postings are its postings in each, in order.
// It reads one field at a time, so its memory is bounded by the largest
// field's pages, not by the merged segment.
func MergeSegments(ctx context.Context, db *store.DB, q store.Querier, group []*Meta) (*Encoded, error) {
	if len(group) < 2 {
		return nil, errors.New("index: a merge needs at least two segments")
	}
	first, end := group[0].First, group[len(group)-1].End
	m := &Meta{First: first, End: end, Level: group[0].Level + 1, Version: metaVersion,
		MinOccurred: group[0].MinOccurred, MaxOccurred: group[0].MaxOccurred,
		MinReceived: group[0].MinReceived, MaxReceived: group[0].MaxReceived}
	for i, g := range group {
		if i > 0 && g.First != group[i-1].End {
			return nil, fmt.Errorf("index: segments [%d, %d) and [%d, %d) are not contiguous", group[i-1].First, group[i-1].End, g.First, g.End)
		}
		m.MinOccurred, m.MaxOccurred = min(m.MinOccurred, g.MinOccurred), max(m.MaxOccurred, g.MaxOccurred)
		m.MinReceived, m.MaxReceived = min(m.MinReceived, g.MinReceived), max(m.MaxReceived, g.MaxReceived)
		m.Actions = append(m.Actions, g.Actions...)
	}
	slices.Sort(m.Actions)
	m.Actions = slices.Compact(m.Actions)
	m.Zones = mergedZones(group)

	e := &Encoded{Meta: m, Replaces: group}
	bf := newIDBloom(int(end - first))
	limit := int(end-first) / commonShare
	fields, err := termFields(ctx, db, q, group)
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		its := make([]*termIter, len(group))
		for i, g := range group {
			pages, err := readPages(ctx, db, q, g.ID, f)
			if err != nil {
				return nil, err
			}
			its[i] = &termIter{base: g.First, pages: pages}
			if err := its[i].next(); err != nil {
				return nil, fmt.Errorf("index: segment %d: %w", g.ID, err)
			}
		}
		pw := pageWriter{base: first, put: func(k int64, data []byte) {
			e.pages = append(e.pages, page{field: f, first: k, data: data})
		}}
		var merged []int64
		for {
			var term int64
			found := false
			for _, it := range its {
				if it.ok && (!found || it.term < term) {
					term, found = it.term, true
				}
			}
			if !found {
				break
			}
			merged = merged[:0]
			for i, it := range its {
				if !it.ok || it.term != term {
					continue
				}
				merged = append(merged, it.post...)
				if err := it.next(); err != nil {
					return nil, fmt.Errorf("index: segment %d: %w", group[i].ID, err)
				}
			}
			pw.add(term, merged)
			switch {
			case f == FieldID:
				addID(bf, term)
			case f != FieldLeaf && len(merged) > limit:
				m.Common = append(m.Common, CommonTerm{Field: f, Hash: term, Count: len(merged)})
			}
		}
		pw.flush()
	}
	for _, col := range []Field{colOccurred, colReceived} {
		for _, g := range group {
			pages, err := readPages(ctx, db, q, g.ID, col)
			if err != nil {
				return nil, err
			}
			for _, p := range pages {
				e.pages = append(e.pages, page{field: col, first: p.first + g.First - first, data: p.data})
			}
		}
	}
	if err := e.finish(bf); err != nil {
		return nil, err
	}
	return e, nil
}

// termFields returns the term fields any of the segments has, ascending.
func termFields(ctx context.Context, db *store.DB, q store.Querier, group []*Meta) ([]Field, error) {
	var out []Field
	for _, g := range group {
		rows, err := q.QueryContext(ctx, db.Rebind(`SELECT DISTINCT field FROM postings WHERE segment_id = ? AND field < ?`),
			g.ID, int64(colOccurred))
		if err != nil {
			return nil, fmt.Errorf("index: list fields: %w", err)
		}
		for rows.Next() {
			var f int64
			if err := rows.Scan(&f); err != nil {
				rows.Close()
				return nil, fmt.Errorf("index: list fields: %w", err)
			}
			out = append(out, Field(f))
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("index: list fields: %w", err)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// readPages returns a segment's pages of one field, in key order.
func readPages(ctx context.Context, db *store.DB, q store.Querier, segID int64, f Field) ([]page, error) {
	rows, err := q.QueryContext(ctx, db.Rebind(`SELECT first_term, data FROM postings WHERE segment_id = ? AND field = ?
		ORDER BY first_term`), segID, int64(f))
	if err != nil {
		return nil, fmt.Errorf("index: read pages: %w", err)
	}
	defer rows.Close()
	var out []page
	for rows.Next() {
		p := page{field: f}
		if err := rows.Scan(&p.first, &p.data); err != nil {
			return nil, fmt.Errorf("index: read pages: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: read pages: %w", err)
	}
	return out, nil
}

// termIter walks the terms of one field of a segment in ascending order,
// decoding each term's postings as it reaches it.
type termIter struct {
	base  int64
	pages []page
	rest  []byte // what is left of the current page
	ok    bool   // term and post hold an entry
	term  int64
	post  []int64
}

var errCorruptPage = errors.New("corrupt postings page")

// next moves to the next term; ok is false once there is none.
func (it *termIter) next() error {
	for len(it.rest) == 0 {
		if len(it.pages) == 0 {
			it.ok = false
			return nil
		}
		it.term, it.rest, it.pages = it.pages[0].first, it.pages[0].data, it.pages[1:]
	}
	d, n := binary.Uvarint(it.rest)
	if n <= 0 {
		return errCorruptPage
	}
	it.rest = it.rest[n:]
	it.term += int64(d) // a page's first entry has delta zero
	cnt, n := binary.Uvarint(it.rest)
	if n <= 0 || cnt > uint64(len(it.rest)) {
		return errCorruptPage
	}
	it.rest = it.rest[n:]
	it.post = it.post[:0]
	last := it.base
	for range cnt {
		v, n := binary.Uvarint(it.rest)
		if n <= 0 {
			return errCorruptPage
		}
		it.rest = it.rest[n:]
		last += int64(v)
		it.post = append(it.post, last)
	}
	it.ok = true
	return nil
}
