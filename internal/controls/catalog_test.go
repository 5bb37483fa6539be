package controls

import (
	"regexp"
	"testing"

	"github.com/attest/attest/internal/tenant"
)

// TestCatalogWellFormed checks what every control must carry: a unique id
// of the catalog's form, a name, a description, an owner, a frequency, a
// test, and criteria that exist; a manual control says what its evidence
// must show and for how long it may count.
func TestCatalogWellFormed(t *testing.T) {
	idForm := regexp.MustCompile(`^[A-Z]{2,3}-[0-9]{2}$`)
	seen := map[string]bool{}
	for _, c := range Catalog {
		if !idForm.MatchString(c.ID) {
			t.Errorf("control id %q is not of the form ABC-01", c.ID)
		}
		if seen[c.ID] {
			t.Errorf("control %s is listed twice", c.ID)
		}
		seen[c.ID] = true
		if c.Name == "" || c.Description == "" || c.Owner == "" {
			t.Errorf("control %s lacks a name, description or owner", c.ID)
		}
		if c.Frequency <= 0 {
			t.Errorf("control %s has frequency %v", c.ID, c.Frequency)
		}
		if c.Test == nil {
			t.Errorf("control %s has no test", c.ID)
		}
		if len(c.Criteria) == 0 {
			t.Errorf("control %s supports no criterion", c.ID)
		}
		for _, id := range c.Criteria {
			if _, ok := CriterionByID(id); !ok {
				t.Errorf("control %s names criterion %q, which does not exist", c.ID, id)
			}
		}
		if c.Manual != nil && (c.Manual.Requirement == "" || c.Manual.MaxAge <= 0) {
			t.Errorf("manual control %s lacks its requirement or the longest its evidence may count", c.ID)
		}
		for _, a := range c.Watches {
			if a == "" {
				t.Errorf("control %s watches an empty action", c.ID)
			}
		}
	}
}

// TestCatalogCoversEveryCriterion checks that each of the 61 criteria has
// a control, so that whichever categories are in scope, none is left
// without one, and that the catalog holds at least forty controls.
func TestCatalogCoversEveryCriterion(t *testing.T) {
	if len(Catalog) < 40 {
		t.Errorf("the catalog holds %d controls, want at least 40", len(Catalog))
	}
	covered := map[string]bool{}
	for _, c := range Catalog {
		for _, id := range c.Criteria {
			covered[id] = true
		}
	}
	for _, cr := range Criteria {
		if !covered[cr.ID] {
			t.Errorf("criterion %s has no control", cr.ID)
		}
	}
}

// TestForLeavesInstanceToOperator checks that a customer tenant's catalog
// holds no instance-wide control, and that the operator's holds them all.
func TestForLeavesInstanceToOperator(t *testing.T) {
	op := &tenant.Tenant{ID: 1, Name: tenant.Operator}
	acme := &tenant.Tenant{ID: 2, Name: "acme"}
	if got := len(For(op)); got != len(Catalog) {
		t.Errorf("the operator's catalog holds %d controls, want all %d", got, len(Catalog))
	}
	wide := 0
	for _, c := range Catalog {
		if c.InstanceWide {
			wide++
			if _, ok := ForByID(acme, c.ID); ok {
				t.Errorf("ForByID(acme, %s) found an instance-wide control", c.ID)
			}
		}
	}
	if wide == 0 {
		t.Fatal("no control is instance-wide")
	}
	if got, want := len(For(acme)), len(Catalog)-wide; got != want {
		t.Errorf("acme's catalog holds %d controls, want %d", got, want)
	}
	for _, c := range For(acme) {
		if c.InstanceWide {
			t.Errorf("acme's catalog holds instance-wide %s", c.ID)
		}
	}
}
