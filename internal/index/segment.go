package index

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
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
	// Terms are the segment's distinct terms, ascending by field and hash;
	// the postings of Terms[i] are Postings[Offs[i]:Offs[i+1]], each the
	// offset of an event from First, ascending.
	Terms    []Term
	Offs     []int32
	Postings []int32
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
	// IDBloomSum is the SHA-256 of IDBloom, in hex. A filter that does not
	// match it is not trusted to rule an id out: a damaged filter must not
	// let a retried event be stored twice. Segments written before it have
	// none.
	IDBloomSum string `json:"id_bloom_sum,omitempty"`
	// Common lists the terms that more than one in commonShare of the
	// segment's events carry, with their counts.
	Common []CommonTerm `json:"common,omitempty"`
	// Zones holds the time bounds of each column page, for a segment of
	// more than one.
	Zones []Zone `json:"zones,omitempty"`

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

// IDProbe tests one id term against the bloom filters of many segments,
// hashing it once: the filters differ in size but share their number of
// hash functions, so the same locations serve them all.
type IDProbe struct {
	key  [8]byte
	k    uint
	locs []uint64
}

// NewIDProbe returns a probe for the id term t.
func NewIDProbe(t Term) *IDProbe {
	p := &IDProbe{}
	binary.BigEndian.PutUint64(p.key[:], uint64(t.Hash))
	return p
}

// MightContainID reports whether the segment may hold an event with the
// probe's id term: false is certain, true may be a false positive.
// FilterDamaged reports whether the segment's id filter failed its
// checksum, so that it rules no id out.
func (m *Meta) FilterDamaged() bool { return m.bloom == nil }

func (m *Meta) MightContainID(p *IDProbe) bool {
	if m.bloom == nil {
		return true // a damaged filter rules nothing out
	}
	if k := m.bloom.K(); k != p.k {
		p.k, p.locs = k, bloom.Locations(p.key[:], k)
	}
	return m.bloom.TestLocations(p.locs)
}

const (
	metaVersion = 1
	// pageTarget is the size at which a page of postings is closed.
	pageTarget = 32 << 10
	// columnPage is the number of column values in one page.
	columnPage = 16384
)

// Encoded is a segment ready to be stored: its metadata and its rows,
// computed off the writer's path so that storing it costs only inserts.
type Encoded struct {
	Meta  *Meta
	pages []page
	// Replaces are the segments a merged segment takes the place of.
	Replaces []*Meta
}

// page is one stored row of a segment: a page of a field's postings, keyed by
// its first term, or a page of a column, keyed by its offset.
type page struct {
	field Field
	first int64
	data  []byte
}

// Rows returns the number of rows Store writes.
func (e *Encoded) Rows() int { return len(e.pages) }

// EncodeSegment encodes a segment built from the memtable.
func EncodeSegment(sd *SegmentData) (*Encoded, error) {
	m := &Meta{First: sd.First, End: sd.End, Level: sd.Level, Version: metaVersion, Actions: sd.Actions}
	m.MinOccurred, m.MaxOccurred = minMax(sd.Occurred)
	m.MinReceived, m.MaxReceived = minMax(sd.Received)
	if m.pageCount() > 1 {
		m.Zones = zonesOf(sd.Occurred, sd.Received)
	}
	bf := newIDBloom(len(sd.IDTerms))
	for _, h := range sd.IDTerms {
		addID(bf, h)
	}
	limit := int(sd.End-sd.First) / commonShare
	e := &Encoded{Meta: m}
	var pw pageWriter
	for i, t := range sd.Terms {
		if i == 0 || t.Field != sd.Terms[i-1].Field {
			pw.flush()
			f := t.Field
			pw = pageWriter{base: sd.First, put: func(first int64, data []byte) {
				e.pages = append(e.pages, page{field: f, first: first, data: data})
			}}
		}
		post := sd.Postings[sd.Offs[i]:sd.Offs[i+1]]
		pw.addOffsets(t.Hash, post)
		if t.Field != FieldID && t.Field != FieldLeaf && len(post) > limit {
			m.Common = append(m.Common, CommonTerm{Field: t.Field, Hash: t.Hash, Count: len(post)})
		}
	}
	pw.flush()
	for _, col := range []struct {
		f    Field
		vals []int64
	}{{colOccurred, sd.Occurred}, {colReceived, sd.Received}} {
		for off := 0; off < len(col.vals); off += columnPage {
			end := min(off+columnPage, len(col.vals))
			e.pages = append(e.pages, page{field: col.f, first: int64(off), data: encodeColumn(col.vals[off:end])})
		}
	}
	if err := e.finish(bf); err != nil {
		return nil, err
	}
	return e, nil
}

// finish completes the metadata once the filter and common terms are known.
func (e *Encoded) finish(bf *bloom.BloomFilter) error {
	m := e.Meta
	bb, err := bf.MarshalBinary()
	if err != nil {
		return fmt.Errorf("index: encode bloom filter: %w", err)
	}
	m.IDBloom, m.bloom = bb, bf
	slices.SortFunc(m.Common, func(a, b CommonTerm) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Hash, b.Hash))
	})
	m.indexCommon()
	return nil
}

// idFPR is the false positive rate of the id filters: the share of new
// events whose id costs the writer a postings read in the segment.
const idFPR = 0.0001

func newIDBloom(n int) *bloom.BloomFilter { return bloom.NewWithEstimates(uint(max(n, 1)), idFPR) }

func addID(bf *bloom.BloomFilter, h int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(h))
	bf.Add(b[:])
}

// Store writes the segment in tx, and deletes the segments it replaces,
// returning its metadata with its id.
func (e *Encoded) Store(ctx context.Context, db *store.DB, tx *sql.Tx, tenantID int64) (*Meta, error) {
	m := e.Meta
	sum := sha256.Sum256(m.IDBloom)
	m.IDBloomSum = hex.EncodeToString(sum[:])
	mj, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("index: encode segment meta: %w", err)
	}
	err = tx.QueryRowContext(ctx, db.Rebind(`INSERT INTO segments (tenant_id, first_seq, end_seq, level, meta)
		VALUES (?, ?, ?, ?, ?) RETURNING id`), tenantID, m.First, m.End, m.Level, mj).Scan(&m.ID)
	if err != nil {
		return nil, fmt.Errorf("index: store segment: %w", err)
	}
	ins, err := tx.PrepareContext(ctx, db.Rebind(`INSERT INTO postings (segment_id, field, first_term, data) VALUES (?, ?, ?, ?)`))
	if err != nil {
		return nil, fmt.Errorf("index: store postings: %w", err)
	}
	defer ins.Close()
	for _, p := range e.pages {
		if _, err := ins.ExecContext(ctx, m.ID, int64(p.field), p.first, p.data); err != nil {
			return nil, fmt.Errorf("index: store postings page: %w", err)
		}
	}
	// Deleted only now: SQLite gives a new row the highest id plus one,
	// and a segment's id must never be reused while a stale list of
	// segments may still name it.
	for _, old := range e.Replaces {
		if err := deleteSegment(ctx, db, tx, old.ID); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func deleteSegment(ctx context.Context, db *store.DB, tx *sql.Tx, id int64) error {
	if _, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM postings WHERE segment_id = ?`), id); err != nil {
		return fmt.Errorf("index: delete segment %d postings: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM segments WHERE id = ?`), id); err != nil {
		return fmt.Errorf("index: delete segment %d: %w", id, err)
	}
	return nil
}

// WriteSegment encodes and stores a segment built from the memtable.
func WriteSegment(ctx context.Context, db *store.DB, tx *sql.Tx, tenantID int64, sd *SegmentData) (*Meta, error) {
	e, err := EncodeSegment(sd)
	if err != nil {
		return nil, err
	}
	return e.Store(ctx, db, tx, tenantID)
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

// pageWriter packs a field's terms, given in ascending order, into pages of
// about pageTarget bytes. A page holds entries of (term delta, count,
// postings as deltas from the segment start); its row key is its first term.
type pageWriter struct {
	base        int64
	put         func(first int64, data []byte)
	page        []byte
	first, prev int64
}

func (w *pageWriter) add(term int64, postings []int64) { addPostings(w, term, postings, w.base) }

// addOffsets is add for postings given as offsets from the base.
func (w *pageWriter) addOffsets(term int64, offs []int32) { addPostings(w, term, offs, 0) }

// addPostings appends a term and its ascending postings, each stored as
// its distance from the one before, the first from base.
func addPostings[T int32 | int64](w *pageWriter, term int64, postings []T, base T) {
	if len(w.page) == 0 {
		w.first, w.prev = term, term
	}
	w.page = binary.AppendUvarint(w.page, uint64(term-w.prev))
	w.prev = term
	w.page = binary.AppendUvarint(w.page, uint64(len(postings)))
	last := base
	for _, s := range postings {
		w.page = binary.AppendUvarint(w.page, uint64(s-last))
		last = s
	}
	if len(w.page) >= pageTarget {
		w.flush()
	}
}

func (w *pageWriter) flush() {
	if len(w.page) > 0 && w.put != nil {
		w.put(w.first, w.page)
		w.page = nil
	}
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
		if sum := sha256.Sum256(m.IDBloom); m.IDBloomSum == "" || hex.EncodeToString(sum[:]) == m.IDBloomSum {
			m.bloom = &bloom.BloomFilter{}
			if err := m.bloom.UnmarshalBinary(m.IDBloom); err != nil {
				return nil, fmt.Errorf("index: decode segment %d bloom filter: %w", m.ID, err)
			}
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

// ColumnAt returns, for the given ascending sequence numbers of the
// segment, their values in a per-event column. It decodes only the column
// pages that hold one of them.
func (m *Meta) ColumnAt(ctx context.Context, db *store.DB, q store.Querier, f Field, seqs []int64) ([]int64, error) {
	out := make([]int64, len(seqs))
	if len(seqs) == 0 {
		return out, nil
	}
	lo, hi := seqs[0]-m.First, seqs[len(seqs)-1]-m.First
	if lo < 0 || hi >= m.End-m.First {
		return nil, fmt.Errorf("index: sequence numbers outside segment [%d, %d)", m.First, m.End)
	}
	rows, err := q.QueryContext(ctx, db.Rebind(`SELECT first_term, data FROM postings
		WHERE segment_id = ? AND field = ? AND first_term > ? AND first_term <= ? ORDER BY first_term`),
		m.ID, int64(f), lo-columnPage, hi)
	if err != nil {
		return nil, fmt.Errorf("index: read column: %w", err)
	}
	defer rows.Close()
	var vals []int64
	i, filled := 0, 0
	for rows.Next() {
		var off int64
		var b []byte
		if err := rows.Scan(&off, &b); err != nil {
			return nil, fmt.Errorf("index: read column: %w", err)
		}
		start := m.First + off
		for i < len(seqs) && seqs[i] < start {
			i++
		}
		if i == len(seqs) || seqs[i] >= start+columnPage {
			continue // no sequence number wanted from this page
		}
		if vals, err = decodeColumn(b, vals[:0]); err != nil {
			return nil, err
		}
		for ; i < len(seqs) && seqs[i] < start+int64(len(vals)); i++ {
			out[i] = vals[seqs[i]-start]
			filled++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: read column: %w", err)
	}
	if filled != len(seqs) {
		return nil, fmt.Errorf("index: segment %d column lacks values for %d of %d events", m.ID, len(seqs)-filled, len(seqs))
	}
	return out, nil
}

// sortedUnique sorts s and removes duplicates.
func sortedUnique(s []int64) []int64 {
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return slices.Compact(s)
}
