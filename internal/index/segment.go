package index

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/attest/attest/internal/store"
	"github.com/bits-and-blooms/bloom/v3"
)

// SegmentData is the content of a segment before it is stored.
type SegmentData struct {
	First, End int64
	Level      int
	// Fields maps each field to its terms' postings, ascending.
	Fields   map[Field]map[int64][]int64
	IDTerms  []int64 // the hashes of the events' ids, for the bloom filter
	Actions  []string
	Occurred []int64
	Received []int64
}

// Meta describes a stored segment. It is small and kept in memory.
type Meta struct {
	ID          int64    `json:"-"`
	First       int64    `json:"-"`
	End         int64    `json:"-"`
	Level       int      `json:"-"`
	Version     int      `json:"v"`
	MinOccurred int64    `json:"min_occurred"`
	MaxOccurred int64    `json:"max_occurred"`
	MinReceived int64    `json:"min_received"`
	MaxReceived int64    `json:"max_received"`
	Actions     []string `json:"actions"`
	IDBloom     []byte   `json:"id_bloom"`
	// Common lists the terms that more than one in commonShare of the
	// segment's events carry, with their counts.
	Common []CommonTerm `json:"common,omitempty"`

	bloom  *bloom.BloomFilter
	common map[Term]int
}

// CommonTerm is a term many of a segment's events carry.
type CommonTerm struct {
	Field Field `json:"f"`
	Hash  int64 `json:"h"`
	Count int   `json:"n"`
}

// commonShare is the share of a segment's events from which a term counts
// as common. Intersecting with a common term's long postings narrows little;
// a query skips such terms when it has rarer ones and leaves them to the
// check of each candidate.
const commonShare = 16

// CommonCount returns how many of the segment's events carry t, when t is
// common in it, or 0.
func (m *Meta) CommonCount(t Term) int {
	return m.common[t]
}

func (m *Meta) indexCommon() {
	m.common = make(map[Term]int, len(m.Common))
	for _, c := range m.Common {
		m.common[Term{Field: c.Field, Hash: c.Hash}] = c.Count
	}
}

// MightContainID reports whether the segment may hold an event with this id
// term: false is certain, true may be a false positive.
func (m *Meta) MightContainID(t Term) bool {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.Hash))
	return m.bloom.Test(b[:])
}

const (
	metaVersion = 1
	// pageTarget is the size at which a page of postings is closed.
	pageTarget = 32 << 10
	// columnPage is the number of column values in one page.
	columnPage = 16384
)

// WriteSegment stores a segment's metadata and pages in tx and returns its meta.
func WriteSegment(ctx context.Context, db *store.DB, tx *sql.Tx, tenantID int64, sd *SegmentData) (*Meta, error) {
	m := &Meta{First: sd.First, End: sd.End, Level: sd.Level, Version: metaVersion, Actions: sd.Actions}
	m.MinOccurred, m.MaxOccurred = minMax(sd.Occurred)
	m.MinReceived, m.MaxReceived = minMax(sd.Received)
	bf := bloom.NewWithEstimates(uint(max(len(sd.IDTerms), 1)), 0.0001)
	var b [8]byte
	for _, h := range sd.IDTerms {
		binary.BigEndian.PutUint64(b[:], uint64(h))
		bf.Add(b[:])
	}
	bb, err := bf.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("index: encode bloom filter: %w", err)
	}
	m.IDBloom, m.bloom = bb, bf
	limit := int(sd.End-sd.First) / commonShare
	for f, terms := range sd.Fields {
		if f == FieldID || f == FieldLeaf {
			continue
		}
		for h, p := range terms {
			if len(p) > limit {
				m.Common = append(m.Common, CommonTerm{Field: f, Hash: h, Count: len(p)})
			}
		}
	}
	slices.SortFunc(m.Common, func(a, b CommonTerm) int { return cmp.Compare(b.Count, a.Count) })
	m.indexCommon()
	mj, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("index: encode segment meta: %w", err)
	}
	err = tx.QueryRowContext(ctx, db.Rebind(`INSERT INTO segments (tenant_id, first_seq, end_seq, level, meta)
		VALUES (?, ?, ?, ?, ?) RETURNING id`), tenantID, sd.First, sd.End, sd.Level, mj).Scan(&m.ID)
	if err != nil {
		return nil, fmt.Errorf("index: store segment: %w", err)
	}
	ins := db.Rebind(`INSERT INTO postings (segment_id, field, first_term, data) VALUES (?, ?, ?, ?)`)
	put := func(f Field, first int64, data []byte) error {
		if _, err := tx.ExecContext(ctx, ins, m.ID, int64(f), first, data); err != nil {
			return fmt.Errorf("index: store postings page: %w", err)
		}
		return nil
	}
	fields := make([]Field, 0, len(sd.Fields))
	for f := range sd.Fields {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	for _, f := range fields {
		if err := writeField(sd.First, sd.Fields[f], func(first int64, data []byte) error { return put(f, first, data) }); err != nil {
			return nil, err
		}
	}
	for _, col := range []struct {
		f    Field
		vals []int64
	}{{colOccurred, sd.Occurred}, {colReceived, sd.Received}} {
		for off := 0; off < len(col.vals); off += columnPage {
			end := min(off+columnPage, len(col.vals))
			if err := put(col.f, int64(off), encodeColumn(col.vals[off:end])); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func minMax(v []int64) (lo, hi int64) {
	if len(v) == 0 {
		return 0, 0
	}
	lo, hi = v[0], v[0]
	for _, x := range v[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// writeField packs a field's terms, sorted, into pages of about pageTarget
// bytes. A page holds entries of (term delta, count, postings as deltas from
// the segment start); its row key is its first term.
func writeField(base int64, terms map[int64][]int64, put func(first int64, data []byte) error) error {
	keys := make([]int64, 0, len(terms))
	for k := range terms {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var page []byte
	var first, prev int64
	for i, k := range keys {
		if len(page) == 0 {
			first, prev = k, k
		}
		page = binary.AppendUvarint(page, uint64(k-prev))
		prev = k
		p := terms[k]
		page = binary.AppendUvarint(page, uint64(len(p)))
		last := base
		for _, s := range p {
			page = binary.AppendUvarint(page, uint64(s-last))
			last = s
		}
		if len(page) >= pageTarget || i == len(keys)-1 {
			if err := put(first, page); err != nil {
				return err
			}
			page = nil
		}
	}
	return nil
}

// findInPage returns the postings of term in a page whose first term is first.
func findInPage(page []byte, first, base, term int64) ([]int64, error) {
	bad := errors.New("index: corrupt postings page")
	cur := first
	for len(page) > 0 {
		d, n := binary.Uvarint(page)
		if n <= 0 {
			return nil, bad
		}
		page = page[n:]
		cur += int64(d) // the first entry's delta is zero
		cnt, n := binary.Uvarint(page)
		if n <= 0 || cnt > uint64(len(page)) {
			return nil, bad
		}
		page = page[n:]
		if cur != term {
			for j := uint64(0); j < cnt; j++ {
				_, n := binary.Uvarint(page)
				if n <= 0 {
					return nil, bad
				}
				page = page[n:]
			}
			if cur > term {
				return nil, nil
			}
			continue
		}
		out := make([]int64, 0, cnt)
		last := base
		for j := uint64(0); j < cnt; j++ {
			v, n := binary.Uvarint(page)
			if n <= 0 {
				return nil, bad
			}
			page = page[n:]
			last += int64(v)
			out = append(out, last)
		}
		return out, nil
	}
	return nil, nil
}

func encodeColumn(vals []int64) []byte {
	out := make([]byte, 0, len(vals)*3)
	var prev int64
	for _, v := range vals {
		out = binary.AppendVarint(out, v-prev)
		prev = v
	}
	return out
}

func decodeColumn(b []byte, into []int64) ([]int64, error) {
	var prev int64
	for len(b) > 0 {
		d, n := binary.Varint(b)
		if n <= 0 {
			return nil, errors.New("index: corrupt column page")
		}
		b = b[n:]
		prev += d
		into = append(into, prev)
	}
	return into, nil
}

// LoadMetas returns the metadata of a tenant's segments, ordered by first
// sequence number.
func LoadMetas(ctx context.Context, db *store.DB, q store.Querier, tenantID int64) ([]*Meta, error) {
	rows, err := q.QueryContext(ctx, db.Rebind(`SELECT id, first_seq, end_seq, level, meta FROM segments
		WHERE tenant_id = ? ORDER BY first_seq, level DESC`), tenantID)
	if err != nil {
		return nil, fmt.Errorf("index: list segments: %w", err)
	}
	defer rows.Close()
	var out []*Meta
	for rows.Next() {
		m := &Meta{}
		var mj []byte
		if err := rows.Scan(&m.ID, &m.First, &m.End, &m.Level, &mj); err != nil {
			return nil, fmt.Errorf("index: read segment: %w", err)
		}
		if err := json.Unmarshal(mj, m); err != nil {
			return nil, fmt.Errorf("index: decode segment %d meta: %w", m.ID, err)
		}
		m.bloom = &bloom.BloomFilter{}
		if err := m.bloom.UnmarshalBinary(m.IDBloom); err != nil {
			return nil, fmt.Errorf("index: decode segment %d bloom filter: %w", m.ID, err)
		}
		m.indexCommon()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: list segments: %w", err)
	}
	return out, nil
}

// Postings returns the ascending sequence numbers of term in the segment.
func (m *Meta) Postings(ctx context.Context, db *store.DB, q store.Querier, t Term) ([]int64, error) {
	var first int64
	var page []byte
	err := q.QueryRowContext(ctx, db.Rebind(`SELECT first_term, data FROM postings
		WHERE segment_id = ? AND field = ? AND first_term <= ? ORDER BY first_term DESC LIMIT 1`),
		m.ID, int64(t.Field), t.Hash).Scan(&first, &page)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: read postings: %w", err)
	}
	return findInPage(page, first, m.First, t.Hash)
}

// Column returns a per-event column of the segment: entry i belongs to
// sequence number First+i.
func (m *Meta) Column(ctx context.Context, db *store.DB, q store.Querier, f Field) ([]int64, error) {
	rows, err := q.QueryContext(ctx, db.Rebind(`SELECT data FROM postings WHERE segment_id = ? AND field = ?
		ORDER BY first_term`), m.ID, int64(f))
	if err != nil {
		return nil, fmt.Errorf("index: read column: %w", err)
	}
	defer rows.Close()
	out := make([]int64, 0, m.End-m.First)
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("index: read column: %w", err)
		}
		if out, err = decodeColumn(b, out); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: read column: %w", err)
	}
	if int64(len(out)) != m.End-m.First {
		return nil, fmt.Errorf("index: segment %d column has %d values for %d events", m.ID, len(out), m.End-m.First)
	}
	return out, nil
}

// Occurred returns the segment's occurred_at column.
func (m *Meta) Occurred(ctx context.Context, db *store.DB, q store.Querier) ([]int64, error) {
	return m.Column(ctx, db, q, colOccurred)
}

// Received returns the segment's received_at column.
func (m *Meta) Received(ctx context.Context, db *store.DB, q store.Querier) ([]int64, error) {
	return m.Column(ctx, db, q, colReceived)
}

// sortedUnique sorts s and removes duplicates.
func sortedUnique(s []int64) []int64 {
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return slices.Compact(s)
}

// decodePage returns every term of a page with its postings.
func decodePage(page []byte, first, base int64, into map[int64][]int64) error {
	bad := errors.New("index: corrupt postings page")
	cur := first
	for len(page) > 0 {
		d, n := binary.Uvarint(page)
		if n <= 0 {
			return bad
		}
		page = page[n:]
		cur += int64(d)
		cnt, n := binary.Uvarint(page)
		if n <= 0 || cnt > uint64(len(page)) {
			return bad
		}
		page = page[n:]
		out := make([]int64, 0, cnt)
		last := base
		for j := uint64(0); j < cnt; j++ {
			v, n := binary.Uvarint(page)
			if n <= 0 {
				return bad
			}
			page = page[n:]
			last += int64(v)
			out = append(out, last)
		}
		into[cur] = out
	}
	return nil
}

// Fields reads every term of the segment with its postings, by field.
func (m *Meta) Fields(ctx context.Context, db *store.DB, q store.Querier) (map[Field]map[int64][]int64, error) {
	rows, err := q.QueryContext(ctx, db.Rebind(`SELECT field, first_term, data FROM postings
		WHERE segment_id = ? AND field < ?`), m.ID, int64(colOccurred))
	if err != nil {
		return nil, fmt.Errorf("index: read postings: %w", err)
	}
	defer rows.Close()
	out := map[Field]map[int64][]int64{}
	for rows.Next() {
		var f, first int64
		var data []byte
		if err := rows.Scan(&f, &first, &data); err != nil {
			return nil, fmt.Errorf("index: read postings: %w", err)
		}
		terms := out[Field(f)]
		if terms == nil {
			terms = map[int64][]int64{}
			out[Field(f)] = terms
		}
		if err := decodePage(data, first, m.First, terms); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: read postings: %w", err)
	}
	return out, nil
}
