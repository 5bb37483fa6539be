package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/importer"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json/jsontext"
)

// ingestChunk is how many events are prepared and handed to the writer at
// a time; up to ingestInFlight chunks of one request are committing at once.
const (
	ingestChunk    = 1000
	ingestInFlight = 4
)

type ingestResult struct {
	Index    int           `json:"index"`
	Status   string        `json:"status"`
	ID       string        `json:"id,omitempty"`
	Tenant   string        `json:"tenant,omitempty"`
	Sequence *int64        `json:"sequence,omitempty"`
	LeafHash string        `json:"leaf_hash,omitempty"`
	Error    *fieldProblem `json:"error,omitempty"`
}

type fieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

type ingestResponse struct {
	Accepted  int            `json:"accepted"`
	Duplicate int            `json:"duplicate"`
	Rejected  int            `json:"rejected"`
	Results   []ingestResult `json:"results"`
}

// readBody reads the whole request body, decompressing gzip, and refuses
// one larger than the limit before anything of it is processed.
func (s *Server) readBody(rq *request) ([]byte, error) {
	limit := s.cfg.MaxBodyBytes
	if rq.r.ContentLength > limit {
		return nil, bodyTooLarge(limit, "")
	}
	w := rq.w
	if sw, ok := w.(*statusWriter); ok {
		w = sw.ResponseWriter // so that the server learns the body was cut off
	}
	body := &bodyReader{r: http.MaxBytesReader(w, rq.r.Body, limit)}
	var r io.Reader = body
	switch enc := strings.ToLower(rq.r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil && body.err != nil {
			return nil, bodyReadError(body.err)
		}
		if err != nil {
			return nil, badRequest("body", "Content-Encoding is gzip but the body is not gzip data")
		}
		defer zr.Close()
		r = zr
	default:
		return nil, &apiError{status: http.StatusUnsupportedMediaType, title: "Unsupported media type", field: "Content-Encoding",
			detail: fmt.Sprintf("Content-Encoding %q is not supported; send identity or gzip", enc)}
	}
	// A body of known length is read into one buffer of its size.
	hint := int64(bytes.MinRead)
	if cl := rq.r.ContentLength; cl > 0 && r == io.Reader(body) {
		hint += cl
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint))
	_, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	b := buf.Bytes()
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, bodyTooLarge(limit, "")
	case body.err != nil:
		return nil, bodyReadError(body.err)
	case err != nil:
		return nil, badRequest("body", "the gzip data is damaged")
	case int64(len(b)) > limit:
		return nil, bodyTooLarge(limit, " after decompression")
	}
	return b, nil
}

// bodyReader remembers how reading a request body failed, to tell a client
// that went away from a compressed body that is damaged.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// bodyReadError is the answer to a request body that broke off: short of
// its limit, only the client's going away stops a body being read.
func bodyReadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyTooLarge(mbe.Limit, "")
	}
	return fmt.Errorf("%w: %w", errClientGone, err)
}

func bodyTooLarge(limit int64, after string) error {
	return &apiError{status: http.StatusRequestEntityTooLarge, title: "Request too large", field: "body",
		detail: fmt.Sprintf("the request body is larger than %d bytes%s", limit, after)}
}

func tooManyEvents(max int) error {
	return &apiError{status: http.StatusRequestEntityTooLarge, title: "Request too large", field: "body",
		detail: fmt.Sprintf("a request may carry at most %d events; send the rest in further requests", max)}
}

// gunzipImport decompresses a gzip file sent for an importer, within the
// body limit: the importers would otherwise decompress it without one.
func (s *Server) gunzipImport(body []byte) ([]byte, error) {
	if len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		return body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, badRequest("body", "the body starts as gzip data but is not")
	}
	defer zr.Close()
	limit := s.cfg.MaxBodyBytes
	b, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, badRequest("body", "the gzip data is damaged")
	}
	if int64(len(b)) > limit {
		return nil, bodyTooLarge(limit, " after decompression")
	}
	return b, nil
}

// ingest takes one JSON event, a JSON array of events or NDJSON, or, with
// ?format=, a file of another system's records, and answers per event once
// the accepted ones are committed. A request of more than MaxEvents events
// is refused before any of them is stored.
func (s *Server) ingest(rq *request) error {
	format := rq.r.URL.Query().Get("format")
	if format != "" && !importer.ValidFormat(format) {
		return badRequest("format", fmt.Sprintf("format must be one of %s", strings.Join(importer.Formats, ", ")))
	}
	types := ingestTypes
	if format != "" {
		types = importTypes
	}
	mt, err := mediaType(rq.r, types)
	if err != nil {
		return err
	}
	body, err := s.readBody(rq)
	if err != nil {
		return err
	}
	in := &ingestion{s: s, rq: rq, ctx: context.WithoutCancel(rq.r.Context()), sem: make(chan struct{}, ingestInFlight),
		chunks: map[*tenant.Tenant]*chunk{}, resp: ingestResponse{Results: []ingestResult{}}}
	lim := &event.Limits{Now: s.in.Now}
	max := s.cfg.MaxEvents
	switch {
	case format != "":
		err = s.importRecords(format, body, lim, in.add)
	case isNDJSON(mt):
		n := countLines(body, max+1)
		if n > max {
			return tooManyEvents(max)
		}
		in.resp.Results = make([]ingestResult, 0, n)
		err = importer.ReadNDJSON(bytes.NewReader(body), 1<<20, func(i int, line []byte, err error) error {
			rec := importer.Record{Index: i, Err: err}
			if err == nil {
				rec.Event, rec.Err = event.DecodeProducer(line, lim)
			}
			return in.add(rec)
		})
	default:
		err = readJSONEvents(body, lim, max, in.add)
	}
	if ferr := in.finish(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	resp := in.resp
	rq.details = map[string]any{"accepted": resp.Accepted, "duplicate": resp.Duplicate, "rejected": resp.Rejected}
	if format != "" {
		rq.details["format"] = format
	}
	status := http.StatusOK
	if resp.Rejected > 0 && resp.Accepted+resp.Duplicate == 0 {
		status = http.StatusBadRequest
		rq.reason = fmt.Sprintf("all %d events rejected", resp.Rejected)
	}
	return writeJSON(rq.w, status, resp)
}

// importRecords reads a file in another system's format. Its records are
// counted before any is stored, so that one over the limit stores nothing.
func (s *Server) importRecords(format string, body []byte, lim *event.Limits, emit func(importer.Record) error) error {
	body, err := s.gunzipImport(body)
	if err != nil {
		return err
	}
	max := s.cfg.MaxEvents
	var recs []importer.Record
	err = importer.Read(format, bytes.NewReader(body), &importer.Options{Limits: lim}, func(rec importer.Record) error {
		if len(recs) == max {
			return tooManyEvents(max)
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if err := emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// countLines counts the non-blank lines of b, up to stop.
func countLines(b []byte, stop int) int {
	n := 0
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) > 0 {
			if n++; n == stop {
				break
			}
		}
	}
	return n
}

// The media types of ingest bodies: JSON, NDJSON under its names, and for
// a file sent to an importer also gzip.
var (
	ingestTypes = []string{"application/json", "application/x-ndjson", "application/ndjson", "application/jsonl"}
	importTypes = append(slices.Clip(ingestTypes), "application/gzip")
	jsonTypes   = []string{"application/json"}
)

func isNDJSON(mt string) bool {
	return mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl"
}

// mediaType returns the request body's media type, application/json when
// the request names none, and refuses with 415 a type not in allowed or a
// parameter other than charset=utf-8.
func mediaType(r *http.Request, allowed []string) (string, error) {
	vs := r.Header.Values("Content-Type")
	if len(vs) > 1 {
		return "", badRequest("Content-Type", "Content-Type may be given once")
	}
	if len(vs) == 0 || strings.TrimSpace(vs[0]) == "" {
		return "application/json", nil
	}
	unsupported := &apiError{status: http.StatusUnsupportedMediaType, title: "Unsupported media type",
		field: "Content-Type", detail: "Content-Type must be " + strings.Join(allowed, ", ") +
			", optionally with charset=utf-8"}
	mt, params, err := mime.ParseMediaType(vs[0])
	if err != nil || !slices.Contains(allowed, mt) {
		return "", unsupported
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return "", unsupported
		}
	}
	return mt, nil
}

// splitOptions let the decoder that splits an array into events pass
// duplicate names and invalid UTF-8 inside an event through to the event's
// own decoding, which rejects them: such an event fails alone instead of
// ending the array.
var splitOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// readJSONEvents reads one event object or an array of at most max events.
// The array is split whole before any event is emitted, so that one too
// long, or followed by anything but white space, is refused as a whole.
func readJSONEvents(body []byte, lim *event.Limits, max int, emit func(importer.Record) error) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return badRequest("body", "the body is empty: send a JSON event, a JSON array of events or NDJSON")
	}
	if trimmed[0] == '{' {
		ev, err := event.DecodeProducer(trimmed, lim)
		return emit(importer.Record{Index: 0, Event: ev, Err: err})
	}
	if trimmed[0] != '[' {
		return badRequest("body", "the body must be a JSON event object, a JSON array of events, or NDJSON "+
			"sent as application/x-ndjson")
	}
	dec := jsontext.NewDecoder(bytes.NewReader(trimmed), splitOptions...)
	if _, err := dec.ReadToken(); err != nil {
		return badRequest("body", "invalid JSON array")
	}
	type span struct{ start, end int64 }
	var spans []span
	var broken error
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			broken = err
			break
		}
		if len(spans) == max {
			return tooManyEvents(max)
		}
		end := dec.InputOffset()
		spans = append(spans, span{end - int64(len(v)), end})
	}
	if broken == nil {
		if _, err := dec.ReadToken(); err != nil {
			return badRequest("body", "invalid JSON array")
		}
		if _, err := dec.ReadToken(); err != io.EOF {
			return badRequest("body", "unexpected data after the JSON array")
		}
	}
	for i, sp := range spans {
		ev, err := event.DecodeProducer(trimmed[sp.start:sp.end], lim)
		if err := emit(importer.Record{Index: i, Event: ev, Err: err}); err != nil {
			return err
		}
	}
	if broken != nil {
		// Nothing after a syntax error can be located.
		return emit(importer.Record{Index: len(spans), Err: &event.FieldError{Field: "event",
			Reason: "invalid JSON; the events after this one were not read: " + jsonReason(broken)}})
	}
	return nil
}

func jsonReason(err error) string {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of JSON"
	}
	return err.Error()
}

// ingestion collects the events of one request into chunks per tenant and
// hands them to the writer, a few chunks at a time.
type ingestion struct {
	s      *Server
	rq     *request
	ctx    context.Context
	sem    chan struct{}
	wg     sync.WaitGroup
	chunks map[*tenant.Tenant]*chunk // being filled
	done   []*chunk                  // handed to the writer
	resp   ingestResponse
}

type chunk struct {
	t      *tenant.Tenant
	events []*event.Event
	slots  []int // result index of each event

	// Set by the goroutine that appends the chunk.
	prepared []*auditlog.Prepared
	results  []auditlog.Result
	err      error
}

func (in *ingestion) add(rec importer.Record) error {
	slot := len(in.resp.Results)
	in.resp.Results = append(in.resp.Results, ingestResult{Index: rec.Index})
	if rec.Err != nil {
		in.reject(slot, rec.Err)
		return nil
	}
	t, err := in.tenantOf(rec.Event)
	if err != nil {
		in.reject(slot, err)
		return nil
	}
	c := in.chunks[t]
	if c == nil {
		c = &chunk{t: t}
		in.chunks[t] = c
	}
	c.events = append(c.events, rec.Event)
	c.slots = append(c.slots, slot)
	if len(c.events) >= ingestChunk {
		delete(in.chunks, t)
		return in.submit(t, c)
	}
	return nil
}

func (in *ingestion) reject(slot int, err error) {
	r := &in.resp.Results[slot]
	r.Status = "rejected"
	var fe *event.FieldError
	if errors.As(err, &fe) {
		r.Error = &fieldProblem{Field: fe.Field, Reason: fe.Reason}
	} else {
		r.Error = &fieldProblem{Field: "event", Reason: err.Error()}
	}
}

// tenantOf is the tenant an event goes to: the request's, unless an
// operator key names another in the event. The operator tenant takes no
// events: it holds attest's own audit trail, which only attest writes.
func (in *ingestion) tenantOf(ev *event.Event) (*tenant.Tenant, error) {
	t := in.rq.tenant
	if ev.Tenant != "" && ev.Tenant != t.Name {
		if !in.rq.operatorKey() {
			return nil, &event.FieldError{Field: "tenant", Reason: "a tenant API key sends events only to its own tenant"}
		}
		var err error
		if t, err = in.s.in.Tenants.ByName(in.ctx, ev.Tenant); err != nil {
			return nil, &event.FieldError{Field: "tenant", Reason: "no such tenant"}
		}
	}
	if t.Name == tenant.Operator {
		if in.rq.operatorKey() {
			return nil, errOperatorIngest
		}
		return nil, errOperatorIngestTenantKey
	}
	return t, nil
}

var (
	errOperatorIngest = &event.FieldError{Field: "tenant", Reason: "the " + tenant.Operator +
		" tenant holds attest's own audit trail and takes no events; name the tenant to send to " +
		"in the event's tenant field or the Attest-Tenant header"}
	errOperatorIngestTenantKey = &event.FieldError{Field: "tenant", Reason: "the " + tenant.Operator +
		" tenant holds attest's own audit trail and takes no events; send events with a key of the tenant they belong to"}
)

func (in *ingestion) submit(t *tenant.Tenant, c *chunk) error {
	ps, err := in.s.in.Log.PrepareAll(in.ctx, t, c.events)
	if err != nil {
		return err
	}
	c.prepared = ps
	in.done = append(in.done, c)
	in.sem <- struct{}{}
	in.wg.Add(1)
	go func() {
		defer func() { <-in.sem; in.wg.Done() }()
		c.results, c.err = in.s.in.Log.Append(in.ctx, t, ps)
	}()
	return nil
}

// finish submits what is left, waits for every commit and fills in and
// counts the results.
func (in *ingestion) finish() error {
	var err error
	for t, c := range in.chunks {
		if err = in.submit(t, c); err != nil {
			break
		}
	}
	in.wg.Wait()
	for _, c := range in.done {
		if c.err != nil {
			if err == nil {
				err = c.err
			}
			continue
		}
		for i, r := range c.results {
			res := &in.resp.Results[c.slots[i]]
			res.ID = c.prepared[i].Event.ID
			if c.t != in.rq.tenant {
				res.Tenant = c.t.Name
			}
			if r.Err != nil {
				field := "event"
				var ce *auditlog.ConflictError
				if errors.As(r.Err, &ce) {
					field = "id"
				}
				res.Status, res.Error = "rejected", &fieldProblem{Field: field, Reason: r.Err.Error()}
				continue
			}
			seq := r.Sequence
			res.Sequence, res.LeafHash = &seq, base64.StdEncoding.EncodeToString(r.LeafHash[:])
			res.Status = "accepted"
			if r.Duplicate {
				res.Status = "duplicate"
			}
		}
	}
	for _, r := range in.resp.Results {
		switch r.Status {
		case "accepted":
			in.resp.Accepted++
		case "duplicate":
			in.resp.Duplicate++
		case "rejected":
			in.resp.Rejected++
		}
	}
	return err
}
