package access

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The permissions of people and of the identity API, beside those API
// keys hold.
const (
	PermUsersRead    Permission = "users.read"
	PermUsersManage  Permission = "users.manage"
	PermRolesRead    Permission = "roles.read"
	PermRolesManage  Permission = "roles.manage"
	PermSettings     Permission = "tenant.settings.manage"
	PermSettingsRead Permission = "tenant.settings.read"
	// PermOwnership grants and revokes the owner role: only owners hold it.
	PermOwnership Permission = "tenant.ownership"
	// PermExport hands the audit trail over in bulk.
	PermExport Permission = "audit.export"
	// PermAuthzCheck asks attest whether a user may do something.
	PermAuthzCheck Permission = "authz.check"
	// PermElevationApprove approves another person's elevation request.
	PermElevationApprove Permission = "elevation.approve"
	PermReviewsManage    Permission = "reviews.manage"
	PermReviewsRead      Permission = "reviews.read"
	// PermSCIM provisions and deprovisions users and groups over SCIM.
	PermSCIM Permission = "scim.provision"
	// PermComplianceRead reads criteria, controls and their results.
	PermComplianceRead Permission = "compliance.read"
	// PermComplianceManage runs control tests on demand.
	PermComplianceManage Permission = "compliance.manage"
)

// privileged lists the permissions people never hold standing: each needs
// an approved elevation, in a session with a fresh second factor.
var privileged = []Permission{PermUsersManage, PermRolesManage, PermKeysManage, PermRetentionManage, PermPrivacyErase,
	PermExport, PermSettings, PermTenants, PermOwnership}

// AnyPrivileged reports whether any of ps is privileged.
func AnyPrivileged(ps []Permission) bool {
	return slices.ContainsFunc(ps, Permission.Privileged)
}

// Privileged reports whether people hold p only while elevated.
func (p Permission) Privileged() bool { return slices.Contains(privileged, p) }

// AllPermissions lists every permission of attest's API.
var AllPermissions = []Permission{PermEventsWrite, PermLogRead, PermKeysManage, PermKeysRead, PermTenants, PermTenantsRead,
	PermPrivacyErase, PermRetentionManage, PermMetricsRead, PermUsersRead, PermUsersManage, PermRolesRead, PermRolesManage,
	PermSettings, PermSettingsRead, PermOwnership, PermExport, PermAuthzCheck, PermElevationApprove, PermReviewsManage,
	PermReviewsRead, PermSCIM, PermComplianceRead, PermComplianceManage}

// The built-in roles of people.
const (
	RoleOwner      = "owner"
	RoleTenantAdm  = "admin"
	RoleCompliance = "compliance_officer"
	RoleSecurity   = "security_analyst"
	RoleAuditor    = "auditor"
	RoleMember     = "member"
)

// BuiltinRoles lists the built-in roles of people, most powerful first.
var BuiltinRoles = []string{RoleOwner, RoleTenantAdm, RoleCompliance, RoleSecurity, RoleAuditor, RoleMember}

var builtinPerms = map[string][]Permission{
	RoleOwner:     AllPermissionsExcept(PermEventsWrite, PermTenants),
	RoleTenantAdm: AllPermissionsExcept(PermEventsWrite, PermTenants, PermOwnership, PermSCIM),
	RoleCompliance: {PermLogRead, PermExport, PermUsersRead, PermRolesRead, PermKeysRead, PermSettingsRead,
		PermReviewsManage, PermReviewsRead, PermAuthzCheck, PermComplianceRead, PermComplianceManage},
	RoleSecurity: {PermLogRead, PermUsersRead, PermRolesRead, PermKeysRead, PermSettingsRead, PermAuthzCheck,
		PermMetricsRead, PermReviewsRead, PermComplianceRead},
	RoleAuditor: {PermLogRead, PermUsersRead, PermRolesRead, PermKeysRead, PermSettingsRead, PermReviewsRead,
		PermComplianceRead},
	RoleMember: {},
}

// AllPermissionsExcept lists every permission but those named.
func AllPermissionsExcept(ps ...Permission) []Permission {
	var out []Permission
	for _, p := range AllPermissions {
		if !slices.Contains(ps, p) {
			out = append(out, p)
		}
	}
	return out
}

// operatorOnly lists permissions that only people of the operator tenant
// hold, whatever their role: they act across tenants or describe them all.
var operatorOnly = []Permission{PermTenants, PermTenantsRead, PermMetricsRead}

// CustomRole is a tenant's own role: a named set of permissions, attest's
// and the platform's own.
type CustomRole struct {
	Name        string
	Description string
	Permissions []Permission
	CreatedAt   time.Time
}

var (
	roleName       = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,62}$`)
	platformAction = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$`)
)

// ValidateCustomRole checks a custom role's name and permissions: a name
// that is no built-in role's, and permissions that are attest's or
// platform actions ("recording.read"), each once.
func ValidateCustomRole(r *CustomRole) error {
	switch {
	case !roleName.MatchString(r.Name):
		return fmt.Errorf("name: must be 2 to 63 lowercase letters, digits, - or _, starting with a letter")
	case slices.Contains(BuiltinRoles, r.Name) || slices.Contains(Roles, Role(r.Name)):
		return fmt.Errorf("name: %q is a built-in role", r.Name)
	case len(r.Description) > 500 || UnsafeText(r.Description):
		return fmt.Errorf("description: must be at most 500 bytes of text")
	case len(r.Permissions) == 0:
		return fmt.Errorf("permissions: required: list what the role may do")
	case len(r.Permissions) > 200:
		return fmt.Errorf("permissions: at most 200")
	}
	seen := map[Permission]bool{}
	for _, p := range r.Permissions {
		if seen[p] {
			return fmt.Errorf("permissions: %q is listed twice", p)
		}
		seen[p] = true
		if !slices.Contains(AllPermissions, p) && (!platformAction.MatchString(string(p)) || len(p) > 128) {
			return fmt.Errorf("permissions: %q is neither a permission of attest nor a platform action such as recording.read", p)
		}
		if slices.Contains(operatorOnly, p) || p == PermOwnership || p == PermEventsWrite {
			return fmt.Errorf("permissions: %q cannot be held through a custom role", p)
		}
	}
	return nil
}

// Grant is one role held by a person. An auditor's grant is bounded to an
// audit period: it reads only events of the period, and lapses
// AuditorFieldwork after the period ends.
type Grant struct {
	Role        string
	PeriodStart time.Time
	PeriodEnd   time.Time
}

// AuditorFieldwork is how long after its audit period an auditor's grant
// stays in force.
const AuditorFieldwork = 90 * 24 * time.Hour

// Bounded reports whether the grant is limited to an audit period.
func (g Grant) Bounded() bool { return !g.PeriodEnd.IsZero() }

// InForce reports whether the grant applies at now.
func (g Grant) InForce(now time.Time) bool {
	return !g.Bounded() || (!now.Before(g.PeriodStart) && now.Before(g.PeriodEnd.Add(AuditorFieldwork)))
}

// Subject is a person as the authorizer sees them: their tenant, roles,
// and the permissions an active elevation adds.
type Subject struct {
	UserID         string
	OperatorTenant bool
	Active         bool
	Grants         []Grant
	// Custom holds the permissions of the tenant's custom roles the user
	// holds, by role name.
	Custom map[string][]Permission
	// Elevated are the privileged permissions of an active elevation,
	// in force until ElevatedUntil.
	Elevated      []Permission
	ElevatedUntil time.Time
}

// Decision is an authorization answer with the reason, for the caller and
// the audit trail.
type Decision struct {
	Allow  bool
	Reason string
	// Period bounds what the permission reaches, for an auditor's grant.
	Period *Grant
}

// Eligible lists every permission the subject's roles carry, privileged
// ones included, whether or not in force.
func (s *Subject) Eligible(now time.Time) []Permission {
	var out []Permission
	for _, g := range s.Grants {
		if !g.InForce(now) {
			continue
		}
		ps, ok := builtinPerms[g.Role]
		if !ok {
			ps = s.Custom[g.Role]
		}
		for _, p := range ps {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// Check decides whether the subject may exercise p at now. Standing
// permissions come from roles in force; privileged ones also need an
// active elevation that covers them. Anything unknown denies.
func (s *Subject) Check(p Permission, now time.Time) Decision {
	if !s.Active {
		return Decision{Reason: "the account is not active"}
	}
	if p == PermNone || p == PermAny {
		return Decision{Allow: true, Reason: "signed in"}
	}
	if slices.Contains(operatorOnly, p) && !s.OperatorTenant {
		return Decision{Reason: fmt.Sprintf("only people of the operator tenant may %s", p)}
	}
	var holder *Grant
	for i, g := range s.Grants {
		if !g.InForce(now) {
			continue
		}
		ps, ok := builtinPerms[g.Role]
		if !ok {
			ps = s.Custom[g.Role]
		}
		if slices.Contains(ps, p) {
			holder = &s.Grants[i]
			if !g.Bounded() {
				break
			}
		}
	}
	if holder == nil {
		return Decision{Reason: fmt.Sprintf("no role of the user grants %s", p)}
	}
	if p.Privileged() {
		if !slices.Contains(s.Elevated, p) || !now.Before(s.ElevatedUntil) {
			return Decision{Reason: fmt.Sprintf("%s is privileged: request an elevation, have it approved, and activate it with a fresh second factor", p)}
		}
		return Decision{Allow: true, Reason: fmt.Sprintf("elevated until %s", s.ElevatedUntil.UTC().Format(time.RFC3339))}
	}
	d := Decision{Allow: true, Reason: "granted by role " + holder.Role}
	if holder.Bounded() {
		d.Period = holder
	}
	return d
}

// CanGrantRole reports whether a subject may grant role (its permissions
// known through perms) to someone: nobody grants a permission they are not
// eligible for, and only owners grant ownership.
func (s *Subject) CanGrantRole(perms []Permission, now time.Time) error {
	have := s.Eligible(now)
	for _, p := range perms {
		if slices.Contains(AllPermissions, p) && !slices.Contains(have, p) {
			return fmt.Errorf("you do not hold %s, so you cannot grant a role that does", p)
		}
	}
	return nil
}

// BuiltinPermissions returns a built-in role's permissions, false for a
// name that is not a built-in role.
func BuiltinPermissions(role string) ([]Permission, bool) {
	ps, ok := builtinPerms[role]
	return ps, ok
}

// ParsePermissions splits a stored comma-separated list.
func ParsePermissions(s string) []Permission {
	if s == "" {
		return nil
	}
	var out []Permission
	for _, p := range strings.Split(s, ",") {
		out = append(out, Permission(p))
	}
	return out
}

// JoinPermissions is the stored form of a permission list.
func JoinPermissions(ps []Permission) string {
	ss := make([]string, len(ps))
	for i, p := range ps {
		ss[i] = string(p)
	}
	return strings.Join(ss, ",")
}
