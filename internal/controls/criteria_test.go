package controls

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wantIDs spells out the criteria ids of the 2017 Trust Services Criteria,
// series by series, in the order Criteria must list them.
func wantIDs() []string {
	series := []struct {
		prefix string
		n      int
	}{
		{"CC1.", 5}, {"CC2.", 3}, {"CC3.", 4}, {"CC4.", 2}, {"CC5.", 3},
		{"CC6.", 8}, {"CC7.", 5}, {"CC8.", 1}, {"CC9.", 2},
		{"A1.", 3}, {"C1.", 2}, {"PI1.", 5},
		{"P1.", 1}, {"P2.", 1}, {"P3.", 2}, {"P4.", 3},
		{"P5.", 2}, {"P6.", 7}, {"P7.", 1}, {"P8.", 1},
	}
	var ids []string
	for _, s := range series {
		for i := 1; i <= s.n; i++ {
			ids = append(ids, fmt.Sprintf("%s%d", s.prefix, i))
		}
	}
	return ids
}

func TestCriteriaCount(t *testing.T) {
	if got, want := len(Criteria), 61; got != want {
		t.Errorf("len(Criteria) = %d, want %d", got, want)
	}
}

func TestCriteriaIDsInOrder(t *testing.T) {
	var got []string
	seen := map[string]bool{}
	for _, c := range Criteria {
		if seen[c.ID] {
			t.Errorf("id %s appears more than once", c.ID)
		}
		seen[c.ID] = true
		got = append(got, c.ID)
	}
	if diff := cmp.Diff(wantIDs(), got); diff != "" {
		t.Errorf("Criteria ids mismatch (-want +got):\n%s", diff)
	}
}

func TestCriteriaPerCategory(t *testing.T) {
	want := map[Category]int{
		Security:            33,
		Availability:        3,
		Confidentiality:     2,
		ProcessingIntegrity: 5,
		Privacy:             18,
	}
	got := map[Category]int{}
	for _, c := range Criteria {
		got[c.Category]++
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("criteria per category mismatch (-want +got):\n%s", diff)
	}
}

func TestCategories(t *testing.T) {
	want := []Category{Security, Availability, Confidentiality, ProcessingIntegrity, Privacy}
	if diff := cmp.Diff(want, Categories); diff != "" {
		t.Errorf("Categories mismatch (-want +got):\n%s", diff)
	}
}

// TestCriteriaFieldsAgree checks that each criterion's category and series
// match its id, so that no criterion is filed under the wrong heading.
func TestCriteriaFieldsAgree(t *testing.T) {
	byLetters := map[string]Category{
		"CC": Security,
		"A":  Availability,
		"C":  Confidentiality,
		"PI": ProcessingIntegrity,
		"P":  Privacy,
	}
	for _, c := range Criteria {
		series, _, _ := strings.Cut(c.ID, ".")
		letters := strings.TrimRight(series, "0123456789")
		if want := byLetters[letters]; c.Category != want {
			t.Errorf("%s: Category = %q, want %q", c.ID, c.Category, want)
		}
		title, ok := strings.CutPrefix(c.Series, series+" ")
		if !ok || title == "" {
			t.Errorf("%s: Series = %q, want a title after %q", c.ID, c.Series, series+" ")
		}
	}
}

func TestCriteriaSummaries(t *testing.T) {
	for _, c := range Criteria {
		s := c.Summary
		switch {
		case s == "":
			t.Errorf("%s: empty summary", c.ID)
		case len(s) >= 300:
			t.Errorf("%s: summary is %d bytes, want under 300", c.ID, len(s))
		case !strings.HasSuffix(s, "."):
			t.Errorf("%s: summary %q does not end with a period", c.ID, s)
		}
	}
}

func TestCriterionByID(t *testing.T) {
	for _, want := range Criteria {
		got, ok := CriterionByID(want.ID)
		if !ok || got != want {
			t.Errorf("CriterionByID(%q) = %+v, %v; want %+v, true", want.ID, got, ok, want)
		}
	}
}

func TestCriterionByIDUnknown(t *testing.T) {
	unknown := []string{
		"", "CC0.1", "CC6.9", "CC10.1", "cc6.1", "CC6.1 ", "CC6",
		"6.1", "A1.4", "C1.3", "PI1.6", "P1.2", "P9.1",
	}
	for _, id := range unknown {
		if got, ok := CriterionByID(id); ok || got != (Criterion{}) {
			t.Errorf("CriterionByID(%q) = %+v, %v; want zero, false", id, got, ok)
		}
	}
}
