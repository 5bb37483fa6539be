package server

import (
	"github.com/attest/attest/internal/access"
)

// routeTable lists every API route. Each names the permission it needs,
// the audit action and category of its requests and the query parameters
// it takes; wrap checks the permission and the parameters before the
// handler runs, in one place.
func (s *Server) routeTable() []*route {
	return []*route{
		{method: "POST", pattern: "/api/v1/audit/events", name: "audit.events.ingest", category: "data_change",
			perm: access.PermEventsWrite, params: []string{"format"}, handle: s.ingest},
		{method: "GET", pattern: "/api/v1/audit/events/{sequence}", name: "audit.event.read", category: "data_access",
			perm: access.PermLogRead, params: []string{"tree_size"}, handle: s.readEvent},
		{method: "GET", pattern: "/api/v1/audit/checkpoint", name: "audit.checkpoint.read", category: "data_access",
			perm: access.PermLogRead, handle: s.checkpoint},
		{method: "GET", pattern: "/api/v1/audit/proofs/inclusion", name: "audit.proof.inclusion", category: "data_access",
			perm: access.PermLogRead, params: []string{"sequence", "leaf_hash", "tree_size", "format"},
			handle: s.inclusionProof},
		{method: "GET", pattern: "/api/v1/audit/proofs/consistency", name: "audit.proof.consistency", category: "data_access",
			perm: access.PermLogRead, params: []string{"from", "to"}, handle: s.consistencyProof},
		{method: "GET", pattern: "/api/v1/audit/public-key", name: "audit.public_key.read", category: "data_access",
			perm: access.PermLogRead, params: []string{"format"}, handle: s.publicKey},
		{method: "GET", pattern: "/api/v1/compliance/audit-trail", name: "audit.trail.query", category: "data_access",
			perm: access.PermLogRead, params: QueryParams, handle: s.query},
		{method: "GET", pattern: "/api/v1/compliance/audit-trail/export", name: "audit.trail.export", category: "data_access",
			perm: access.PermLogRead, params: []string{"format", "from", "to"}, handle: s.exportTrail},
		{method: "GET", pattern: "/logs/{tenant}/checkpoint", name: "audit.tiles.checkpoint", category: "data_access",
			perm: access.PermLogRead, handle: s.checkpoint, pathTenant: true},
		{method: "GET", pattern: "/logs/{tenant}/tile/{path...}", name: "audit.tiles.read", category: "data_access",
			perm: access.PermLogRead, handle: s.tile, pathTenant: true},
		{method: "POST", pattern: "/api/v1/tenants", name: "tenant.create", category: "admin",
			perm: access.PermTenants, handle: s.createTenant, selfAudited: true},
		{method: "GET", pattern: "/api/v1/tenants", name: "tenant.list", category: "admin",
			perm: access.PermTenantsRead, handle: s.listTenants},
		{method: "POST", pattern: "/api/v1/apikeys", name: "apikey.create", category: "admin",
			perm: access.PermKeysManage, handle: s.createKey, selfAudited: true},
		{method: "GET", pattern: "/api/v1/apikeys", name: "apikey.list", category: "admin",
			perm: access.PermKeysRead, handle: s.listKeys},
		{method: "DELETE", pattern: "/api/v1/apikeys/{id}", name: "apikey.revoke", category: "admin",
			perm: access.PermKeysManage, handle: s.revokeKey, selfAudited: true},
		{method: "POST", pattern: "/api/v1/privacy/erasure", name: "privacy.subject.erase", category: "data_change",
			perm: access.PermPrivacyErase, handle: s.eraseSubject, selfAudited: true},
		{method: "GET", pattern: "/api/v1/retention", name: "audit.retention.read", category: "configuration",
			perm: access.PermLogRead, handle: s.retention},
		{method: "PUT", pattern: "/api/v1/retention", name: "audit.retention.update", category: "configuration",
			perm: access.PermRetentionManage, handle: s.setRetention, selfAudited: true},
		{method: "PUT", pattern: "/api/v1/retention/legal-hold", name: "audit.legal_hold.update", category: "configuration",
			perm: access.PermRetentionManage, handle: s.setLegalHold, selfAudited: true},
		{method: "GET", pattern: "/metrics", name: "metrics.read", category: "system",
			perm: access.PermMetricsRead, handle: s.serveMetrics},
		{method: "GET", pattern: "/api/v1/openapi.json", name: "api.openapi.read", category: "system",
			perm: access.PermNone, handle: s.openAPI},
	}
}
