package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

// apiError is an error whose text is safe to show the client.
type apiError struct {
	status int
	title  string
	detail string
	field  string
}

func (e *apiError) Error() string { return e.title + ": " + e.detail }

func badRequest(field, detail string) error {
	return &apiError{status: http.StatusBadRequest, title: "Bad request", detail: detail, field: field}
}

func notFound(detail string) error {
	return &apiError{status: http.StatusNotFound, title: "Not found", detail: detail}
}

func forbidden(detail string) error {
	return &apiError{status: http.StatusForbidden, title: "Forbidden", detail: detail}
}

// problem is an RFC 9457 problem details document.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id"`
}

// classify maps an error to what the client may see. Errors attest does not
// classify become a 500 with a generic message; the log keeps the detail
// under the request id.
func classify(err error) *apiError {
	var ae *apiError
	var fe *event.FieldError
	var pe *auditlog.PolicyError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		return &apiError{status: http.StatusBadRequest, title: "Bad request", detail: fe.Error(), field: fe.Field}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{status: http.StatusNotFound, title: "Not found", detail: "no such resource"}
	case errors.Is(err, auditlog.ErrBadCursor):
		return &apiError{status: http.StatusBadRequest, title: "Bad request", detail: err.Error(), field: "cursor"}
	case errors.Is(err, auditlog.ErrBadSize):
		return &apiError{status: http.StatusBadRequest, title: "Bad request", detail: "tree size is beyond the log", field: "tree_size"}
	case errors.Is(err, auditlog.ErrNoCheckpoint):
		return &apiError{status: http.StatusNotFound, title: "Not found", detail: "no checkpoint has been signed yet"}
	case errors.Is(err, access.ErrAlreadyRevoked):
		return errAlreadyRevoked
	case errors.Is(err, tenant.ErrExists):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "a tenant with that name exists", field: "name"}
	case errors.Is(err, auditlog.ErrLegalHold):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: "the tenant is under legal hold, which " +
			"forbids deleting its audit data; release the hold first"}
	case errors.Is(err, instance.ErrHoldSet), errors.Is(err, instance.ErrNoHold):
		return &apiError{status: http.StatusConflict, title: "Conflict", detail: err.Error(), field: "hold"}
	case errors.Is(err, auditlog.ErrExpired):
		return &apiError{status: http.StatusGone, title: "Gone", detail: "the retention period of these entries has " +
			"ended and their payloads were deleted; their leaf hashes remain, so proofs still verify"}
	case errors.As(err, &pe):
		return &apiError{status: http.StatusBadRequest, title: "Bad request", detail: pe.Error(), field: pe.Field}
	case errors.Is(err, auditlog.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable", detail: "attest is shutting down"}
	}
	return &apiError{status: http.StatusInternalServerError, title: "Internal server error",
		detail: "the request failed; the server log has the details under this request id"}
}

func writeProblem(w http.ResponseWriter, reqID string, ae *apiError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(ae.status)
	json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: ae.title, Status: ae.status, Detail: redact(ae.detail),
		Field: redact(ae.field), RequestID: reqID})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	return enc.Encode(v)
}
