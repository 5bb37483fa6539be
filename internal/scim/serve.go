package scim

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/go-json-experiment/json"
)

// Prefix is the path under which SCIM requests arrive; Serve expects it
// left on the path.
const Prefix = "/scim/v2"

// MaxBody is the largest request body accepted, in bytes.
const MaxBody = 1 << 20

// contentType is what every answer is sent as.
const contentType = "application/scim+json"

// Serve answers one SCIM request for the tenant whose users and groups b
// holds. It writes every answer itself, errors included. It returns an
// error only when the request failed inside attest, after answering 500
// with a generic message, so that the caller can log it; such an error
// never reaches the client.
func Serve(w http.ResponseWriter, r *http.Request, b Backend) error {
	c := &call{b: b}
	mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	return c.err
}

// call carries the Backend into the handlers and their failure out.
type call struct {
	b   Backend
	err error
}

type callKey struct{}

var mux = routes()

// routes lists every SCIM route. The patterns without a method answer 405
// for the methods their resource does not take.
func routes() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET "+Prefix+"/Users", handle("user", listUsers))
	m.Handle("POST "+Prefix+"/Users", handle("user", createUser))
	m.Handle("GET "+Prefix+"/Users/{id}", handle("user", getUser))
	m.Handle("PUT "+Prefix+"/Users/{id}", handle("user", replaceUser))
	m.Handle("PATCH "+Prefix+"/Users/{id}", handle("user", patchUser))
	m.Handle("DELETE "+Prefix+"/Users/{id}", handle("user", deleteUser))

	m.Handle("GET "+Prefix+"/Groups", handle("group", listGroups))
	m.Handle("POST "+Prefix+"/Groups", handle("group", createGroup))
	m.Handle("GET "+Prefix+"/Groups/{id}", handle("group", getGroup))
	m.Handle("PUT "+Prefix+"/Groups/{id}", handle("group", replaceGroup))
	m.Handle("PATCH "+Prefix+"/Groups/{id}", handle("group", patchGroup))
	m.Handle("DELETE "+Prefix+"/Groups/{id}", handle("group", deleteGroup))

	m.Handle("GET "+Prefix+"/ServiceProviderConfig", handle("", serviceProviderConfig))
	m.Handle("GET "+Prefix+"/ResourceTypes", handle("", listResourceTypes))
	m.Handle("GET "+Prefix+"/ResourceTypes/{name}", handle("", getResourceType))
	m.Handle("GET "+Prefix+"/Schemas", handle("", listSchemas))
	m.Handle("GET "+Prefix+"/Schemas/{id}", handle("", getSchema))

	for p, allow := range map[string]string{
		"/Users": "GET, POST", "/Users/{id}": "GET, PUT, PATCH, DELETE",
		"/Groups": "GET, POST", "/Groups/{id}": "GET, PUT, PATCH, DELETE",
		"/ServiceProviderConfig": "GET", "/ResourceTypes": "GET", "/ResourceTypes/{name}": "GET",
		"/Schemas": "GET", "/Schemas/{id}": "GET",
	} {
		m.Handle(Prefix+p, handle("", methodNotAllowed(allow)))
	}
	m.Handle("/", handle("", notFound))
	return m
}

// request is one request on its way through a handler.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	b    Backend
	kind string // "user", "group" or "" for the other routes
}

// handle adapts a handler that returns an error: the error is answered as
// a SCIM error, and one the client may not see is kept for Serve.
func handle(kind string, f func(*request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.Context().Value(callKey{}).(*call)
		rq := &request{w: w, r: r, b: c.b, kind: kind}
		err := f(rq)
		if err == nil {
			return
		}
		ae := classify(err, kind)
		if ae == errInternal {
			c.err = err
		}
		writeError(w, ae)
	})
}

func methodNotAllowed(allow string) func(*request) error {
	return func(rq *request) error {
		rq.w.Header().Set("Allow", allow)
		return &apiError{status: http.StatusMethodNotAllowed, detail: "this endpoint takes " + allow}
	}
}

func notFound(*request) error {
	return &apiError{status: http.StatusNotFound, detail: "no SCIM endpoint at this path"}
}

// body reads the request body, which must be JSON of at most MaxBody bytes.
func (rq *request) body() ([]byte, error) {
	mt, _, err := mime.ParseMediaType(rq.r.Header.Get("Content-Type"))
	if err != nil || (mt != contentType && mt != "application/json") {
		return nil, &apiError{status: http.StatusUnsupportedMediaType,
			detail: "the body must be sent as application/scim+json or application/json"}
	}
	b, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, &apiError{status: http.StatusRequestEntityTooLarge,
			detail: "the request body is larger than 1 MiB"}
	case err != nil:
		return nil, badRequest(typeInvalidSyntax, "the request body could not be read")
	}
	return b, nil
}

// location is the absolute URL of a resource under Prefix, such as
// location("Users", id).
func (rq *request) location(parts ...string) string {
	scheme := "https"
	if rq.r.TLS == nil {
		scheme = "http"
	}
	u := scheme + "://" + rq.r.Host + Prefix
	for _, p := range parts {
		u += "/" + url.PathEscape(p)
	}
	return u
}

// writeJSON answers with v as application/scim+json. A failed write means
// the client has gone; the caller's ResponseWriter knows it, and nothing
// here can do better.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.MarshalWrite(w, v)
}
