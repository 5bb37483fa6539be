package auditlog

import (
	"bytes"
	"errors"

	"github.com/attest/attest/internal/tree"
)

// segments checks the tenant's archive segments before their entries are
// walked: together they cover [0, Archived) without gap or overlap, the
// expired ones are the oldest and end at Expired, each manifest is signed
// by a trusted key and says what the segment's record says, and each
// object still held is the one the manifest names.
func (w *walker) segments() error {
	segs, err := w.l.archiveSegments(w.ctx, w.tx, w.t.ID, 0, 1<<62)
	if err != nil {
		return err
	}
	var next int64
	for i := range segs {
		s := &segs[i]
		switch {
		case s.First != next:
			return w.fail(next, "the archive segments do not cover the archived entries: the next one starts at %d", s.First)
		case s.End > w.head.Archived:
			return w.fail(s.First, "the archive segment [%d, %d) lies beyond the archived entries, which end at %d",
				s.First, s.End, w.head.Archived)
		case s.ExpiredAt.IsZero() != (s.End > w.head.Expired):
			return w.fail(s.First, "the archive segment [%d, %d) is recorded as expired but the log state says "+
				"entries expire up to %d", s.First, s.End, w.head.Expired)
		}
		next = s.End
		m, err := OpenManifest(s.Manifest, w.vkeys...)
		if err != nil {
			return w.fail(s.First, "the manifest of archive segment [%d, %d): %v", s.First, s.End, err)
		}
		if m.Origin != w.l.Origin(w.t.Name) || m.First != s.First || m.End != s.End || m.Object != s.Object ||
			m.Size != s.Size || !bytes.Equal(m.SHA256, s.SHA256) || !m.LastReceived.Equal(s.LastReceived) {
			return w.fail(s.First, "the signed manifest of archive segment [%d, %d) does not describe the segment "+
				"the database records", s.First, s.End)
		}
		w.manifests = append(w.manifests, m)
		if !s.ExpiredAt.IsZero() {
			continue
		}
		if err := w.l.checkArchiveObject(w.ctx, s); err != nil {
			if errors.Is(err, ErrNoArchive) {
				return w.fail(s.First, "entries [%d, %d) are archived, but no archive store is configured to check them",
					s.First, s.End)
			}
			return w.fail(s.First, "the archive object %s of segment [%d, %d) is not the one its manifest signed: %v",
				s.Object, s.First, s.End, err)
		}
		w.rep.Segments++
	}
	if next != w.head.Archived {
		return w.fail(next, "the log state says entries are archived up to %d, but archive segments cover only %d",
			w.head.Archived, next)
	}
	w.archives = segs
	return nil
}

// manifestRoots checks, once every tile is proven, that each manifest's
// tree root is the root of the log at the segment's end.
func (w *walker) manifestRoots() error {
	for _, m := range w.manifests {
		got, err := tree.TreeHash(w.ctx, w.tiles, m.End)
		if err != nil {
			return err
		}
		if got != m.TreeRoot {
			return w.fail(m.End-1, "the manifest of archive segment [%d, %d) signed a tree root the log does not have "+
				"at size %d", m.First, m.End, m.End)
		}
	}
	return nil
}
