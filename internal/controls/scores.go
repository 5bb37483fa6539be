package controls

import "time"

// Scorecard is how well a tenant's controls worked over a period, and how
// ready it is now. See the README for the formulas.
type Scorecard struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Categories in scope.
	Categories []Category `json:"categories"`
	// Readiness is the readiness score at To, 0 to 100.
	Readiness float64 `json:"readiness"`
	// Formula states how Readiness is computed.
	Formula string `json:"formula"`
	// Inherited names, for a customer tenant, the criteria in scope that
	// only the operator's instance-wide controls support: the operator
	// meets them, and they are left out of the tenant's scores.
	Inherited  []string          `json:"inherited,omitempty"`
	Controls   []*ControlScore   `json:"controls"`
	Criteria   []*CriterionScore `json:"criteria"`
	ByCategory []*CategoryScore  `json:"by_category"`
	Trend      []TrendPoint      `json:"trend"`
	// Changes are the status changes of the period's results, newest
	// first.
	Changes []Change `json:"changes"`
}

// ControlScore is one control's record over the period.
type ControlScore struct {
	Control string `json:"control"`
	// Status is the control's standing at To: its latest result, or no
	// evidence when it has none or the latest is older than twice its
	// frequency.
	Status Status  `json:"status"`
	Latest *Stored `json:"latest,omitempty"`
	// Runs, Passed, Failed and NoEvidence count the results of the period.
	Runs       int `json:"runs"`
	Passed     int `json:"passed"`
	Failed     int `json:"failed"`
	NoEvidence int `json:"no_evidence"`
	// Effectiveness is Passed / Runs; nil when there were no runs.
	Effectiveness *float64 `json:"effectiveness"`
	// Excepted is set when an approved exception holds at To.
	Excepted *Exception `json:"excepted,omitempty"`
}

// CriterionScore is one criterion in scope.
type CriterionScore struct {
	Criterion string   `json:"criterion"`
	Controls  []string `json:"controls"`
	// Passing is the share of its controls passing at To.
	Passing float64 `json:"passing"`
	// Effectiveness is the mean of its controls' effectiveness, over those
	// that ran; nil when none ran.
	Effectiveness *float64 `json:"effectiveness"`
	Status        Status   `json:"status"`
}

// CategoryScore is one category in scope.
type CategoryScore struct {
	Category      Category `json:"category"`
	Readiness     float64  `json:"readiness"`
	Effectiveness *float64 `json:"effectiveness"`
}

// TrendPoint is the readiness score at the end of one day.
type TrendPoint struct {
	At        time.Time `json:"at"`
	Readiness float64   `json:"readiness"`
}
