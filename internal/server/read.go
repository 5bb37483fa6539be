package server

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/evidence"
	"github.com/attest/attest/internal/tree"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/transparency-dev/formats/proof"
)

// recordView is one event as the read API shows it.
type recordView struct {
	Sequence int64          `json:"sequence"`
	LeafHash string         `json:"leaf_hash"`
	Event    jsontext.Value `json:"event"`
	Original jsontext.Value `json:"original,omitempty"`
	// Erased lists personal fields whose values were destroyed.
	Erased []string `json:"erased,omitempty"`
}

func viewOf(r *auditlog.Record, withOriginal bool) recordView {
	ev := *r.Event
	v := recordView{Sequence: r.Sequence, LeafHash: b64(r.LeafHash[:]), Event: event.AppendLeaf(nil, &ev, nil),
		Erased: r.Erased}
	if withOriginal && len(r.Event.Original) > 0 {
		v.Original = r.Event.Original
	}
	slices.Sort(v.Erased)
	return v
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func hashes(hs []tree.Hash) []string {
	out := make([]string, len(hs))
	for i := range hs {
		out[i] = b64(hs[i][:])
	}
	return out
}

// intParam reads a whole-number query parameter of at least min.
func intParam(q url.Values, name string, min int64) (int64, bool, error) {
	s := q.Get(name)
	if s == "" {
		return 0, false, nil
	}
	n, ok := parseCanonical(s)
	if !ok || n < min {
		return 0, false, badRequest(name, fmt.Sprintf("%s must be a whole number of at least %d, in decimal "+
			"without a sign or leading zeros", name, min))
	}
	return n, true, nil
}

// parseCanonical parses a non-negative decimal number written in its one
// canonical form: no sign, no leading zeros, so that each number has
// exactly one spelling in paths and in the audit trail.
func parseCanonical(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return n, true
}

type inclusionView struct {
	Sequence   int64    `json:"sequence"`
	LeafHash   string   `json:"leaf_hash"`
	TreeSize   int64    `json:"tree_size"`
	RootHash   string   `json:"root_hash"`
	Hashes     []string `json:"hashes"`
	Checkpoint string   `json:"checkpoint,omitempty"`
}

func inclusionViewOf(p *auditlog.Inclusion) inclusionView {
	return inclusionView{Sequence: p.Sequence, LeafHash: b64(p.LeafHash[:]), TreeSize: p.TreeSize,
		RootHash: b64(p.Root[:]), Hashes: hashes(p.Hashes), Checkpoint: string(p.Checkpoint)}
}

// readEvent answers one event with its inclusion proof in the latest
// checkpoint, or in ?tree_size=.
func (s *Server) readEvent(rq *request) error {
	seq, ok := parseCanonical(rq.r.PathValue("sequence"))
	if !ok {
		return badRequest("sequence", "sequence must be a non-negative whole number, in decimal without a sign "+
			"or leading zeros")
	}
	size, haveSize, err := intParam(rq.r.URL.Query(), "tree_size", 1)
	if err != nil {
		return err
	}
	if haveSize && seq >= size {
		return notInTree("tree_size", seq, size)
	}
	rq.target = event.Target{Type: "audit_event", ID: strconv.FormatInt(seq, 10)}
	ctx := rq.r.Context()
	var out struct {
		recordView
		Leaf  string         `json:"leaf"`
		Proof *inclusionView `json:"proof,omitempty"`
	}
	err = s.in.DB.ReadTx(ctx, func(tx *sql.Tx) error {
		head, err := s.in.Log.Head(ctx, tx, rq.tenant.ID)
		if err != nil {
			return err
		}
		if seq >= head.Size {
			return notFound("no event with that sequence number")
		}
		rec, err := s.in.Log.Read(ctx, tx, rq.tenant, seq)
		if err != nil {
			return err
		}
		out.recordView = viewOf(rec, true)
		out.Leaf = b64(rec.Leaf)
		p, err := s.in.Log.ProveInclusion(ctx, tx, rq.tenant, seq, size)
		if err == nil {
			v := inclusionViewOf(p)
			out.Proof = &v
		} else if !isNoProofYet(err) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusOK, out)
}

// isNoProofYet reports errors that mean the event is newer than the latest
// checkpoint: the event is shown without a proof.
func isNoProofYet(err error) bool {
	return err == auditlog.ErrNoCheckpoint || isNotFound(err)
}

// checkpoint answers the latest signed checkpoint as text.
func (s *Server) checkpoint(rq *request) error {
	ctx := rq.r.Context()
	cp, err := s.in.Log.LatestCheckpoint(ctx, s.in.DB.Reads(), rq.tenant.ID)
	if err != nil {
		return err
	}
	rq.target = event.Target{Type: "checkpoint", ID: strconv.FormatInt(cp.Size, 10)}
	rq.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rq.w.Header().Set("Cache-Control", "no-cache, max-age=1")
	rq.w.WriteHeader(http.StatusOK)
	_, err = rq.w.Write(cp.Note)
	return err
}

// inclusionProof proves an entry, named by ?sequence= or ?leaf_hash=, in the
// latest checkpoint or in ?tree_size=. With ?format=tlog-proof it answers in
// the C2SP tlog-proof text form, which carries the signed checkpoint.
func (s *Server) inclusionProof(rq *request) error {
	q := rq.r.URL.Query()
	ctx := rq.r.Context()
	format := q.Get("format")
	if format != "" && format != "tlog-proof" {
		return badRequest("format", "format must be tlog-proof, or absent for JSON")
	}
	size, _, err := intParam(q, "tree_size", 1)
	if err != nil {
		return err
	}
	seq, haveSeq, err := intParam(q, "sequence", 0)
	if err != nil {
		return err
	}
	if lh := q.Get("leaf_hash"); lh != "" {
		if haveSeq {
			return badRequest("leaf_hash", "give sequence or leaf_hash, not both")
		}
		b, err := decodeHash(lh)
		if err != nil {
			return badRequest("leaf_hash", err.Error())
		}
		if seq, err = s.in.Log.FindLeaf(ctx, rq.tenant, tree.Hash(b)); err != nil {
			if isNotFound(err) {
				return notFound(noLeaf(rq))
			}
			return err
		}
	} else if !haveSeq {
		return badRequest("sequence", "give sequence or leaf_hash")
	}
	bounded := rq.decision.Period != nil
	if !bounded {
		rq.target = event.Target{Type: "audit_event", ID: strconv.FormatInt(seq, 10)}
	}
	field := "sequence"
	if !haveSeq {
		field = "leaf_hash"
	}
	var p *auditlog.Inclusion
	err = s.in.DB.ReadTx(ctx, func(tx *sql.Tx) error {
		if bounded {
			if err := s.inPeriod(rq, tx, seq, haveSeq); err != nil {
				return err
			}
		}
		if size == 0 {
			cp, err := s.in.Log.LatestCheckpoint(ctx, tx, rq.tenant.ID)
			if err != nil {
				return err
			}
			size = cp.Size
		}
		if seq >= size {
			return notInTree(field, seq, size)
		}
		var err error
		p, err = s.in.Log.ProveInclusion(ctx, tx, rq.tenant, seq, size)
		return err
	})
	if err != nil {
		return err
	}
	rq.target = event.Target{Type: "audit_event", ID: strconv.FormatInt(seq, 10)}
	if format == "tlog-proof" {
		if len(p.Checkpoint) == 0 {
			return badRequest("tree_size", "no signed checkpoint exists at that tree size; the tlog-proof form needs one")
		}
		tp := proof.TLogProof{Index: uint64(p.Sequence), Checkpoint: p.Checkpoint}
		for _, h := range p.Hashes {
			tp.Hashes = append(tp.Hashes, h)
		}
		rq.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rq.w.WriteHeader(http.StatusOK)
		_, err := rq.w.Write(tp.Marshal())
		return err
	}
	return writeJSON(rq.w, http.StatusOK, inclusionViewOf(p))
}

// notInTree refuses a proof for an entry beyond the tree.
// inPeriod refuses a period-bounded grant the proof of an entry that did
// not occur in its audit period, as the audit-trail query shows it no
// others. It is asked before anything is said of the entry's place in the
// tree; an entry found by its leaf hash is answered as one not found, so
// that a hash of another period is not confirmed to exist.
func (s *Server) inPeriod(rq *request, tx *sql.Tx, seq int64, bySequence bool) error {
	g := rq.decision.Period
	head, err := s.in.Log.Head(rq.r.Context(), tx, rq.tenant.ID)
	if err != nil {
		return err
	}
	if seq >= head.Size {
		return nil // past the log: the size check answers it
	}
	rec, err := s.in.Log.Read(rq.r.Context(), tx, rq.tenant, seq)
	switch {
	case errors.Is(err, auditlog.ErrExpired) && bySequence:
		return forbidden("the event's payload has expired under retention, so whether it occurred in your audit " +
			"period cannot be read")
	case errors.Is(err, auditlog.ErrExpired):
		return notFound(noLeaf(rq))
	case err != nil:
		return err
	case !rec.Event.OccurredAt.Before(g.PeriodStart) && !rec.Event.OccurredAt.After(g.PeriodEnd):
		return nil
	case bySequence:
		return forbidden("an auditor's grant is bounded to its audit period, and this event did not occur in it")
	default:
		return notFound(noLeaf(rq))
	}
}

// noLeaf is the answer to a leaf hash that names no entry the caller may
// prove.
func noLeaf(rq *request) string {
	if rq.decision.Period != nil {
		return "no entry of your audit period has that leaf hash"
	}
	return "no entry has that leaf hash"
}

func notInTree(field string, seq, size int64) error {
	return badRequest(field, fmt.Sprintf("entry %d is not in the tree of size %d", seq, size))
}

func decodeHash(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawURLEncoding.DecodeString(s)
	}
	if err != nil || len(b) != tree.HashSize {
		return nil, fmt.Errorf("leaf_hash must be a base64 SHA-256 hash")
	}
	return b, nil
}

// consistencyProof proves that the tree of size ?to= (default the latest
// checkpoint) extends the tree of size ?from=.
func (s *Server) consistencyProof(rq *request) error {
	q := rq.r.URL.Query()
	from, ok, err := intParam(q, "from", 0)
	if err != nil {
		return err
	}
	if !ok {
		return badRequest("from", "from is required: the size of the older tree")
	}
	to, _, err := intParam(q, "to", 1)
	if err != nil {
		return err
	}
	ctx := rq.r.Context()
	var c *auditlog.Consistency
	err = s.in.DB.ReadTx(ctx, func(tx *sql.Tx) error {
		if to == 0 {
			cp, err := s.in.Log.LatestCheckpoint(ctx, tx, rq.tenant.ID)
			if err != nil {
				return err
			}
			to = cp.Size
		}
		if from > to {
			return badRequest("from", fmt.Sprintf("from (%d) must not exceed to (%d)", from, to))
		}
		var err error
		c, err = s.in.Log.ProveConsistency(ctx, tx, rq.tenant, from, to)
		if errors.Is(err, auditlog.ErrBadSize) {
			return badRequest("to", fmt.Sprintf("to (%d) is beyond the log", to))
		}
		return err
	})
	if err != nil {
		return err
	}
	rq.target = event.Target{Type: "tree", ID: fmt.Sprintf("%d-%d", c.Old, c.New)}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"from": c.Old, "to": c.New, "from_root": b64(c.OldRoot[:]),
		"to_root": b64(c.NewRoot[:]), "hashes": hashes(c.Hashes)})
}

// publicKey answers the tenant log's verifier key in signed-note form, or
// with ?format=json also its origin and the signing key history.
func (s *Server) publicKey(rq *request) error {
	format := rq.r.URL.Query().Get("format")
	if format != "" && format != "json" {
		return badRequest("format", "format must be json, or absent for the signed-note verifier key")
	}
	vk, err := s.in.Log.VerifierKey(rq.tenant.Name)
	if err != nil {
		return err
	}
	if format != "json" {
		rq.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rq.w.WriteHeader(http.StatusOK)
		_, err = fmt.Fprintln(rq.w, vk)
		return err
	}
	hist, err := s.in.Log.KeyHistory(rq.r.Context(), s.in.DB.Read)
	if err != nil {
		return err
	}
	type keyView struct {
		ID        string `json:"id"`
		Algorithm string `json:"algorithm"`
		PublicKey string `json:"public_key"`
		CreatedAt string `json:"created_at,omitempty"`
		RetiredAt string `json:"retired_at,omitempty"`
	}
	// The history holds the key this server signs with, from its key file.
	// A database row for another key has nothing that proves it was ever
	// this log's: no key signs the next one yet. Such rows, and a row that
	// calls this server's key retired, are listed apart, so that what was
	// written into the database directly shows up as what it is.
	sk := s.in.SigningKey
	current := keyView{ID: sk.ID, Algorithm: "ed25519", PublicKey: b64(sk.Public)}
	unproven := []keyView{}
	for _, k := range hist {
		v := keyView{ID: k.ID, Algorithm: k.Algorithm, PublicKey: b64(k.PublicKey), CreatedAt: k.CreatedAt.Format(time.RFC3339)}
		if !k.RetiredAt.IsZero() {
			v.RetiredAt = k.RetiredAt.Format(time.RFC3339)
		}
		if k.ID == sk.ID && bytes.Equal(k.PublicKey, sk.Public) && k.Algorithm == "ed25519" && k.RetiredAt.IsZero() {
			current.CreatedAt = v.CreatedAt
		} else {
			unproven = append(unproven, v)
		}
	}
	hv := []keyView{current}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"origin": s.in.Log.Origin(rq.tenant.Name), "verifier_key": vk,
		"key_id": s.in.SigningKey.ID, "history": hv, "unproven": unproven})
}

// exportTrail answers an evidence bundle of the request's tenant for the
// period of received times [from, to), as a zip file (see package
// evidence). The bundle streams as it is made: should making it fail
// midway, the connection is cut, so that no partial bundle looks whole.
func (s *Server) exportTrail(rq *request) error {
	q := rq.r.URL.Query()
	format := q.Get("format")
	contentType := map[string]string{"": "application/zip", "bundle": "application/zip",
		auditlog.FormatNDJSON: "application/x-ndjson", auditlog.FormatOCSF: "application/x-ndjson",
		auditlog.FormatCSV: "text/csv; charset=utf-8"}[format]
	if contentType == "" {
		return badRequest("format", "format must be bundle (the default), ndjson, ocsf or csv")
	}
	var from, to time.Time
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := q.Get(p.name)
		if v == "" {
			return badRequest(p.name, p.name+" is required: the period of received times is [from, to)")
		}
		t, ok := event.ParseTime(v)
		if !ok {
			return badRequest(p.name, p.name+" must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		if err := event.CheckEarliest(p.name, t); err != nil {
			return badRequest(p.name, p.name+" is before 1990-01-01; no event is that old")
		}
		*p.dst = t
	}
	if !from.Before(to) {
		return badRequest("to", "to must be after from")
	}
	// On record before the first byte leaves: an export that cannot be
	// recorded is withheld. The request's own event, which says how it
	// ended, follows as for every request.
	if format == "" {
		format = "bundle"
	}
	rq.target = event.Target{Type: "tenant", ID: rq.tenant.Name, Name: rq.tenant.Name}
	details := map[string]any{"format": format, "from": from.UTC().Format(time.RFC3339Nano), "to": to.UTC().Format(time.RFC3339Nano)}
	if err := s.in.RecordAccess(rq.r.Context(), rq.tenant, "audit.trail.export.start", rq.actor(), details,
		rq.changeDecorator(http.StatusOK)); err != nil {
		return &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable",
			detail: "the export could not be recorded in the audit trail, so it is withheld; try again"}
	}
	w := &startedWriter{ResponseWriter: rq.w, header: func(h http.Header) {
		h.Set("Content-Type", contentType)
		if contentType == "application/zip" {
			h.Set("Content-Disposition", `attachment; filename="attest-evidence.zip"`)
		}
	}}
	ctx := rq.r.Context()
	var err error
	if format == "bundle" {
		var m *evidence.Manifest
		if m, err = s.in.Log.ExportBundle(ctx, rq.tenant, from, to, w, nil); err == nil {
			rq.details = map[string]any{"format": format, "entries": m.End - m.First, "first": m.First, "end": m.End,
				"tree_size": m.TreeSize}
		}
	} else {
		var n int64
		if n, err = s.in.Log.ExportRecords(ctx, rq.tenant, from, to, format, w, nil); err == nil {
			rq.details = map[string]any{"format": format, "entries": n}
		}
	}
	switch {
	case err != nil && !w.started && errors.Is(err, auditlog.ErrNoCheckpoint):
		return &apiError{status: http.StatusConflict, title: "Conflict",
			detail: "the tenant's log has no signed checkpoint yet; one is signed within a second of its first event"}
	case err != nil && !w.started:
		return err
	case err != nil:
		rq.reason = "the export could not be finished"
		panic(http.ErrAbortHandler)
	}
	if !w.started {
		w.Write(nil) // an empty export still answers with its type
	}
	return nil
}

// startedWriter sets the headers of a streamed answer on its first write,
// and remembers that the answer has begun.
type startedWriter struct {
	http.ResponseWriter
	header  func(http.Header)
	started bool
}

func (w *startedWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.started = true
		w.header(w.ResponseWriter.Header())
		w.ResponseWriter.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}
