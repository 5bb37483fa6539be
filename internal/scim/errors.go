package scim

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// errorSchema is the schema of a SCIM error response.
const errorSchema = "urn:ietf:params:scim:api:messages:2.0:Error"

// scimTypes of RFC 7644, section 3.12.
const (
	typeInvalidFilter = "invalidFilter"
	typeUniqueness    = "uniqueness"
	typeInvalidSyntax = "invalidSyntax"
	typeInvalidPath   = "invalidPath"
	typeNoTarget      = "noTarget"
	typeInvalidValue  = "invalidValue"
	typeMutability    = "mutability"
)

// apiError is an error whose text is safe to show the client.
type apiError struct {
	status   int
	scimType string // empty for statuses RFC 7644 gives no scimType
	detail   string
}

func (e *apiError) Error() string { return "scim: " + e.detail }

// badRequest is a 400 of the given scimType. Callers quote attribute names
// the client chose with %q and never format a value the client sent.
func badRequest(scimType, format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, scimType: scimType, detail: fmt.Sprintf(format, args...)}
}

// errorBody is a SCIM error response.
type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

var errInternal = &apiError{status: http.StatusInternalServerError,
	detail: "the request failed inside attest; the server log has the details"}

// classify maps an error to what the client may see. kind is "user" or
// "group", for the wording of conflicts.
func classify(err error, kind string) *apiError {
	var ae *apiError
	var bv *BadValue
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &bv):
		detail := bv.Attr + " " + bv.Reason
		return &apiError{status: http.StatusBadRequest, scimType: typeInvalidValue, detail: detail}
	case errors.Is(err, ErrNotFound):
		return &apiError{status: http.StatusNotFound, detail: "no " + kind + " has this id"}
	case errors.Is(err, ErrConflict):
		attr := "userName"
		if kind == "group" {
			attr = "displayName"
		}
		return &apiError{status: http.StatusConflict, scimType: typeUniqueness,
			detail: "another " + kind + " already has this " + attr}
	case errors.Is(err, ErrModified):
		return &apiError{status: http.StatusPreconditionFailed,
			detail: "the " + kind + " kept changing during the update; try again"}
	}
	return errInternal
}

// writeError answers with a SCIM error response.
func writeError(w http.ResponseWriter, ae *apiError) {
	writeJSON(w, ae.status, errorBody{
		Schemas:  []string{errorSchema},
		Status:   strconv.Itoa(ae.status),
		ScimType: ae.scimType,
		Detail:   ae.detail,
	})
}
