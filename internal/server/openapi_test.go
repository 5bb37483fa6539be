package server

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/attest/attest/internal/access"
)

// TestOpenAPICoversEveryRoute fails when a route of the route table is
// missing from the OpenAPI document, or the document lists one that does
// not exist.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("the OpenAPI document is not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi = %q, want 3.1", doc.OpenAPI)
	}
	s := &Server{}
	wildcard := regexp.MustCompile(`\{(\w+)\.\.\.\}`)
	inTable := map[string]bool{}
	for _, rt := range s.routeTable() {
		p := wildcard.ReplaceAllString(rt.pattern, "{$1}")
		key := strings.ToLower(rt.method) + " " + p
		inTable[key] = true
		if _, ok := doc.Paths[p][strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s %s is not in the OpenAPI document", rt.method, rt.pattern)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !inTable[m+" "+p] {
				t.Errorf("the OpenAPI document lists %s %s, which is no route", m, p)
			}
		}
	}
}

// TestEveryRouteHasAPermission fails when a route names no permission, or
// one no role holds.
func TestEveryRouteHasAPermission(t *testing.T) {
	s := &Server{}
	for _, rt := range s.routeTable() {
		if rt.name == "" || rt.category == "" {
			t.Errorf("route %s %s has no audit action or category", rt.method, rt.pattern)
		}
		if rt.perm == access.PermNone {
			if rt.pattern != "/api/v1/openapi.json" && !rt.login {
				t.Errorf("route %s %s needs no credential", rt.method, rt.pattern)
			}
			continue
		}
		held := false
		for _, r := range access.Roles {
			held = held || r.Allows(rt.perm)
		}
		for _, r := range access.BuiltinRoles {
			ps, _ := access.BuiltinPermissions(r)
			held = held || slices.Contains(ps, rt.perm)
		}
		if !held {
			t.Errorf("route %s %s needs %q, which no role holds", rt.method, rt.pattern, rt.perm)
		}
	}
}
