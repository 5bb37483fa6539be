package tree

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"testing"

	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

func leaf(i int64) Hash {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return LeafHash(b[:])
}

// grow appends leaves [from, to) in batches, writing tiles after each batch
// as the log writer does, and returns the edge.
func grow(t *testing.T, db *store.DB, e *Edge, from, to, batch int64) *Edge {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; {
		n := min(batch, to-i)
		var hs []Hash
		for j := i; j < i+n; j++ {
			hs = append(hs, leaf(j))
		}
		e.Append(hs)
		err := db.InTx(ctx, func(tx *sql.Tx) error { return WriteTiles(ctx, db, tx, 1, e.DirtyTiles()) })
		if err != nil {
			t.Fatal(err)
		}
		i += n
	}
	return e
}

// naiveRoot computes the RFC 6962 root of leaves [0, n) directly.
func naiveRoot(lo, hi int64) Hash {
	if hi-lo == 1 {
		return leaf(lo)
	}
	k := int64(1)
	for k*2 < hi-lo {
		k *= 2
	}
	return tlog.NodeHash(naiveRoot(lo, lo+k), naiveRoot(lo+k, hi))
}

func TestTreeAgainstIndependentImplementations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, _ storetest.Options) {
		ctx := context.Background()
		e := NewEdge()
		sizes := []int64{1, 2, 3, 255, 256, 257, 511, 512, 4097, 65535, 65536, 65537, 70001}
		var prev int64
		for _, size := range sizes {
			e = grow(t, db, e, prev, size, 777)
			prev = size
			if got, want := e.Root(), naiveRoot(0, size); size <= 4097 && got != want {
				t.Fatalf("size %d: edge root %x, naive root %x", size, got, want)
			}
			r := NewReader(db, db.Read, 1)
			th, err := TreeHash(ctx, r, size)
			if err != nil {
				t.Fatalf("size %d: tree hash: %v", size, err)
			}
			if th != e.Root() {
				t.Fatalf("size %d: stored tiles give root %x, edge %x", size, th, e.Root())
			}
			loaded, err := LoadEdge(ctx, NewReader(db, db.Read, 1), size)
			if err != nil {
				t.Fatalf("size %d: load edge: %v", size, err)
			}
			if loaded.Root() != e.Root() || loaded.Size() != size {
				t.Fatalf("size %d: loaded edge differs", size)
			}
			for _, n := range []int64{0, size / 2, size - 1} {
				p, err := ProveInclusion(ctx, r, size, n)
				if err != nil {
					t.Fatalf("size %d leaf %d: %v", size, n, err)
				}
				lh := leaf(n)
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(n), uint64(size), lh[:], toBytes(p), th[:]); err != nil {
					t.Fatalf("size %d leaf %d: inclusion proof does not verify: %v", size, n, err)
				}
			}
			for _, old := range []int64{1, size / 3, size - 1} {
				if old < 1 || old >= size {
					continue
				}
				oldRoot, err := TreeHash(ctx, r, old)
				if err != nil {
					t.Fatal(err)
				}
				p, err := ProveConsistency(ctx, r, size, old)
				if err != nil {
					t.Fatalf("consistency %d->%d: %v", old, size, err)
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(old), uint64(size), toBytes(p), oldRoot[:], th[:]); err != nil {
					t.Fatalf("consistency %d->%d does not verify: %v", old, size, err)
				}
			}
		}
		// An edge loaded from storage keeps growing correctly.
		loaded, err := LoadEdge(ctx, NewReader(db, db.Read, 1), prev)
		if err != nil {
			t.Fatal(err)
		}
		loaded = grow(t, db, loaded, prev, prev+1000, 333)
		if got, err := TreeHash(ctx, NewReader(db, db.Read, 1), prev+1000); err != nil || got != loaded.Root() {
			t.Fatalf("after reload and growth: tiles root %x (%v), edge %x", got, err, loaded.Root())
		}
	})
}

func toBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func TestEmptyRoot(t *testing.T) {
	if NewEdge().Root() != Hash(sha256.Sum256(nil)) {
		t.Fatal("empty tree root is not SHA-256 of nothing")
	}
}

func TestTilePaths(t *testing.T) {
	for _, tc := range []struct {
		level int
		index int64
		width int
		path  string
	}{
		{0, 0, 0, "tile/0/000"},
		{0, 1234067, 0, "tile/0/x001/x234/067"},
		{2, 5, 17, "tile/2/005.p/17"},
		{-1, 1000, 3, "tile/entries/x001/000.p/3"},
	} {
		if got := TilePath(tc.level, tc.index, tc.width); got != tc.path {
			t.Errorf("TilePath(%d, %d, %d) = %q, want %q", tc.level, tc.index, tc.width, got, tc.path)
		}
		l, i, w, err := ParseTilePath(tc.path[len("tile/"):])
		if err != nil || l != tc.level || i != tc.index || w != tc.width {
			t.Errorf("ParseTilePath(%q) = %d %d %d %v", tc.path, l, i, w, err)
		}
	}
	for _, bad := range []string{"0", "0/1", "00/000", "0/x000/001", "0/001.p/0", "0/001.p/256", "0/001.p/07",
		"64/000", "0/abc", "0/x1/000", "0/000/", "-1/000", "0/001.p/", "0/x001/x002/x003/x004/x005/x006/x007/008"} {
		if _, _, _, err := ParseTilePath(bad); err == nil {
			t.Errorf("ParseTilePath(%q) succeeded, want error", bad)
		}
	}
}

func TestHasherMatchesLibrary(t *testing.T) {
	hs := NewHasher()
	var leaves []Hash
	for i := int64(0); i < 256; i++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		if hs.Leaf(b[:]) != LeafHash(b[:]) {
			t.Fatalf("Hasher.Leaf differs from tlog.RecordHash for %d", i)
		}
		leaves = append(leaves, leaf(i))
	}
	if got, want := SubtreeRoot(leaves), naiveRoot(0, 256); got != want {
		t.Fatalf("SubtreeRoot = %x, want %x", got, want)
	}
}
