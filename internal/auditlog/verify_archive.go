package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/attest/attest/internal/archive"
	"github.com/attest/attest/internal/event"

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
	var lastExpired *ArchiveSegment
	var lastManifest *Manifest
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
		if s.Object != archiveObject(w.t.ID, s.First, s.End) {
			return w.fail(s.First, "the archive segment [%d, %d) names the object %q, which is not its own", s.First,
				s.End, s.Object)
		}
		w.manifests = append(w.manifests, m)
		if err := w.storedManifest(s); err != nil {
			return err
		}
		if !s.ExpiredAt.IsZero() {
			lastExpired, lastManifest = s, m
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
	if lastExpired != nil {
		if err := w.expiryRecorded(lastExpired, lastManifest); err != nil {
			return err
		}
	}
	if next != w.head.Archived {
		return w.fail(next, "the log state says entries are archived up to %d, but archive segments cover only %d",
			w.head.Archived, next)
	}
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

// storedManifest checks that the manifest kept beside a segment's object is
// the one the database records.
func (w *walker) storedManifest(s *ArchiveSegment) error {
	if w.l.cfg.Archive == nil {
		return nil // reported with the object
	}
	name := ManifestObject(s.Object)
	n, err := w.l.cfg.Archive.Size(w.ctx, name)
	if err == nil && n == int64(len(s.Manifest)) {
		b := make([]byte, n)
		if _, err = w.l.cfg.Archive.ReadAt(w.ctx, name, b, 0); err == nil || errors.Is(err, io.EOF) {
			if bytes.Equal(b, s.Manifest) {
				return nil
			}
		}
	}
	what := "differs from the one the database records"
	if errors.Is(err, archive.ErrNotExist) {
		what = "is missing"
	}
	return w.fail(s.First, "the signed manifest %s kept beside archive segment [%d, %d) %s", name, s.First, s.End, what)
}

// expiryRecorded checks that the newest expiry was made by a retention
// run: the log holds attest's own audit.archive.expire event for the
// newest expired segment, made after the retention it names, of at least
// the shortest a policy may set, had ended for the segment's newest entry.
// Segments expire oldest first and each expiry's event lies beyond the
// entries expired so far, so the newest expiry's event is never expired
// itself, and it vouches for the boundary: moving it further fails here.
// Expiries before it are vouched for by their own events until those
// expire in turn.
func (w *walker) expiryRecorded(s *ArchiveSegment, m *Manifest) error {
	page, err := w.l.Query(w.ctx, w.t, Filter{Action: "audit.archive.expire", Source: event.SelfSource,
		TargetType: "archive_segment", TargetID: s.Object, Limit: 100})
	if err != nil {
		return err
	}
	for _, r := range page.Items {
		var d struct {
			First         int64 `json:"first"`
			End           int64 `json:"end"`
			RetentionDays int   `json:"retention_days"`
		}
		if r.Event.Source.Name != event.SelfSource || json.Unmarshal(r.Event.Details, &d) != nil ||
			d.First != s.First || d.End != s.End {
			continue
		}
		if d.RetentionDays >= MinRetentionDays && !r.Event.ReceivedAt.Before(m.LastReceived.Add(days(d.RetentionDays))) {
			return nil
		}
	}
	return w.fail(s.First, "the payloads of archive segment [%d, %d) are recorded as expired, but the log holds no "+
		"retention run's expiry of them after their retention ended: they were deleted outside attest", s.First, s.End)
}
