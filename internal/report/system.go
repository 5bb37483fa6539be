package report

import (
	"context"
	"fmt"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// System is the system description as far as attest can fill it from its
// own configuration. The narrative sections are left for management and
// marked so.
type System struct {
	Instance string `json:"instance"`
	Version  string `json:"version"`
	// Tenants is how many tenants the instance serves; 0, and left out,
	// in a customer tenant's report.
	Tenants         int                 `json:"tenants,omitempty"`
	Categories      []controls.Category `json:"categories"`
	TLS             string              `json:"tls"`
	SessionPolicy   SessionPolicy       `json:"session_policy"`
	Retention       Retention           `json:"retention"`
	LogOrigin       string              `json:"log_origin"`
	SigningKeys     []string            `json:"signing_keys"`
	CatalogControls int                 `json:"catalog_controls"`
	ScopeControls   int                 `json:"scope_controls"`
	Sections        []Section           `json:"sections"`
}

// SessionPolicy is the tenant's session policy.
type SessionPolicy struct {
	IdleMinutes   int    `json:"idle_minutes"`
	AbsoluteHours int    `json:"absolute_hours"`
	MaxSessions   int    `json:"max_sessions"`
	OnLimit       string `json:"on_limit"`
	InactiveDays  int    `json:"inactive_days"`
}

// Retention is the tenant's retention policy for its audit trail.
type Retention struct {
	RetentionDays int  `json:"retention_days"`
	HotDays       int  `json:"hot_days"`
	LegalHold     bool `json:"legal_hold"`
	Default       bool `json:"default"`
}

// Section is one part of the system description.
type Section struct {
	Section string `json:"section"`
	// Status is generated when attest wrote Text from its configuration,
	// management_must_write when it is left for management.
	Status string `json:"status"`
	Text   string `json:"text"`
}

// Section statuses.
const (
	Generated           = "generated"
	ManagementMustWrite = "management_must_write"
)

// TLSPolicy states the transport policy the API server enforces.
const TLSPolicy = "TLS 1.3 only: the API server refuses older protocol versions"

// managementSections are the parts of a SOC 2 system description that
// only management can write.
var managementSections = []string{
	"Company overview and services provided",
	"Principal service commitments and system requirements",
	"Components of the system: infrastructure, software, people, procedures and data",
	"Subservice organizations and complementary subservice organization controls",
	"Complementary user entity controls",
	"Significant changes to the system during the period",
	"System incidents during the period",
}

func describe(ctx context.Context, in *instance.Instance, t *tenant.Tenant, sc *controls.Scorecard,
	version string) (System, error) {
	s := System{Instance: in.Name, Version: version, Categories: sc.Categories, TLS: TLSPolicy,
		LogOrigin: in.Log.Origin(t.Name), CatalogControls: len(controls.For(t)), SigningKeys: []string{}}
	// How many tenants the instance serves is the operator's to know.
	if t.Name == tenant.Operator {
		ts, err := in.Tenants.List(ctx)
		if err != nil {
			return s, err
		}
		s.Tenants = len(ts)
	}
	p, err := in.Identity.Sessions.Policy(ctx, in.DB.Read, t.ID)
	if err != nil {
		return s, err
	}
	s.SessionPolicy = SessionPolicy{IdleMinutes: int(p.Idle / time.Minute), AbsoluteHours: int(p.Absolute / time.Hour),
		MaxSessions: p.MaxSessions, OnLimit: p.OnLimit, InactiveDays: p.InactiveDays}
	rp, err := in.Log.Policy(ctx, in.DB.Read, t.ID)
	if err != nil {
		return s, err
	}
	s.Retention = Retention{RetentionDays: rp.RetentionDays, HotDays: rp.HotDays, LegalHold: rp.LegalHold, Default: rp.Default}
	keys, err := in.Log.KeyHistory(ctx, in.DB.Read)
	if err != nil {
		return s, err
	}
	for _, k := range keys {
		s.SigningKeys = append(s.SigningKeys, k.ID)
	}
	for _, c := range controls.For(t) {
		if c.InScope(sc.Categories) {
			s.ScopeControls++
		}
	}
	s.Sections = []Section{{Section: "System boundaries as configured in attest", Status: Generated, Text: s.summary()}}
	for _, name := range managementSections {
		s.Sections = append(s.Sections, Section{Section: name, Status: ManagementMustWrite, Text: ""})
	}
	return s, nil
}

// summary states the configuration in a paragraph.
func (s *System) summary() string {
	serves := "."
	if s.Tenants > 0 {
		serves = fmt.Sprintf(" serves %d tenants.", s.Tenants)
	}
	return fmt.Sprintf("attest instance %s (version %s)%s The audit trail of this tenant is the log %s, "+
		"checkpoints signed with key %v. Transport: %s. Sessions end after %d idle minutes or %d hours, at most %d a "+
		"person; accounts unused for %d days are disabled. Audit records are kept %d days (%d in hot storage). %d of "+
		"the %d controls of the catalog support the categories in scope.", s.Instance, s.Version, serves,
		s.LogOrigin, s.SigningKeys, s.TLS, s.SessionPolicy.IdleMinutes, s.SessionPolicy.AbsoluteHours,
		s.SessionPolicy.MaxSessions, s.SessionPolicy.InactiveDays, s.Retention.RetentionDays, s.Retention.HotDays,
		s.ScopeControls, s.CatalogControls)
}
