package auditlog

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/evidence"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
	"github.com/transparency-dev/formats/proof"
)

// ExportBundle writes the evidence bundle of tenant t's entries received
// in [from, to) to w, as a zip file (see package evidence), against the
// newest signed checkpoint. Progress, when set, is called now and then with
// the entries written and their number.
func (l *Log) ExportBundle(ctx context.Context, t *tenant.Tenant, from, to time.Time, w io.Writer,
	progress func(done, total int64)) (*evidence.Manifest, error) {
	if !from.Before(to) {
		return nil, errors.New("auditlog: the period's start must be before its end")
	}
	var m *evidence.Manifest
	err := l.db.ReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		m, err = l.exportTx(ctx, tx, t, from.UTC(), to.UTC(), w, progress)
		return err
	})
	return m, err
}

func (l *Log) exportTx(ctx context.Context, q store.Querier, t *tenant.Tenant, from, to time.Time, w io.Writer,
	progress func(done, total int64)) (*evidence.Manifest, error) {
	cp, err := l.LatestCheckpoint(ctx, q, t.ID)
	if err != nil {
		return nil, err
	}
	first, end, err := l.period(ctx, q, t, cp.Size, from, to)
	if err != nil {
		return nil, err
	}
	if lo, _, err := l.expiredBound(ctx, q, t.ID); err != nil {
		return nil, err
	} else if first > 0 && first == lo {
		return nil, fmt.Errorf("auditlog: the entry just before the period was deleted when its retention ended, so "+
			"the bundle cannot prove the period complete at its start: %w", ErrExpired)
	}
	m := &evidence.Manifest{Format: evidence.Format, Origin: l.Origin(t.Name), Tenant: t.Name, From: from, To: to,
		First: first, End: end, TreeSize: cp.Size, Root: base64.StdEncoding.EncodeToString(cp.Root[:]),
		CreatedAt: l.now(), Files: map[string]string{}}
	zw := zip.NewWriter(w)
	put := func(name string, b []byte) error {
		f, err := zw.Create(name)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			return err
		}
		if !strings.Contains(name, "/") {
			sum := sha256.Sum256(b)
			m.Files[name] = hex.EncodeToString(sum[:])
		}
		return nil
	}
	if err := put(evidence.CheckpointFile, cp.Note); err != nil {
		return nil, err
	}
	// The newest checkpoint at or before the period's start, and the proof
	// that the log has only grown since.
	cps, err := l.Checkpoints(ctx, q, t.ID)
	if err != nil {
		return nil, err
	}
	var start *StoredCheckpoint
	for i := range cps {
		if c := &cps[i]; c.Size <= first && (start == nil || c.Size > start.Size) {
			start = c
		}
	}
	if start != nil && start.Size > 0 {
		m.StartSize = start.Size
		if err := put(evidence.StartCheckpointFile, start.Note); err != nil {
			return nil, err
		}
		c, err := l.ProveConsistency(ctx, q, t, m.StartSize, cp.Size)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(evidence.ConsistencyProof{Old: c.Old, New: c.New, Hashes: hashBytes(c.Hashes)})
		if err != nil {
			return nil, err
		}
		if err := put(evidence.ConsistencyFile, b); err != nil {
			return nil, err
		}
	}
	keys, err := l.KeyHistory(ctx, q)
	if err != nil {
		return nil, err
	}
	var pks []evidence.PublicKey
	for _, k := range keys {
		pk := evidence.PublicKey{ID: k.ID, Algorithm: k.Algorithm, PublicKey: k.PublicKey, CreatedAt: k.CreatedAt}
		if !k.RetiredAt.IsZero() {
			r := k.RetiredAt
			pk.RetiredAt = &r
		}
		pks = append(pks, pk)
	}
	b, err := json.Marshal(pks)
	if err != nil {
		return nil, err
	}
	if err := put(evidence.PublicKeysFile, b); err != nil {
		return nil, err
	}
	r := tree.NewReader(l.db, q, t.ID)
	entry := func(dir, proofDir string, seq int64) error {
		leaf, _, err := l.entry(ctx, q, t.ID, seq)
		if err != nil {
			return err
		}
		hashes, err := tree.ProveInclusion(ctx, r, cp.Size, seq)
		if err != nil {
			return err
		}
		tp := proof.TLogProof{Index: uint64(seq), Checkpoint: cp.Note}
		for _, h := range hashes {
			tp.Hashes = append(tp.Hashes, h)
		}
		if err := put(evidence.EventFile(dir, seq), leaf); err != nil {
			return err
		}
		return put(evidence.ProofFile(proofDir, seq), tp.Marshal())
	}
	if first > 0 {
		if err := entry("before", "before", first-1); err != nil {
			return nil, err
		}
	}
	if end < cp.Size {
		if err := entry("after", "after", end); err != nil {
			return nil, err
		}
	}
	last := time.Now()
	for seq := first; seq < end; seq++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := entry("events", "proofs", seq); err != nil {
			return nil, err
		}
		if progress != nil && time.Since(last) > 3*time.Second {
			last = time.Now()
			progress(seq-first+1, end-first)
		}
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	f, err := zw.Create(evidence.ManifestFile)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(mb); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// period returns the range [first, end) of the entries below size received
// in [from, to). Received times never decrease along the log, so it runs
// from the first entry received at or after from to the first received at
// or after to.
//
// Entries whose retention has ended have no received time left to read: a
// period reaching back to them is refused with ErrExpired.
func (l *Log) period(ctx context.Context, q store.Querier, t *tenant.Tenant, size int64, from, to time.Time) (first, end int64, err error) {
	lo, lastExpired, err := l.expiredBound(ctx, q, t.ID)
	if err != nil {
		return 0, 0, err
	}
	if lo > 0 && !from.After(lastExpired) {
		return 0, 0, fmt.Errorf("auditlog: entries received up to %s were deleted when their retention ended; "+
			"choose a period starting after it: %w", lastExpired.Format(time.RFC3339Nano), ErrExpired)
	}
	lo = min(lo, size)
	received := func(i int64) (time.Time, error) { return l.receivedAt(ctx, q, t.ID, lo+i) }
	if first, err = searchReceived(size-lo, from, received); err != nil {
		return 0, 0, err
	}
	if end, err = searchReceived(size-lo, to, received); err != nil {
		return 0, 0, err
	}
	return lo + first, lo + end, nil
}

// expiredBound returns the end of a tenant's expired entries and when the
// newest of them was received.
func (l *Log) expiredBound(ctx context.Context, q store.Querier, tenantID int64) (int64, time.Time, error) {
	var end, last int64
	err := q.QueryRowContext(ctx, l.db.Rebind(`SELECT end_seq, last_received FROM archives
		WHERE tenant_id = ? AND expired_at IS NOT NULL ORDER BY end_seq DESC LIMIT 1`), tenantID).Scan(&end, &last)
	if isNoRows(err) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("auditlog: read archive segments: %w", err)
	}
	return end, time.UnixMicro(last).UTC(), nil
}

// searchReceived returns the first sequence number below size whose entry
// was received at or after at, or size when there is none.
func searchReceived(size int64, at time.Time, received func(int64) (time.Time, error)) (int64, error) {
	lo, hi := int64(0), size
	for lo < hi {
		mid := lo + (hi-lo)/2
		rt, err := received(mid)
		if err != nil {
			return 0, err
		}
		if rt.Before(at) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

func hashBytes(hs []tree.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// Export formats besides the bundle.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// csvColumns are the columns of the CSV export, each a field of the event.
var csvColumns = []string{"sequence", "leaf_hash", "id", "occurred_at", "received_at", "source", "actor.type",
	"actor.id", "actor.name", "actor.email", "actor.ip", "actor.user_agent", "action", "category", "target.type",
	"target.id", "target.name", "outcome.result", "outcome.reason", "request.id", "request.method", "request.path",
	"request.status", "erased"}

// ExportRecords writes tenant t's entries received in [from, to), oldest
// first, with their personal values where they are not erased: as NDJSON,
// one item of the query API a line, as OCSF events one a line, or as CSV
// with a header row. It
// returns how many it wrote. CSV cells that a spreadsheet would run as a
// formula (starting with =, +, -, @, a tab or a carriage return) are
// written with a leading apostrophe.
func (l *Log) ExportRecords(ctx context.Context, t *tenant.Tenant, from, to time.Time, format string, w io.Writer,
	progress func(done, total int64)) (int64, error) {
	if format != FormatNDJSON && format != FormatCSV && format != FormatOCSF {
		return 0, fmt.Errorf("auditlog: unknown export format %q", format)
	}
	if !from.Before(to) {
		return 0, errors.New("auditlog: the period's start must be before its end")
	}
	if err := l.keyring.Sync(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := l.db.ReadTx(ctx, func(tx *sql.Tx) error {
		head, err := l.Head(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		first, end, err := l.period(ctx, tx, t, head.Size, from.UTC(), to.UTC())
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(w, 64<<10)
		cw := csv.NewWriter(bw)
		if format == FormatCSV {
			cw.Write(csvColumns)
		}
		last := time.Now()
		for seq := first; seq < end; seq++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			leaf, sealed, err := l.entry(ctx, tx, t.ID, seq)
			if err != nil {
				return err
			}
			r, err := l.record(ctx, t, seq, leaf, sealed)
			if err != nil {
				return err
			}
			slices.Sort(r.Erased)
			if format == FormatOCSF {
				b, err := json.Marshal(ocsfEvent(r))
				if err != nil {
					return err
				}
				bw.Write(append(b, '\n'))
			} else if format == FormatNDJSON {
				b, err := json.Marshal(struct {
					Sequence int64           `json:"sequence"`
					LeafHash string          `json:"leaf_hash"`
					Event    json.RawMessage `json:"event"`
					Erased   []string        `json:"erased,omitempty"`
				}{r.Sequence, base64.StdEncoding.EncodeToString(r.LeafHash[:]), event.AppendLeaf(nil, r.Event, nil), r.Erased})
				if err != nil {
					return err
				}
				bw.Write(append(b, '\n'))
			} else if err := cw.Write(csvRow(r)); err != nil {
				return err
			}
			n++
			if progress != nil && time.Since(last) > 3*time.Second {
				last = time.Now()
				progress(seq-first+1, end-first)
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return bw.Flush()
	})
	return n, err
}

func csvRow(r *Record) []string {
	ev := r.Event
	status := ""
	if ev.Request.Status != 0 {
		status = strconv.Itoa(ev.Request.Status)
	}
	row := []string{strconv.FormatInt(r.Sequence, 10), base64.StdEncoding.EncodeToString(r.LeafHash[:]), ev.ID,
		ev.OccurredAt.Format(time.RFC3339Nano), ev.ReceivedAt.Format(time.RFC3339Nano), ev.Source.Name, ev.Actor.Type,
		ev.Actor.ID, ev.Actor.Name, ev.Actor.Email, ev.Actor.IP, ev.Actor.UserAgent, ev.Action, ev.Category,
		ev.Target.Type, ev.Target.ID, ev.Target.Name, ev.Outcome.Result, ev.Outcome.Reason, ev.Request.ID,
		ev.Request.Method, ev.Request.Path, status, strings.Join(r.Erased, " ")}
	return DefuseCells(row)
}

// DefuseCells prefixes with an apostrophe, in place, every CSV cell that a
// spreadsheet would run as a formula (one starting with = + - @, a tab or
// a carriage return), and returns row: names and reasons are whatever
// producers and people typed.
func DefuseCells(row []string) []string {
	for i, c := range row {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			row[i] = "'" + c
		}
	}
	return row
}
