package auditlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tree"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/mod/sumdb/note"
)

// An archive segment is an object holding a contiguous range of a tenant's
// entries, whole blocks only, moved out of the database once they are older
// than the tenant's hot window. Its layout:
//
//	"attest-archive/1\n"
//	frames, one for each entry bundle the range touches: a zstd frame of
//	    the bundle's blocks, each as uvarint first, uvarint count,
//	    uvarint length and the leaves (entry bundle encoding),
//	    uvarint length and the sealed personal values
//	the frame index: for each frame, uvarint first, uvarint end,
//	    uvarint offset, uvarint length
//	trailer: the index's offset and length as big-endian uint64s, then
//	    "ATARCIDX"
//
// A frame decodes alone, so that reading one event of an archived range
// reads and decompresses one bundle. The object's SHA-256 is in its
// manifest, a signed note made with the log's checkpoint key, which also
// names the range, the root of the tree at the range's end and when its
// newest entry was received.
const (
	archiveMagic   = "attest-archive/1\n"
	archiveTrailer = "ATARCIDX"
	trailerSize    = 16 + len(archiveTrailer)
	// maxArchiveIndex bounds the frame index read from an object.
	maxArchiveIndex = 16 << 20
	// maxArchiveFrame bounds one compressed frame read from an object.
	maxArchiveFrame = 64 << 20
)

var zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))

// archiveFrame is one entry in an object's frame index.
type archiveFrame struct {
	first, end  int64
	offset, len int64
}

// encodeArchive builds the object of the entry rows given, which must be
// whole blocks in order and contiguous.
func encodeArchive(rows []entryRow) ([]byte, error) {
	out := []byte(archiveMagic)
	var frames []archiveFrame
	var raw []byte
	flush := func(first, end int64) {
		start := int64(len(out))
		out = zenc.EncodeAll(raw, out)
		frames = append(frames, archiveFrame{first: first, end: end, offset: start, len: int64(len(out)) - start})
		raw = raw[:0]
	}
	var frameFirst, next int64 = -1, -1
	for i := range rows {
		b, err := rows[i].decode()
		if err != nil {
			return nil, fmt.Errorf("auditlog: archive: %w", err)
		}
		if next >= 0 && b.first != next {
			return nil, fmt.Errorf("auditlog: archive: entries are not contiguous at %d", next)
		}
		if b.first%blockSize != 0 || len(b.leaves) != blockSize {
			return nil, fmt.Errorf("auditlog: archive: entries at %d are not a whole block", b.first)
		}
		if frameFirst >= 0 && b.first/tree.TileWidth != frameFirst/tree.TileWidth {
			flush(frameFirst, b.first)
			frameFirst = -1
		}
		if frameFirst < 0 {
			frameFirst = b.first
		}
		leaves := encodeLeaves(b.leaves)
		pers := encodePersonal(b.personal)
		raw = binary.AppendUvarint(raw, uint64(b.first))
		raw = binary.AppendUvarint(raw, uint64(len(b.leaves)))
		raw = binary.AppendUvarint(raw, uint64(len(leaves)))
		raw = append(raw, leaves...)
		raw = binary.AppendUvarint(raw, uint64(len(pers)))
		raw = append(raw, pers...)
		next = b.end()
	}
	if frameFirst >= 0 {
		flush(frameFirst, next)
	}
	idxStart := int64(len(out))
	for _, f := range frames {
		out = binary.AppendUvarint(out, uint64(f.first))
		out = binary.AppendUvarint(out, uint64(f.end))
		out = binary.AppendUvarint(out, uint64(f.offset))
		out = binary.AppendUvarint(out, uint64(f.len))
	}
	out = binary.BigEndian.AppendUint64(out, uint64(idxStart))
	out = binary.BigEndian.AppendUint64(out, uint64(int64(len(out))-idxStart-8))
	return append(out, archiveTrailer...), nil
}

// parseArchiveIndex decodes the frame index of an object of the given size
// from its trailer and index bytes.
func parseArchiveIndex(trailer []byte, size int64, readIndex func(off, n int64) ([]byte, error)) ([]archiveFrame, error) {
	if len(trailer) != trailerSize || string(trailer[16:]) != archiveTrailer {
		return nil, errors.New("no archive trailer at its end")
	}
	off, n := int64(binary.BigEndian.Uint64(trailer)), int64(binary.BigEndian.Uint64(trailer[8:]))
	if off < int64(len(archiveMagic)) || n < 0 || n > maxArchiveIndex || off+n != size-int64(trailerSize) {
		return nil, errors.New("its trailer points outside the object")
	}
	b, err := readIndex(off, n)
	if err != nil {
		return nil, err
	}
	var frames []archiveFrame
	for len(b) > 0 {
		var v [4]int64
		for i := range v {
			x, k := binary.Uvarint(b)
			if k <= 0 || x > 1<<62 {
				return nil, errors.New("its frame index is malformed")
			}
			v[i], b = int64(x), b[k:]
		}
		f := archiveFrame{first: v[0], end: v[1], offset: v[2], len: v[3]}
		if f.end <= f.first || f.offset < int64(len(archiveMagic)) || f.len <= 0 || f.len > maxArchiveFrame ||
			f.offset+f.len > off || (len(frames) > 0 && frames[len(frames)-1].end != f.first) {
			return nil, errors.New("its frame index is malformed")
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// decodeArchiveFrame decodes one decompressed frame into entry rows.
func decodeArchiveFrame(raw []byte, f archiveFrame) ([]entryRow, error) {
	var rows []entryRow
	next := f.first
	for len(raw) > 0 {
		var v [3]uint64
		for i := range v {
			x, k := binary.Uvarint(raw)
			if k <= 0 {
				return nil, errors.New("a frame is malformed")
			}
			v[i], raw = x, raw[k:]
		}
		if int64(v[0]) != next || v[1] == 0 || v[1] > blockSize || v[2] > uint64(len(raw)) {
			return nil, errors.New("a frame is malformed")
		}
		r := entryRow{first: int64(v[0]), count: int64(v[1]), codec: codecRaw, leaves: raw[:v[2]:v[2]]}
		raw = raw[v[2]:]
		n, k := binary.Uvarint(raw)
		if k <= 0 || n > uint64(len(raw)-k) {
			return nil, errors.New("a frame is malformed")
		}
		r.personal = raw[k : k+int(n) : k+int(n)]
		raw = raw[k+int(n):]
		rows = append(rows, r)
		next = r.first + r.count
	}
	if next != f.end {
		return nil, errors.New("a frame does not hold the entries its index says")
	}
	return rows, nil
}

// ArchiveSegment is one archive segment as the database records it.
type ArchiveSegment struct {
	First, End   int64
	Object       string
	Size         int64
	SHA256       []byte
	LastReceived time.Time
	Manifest     []byte
	CreatedAt    time.Time
	// ExpiredAt is set once retention deleted the segment's payloads;
	// ObjectDeleted once its object is gone from the store.
	ExpiredAt     time.Time
	ObjectDeleted bool
}

// Manifest is the signed description of an archive segment.
type Manifest struct {
	Origin       string
	First, End   int64
	TreeRoot     tree.Hash // root of the tree of size End
	LastReceived time.Time
	Object       string
	Size         int64
	SHA256       []byte
}

const manifestHeader = "attest archive segment v1"

// text is the manifest's signed text. Its first line is not an origin, so
// it can never be taken for a checkpoint signed by the same key.
func (m *Manifest) text() string {
	return fmt.Sprintf("%s\norigin %s\nentries %d %d\ntree %d %s\nreceived %s\nobject %s %d sha256:%s\n",
		manifestHeader, m.Origin, m.First, m.End, m.End, base64.StdEncoding.EncodeToString(m.TreeRoot[:]),
		m.LastReceived.UTC().Format(time.RFC3339Nano), m.Object, m.Size, hex.EncodeToString(m.SHA256))
}

// signManifest returns the signed note of m.
func (l *Log) signManifest(m *Manifest) ([]byte, error) {
	s, err := l.key.Signer(m.Origin)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: m.text()}, s)
}

// OpenManifest verifies a signed manifest against the verifier keys and
// returns its contents.
func OpenManifest(msg []byte, vkeys ...string) (*Manifest, error) {
	vs := make([]note.Verifier, 0, len(vkeys))
	for _, vk := range vkeys {
		v, err := note.NewVerifier(vk)
		if err != nil {
			return nil, fmt.Errorf("manifest: bad verifier key: %w", err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		return nil, fmt.Errorf("manifest: signature does not verify with the keys given: %w", err)
	}
	m, err := parseManifest(n.Text)
	if err != nil {
		return nil, err
	}
	for _, s := range n.Sigs {
		if s.Name != m.Origin {
			return nil, fmt.Errorf("manifest: signed by %q, not by the log it names (%q)", s.Name, m.Origin)
		}
	}
	return m, nil
}

func parseManifest(text string) (*Manifest, error) {
	bad := func(what string) error { return fmt.Errorf("manifest: malformed %s line", what) }
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 6 || lines[0] != manifestHeader {
		return nil, errors.New("manifest: not an attest archive segment manifest")
	}
	m := &Manifest{}
	var ok bool
	if m.Origin, ok = strings.CutPrefix(lines[1], "origin "); !ok || m.Origin == "" {
		return nil, bad("origin")
	}
	f := strings.Fields(lines[2])
	if len(f) != 3 || f[0] != "entries" {
		return nil, bad("entries")
	}
	first, err1 := strconv.ParseInt(f[1], 10, 64)
	end, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || first < 0 || end <= first {
		return nil, bad("entries")
	}
	m.First, m.End = first, end
	f = strings.Fields(lines[3])
	if len(f) != 3 || f[0] != "tree" || f[1] != strconv.FormatInt(end, 10) {
		return nil, bad("tree")
	}
	root, err := base64.StdEncoding.DecodeString(f[2])
	if err != nil || len(root) != tree.HashSize {
		return nil, bad("tree")
	}
	m.TreeRoot = tree.Hash(root)
	at, ok := strings.CutPrefix(lines[4], "received ")
	if m.LastReceived, err = time.Parse(time.RFC3339Nano, at); !ok || err != nil {
		return nil, bad("received")
	}
	f = strings.Fields(lines[5])
	if len(f) != 4 || f[0] != "object" || !strings.HasPrefix(f[3], "sha256:") {
		return nil, bad("object")
	}
	m.Object = f[1]
	if m.Size, err = strconv.ParseInt(f[2], 10, 64); err != nil || m.Size <= 0 {
		return nil, bad("object")
	}
	if m.SHA256, err = hex.DecodeString(f[3][len("sha256:"):]); err != nil || len(m.SHA256) != sha256.Size {
		return nil, bad("object")
	}
	return m, nil
}

// archiveObject names the object of a tenant's segment [first, end).
func archiveObject(tenantID, first, end int64) string {
	return fmt.Sprintf("tenant-%d/%016x-%016x.seg", tenantID, first, end)
}

// ManifestObject names the object that keeps a segment's signed manifest
// beside it.
func ManifestObject(object string) string { return strings.TrimSuffix(object, ".seg") + ".manifest" }

// ErrExpired means the entries asked for were deleted when their tenant's
// retention period ended; only their leaf hashes remain.
var ErrExpired = errors.New("auditlog: the entry's retention period has ended and its payload was deleted")

// ErrNoArchive means the log has archived entries but no archive store is
// configured to read them from.
var ErrNoArchive = errors.New("auditlog: entries are archived but no archive store is configured")

// archiveIndexes caches the frame index of each archive object read.
type archiveIndexes struct {
	mu sync.Mutex
	m  map[string][]archiveFrame
}

func (c *archiveIndexes) get(name string) []archiveFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

func (c *archiveIndexes) put(name string, frames []archiveFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= 4096 {
		c.m = map[string][]archiveFrame{}
	}
	c.m[name] = frames
}

// frames returns the frame index of an archive object.
func (l *Log) frames(ctx context.Context, name string, size int64) ([]archiveFrame, error) {
	if fs := l.archIdx.get(name); fs != nil {
		return fs, nil
	}
	if size < int64(len(archiveMagic)+trailerSize) {
		return nil, fmt.Errorf("auditlog: archive object %s is too short", name)
	}
	read := func(off, n int64) ([]byte, error) {
		b := make([]byte, n)
		if _, err := l.cfg.Archive.ReadAt(ctx, name, b, off); err != nil && !(errors.Is(err, io.EOF) && off+n == size) {
			return nil, fmt.Errorf("auditlog: read archive object %s: %w", name, err)
		}
		return b, nil
	}
	trailer, err := read(size-int64(trailerSize), int64(trailerSize))
	if err != nil {
		return nil, err
	}
	fs, err := parseArchiveIndex(trailer, size, read)
	if err != nil {
		return nil, fmt.Errorf("auditlog: archive object %s: %w", name, err)
	}
	l.archIdx.put(name, fs)
	return fs, nil
}

// archivedRows returns the rows of [from, to) that archive segments hold,
// as the snapshot q records them. Rows of expired segments carry no
// payload: their codec is codecExpired.
func (l *Log) archivedRows(ctx context.Context, q store.Querier, tenantID, from, to int64) ([]entryRow, error) {
	segs, err := l.archiveSegments(ctx, q, tenantID, from, to)
	if err != nil || len(segs) == 0 {
		return nil, err
	}
	var out []entryRow
	for _, s := range segs {
		lo, hi := max(from-from%blockSize, s.First), min(to, s.End)
		if !s.ExpiredAt.IsZero() {
			for b := lo - (lo-s.First)%blockSize; b < hi; b += blockSize {
				out = append(out, entryRow{first: b, count: blockSize, codec: codecExpired})
			}
			continue
		}
		if l.cfg.Archive == nil {
			return nil, ErrNoArchive
		}
		// The object's name is the tenant's and the range's own: a record
		// naming any other object is not believed.
		if s.Object != archiveObject(tenantID, s.First, s.End) {
			return nil, fmt.Errorf("auditlog: the archive segment [%d, %d) names the object %q, which is not its "+
				"own; run attest verify", s.First, s.End, s.Object)
		}
		fs, err := l.frames(ctx, s.Object, s.Size)
		if err != nil {
			return nil, err
		}
		if len(fs) == 0 || fs[0].first != s.First || fs[len(fs)-1].end != s.End {
			return nil, fmt.Errorf("auditlog: archive object %s does not hold the entries [%d, %d) its segment "+
				"records; run attest verify", s.Object, s.First, s.End)
		}
		for _, f := range fs {
			if f.end <= lo || f.first >= hi {
				continue
			}
			rows, err := l.readFrame(ctx, s.Object, f)
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				if r.first+r.count > lo && r.first < hi {
					out = append(out, r)
				}
			}
		}
	}
	return out, nil
}

func (l *Log) readFrame(ctx context.Context, name string, f archiveFrame) ([]entryRow, error) {
	comp := make([]byte, f.len)
	if _, err := l.cfg.Archive.ReadAt(ctx, name, comp, f.offset); err != nil {
		return nil, fmt.Errorf("auditlog: read archive object %s: %w", name, err)
	}
	raw, err := zdec.DecodeAll(comp, nil)
	if err != nil {
		return nil, fmt.Errorf("auditlog: archive object %s: frame at %d: %w", name, f.first, err)
	}
	rows, err := decodeArchiveFrame(raw, f)
	if err != nil {
		return nil, fmt.Errorf("auditlog: archive object %s: %w", name, err)
	}
	return rows, nil
}

// ArchiveSegments returns a tenant's archive segments overlapping
// [from, to), oldest first.
func (l *Log) archiveSegments(ctx context.Context, q store.Querier, tenantID, from, to int64) ([]ArchiveSegment, error) {
	rows, err := q.QueryContext(ctx, l.db.Rebind(`SELECT first_seq, end_seq, object, object_size, sha256, last_received,
		manifest, created_at, expired_at, object_deleted_at FROM archives
		WHERE tenant_id = ? AND first_seq < ? AND end_seq > ? ORDER BY first_seq`), tenantID, to, from)
	if err != nil {
		return nil, fmt.Errorf("auditlog: read archive segments: %w", err)
	}
	defer rows.Close()
	var out []ArchiveSegment
	for rows.Next() {
		var s ArchiveSegment
		var last, created int64
		var expired, deleted *int64
		if err := rows.Scan(&s.First, &s.End, &s.Object, &s.Size, &s.SHA256, &last, &s.Manifest, &created,
			&expired, &deleted); err != nil {
			return nil, fmt.Errorf("auditlog: read archive segments: %w", err)
		}
		s.LastReceived, s.CreatedAt = time.UnixMicro(last).UTC(), time.UnixMicro(created).UTC()
		if expired != nil {
			s.ExpiredAt = time.UnixMicro(*expired).UTC()
		}
		s.ObjectDeleted = deleted != nil
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auditlog: read archive segments: %w", err)
	}
	return out, nil
}

// checkArchiveObject reads a whole archive object and compares it with its
// segment's record: its size and SHA-256.
func (l *Log) checkArchiveObject(ctx context.Context, s *ArchiveSegment) error {
	if l.cfg.Archive == nil {
		return ErrNoArchive
	}
	h := sha256.New()
	buf := make([]byte, 4<<20)
	var off int64
	for off < s.Size {
		n := min(int64(len(buf)), s.Size-off)
		k, err := l.cfg.Archive.ReadAt(ctx, s.Object, buf[:n], off)
		if err != nil && !(errors.Is(err, io.EOF) && int64(k) == n) {
			return err
		}
		h.Write(buf[:k])
		off += int64(k)
	}
	if got, err := l.cfg.Archive.Size(ctx, s.Object); err != nil {
		return err
	} else if got != s.Size {
		return fmt.Errorf("it holds %d bytes, not the %d its manifest says", got, s.Size)
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, s.SHA256) {
		return fmt.Errorf("its SHA-256 is %x, not the %x its manifest says", sum, s.SHA256)
	}
	return nil
}
