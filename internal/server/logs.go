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
// whose entries are the leaves the tree commits to. A partial resource is
// served when the log holds at least its width; a full one only when the
// tile is complete.
func (s *Server) tile(rq *request) error {
	level, idx, width, err := tree.ParseTilePath(rq.r.PathValue("path"))
	if err != nil {
		return notFound("no such tile: " + err.Error())
	}
	rq.target = event.Target{Type: "tile", ID: tree.TilePath(level, idx, width)}
	want := width
	if want == 0 {
		want = tree.TileWidth
	}
	ctx := rq.r.Context()
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
