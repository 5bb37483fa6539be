package auditlog

import (
	"container/list"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tree"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Entries are stored in rows that never cross a block of blockSize entries,
// aligned; four blocks make a C2SP entry bundle. A full block is one row,
// its leaves compressed; the block still being filled may be spread over
// several uncompressed fragment rows, merged into one row when it fills.
// Blocks smaller than a bundle keep a single read cheap: reading one event
// reads and decompresses its block, not its bundle.
//
// A row's leaves column is an entry bundle in the tlog-tiles encoding: each
// leaf preceded by its length as a big-endian uint16. Its personal column
// holds, for each entry, the uvarint length of the sealed personal values
// (zero when there are none) and the sealed bytes.

// A full bundle's leaves are compressed with S2, which costs a fraction of
// zstd's time on the append path for about two thirds of its ratio; zstd
// remains readable for rows written with it.
const (
	codecRaw  = 0
	codecZstd = 1
	codecS2   = 2
	// codecExpired marks a row made up for entries whose payloads
	// retention deleted; it is never stored.
	codecExpired = 3

	// blockSize is the number of entries in a block: a power of two that
	// divides the bundle size.
	blockSize = 64
	// maxLeaf is the largest leaf the entry bundle encoding can hold.
	maxLeaf = 1<<16 - 1
)

var zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(256<<20))

// The statements of the append path, prepared when the log opens.
const (
	sqlInsertEntries   = `INSERT INTO entries (tenant_id, first_seq, count, codec, leaves, personal) VALUES (?, ?, ?, ?, ?, ?)`
	sqlDeleteFragments = `DELETE FROM entries WHERE tenant_id = ? AND first_seq >= ? AND first_seq < ?`
	sqlUpdateState     = `UPDATE log_state SET size = ?, root = ?, last_received = ?, updated_at = ?, changes = changes + ?
		WHERE tenant_id = ?`
)

// bundle is the decoded content of one or more consecutive entry rows.
type bundle struct {
	first    int64
	leaves   [][]byte
	personal [][]byte
}

func (b *bundle) end() int64 { return b.first + int64(len(b.leaves)) }

func encodeLeaves(leaves [][]byte) []byte { return appendLeaves(nil, leaves) }

// appendLeaves appends the bundle encoding of leaves to out.
func appendLeaves(out []byte, leaves [][]byte) []byte {
	n := 0
	for _, l := range leaves {
		n += 2 + len(l)
	}
	out = slices.Grow(out, n)
	for _, l := range leaves {
		out = binary.BigEndian.AppendUint16(out, uint16(len(l)))
		out = append(out, l...)
	}
	return out
}

func decodeLeaves(b []byte, into [][]byte) ([][]byte, error) {
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("truncated entry bundle")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, errors.New("truncated entry bundle")
		}
		into = append(into, b[2:2+n:2+n])
		b = b[2+n:]
	}
	return into, nil
}

func encodePersonal(ps [][]byte) []byte { return appendPersonal(nil, ps) }

func appendPersonal(out []byte, ps [][]byte) []byte {
	for _, p := range ps {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

func decodePersonal(b []byte, into [][]byte) ([][]byte, error) {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errors.New("truncated personal values")
		}
		var p []byte
		if n > 0 {
			p = b[k : k+int(n) : k+int(n)]
		}
		into = append(into, p)
		b = b[k+int(n):]
	}
	return into, nil
}

// entryRow is one stored row of entries.
type entryRow struct {
	first, count int64
	codec        int
	leaves       []byte
	personal     []byte
}

func (r *entryRow) decode() (*bundle, error) { return r.decodeInto(nil, true) }

// decodeInto decodes the row, decompressing into scratch when it is large
// enough, so that the bundle's leaves then alias scratch. Without
// withPersonal the bundle has no personal values.
func (r *entryRow) decodeInto(scratch []byte, withPersonal bool) (*bundle, error) {
	raw := r.leaves
	var err error
	switch r.codec {
	case codecRaw:
	case codecS2:
		if raw, err = s2.Decode(scratch[:cap(scratch)], r.leaves); err != nil {
			return nil, fmt.Errorf("decompress entries at %d: %w", r.first, err)
		}
	case codecZstd:
		if raw, err = zdec.DecodeAll(r.leaves, make([]byte, 0, 4*len(r.leaves))); err != nil {
			return nil, fmt.Errorf("decompress entries at %d: %w", r.first, err)
		}
	case codecExpired:
		return nil, fmt.Errorf("entries at %d: %w", r.first, ErrExpired)
	default:
		return nil, fmt.Errorf("entries at %d: unknown codec %d", r.first, r.codec)
	}
	b := &bundle{first: r.first}
	if b.leaves, err = decodeLeaves(raw, make([][]byte, 0, r.count)); err != nil {
		return nil, fmt.Errorf("entries at %d: %w", r.first, err)
	}
	if !withPersonal {
		if int64(len(b.leaves)) != r.count {
			return nil, fmt.Errorf("entries at %d: row says %d entries, holds %d leaves", r.first, r.count, len(b.leaves))
		}
		return b, nil
	}
	if b.personal, err = decodePersonal(r.personal, make([][]byte, 0, r.count)); err != nil {
		return nil, fmt.Errorf("entries at %d: %w", r.first, err)
	}
	if int64(len(b.leaves)) != r.count || int64(len(b.personal)) != r.count {
		return nil, fmt.Errorf("entries at %d: row says %d entries, holds %d leaves and %d personal values",
			r.first, r.count, len(b.leaves), len(b.personal))
	}
	return b, nil
}

// entryBuffers are the writer's scratch space for encoding entry rows; the
// database has copied a row's values by the time its insert returns.
type entryBuffers struct {
	leaves, comp, personal []byte
}

// writeEntries stores the entries [b.first, b.end()) of a tenant, given the
// entries already stored in the open bundle (open may be nil). It returns
// what remains open afterwards.
func writeEntries(ctx context.Context, db *store.DB, tx *sql.Tx, buf *entryBuffers, tenantID int64, open, add *bundle) (*bundle, error) {
	ins, err := db.Stmt(ctx, tx, sqlInsertEntries)
	if err != nil {
		return nil, err
	}
	del, err := db.Stmt(ctx, tx, sqlDeleteFragments)
	if err != nil {
		return nil, err
	}
	seq := add.first
	for i := 0; i < len(add.leaves); {
		bstart := seq - seq%blockSize
		bend := bstart + blockSize
		n := int(min(bend-seq, int64(len(add.leaves)-i)))
		leaves, pers := add.leaves[i:i+n], add.personal[i:i+n]
		if seq+int64(n) == bend {
			// This block is now full: replace its fragments with one
			// compressed row.
			all, allPers := leaves, pers
			if open != nil && open.first == bstart && open.end() == seq {
				all = append(append([][]byte{}, open.leaves...), leaves...)
				allPers = append(append([][]byte{}, open.personal...), pers...)
			} else if seq != bstart {
				return nil, fmt.Errorf("auditlog: open block at %d does not end at %d", bstart, seq)
			}
			if _, err := del.ExecContext(ctx, tenantID, bstart, bend); err != nil {
				return nil, fmt.Errorf("auditlog: replace bundle fragments: %w", err)
			}
			buf.leaves = appendLeaves(buf.leaves[:0], all)
			buf.comp = s2.Encode(buf.comp[:cap(buf.comp)], buf.leaves)
			buf.personal = appendPersonal(buf.personal[:0], allPers)
			if _, err := ins.ExecContext(ctx, tenantID, bstart, len(all), codecS2, buf.comp, buf.personal); err != nil {
				return nil, fmt.Errorf("auditlog: store bundle: %w", err)
			}
			open = nil
		} else {
			buf.leaves = appendLeaves(buf.leaves[:0], leaves)
			buf.personal = appendPersonal(buf.personal[:0], pers)
			if _, err := ins.ExecContext(ctx, tenantID, seq, n, codecRaw, buf.leaves, buf.personal); err != nil {
				return nil, fmt.Errorf("auditlog: store entries: %w", err)
			}
			if open == nil || open.first != bstart {
				open = &bundle{first: bstart}
				if seq != bstart {
					return nil, fmt.Errorf("auditlog: open block at %d does not end at %d", bstart, seq)
				}
			}
			open.leaves = append(open.leaves, leaves...)
			open.personal = append(open.personal, pers...)
		}
		i += n
		seq += int64(n)
	}
	return open, nil
}

// readRows reads the entry rows of a tenant that hold any of [from, to),
// from the database and, below where it starts, from archive segments.
func (l *Log) readRows(ctx context.Context, q store.Querier, tenantID, from, to int64) ([]entryRow, error) {
	return l.readRowsOf(ctx, q, tenantID, from, to, true)
}

// readRowsOf is readRows; without withPersonal, the rows read from the
// database leave their personal values out.
func (l *Log) readRowsOf(ctx context.Context, q store.Querier, tenantID, from, to int64, withPersonal bool) ([]entryRow, error) {
	out, err := l.storedRows(ctx, q, tenantID, from-from%blockSize, to, withPersonal)
	if err != nil {
		return nil, err
	}
	for len(out) > 0 && out[0].first+out[0].count <= from {
		out = out[1:]
	}
	if len(out) > 0 && out[0].first <= from {
		return out, nil
	}
	// The database does not hold the start of the range: it may have been
	// archived.
	end := to
	if len(out) > 0 {
		end = out[0].first
	}
	arch, err := l.archivedRows(ctx, q, tenantID, from, end)
	if err != nil || len(arch) == 0 {
		return out, err
	}
	return append(arch, out...), nil
}

// storedRows reads the database's entry rows of a tenant whose first entry
// is in [from, to), in order, without their personal values unless
// withPersonal.
func (l *Log) storedRows(ctx context.Context, q store.Querier, tenantID, from, to int64, withPersonal bool) ([]entryRow, error) {
	query := sqlStoredRows
	if !withPersonal {
		query = sqlStoredLeaves
	}
	rows, err := q.QueryContext(ctx, l.db.Rebind(query), tenantID, from, to)
	if err != nil {
		return nil, fmt.Errorf("auditlog: read entries: %w", err)
	}
	defer rows.Close()
	var out []entryRow
	for rows.Next() {
		var r entryRow
		if err := rows.Scan(&r.first, &r.count, &r.codec, &r.leaves, &r.personal); err != nil {
			return nil, fmt.Errorf("auditlog: read entries: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auditlog: read entries: %w", err)
	}
	return out, nil
}

const (
	sqlStoredRows = `SELECT first_seq, count, codec, leaves, personal FROM entries
		WHERE tenant_id = ? AND first_seq >= ? AND first_seq < ? ORDER BY first_seq`
	sqlStoredLeaves = `SELECT first_seq, count, codec, leaves, NULL FROM entries
		WHERE tenant_id = ? AND first_seq >= ? AND first_seq < ? ORDER BY first_seq`
)

// readBundle returns the entries of the C2SP entry bundle holding seq: all
// of a full bundle, or every entry stored so far of the last one.
func (l *Log) readBundle(ctx context.Context, q store.Querier, tenantID, seq int64) (*bundle, error) {
	start := seq - seq%tree.TileWidth
	return l.readSpan(ctx, q, tenantID, start, start+tree.TileWidth)
}

// readBlock returns the entries of the block holding seq.
func (l *Log) readBlock(ctx context.Context, q store.Querier, tenantID, seq int64) (*bundle, error) {
	start := seq - seq%blockSize
	return l.readSpan(ctx, q, tenantID, start, start+blockSize)
}

// readSpan reads the contiguous entries stored from start, up to end.
func (l *Log) readSpan(ctx context.Context, q store.Querier, tenantID, start, end int64) (*bundle, error) {
	rows, err := l.readRows(ctx, q, tenantID, start, end)
	if err != nil {
		return nil, err
	}
	out := &bundle{first: start}
	for i := range rows {
		b, err := rows[i].decode()
		if err != nil {
			return nil, fmt.Errorf("auditlog: %w", err)
		}
		if b.first != out.end() {
			return nil, fmt.Errorf("auditlog: entries from %d are not contiguous at %d", start, out.end())
		}
		out.leaves = append(out.leaves, b.leaves...)
		out.personal = append(out.personal, b.personal...)
	}
	return out, nil
}

// bundleCache keeps recently read full blocks, decoded. The open block is
// never cached: it still grows.
type bundleCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[bundleKey]*list.Element
}

type bundleKey struct {
	tenant int64
	first  int64
}

type cacheItem struct {
	key bundleKey
	b   *bundle
}

func newBundleCache(max int) *bundleCache {
	return &bundleCache{max: max, ll: list.New(), items: map[bundleKey]*list.Element{}}
}

func (c *bundleCache) get(k bundleKey) *bundle {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheItem).b
	}
	return nil
}

func (c *bundleCache) put(k bundleKey, b *bundle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.ll.PushFront(&cacheItem{k, b})
	for c.ll.Len() > c.max {
		e := c.ll.Back()
		c.ll.Remove(e)
		delete(c.items, e.Value.(*cacheItem).key)
	}
}

// dropTenant forgets the cached blocks of a tenant below end.
func (c *bundleCache) dropTenant(tenant, end int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if k.tenant == tenant && k.first < end {
			c.ll.Remove(e)
			delete(c.items, k)
		}
	}
}

// entry returns the leaf and sealed personal values of seq, which must be
// below the size of the snapshot q reads.
func (l *Log) entry(ctx context.Context, q store.Querier, tenantID, seq int64) (leaf, sealed []byte, err error) {
	k := bundleKey{tenantID, seq - seq%blockSize}
	b := l.bundles.get(k)
	if b == nil {
		if b, err = l.readBlock(ctx, q, tenantID, seq); err != nil {
			return nil, nil, err
		}
		if len(b.leaves) == blockSize {
			l.bundles.put(k, b)
		}
	}
	i := seq - b.first
	if i < 0 || i >= int64(len(b.leaves)) {
		return nil, nil, fmt.Errorf("auditlog: entry %d is not stored: %w", seq, store.ErrNotFound)
	}
	return b.leaves[i], b.personal[i], nil
}
