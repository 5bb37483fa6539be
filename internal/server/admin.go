package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// maxJSONBody bounds the body of the small JSON requests.
const maxJSONBody = 64 << 10

// decodeJSON reads a small JSON request body into v, a pointer to a struct,
// strictly: the body must be application/json (or name no type), members
// are matched by their exact names, and unknown or duplicate members,
// invalid UTF-8, trailing data and bodies over 64 KiB are refused.
func decodeJSON(rq *request, v any) error {
	if _, err := mediaType(rq.r, jsonTypes); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(rq.r.Body, maxJSONBody+1))
	if err != nil {
		return bodyReadError(err)
	}
	if len(b) > maxJSONBody {
		return bodyTooLarge(maxJSONBody, "")
	}
	// json/v2 reads null into a struct as nothing at all.
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return badRequest("body", "a JSON object is required")
	}
	err = json.Unmarshal(b, v, json.RejectUnknownMembers(true))
	if err == nil {
		return nil
	}
	var se *json.SemanticError
	var sx *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		field := pointerField(se.JSONPointer)
		switch {
		case errors.Is(err, json.ErrUnknownName):
			return badRequest(field, "unknown field "+field)
		case field == "":
			return badRequest("body", "a JSON object is required")
		case se.GoType != nil:
			kind := jsonKind(se.GoType)
			article := "a"
			if kind == "array" || kind == "object" {
				article = "an"
			}
			if kind == "number" && se.JSONKind == '0' {
				return badRequest(field, field+" must be a whole number in range")
			}
			return badRequest(field, fmt.Sprintf("%s must be %s %s", field, article, kind))
		}
		return badRequest(field, "invalid value for "+field)
	case errors.As(err, &sx):
		switch {
		case errors.Is(err, jsontext.ErrDuplicateName):
			field := pointerField(sx.JSONPointer)
			return badRequest(field, "duplicate field "+field)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("body", "the JSON object is incomplete")
		}
		return badRequest("body", "the body is not valid JSON: "+sx.Err.Error())
	}
	return badRequest("body", "the body is not valid JSON")
}

// pointerField turns a JSON pointer into a dotted field name.
func pointerField(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
}

// jsonKind names the JSON kind a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}

type tenantView struct {
	Name      string `json:"name"`
	System    bool   `json:"system,omitempty"`
	CreatedAt string `json:"created_at"`
}

func (s *Server) createTenant(rq *request) error {
	var body struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	if access.UnsafeText(body.Name) {
		return badRequest("name", "name must not hold control or bidirectional formatting characters")
	}
	if err := tenant.ValidateName(body.Name); err != nil {
		return badRequest("name", err.Error())
	}
	rq.target = event.Target{Type: "tenant", ID: body.Name, Name: body.Name}
	err := s.in.CreateTenant(rq.r.Context(), body.Name, false, rq.actor(), rq.changeDecorator(http.StatusCreated))
	if err != nil {
		return err
	}
	rq.audited = true
	t, err := s.in.Tenants.ByName(rq.r.Context(), body.Name)
	if err != nil {
		return err
	}
	return writeJSON(rq.w, http.StatusCreated, tenantView{Name: t.Name, CreatedAt: t.CreatedAt.Format(time.RFC3339)})
}

func (s *Server) listTenants(rq *request) error {
	ts, err := s.in.Tenants.List(rq.r.Context())
	if err != nil {
		return err
	}
	out := []tenantView{}
	for _, t := range ts {
		out = append(out, tenantView{Name: t.Name, System: t.System, CreatedAt: t.CreatedAt.Format(time.RFC3339)})
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"tenants": out})
}

type keyView struct {
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Role      string `json:"role"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at,omitempty"`
	RevokedAt string `json:"revoked_at,omitempty"`
	// Key is the secret, present only in the answer that creates it.
	Key string `json:"key,omitempty"`
}

func (s *Server) keyViewOf(rq *request, k *access.Key) keyView {
	v := keyView{ID: k.ID, Role: string(k.Role), Name: k.Name, CreatedAt: k.CreatedAt.Format(time.RFC3339)}
	if t, err := s.in.Tenants.ByID(rq.r.Context(), k.TenantID); err == nil {
		v.Tenant = t.Name
	}
	if !k.ExpiresAt.IsZero() {
		v.ExpiresAt = k.ExpiresAt.Format(time.RFC3339)
	}
	if !k.RevokedAt.IsZero() {
		v.RevokedAt = k.RevokedAt.Format(time.RFC3339)
	}
	return v
}

// createKey creates an API key in the request's tenant. Nobody creates a key
// that may do more than their own; operator keys belong to the operator
// tenant, and ingest keys to every other.
func (s *Server) createKey(rq *request) error {
	var body struct {
		Role    string `json:"role"`
		Name    string `json:"name"`
		Expires string `json:"expires"`
	}
	if err := decodeJSON(rq, &body); err != nil {
		return err
	}
	role, err := access.ParseRole(body.Role)
	if err != nil {
		return badRequest("role", err.Error())
	}
	if err := rq.canHandOutKey(role); err != nil {
		return err
	}
	if err := role.CheckTenant(rq.tenant.Name == tenant.Operator); err != nil {
		return badRequest("role", err.Error())
	}
	if err := access.ValidateKeyName(body.Name); err != nil {
		return badRequest("name", err.Error())
	}
	var expires time.Time
	if body.Expires != "" {
		d, err := time.ParseDuration(body.Expires)
		if err != nil || d <= 0 {
			return badRequest("expires", "expires must be a positive duration such as 720h")
		}
		expires = s.in.Now().Add(d).UTC().Truncate(time.Microsecond)
	}
	// A person's privileges are lent for an elevation, so a key a person
	// creates lives at most personKeyLife; a key made by a key never
	// outlives it, and belongs to whoever the parent belongs to.
	var owner string
	switch {
	case rq.pr != nil:
		owner = rq.pr.User.ID
		limit := s.in.Now().Add(personKeyLife).UTC().Truncate(time.Microsecond)
		if expires.IsZero() {
			expires = limit
		}
		if expires.After(limit) {
			return badRequest("expires", "a key a person creates lives at most 2160h (90 days)")
		}
	case rq.key != nil:
		// A person's key's children stay the person's; any other key's
		// belong to it, so that revoking it revokes them.
		owner = rq.key.UserID
		if owner == "" || strings.HasPrefix(owner, access.ChildOwner("")) {
			owner = access.ChildOwner(rq.key.ID)
		}
		if p := rq.key.ExpiresAt; !p.IsZero() && (expires.IsZero() || expires.After(p)) {
			expires = p
		}
	}
	tok, key, err := s.in.CreateOwnedKey(rq.r.Context(), rq.tenant, role, body.Name, expires, owner, rq.actor(),
		rq.changeDecorator(http.StatusCreated))
	if err != nil {
		return err
	}
	rq.audited = true
	rq.target = event.Target{Type: "api_key", ID: key.ID, Name: key.Name}
	v := s.keyViewOf(rq, key)
	v.Key = tok.Reveal()
	return writeJSON(rq.w, http.StatusCreated, v)
}

// keyScope is the tenant whose keys the request may see and revoke, or 0
// for every tenant: only an operator key in the operator tenant sees them
// all. An admin key of the operator tenant sees only that tenant's keys.
func keyScope(rq *request) int64 {
	if rq.key != nil && rq.key.Role.CrossTenant() && rq.tenant.Name == tenant.Operator {
		return 0
	}
	return rq.tenant.ID
}

func (s *Server) listKeys(rq *request) error {
	ks, err := s.in.Keys.List(rq.r.Context(), keyScope(rq))
	if err != nil {
		return err
	}
	out := []keyView{}
	for _, k := range ks {
		out = append(out, s.keyViewOf(rq, k))
	}
	// What the caller may create here now, so that a page offers no role
	// the server would refuse.
	creatable := []access.Role{}
	for _, r := range access.Roles {
		if rq.holds(access.PermKeysManage) && rq.canHandOutKey(r) == nil && r.CheckTenant(rq.tenant.Name == tenant.Operator) == nil {
			creatable = append(creatable, r)
		}
	}
	return writeJSON(rq.w, http.StatusOK, map[string]any{"api_keys": out, "creatable_roles": creatable})
}

// revokeKey revokes a key in the request's scope. Nobody revokes a key that
// may do more than their own, and a revoked key stays revoked as of the
// first revocation.
func (s *Server) revokeKey(rq *request) error {
	id := rq.r.PathValue("id")
	rq.target = event.Target{Type: "api_key", ID: id}
	ctx := rq.r.Context()
	k, err := s.in.Keys.Get(ctx, s.in.DB.Read, keyScope(rq), id)
	if isNotFound(err) {
		return notFound("no such API key")
	}
	if err != nil {
		return err
	}
	rq.target.Name = k.Name
	if err := rq.canHandOutKey(k.Role); err != nil {
		return err
	}
	if !k.RevokedAt.IsZero() {
		return errAlreadyRevoked
	}
	// The key is known to lie in the request's scope, so revoking it as
	// the request's tenant cannot reach another tenant's key.
	k, err = s.in.RevokeKey(ctx, rq.tenant, id, rq.actor(), rq.changeDecorator(http.StatusOK))
	if isNotFound(err) {
		return notFound("no such API key")
	}
	if err != nil {
		return err
	}
	rq.audited = true
	return writeJSON(rq.w, http.StatusOK, s.keyViewOf(rq, k))
}

// personKeyLife bounds the life of an API key a person creates.
const personKeyLife = 90 * 24 * time.Hour

// canHandOutKey refuses a key role that may do more than the caller, for
// creating or revoking a key of it.
func (rq *request) canHandOutKey(role access.Role) error {
	if rq.key != nil {
		if !rq.key.Role.CanGrant(role) {
			return forbidden(fmt.Sprintf("a key with role %s may not create or revoke a key with role %s", rq.key.Role, role))
		}
		return nil
	}
	if err := rq.canGrantAll(access.KeyRolePermissions(role)); err != nil {
		return forbidden(err.Error())
	}
	return nil
}

var errAlreadyRevoked = &apiError{status: http.StatusConflict, title: "Conflict",
	detail: "the API key is revoked already; its revocation time is unchanged"}
