package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tree"
)

// tile serves the C2SP tlog-tiles read layout of the tenant's log: hash
// tiles at tile/<L>/<N>[.p/<W>] and entry bundles at tile/entries/<N>[.p/<W>],
// whose entries are the leaves the tree commits to. Only tiles of the tree
// of the latest checkpoint are served: a partial resource when that tree
// holds at least its width, a full one only when the tile is complete.
func (s *Server) tile(rq *request) error {
	level, idx, width, err := tree.ParseTilePath(rq.r.PathValue("path"))
	if err != nil {
		return badRequest("path", "not a tile path: tiles are tile/<L>/<N>[.p/<W>] and entry bundles "+
			"tile/entries/<N>[.p/<W>], with N in three-digit groups, all but the last prefixed x (C2SP tlog-tiles)")
	}
	rq.target = event.Target{Type: "tile", ID: tree.TilePath(level, idx, width)}
	want := width
	if want == 0 {
		want = tree.TileWidth
	}
	ctx := rq.r.Context()
	cp, err := s.in.Log.LatestCheckpoint(ctx, s.in.DB.Read, rq.tenant.ID)
	if err != nil {
		return err
	}
	if !tileInTree(level, idx, want, cp.Size) {
		return notFound("the tree of the latest checkpoint does not hold that tile")
	}
	var body []byte
	if level < 0 {
		leaves, err := s.in.Log.BundleLeaves(ctx, s.in.DB.Read, rq.tenant, idx)
		if err != nil {
			return err
		}
		if len(leaves) < want {
			return notFound("the log does not hold that entry bundle")
		}
		body = auditlog.EncodeBundle(leaves[:want])
	} else {
		t, err := tree.NewReader(s.in.DB, s.in.DB.Read, rq.tenant.ID).Tile(ctx, tree.TileKey{Level: level, Index: idx})
		if errors.Is(err, tree.ErrMissingTile) {
			return notFound("the log does not hold that tile")
		}
		if err != nil {
			return err
		}
		if len(t) < want*tree.HashSize {
			return notFound("the log does not hold that tile")
		}
		body = t[:want*tree.HashSize]
	}
	h := rq.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	rq.w.WriteHeader(http.StatusOK)
	_, err = rq.w.Write(body)
	return err
}

// tileInTree reports whether the tree of size n holds the first width hashes
// of tile idx at level (-1 for entry bundles, which count as level 0): each
// hash of a level-L tile covers 256^L entries.
func tileInTree(level int, idx int64, width int, n int64) bool {
	for l := 0; l < level; l++ {
		n /= tree.TileWidth
	}
	// idx*TileWidth + width <= n, without overflow.
	w := int64(width)
	return n >= w && idx <= (n-w)/tree.TileWidth
}
