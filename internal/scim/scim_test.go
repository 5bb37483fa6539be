package scim_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/attest/attest/internal/scim"
)

// base is where the tests send requests.
const base = "https://attest.example" + scim.Prefix

// response is what Serve answered.
type response struct {
	code   int
	header http.Header
	raw    string
	body   map[string]any
	err    error // what Serve returned
}

// send sends one request through Serve; a body is sent as
// application/scim+json.
func send(t *testing.T, b scim.Backend, method, path, body string) response {
	t.Helper()
	r := httptest.NewRequest(method, base+path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/scim+json")
	}
	return serve(t, b, r)
}

func serve(t *testing.T, b scim.Backend, r *http.Request) response {
	t.Helper()
	w := httptest.NewRecorder()
	err := scim.Serve(w, r, b)
	res := response{code: w.Code, header: w.Header(), raw: w.Body.String(), err: err}
	if res.raw != "" {
		if err := json.Unmarshal(w.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("%s %s: the answer is not a JSON object: %v\n%s", r.Method, r.URL, err, res.raw)
		}
		if got := w.Header().Get("Content-Type"); got != "application/scim+json" {
			t.Errorf("%s %s: Content-Type = %q, want application/scim+json", r.Method, r.URL, got)
		}
	}
	return res
}

// wantStatus fails the test unless res has the status code.
func wantStatus(t *testing.T, res response, code int) {
	t.Helper()
	if res.code != code {
		t.Fatalf("status = %d, want %d\n%s", res.code, code, res.raw)
	}
}

// wantError fails the test unless res is a SCIM error response with the
// status and scimType ("" for none).
func wantError(t *testing.T, res response, code int, scimType string) {
	t.Helper()
	wantStatus(t, res, code)
	b := res.body
	if got := str(b, "status"); got != strconv.Itoa(code) {
		t.Errorf("status member = %q, want %q", got, strconv.Itoa(code))
	}
	if got := str(b, "scimType"); got != scimType {
		t.Errorf("scimType = %q, want %q (detail %q)", got, scimType, str(b, "detail"))
	}
	if schemas, _ := b["schemas"].([]any); len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Errorf("schemas = %v, want the error schema", b["schemas"])
	}
	if str(b, "detail") == "" {
		t.Error("the error has no detail")
	}
	if res.err != nil {
		t.Errorf("Serve returned %v for a client error", res.err)
	}
}

// str returns the string at a dotted path of a decoded JSON object.
func str(v any, path string) string {
	s, _ := at(v, path).(string)
	return s
}

func at(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func TestRoutes(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/Nothing", http.StatusNotFound, ""},
		{"GET", "/Users/", http.StatusNotFound, ""},
		{"DELETE", "/Users", http.StatusMethodNotAllowed, "GET, POST"},
		{"POST", "/Users/user-1", http.StatusMethodNotAllowed, "GET, PUT, PATCH, DELETE"},
		{"PUT", "/Groups", http.StatusMethodNotAllowed, "GET, POST"},
		{"POST", "/Schemas", http.StatusMethodNotAllowed, "GET"},
		{"GET", "/Users/nobody", http.StatusNotFound, ""},
		{"GET", "/Groups/nothing", http.StatusNotFound, ""},
		{"DELETE", "/Users/nobody", http.StatusNotFound, ""},
		{"DELETE", "/Groups/nothing", http.StatusNotFound, ""},
		{"GET", "/Schemas/urn:example:nothing", http.StatusNotFound, ""},
		{"GET", "/ResourceTypes/Printer", http.StatusNotFound, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res := send(t, newMemory(), tc.method, tc.path, "")
			wantError(t, res, tc.code, "")
			if got := res.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}

// broken is a Backend whose store fails.
type broken struct{ *memory }

var errStore = errors.New("query users: dial tcp db.internal:5432: password=hunter2 rejected")

func (broken) ListUsers(context.Context, scim.Filter, int, int) ([]*scim.User, int, error) {
	return nil, 0, errStore
}

func (broken) CreateUser(context.Context, *scim.User) (*scim.User, error) { return nil, errStore }

func TestInternalErrorsStayInside(t *testing.T) {
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/Users", ""},
		{"POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada"}`},
	} {
		res := send(t, broken{newMemory()}, tc.method, tc.path, tc.body)
		wantStatus(t, res, http.StatusInternalServerError)
		if !errors.Is(res.err, errStore) {
			t.Errorf("%s %s: Serve returned %v, want the store's error", tc.method, tc.path, res.err)
		}
		if strings.Contains(res.raw, "hunter2") || strings.Contains(res.raw, "db.internal") {
			t.Errorf("%s %s: the answer shows the internal error: %s", tc.method, tc.path, res.raw)
		}
		if got := str(res.body, "status"); got != "500" {
			t.Errorf("%s %s: status member = %q, want 500", tc.method, tc.path, got)
		}
	}
}

func TestBodyChecks(t *testing.T) {
	user := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com"}`
	huge := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada","displayName":"` +
		strings.Repeat("a", scim.MaxBody) + `"}`
	for _, tc := range []struct {
		name, contentType, body string
		code                    int
		scimType                string
	}{
		{"scim+json", "application/scim+json", user, http.StatusCreated, ""},
		{"json with charset", "application/json; charset=utf-8", user, http.StatusCreated, ""},
		{"no content type", "", user, http.StatusUnsupportedMediaType, ""},
		{"form", "application/x-www-form-urlencoded", "userName=ada", http.StatusUnsupportedMediaType, ""},
		{"text", "text/plain", user, http.StatusUnsupportedMediaType, ""},
		{"over 1 MiB", "application/scim+json", huge, http.StatusRequestEntityTooLarge, ""},
		{"empty", "application/scim+json", "", http.StatusBadRequest, "invalidSyntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", base+"/Users", strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			res := serve(t, newMemory(), r)
			if tc.code == http.StatusCreated {
				wantStatus(t, res, tc.code)
				return
			}
			wantError(t, res, tc.code, tc.scimType)
		})
	}
}

// TestBodyLimitOverHTTP checks the bound on a real connection, where the
// body arrives in pieces and the server must stop reading.
func TestBodyLimitOverHTTP(t *testing.T) {
	m := newMemory()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scim.Serve(w, r, m)
	}))
	defer srv.Close()
	body := strings.NewReader(`{"userName":"` + strings.Repeat("x", 2*scim.MaxBody) + `"}`)
	req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+scim.Prefix+"/Users", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413", resp.StatusCode)
	}
	if len(m.users) != 0 {
		t.Errorf("%d users stored, want none", len(m.users))
	}
}

func TestDiscovery(t *testing.T) {
	m := newMemory()
	res := send(t, m, "GET", "/ServiceProviderConfig", "")
	wantStatus(t, res, http.StatusOK)
	for path, want := range map[string]any{
		"patch.supported":              true,
		"bulk.supported":               false,
		"filter.supported":             true,
		"filter.maxResults":            float64(scim.MaxCount),
		"changePassword.supported":     false,
		"sort.supported":               false,
		"etag.supported":               false,
		"authenticationSchemes.0.type": "oauthbearertoken",
		"meta.location":                base + "/ServiceProviderConfig",
	} {
		if got := at(res.body, path); got != want {
			t.Errorf("ServiceProviderConfig %s = %v, want %v", path, got, want)
		}
	}

	res = send(t, m, "GET", "/ResourceTypes", "")
	wantStatus(t, res, http.StatusOK)
	if got := at(res.body, "totalResults"); got != float64(2) {
		t.Errorf("ResourceTypes totalResults = %v, want 2", got)
	}
	if got := str(res.body, "Resources.0.endpoint"); got != "/Users" {
		t.Errorf("first resource type endpoint = %q, want /Users", got)
	}
	res = send(t, m, "GET", "/ResourceTypes/Group", "")
	wantStatus(t, res, http.StatusOK)
	if got := str(res.body, "schema"); got != "urn:ietf:params:scim:schemas:core:2.0:Group" {
		t.Errorf("Group resource type schema = %q", got)
	}

	res = send(t, m, "GET", "/Schemas", "")
	wantStatus(t, res, http.StatusOK)
	if got := str(res.body, "Resources.0.attributes.0.name"); got != "userName" {
		t.Errorf("first User attribute = %q, want userName", got)
	}
	res = send(t, m, "GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "")
	wantStatus(t, res, http.StatusOK)
	if got := str(res.body, "name"); got != "User" {
		t.Errorf("User schema name = %q", got)
	}
	if strings.Contains(res.raw, `"password"`) {
		t.Error("the User schema offers a password attribute")
	}
}
