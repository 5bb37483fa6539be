package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
)

func (s *Server) evidenceRoutes() []*route {
	return []*route{
		{method: "GET", pattern: "/api/v1/compliance/evidence", name: "compliance.evidence.list", category: "data_access",
			perm: access.PermComplianceRead, params: []string{"control"}, handle: s.listEvidence},
		{method: "POST", pattern: "/api/v1/compliance/evidence", name: controls.ActionEvidenceSubmit,
			category: "configuration", perm: access.PermComplianceManage, handle: s.submitEvidence, selfAudited: true},
		{method: "GET", pattern: "/api/v1/compliance/evidence/{id}", name: "compliance.evidence.read",
			category: "data_access", perm: access.PermComplianceRead, handle: s.getEvidence},
		{method: "GET", pattern: "/api/v1/compliance/evidence/{id}/content", name: "compliance.evidence.download",
			category: "data_access", perm: access.PermComplianceRead, handle: s.evidenceContent},
		{method: "POST", pattern: "/api/v1/compliance/evidence/{id}/approve", name: controls.ActionEvidenceApprove,
			category: "configuration", perm: access.PermComplianceManage, handle: s.approveEvidence, selfAudited: true},
		{method: "POST", pattern: "/api/v1/compliance/evidence/{id}/revoke", name: controls.ActionEvidenceRevoke,
			category: "configuration", perm: access.PermComplianceManage, handle: s.revokeEvidence, selfAudited: true},
		{method: "GET", pattern: "/api/v1/compliance/exceptions", name: "compliance.exception.list",
			category: "data_access", perm: access.PermComplianceRead, params: []string{"control"}, handle: s.listExceptions},
		{method: "POST", pattern: "/api/v1/compliance/exceptions", name: controls.ActionExceptionRequest,
			category: "configuration", perm: access.PermComplianceManage, handle: s.requestException, selfAudited: true},
		{method: "GET", pattern: "/api/v1/compliance/exceptions/{id}", name: "compliance.exception.read",
			category: "data_access", perm: access.PermComplianceRead, handle: s.getException},
		{method: "POST", pattern: "/api/v1/compliance/exceptions/{id}/approve", name: controls.ActionExceptionApprove,
			category: "configuration", perm: access.PermComplianceManage, handle: s.approveException, selfAudited: true},
		{method: "POST", pattern: "/api/v1/compliance/exceptions/{id}/revoke", name: controls.ActionExceptionRevoke,
			category: "configuration", perm: access.PermComplianceManage, handle: s.revokeException, selfAudited: true},
	}
}

// maxUploadFields bounds what a multipart upload carries beside its file:
// the other fields and the parts' headers.
const maxUploadFields = 64 << 10

// evidenceError maps the errors of evidence and exceptions to answers.
func evidenceError(err error) error {
	var ie *controls.InputError
	switch {
	case errors.As(err, &ie):
		return badRequest(ie.Field, ie.Field+": "+ie.Reason)
	case errors.Is(err, controls.ErrNoEvidence):
		return notFound("no such evidence")
	case errors.Is(err, controls.ErrNoException):
		return notFound("no such exception")
	case errors.Is(err, controls.ErrNotAPerson), errors.Is(err, controls.ErrSelfApproval), errors.Is(err, controls.ErrSponsored):
		return forbidden(strings.TrimPrefix(err.Error(), "controls: "))
	case errors.Is(err, controls.ErrDecided):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: strings.TrimPrefix(err.Error(), "controls: ")}
	}
	return err
}

type evidenceView struct {
	*controls.Evidence
	// Status is counting, pending_approval, expired or revoked.
	Status string `json:"status"`
	Counts bool   `json:"counts"`
}

func (s *Server) viewEvidence(e *controls.Evidence) evidenceView {
	now := s.in.Now()
	v := evidenceView{Evidence: e, Counts: e.CountsAt(now)}
	switch {
	case e.RevokedAt != nil:
		v.Status = "revoked"
	case !now.Before(e.ExpiresAt):
		v.Status = "expired"
	case e.ApprovedAt == nil:
		v.Status = "pending_approval"
	case v.Counts:
		v.Status = "counting"
	default:
		v.Status = "not_yet_effective"
	}
	return v
}

// checkControlParam refuses a ?control= naming no control of the catalog.
func checkControlParam(rq *request) (string, error) {
	id := rq.r.URL.Query().Get("control")
	if _, ok := controls.ByID(id); id != "" && !ok {
		return "", badRequest("control", fmt.Sprintf("no control %q in the catalog", id))
	}
	return id, nil
}

func (s *Server) listEvidence(rq *request) error {
	id, err := checkControlParam(rq)
	if err != nil {
		return err
	}
	es, err := controls.EvidenceList(rq.r.Context(), s.in, rq.tenant, id)
	if err != nil {
		return err
	}
	out := []evidenceView{}
	for _, e := range es {
		if evidenceInBound(rq, e) {
			out = append(out, s.viewEvidence(e))
		}
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"evidence": out})
}

func (s *Server) getEvidence(rq *request) error {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "evidence", ID: id}
	e, err := controls.EvidenceByID(rq.r.Context(), s.in, rq.tenant, id)
	if err == nil && !evidenceInBound(rq, e) {
		err = controls.ErrNoEvidence
	}
	if err != nil {
		return evidenceError(err)
	}
	return writeJSON(rq.w, http.StatusOK, s.viewEvidence(e))
}

// submitEvidence takes a file as multipart/form-data, or a link as JSON.
func (s *Server) submitEvidence(rq *request) error {
	rq.target = event.Target{Type: "evidence"}
	var sub *controls.Submission
	var err error
	if mt, _, _ := mime.ParseMediaType(rq.r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		sub, err = s.readUpload(rq)
	} else {
		sub, err = readLink(rq)
	}
	if err != nil {
		return err
	}
	rq.target.Name = sub.Control
	e, err := controls.SubmitEvidence(rq.r.Context(), s.in, rq.tenant, sub, rq.actor(), rq.changeDecorator(http.StatusCreated))
	if err != nil {
		return evidenceError(err)
	}
	rq.audited = true
	return writeJSON(rq.w, http.StatusCreated, s.viewEvidence(e))
}

// readLink reads a link submission from a JSON body.
func readLink(rq *request) (*controls.Submission, error) {
	var body struct {
		Control     string `json:"control"`
		Title       string `json:"title"`
		URL         string `json:"url"`
		EffectiveAt string `json:"effective_at"`
		ExpiresAt   string `json:"expires_at"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return nil, err
	}
	sub := &controls.Submission{Control: body.Control, Title: body.Title, URL: body.URL}
	return sub, parseTimes(sub, body.EffectiveAt, body.ExpiresAt)
}

// readUpload reads a file submission: a multipart/form-data body of the
// fields control, title, effective_at and expires_at and one part, file,
// of at most controls.MaxEvidenceBytes. The body is bounded by the smaller
// of that plus room for the fields and the server's body limit; parts are
// read as they stream, never spooled to disk.
func (s *Server) readUpload(rq *request) (*controls.Submission, error) {
	limit := min(s.cfg.MaxBodyBytes, controls.MaxEvidenceBytes+maxUploadFields)
	rq.r.Body = http.MaxBytesReader(rq.w, rq.r.Body, limit)
	mr, err := rq.r.MultipartReader()
	if err != nil {
		return nil, badRequest("Content-Type", "Content-Type must be multipart/form-data with a boundary")
	}
	sub := &controls.Submission{}
	fields := map[string]string{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, uploadError(err, "body")
		}
		name := p.FormName()
		if _, dup := fields[name]; dup || (name == "file" && sub.Content != nil) {
			return nil, badRequest(name, name+" may be given once")
		}
		switch name {
		case "file":
			b, err := io.ReadAll(io.LimitReader(p, controls.MaxEvidenceBytes+1))
			if err != nil {
				return nil, uploadError(err, "file")
			}
			if len(b) > controls.MaxEvidenceBytes {
				return nil, fileTooLarge()
			}
			sub.Content, sub.FileName, sub.DeclaredType = b, p.FileName(), p.Header.Get("Content-Type")
		case "control", "title", "effective_at", "expires_at":
			b, err := io.ReadAll(io.LimitReader(p, 4097))
			if err != nil {
				return nil, uploadError(err, name)
			}
			if len(b) > 4096 {
				return nil, badRequest(name, name+" is longer than 4096 bytes")
			}
			fields[name] = string(b)
		case "":
			return nil, badRequest("body", "every part of the form needs a name")
		default:
			return nil, badRequest(name, "unknown field "+name)
		}
	}
	if sub.Content == nil {
		return nil, badRequest("file", "file: required: the evidence file, or send JSON with a url for a link")
	}
	sub.Control, sub.Title = fields["control"], fields["title"]
	return sub, parseTimes(sub, fields["effective_at"], fields["expires_at"])
}

func fileTooLarge() error {
	return &apiError{status: http.StatusRequestEntityTooLarge, title: "Request too large", field: "file",
		detail: fmt.Sprintf("file: is larger than %d bytes (10 MiB): store it elsewhere and submit a link", controls.MaxEvidenceBytes)}
}

// uploadError explains a multipart body that could not be read.
func uploadError(err error, field string) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) && field == "file":
		return fileTooLarge()
	case errors.As(err, &mbe):
		return bodyTooLarge(mbe.Limit, "")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(field, "the multipart body ends in the middle of a part")
	}
	return badRequest(field, "the multipart body is malformed")
}

// parseTimes reads the RFC 3339 times of a submission; an empty one is
// left zero, for the controls package to say it is required.
func parseTimes(sub *controls.Submission, effective, expires string) error {
	var err error
	if sub.EffectiveAt, err = parseRFC3339("effective_at", effective); err != nil {
		return err
	}
	sub.ExpiresAt, err = parseRFC3339("expires_at", expires)
	return err
}

func parseRFC3339(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badRequest(field, field+": must be an RFC 3339 time, such as 2026-01-31T09:00:00Z")
	}
	return t, nil
}

// evidenceContent answers an uploaded file as an attachment, with its
// SHA-256 in Repr-Digest (RFC 9530) and, as hex, in X-Evidence-SHA256.
func (s *Server) evidenceContent(rq *request) error {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "evidence", ID: id}
	e, b, err := controls.EvidenceContent(rq.r.Context(), s.in, rq.tenant, id)
	if e != nil && !evidenceInBound(rq, e) {
		return notFound("no such evidence")
	}
	if errors.Is(err, controls.ErrNoEvidence) && e != nil {
		return notFound("this evidence is a link: it has no stored content")
	}
	if err != nil {
		return evidenceError(err)
	}
	rq.details = map[string]any{"sha256": e.SHA256, "size": e.Size}
	sum := sha256.Sum256(b)
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": e.FileName})
	if disp == "" {
		disp = `attachment; filename="evidence"`
	}
	h := rq.w.Header()
	h.Set("Content-Type", servedType(e.MediaType))
	h.Set("Content-Disposition", disp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
	h.Set("X-Evidence-SHA256", hex.EncodeToString(sum[:]))
	rq.w.WriteHeader(http.StatusOK)
	_, err = rq.w.Write(b)
	return err
}

// servedType is the type a file is served as: what attest detected, but
// never a type a browser would render as a page.
func servedType(mt string) string {
	if strings.HasPrefix(mt, "text/html") || strings.Contains(mt, "xml") || mt == "" {
		return "application/octet-stream"
	}
	return mt
}

func (s *Server) approveEvidence(rq *request) error {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "evidence", ID: id}
	if err := emptyOrJSON(rq); err != nil {
		return err
	}
	e, err := controls.ApproveEvidence(rq.r.Context(), s.in, rq.tenant, id, rq.actor(), rq.changeDecorator(http.StatusOK))
	if err != nil {
		return evidenceError(err)
	}
	rq.audited = true
	return writeJSON(rq.w, http.StatusOK, s.viewEvidence(e))
}

func (s *Server) revokeEvidence(rq *request) error {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "evidence", ID: id}
	reason, err := readReason(rq)
	if err != nil {
		return err
	}
	e, err := controls.RevokeEvidence(rq.r.Context(), s.in, rq.tenant, id, reason, rq.actor(),
		rq.changeDecorator(http.StatusOK))
	if err != nil {
		return evidenceError(err)
	}
	rq.audited = true
	return writeJSON(rq.w, http.StatusOK, s.viewEvidence(e))
}

// emptyOrJSON accepts an empty body or an empty JSON object.
func emptyOrJSON(rq *request) error {
	if rq.r.ContentLength == 0 {
		return nil
	}
	var body struct{}
	return decodeJSON(rq, &body)
}

func readReason(rq *request) (string, error) {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return "", err
	}
	return body.Reason, nil
}

type exceptionView struct {
	*controls.Exception
	// Status is active, pending_approval, scheduled, expired or revoked.
	Status string `json:"status"`
}

func (s *Server) viewException(e *controls.Exception) exceptionView {
	now := s.in.Now()
	v := exceptionView{Exception: e}
	switch {
	case e.RevokedAt != nil:
		v.Status = "revoked"
	case !now.Before(e.ExpiresAt):
		v.Status = "expired"
	case e.ApprovedAt == nil:
		v.Status = "pending_approval"
	case e.ActiveAt(now):
		v.Status = "active"
	default:
		v.Status = "scheduled"
	}
	return v
}

func (s *Server) listExceptions(rq *request) error {
	id, err := checkControlParam(rq)
	if err != nil {
		return err
	}
	es, err := controls.Exceptions(rq.r.Context(), s.in, rq.tenant)
	if err != nil {
		return err
	}
	out := []exceptionView{}
	for _, e := range es {
		if (id == "" || e.Control == id) && exceptionInBound(rq, e) {
			out = append(out, s.viewException(e))
		}
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"exceptions": out})
}

func (s *Server) getException(rq *request) error {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "exception", ID: id}
	e, err := controls.ExceptionByID(rq.r.Context(), s.in, rq.tenant, id)
	if err == nil && !exceptionInBound(rq, e) {
		err = controls.ErrNoException
	}
	if err != nil {
		return evidenceError(err)
	}
	return writeJSON(rq.w, http.StatusOK, s.viewException(e))
}

func (s *Server) requestException(rq *request) error {
	rq.target = event.Target{Type: "exception"}
	var body struct {
		Control      string `json:"control"`
		Reason       string `json:"reason"`
		Compensating string `json:"compensating"`
		StartsAt     string `json:"starts_at"`
		ExpiresAt    string `json:"expires_at"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	req := &controls.ExceptionRequest{Control: body.Control, Reason: body.Reason, Compensating: body.Compensating}
	var err error
	if req.StartsAt, err = parseRFC3339("starts_at", body.StartsAt); err != nil {
		return err
	}
	if req.ExpiresAt, err = parseRFC3339("expires_at", body.ExpiresAt); err != nil {
		return err
	}
	rq.target.Name = body.Control
	e, err := controls.RequestException(rq.r.Context(), s.in, rq.tenant, req, rq.actor(),
		rq.changeDecorator(http.StatusCreated))
	if err != nil {
		return evidenceError(err)
	}
	rq.audited = true
	return writeJSON(rq.w, http.StatusCreated, s.viewException(e))
}

func (s *Server) approveException(rq *request) error {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "exception", ID: id}
	if err := emptyOrJSON(rq); err != nil {
		return err
	}
	e, err := controls.ApproveException(rq.r.Context(), s.in, rq.tenant, id, rq.actor(), rq.changeDecorator(http.StatusOK))
	if err != nil {
		return evidenceError(err)
	}
	rq.audited = true
	return writeJSON(rq.w, http.StatusOK, s.viewException(e))
}

func (s *Server) revokeException(rq *request) error {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "exception", ID: id}
	reason, err := readReason(rq)
	if err != nil {
		return err
	}
	e, err := controls.RevokeException(rq.r.Context(), s.in, rq.tenant, id, reason, rq.actor(),
		rq.changeDecorator(http.StatusOK))
	if err != nil {
		return evidenceError(err)
	}
	rq.audited = true
	return writeJSON(rq.w, http.StatusOK, s.viewException(e))
}
