// Package tree stores each tenant's RFC 6962 Merkle tree as the tiles of the
// C2SP tlog-tiles layout (height 8) in the database, keeps the right edge of
// a growing tree in memory, and answers inclusion and consistency proofs.
//
// Hashing and proof construction come from golang.org/x/mod/sumdb/tlog and
// github.com/transparency-dev/merkle; this package only decides where the
// hashes live.
package tree

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/attest/attest/internal/store"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// Height is the tile height of the C2SP tlog-tiles layout: 256 hashes a tile.
const Height = 8

// TileWidth is the number of hashes in a full tile.
const TileWidth = 1 << Height

// HashSize is the size of every hash in the tree.
const HashSize = sha256.Size

// Hash is a node hash.
type Hash = tlog.Hash

// LeafHash returns the RFC 6962 leaf hash of data.
func LeafHash(data []byte) Hash {
	return tlog.RecordHash(data)
}

// EmptyRoot is the root of the empty tree, the hash of no data.
var EmptyRoot = Hash(sha256.Sum256(nil))

var factory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// TileKey names a tile: its level and index within the level.
type TileKey struct {
	Level int
	Index int64
}

// Edge is the right edge of one tree: the compact range covering all leaves
// and the rightmost tile at each level. The log writer owns one per tenant
// and applies it only after the transaction that wrote its tiles commits.
type Edge struct {
	rng   *compact.Range
	tiles map[TileKey][]byte // rightmost tile at each level; may be full
	dirty map[TileKey]bool
	// full holds tiles that filled during the current batch, kept until
	// they are written.
	full map[TileKey][]byte
}

// NewEdge returns the edge of an empty tree.
func NewEdge() *Edge {
	return &Edge{rng: factory.NewEmptyRange(0), tiles: map[TileKey][]byte{}, dirty: map[TileKey]bool{},
		full: map[TileKey][]byte{}}
}

// Size is the number of leaves.
func (e *Edge) Size() int64 { return int64(e.rng.End()) }

// Root returns the tree's root hash.
func (e *Edge) Root() Hash {
	if e.rng.End() == 0 {
		return EmptyRoot
	}
	r, err := e.rng.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("tree: root of a non-empty range: %v", err))
	}
	return Hash(r)
}

// Clone returns an independent copy, so that a batch can be applied to the
// copy and discarded if its transaction fails.
func (e *Edge) Clone() *Edge {
	hashes := append([][]byte(nil), e.rng.Hashes()...)
	rng, err := factory.NewRange(e.rng.Begin(), e.rng.End(), hashes)
	if err != nil {
		panic(fmt.Sprintf("tree: clone compact range: %v", err))
	}
	c := &Edge{rng: rng, tiles: make(map[TileKey][]byte, len(e.tiles)),
		dirty: map[TileKey]bool{}, full: map[TileKey][]byte{}}
	for k, v := range e.tiles {
		c.tiles[k] = append(make([]byte, 0, TileWidth*HashSize), v...)
	}
	return c
}

// Append adds leaf hashes to the tree and records every new tile hash.
func (e *Edge) Append(leaves []Hash) {
	for i := range leaves {
		if err := e.rng.Append(leaves[i][:], e.visit); err != nil {
			panic(fmt.Sprintf("tree: append to compact range: %v", err))
		}
	}
}

// visit places a completed node whose level is a multiple of the tile height
// into its tile.
func (e *Edge) visit(id compact.NodeID, hash []byte) {
	if id.Level%Height != 0 {
		return
	}
	k := TileKey{Level: int(id.Level / Height), Index: int64(id.Index / TileWidth)}
	pos := int(id.Index % TileWidth)
	t := e.tiles[k]
	if len(t) != pos*HashSize {
		panic(fmt.Sprintf("tree: tile %d/%d has %d hashes, next is %d", k.Level, k.Index, len(t)/HashSize, pos))
	}
	if t == nil {
		t = make([]byte, 0, TileWidth*HashSize)
		// The tile to its left at this level is now complete and no
		// longer part of the edge.
		delete(e.tiles, TileKey{Level: k.Level, Index: k.Index - 1})
	}
	t = append(t, hash...)
	e.tiles[k] = t
	e.dirty[k] = true
	if len(t) == TileWidth*HashSize {
		e.full[k] = t
	}
}

// DirtyTiles returns the tiles that changed since the last call, with their
// contents, and forgets them.
func (e *Edge) DirtyTiles() map[TileKey][]byte {
	out := make(map[TileKey][]byte, len(e.dirty)+len(e.full))
	for k, v := range e.full {
		out[k] = v
	}
	for k := range e.dirty {
		if t, ok := e.tiles[k]; ok {
			out[k] = t
		}
	}
	e.dirty = map[TileKey]bool{}
	e.full = map[TileKey][]byte{}
	return out
}

// LeafHash returns the hash of leaf n if it is in the rightmost level-0 tile.
func (e *Edge) LeafHash(n int64) (Hash, bool) {
	t, ok := e.tiles[TileKey{Level: 0, Index: n / TileWidth}]
	off := int(n%TileWidth) * HashSize
	if !ok || off+HashSize > len(t) {
		return Hash{}, false
	}
	return Hash(t[off : off+HashSize]), true
}

// SQLWriteTile is the statement WriteTiles runs, to be prepared at start.
const SQLWriteTile = `INSERT INTO tiles (tenant_id, level, idx, width, hashes) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (tenant_id, level, idx) DO UPDATE SET width = excluded.width, hashes = excluded.hashes`

// WriteTiles stores tiles for a tenant, replacing partial tiles in place.
func WriteTiles(ctx context.Context, db *store.DB, tx *sql.Tx, tenantID int64, tiles map[TileKey][]byte) error {
	st, err := db.Stmt(ctx, tx, SQLWriteTile)
	if err != nil {
		return err
	}
	for k, v := range tiles {
		if _, err := st.ExecContext(ctx, tenantID, k.Level, k.Index, len(v)/HashSize, v); err != nil {
			return fmt.Errorf("tree: write tile %d/%d: %w", k.Level, k.Index, err)
		}
	}
	return nil
}

// Reader reads one tenant's tiles.
type Reader struct {
	DB       *store.DB
	Q        store.Querier
	TenantID int64
	cache    map[TileKey][]byte
}

// NewReader returns a reader that queries q, which may be a transaction.
func NewReader(db *store.DB, q store.Querier, tenantID int64) *Reader {
	return &Reader{DB: db, Q: q, TenantID: tenantID, cache: map[TileKey][]byte{}}
}

// ErrMissingTile means a tile the tree needs is not stored.
var ErrMissingTile = errors.New("tree: tile not stored")

// Tile returns the stored contents of a tile, which may be partial.
func (r *Reader) Tile(ctx context.Context, k TileKey) ([]byte, error) {
	if t, ok := r.cache[k]; ok {
		return t, nil
	}
	var t []byte
	err := r.Q.QueryRowContext(ctx, r.DB.Rebind(`SELECT hashes FROM tiles WHERE tenant_id = ? AND level = ? AND idx = ?`),
		r.TenantID, k.Level, k.Index).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: level %d index %d", ErrMissingTile, k.Level, k.Index)
	}
	if err != nil {
		return nil, fmt.Errorf("tree: read tile %d/%d: %w", k.Level, k.Index, err)
	}
	r.cache[k] = t
	return t, nil
}

// HashReader returns a tlog.HashReader over the stored tiles.
func (r *Reader) HashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			t := tlog.TileForIndex(Height, idx)
			data, err := r.Tile(ctx, TileKey{Level: t.L, Index: t.N})
			if err != nil {
				return nil, err
			}
			if len(data) < t.W*HashSize {
				return nil, fmt.Errorf("%w: level %d index %d has %d of %d hashes", ErrMissingTile, t.L, t.N,
					len(data)/HashSize, t.W)
			}
			h, err := tlog.HashFromTile(t, data, idx)
			if err != nil {
				return nil, fmt.Errorf("tree: hash from tile: %w", err)
			}
			out[i] = h
		}
		return out, nil
	})
}

// LoadEdge rebuilds the edge of a tree of the given size from stored tiles.
func LoadEdge(ctx context.Context, r *Reader, size int64) (*Edge, error) {
	e := NewEdge()
	if size == 0 {
		return e, nil
	}
	ids := compact.RangeNodes(0, uint64(size), nil)
	indexes := make([]int64, len(ids))
	for i, id := range ids {
		indexes[i] = tlog.StoredHashIndex(int(id.Level), int64(id.Index))
	}
	hashes, err := r.HashReader(ctx).ReadHashes(indexes)
	if err != nil {
		return nil, fmt.Errorf("tree: load edge at size %d: %w", size, err)
	}
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hs[i] = hashes[i][:]
	}
	rng, err := factory.NewRange(0, uint64(size), hs)
	if err != nil {
		return nil, fmt.Errorf("tree: load edge at size %d: %w", size, err)
	}
	e.rng = rng
	// The rightmost tile of each level, partial or not, is where the next
	// hashes of that level go.
	for level := 0; ; level++ {
		width := size >> (Height * level) // hashes at this tile level
		if width == 0 {
			break
		}
		idx := (width - 1) / TileWidth
		n := width - idx*TileWidth
		if n == TileWidth {
			// The last tile is full; the next hash starts a new one.
			continue
		}
		t, err := r.Tile(ctx, TileKey{Level: level, Index: idx})
		if err != nil {
			return nil, err
		}
		if int64(len(t)) < n*HashSize {
			return nil, fmt.Errorf("%w: level %d index %d has %d of %d hashes", ErrMissingTile, level, idx,
				len(t)/HashSize, n)
		}
		buf := make([]byte, 0, TileWidth*HashSize)
		e.tiles[TileKey{Level: level, Index: idx}] = append(buf, t[:n*HashSize]...)
	}
	return e, nil
}

// TreeHash returns the root of the tree of the given size.
func TreeHash(ctx context.Context, r *Reader, size int64) (Hash, error) {
	if size == 0 {
		return EmptyRoot, nil
	}
	return tlog.TreeHash(size, r.HashReader(ctx))
}

// ProveInclusion returns the RFC 6962 inclusion proof of leaf n in the tree
// of the given size.
func ProveInclusion(ctx context.Context, r *Reader, size, n int64) ([]Hash, error) {
	if n < 0 || n >= size {
		return nil, fmt.Errorf("tree: leaf %d is not in a tree of size %d", n, size)
	}
	p, err := tlog.ProveRecord(size, n, r.HashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("tree: inclusion proof: %w", err)
	}
	return p, nil
}

// ProveConsistency returns the RFC 6962 consistency proof from the tree of
// size older to the tree of size newer.
func ProveConsistency(ctx context.Context, r *Reader, newer, older int64) ([]Hash, error) {
	if older < 0 || older > newer {
		return nil, fmt.Errorf("tree: no consistency proof from size %d to size %d", older, newer)
	}
	if older == 0 || older == newer {
		return []Hash{}, nil
	}
	p, err := tlog.ProveTree(newer, older, r.HashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("tree: consistency proof: %w", err)
	}
	return p, nil
}

// TilePath is the C2SP path of a tile below a log prefix: "tile/L/N[.p/W]",
// with "entries" in place of L for entry bundles (level -1 here).
func TilePath(level int, index int64, width int) string {
	var b strings.Builder
	b.WriteString("tile/")
	if level < 0 {
		b.WriteString("entries")
	} else {
		b.WriteString(strconv.Itoa(level))
	}
	b.WriteByte('/')
	b.WriteString(formatIndex(index))
	if width > 0 && width < TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(width))
	}
	return b.String()
}

func formatIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	return s
}

// ParseTilePath parses a path relative to "tile/". It returns level -1 for
// entry bundles, and width 0 for a full tile.
func ParseTilePath(p string) (level int, index int64, width int, err error) {
	bad := func(why string) (int, int64, int, error) {
		return 0, 0, 0, fmt.Errorf("tree: bad tile path %q: %s", p, why)
	}
	parts := strings.Split(p, "/")
	if len(parts) < 2 {
		return bad("too short")
	}
	if parts[0] == "entries" {
		level = -1
	} else {
		l, err := strconv.Atoi(parts[0])
		if err != nil || l < 0 || l > 63 || strconv.Itoa(l) != parts[0] {
			return bad("level must be a number from 0 to 63 without leading zeros")
		}
		level = l
	}
	parts = parts[1:]
	if n := len(parts); n >= 2 && parts[n-2] == "" {
		return bad("empty element")
	}
	// A partial tile ends in ".p/W".
	if n := len(parts); n >= 2 && strings.HasSuffix(parts[n-2], ".p") {
		w, err := strconv.Atoi(parts[n-1])
		if err != nil || w < 1 || w >= TileWidth || strconv.Itoa(w) != parts[n-1] {
			return bad("width must be a number from 1 to 255 without leading zeros")
		}
		width = w
		parts[n-2] = strings.TrimSuffix(parts[n-2], ".p")
		parts = parts[:n-1]
	}
	if len(parts) > 7 {
		return bad("index too large")
	}
	for i, el := range parts {
		last := i == len(parts)-1
		if !last {
			if !strings.HasPrefix(el, "x") {
				return bad("all but the last index element must start with x")
			}
			el = el[1:]
		}
		if len(el) != 3 {
			return bad("index elements must have three digits")
		}
		d, err := strconv.Atoi(el)
		if err != nil || d < 0 {
			return bad("index elements must be digits")
		}
		index = index*1000 + int64(d)
	}
	if formatIndex(index) != strings.Join(parts, "/") {
		return bad("index has leading zero elements")
	}
	return level, index, width, nil
}

// Hasher computes RFC 6962 hashes without allocating, for loops that hash
// millions of leaves. It gives the same results as LeafHash and
// tlog.NodeHash; a Hasher is not safe for concurrent use.
type Hasher struct {
	h   hash.Hash
	sum [HashSize]byte
}

// NewHasher returns a Hasher.
func NewHasher() *Hasher { return &Hasher{h: sha256.New()} }

var leafPrefix = []byte{0}

// Leaf returns the leaf hash of data.
func (hs *Hasher) Leaf(data []byte) Hash {
	hs.h.Reset()
	hs.h.Write(leafPrefix)
	hs.h.Write(data)
	return Hash(hs.h.Sum(hs.sum[:0]))
}

// SubtreeRoot returns the root of the perfect subtree whose leaf hashes are
// hashes; len(hashes) must be a power of two. It overwrites hashes.
func SubtreeRoot(hashes []Hash) Hash {
	for n := len(hashes); n > 1; n /= 2 {
		for i := 0; i < n/2; i++ {
			hashes[i] = tlog.NodeHash(hashes[2*i], hashes[2*i+1])
		}
	}
	return hashes[0]
}
