package scim

import (
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// Schema URNs of RFC 7643 and RFC 7644.
const (
	userSchema       = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupSchema      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	enterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	patchOpSchema    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	listSchema       = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
)

// use says what attest does with an attribute a client sends.
type use int

const (
	keep     use = iota + 1 // stored in User or Group
	drop                    // in the schema, accepted and not kept
	readOnly                // set by attest: ignored in POST and PUT, refused by PATCH
	refuse                  // never accepted
)

// attr is a top-level attribute of a resource.
type attr struct {
	name string // as the schema spells it
	use  use
}

// userAttrs lists the attributes of a User (RFC 7643, sections 3.1 and
// 4.1) by lower-case name. The core attributes attest does not keep are
// dropped rather than refused because identity providers map several of
// them by default.
var userAttrs = map[string]attr{
	"id":                {"id", readOnly},
	"meta":              {"meta", readOnly},
	"groups":            {"groups", readOnly},
	"externalid":        {"externalId", keep},
	"username":          {"userName", keep},
	"name":              {"name", keep},
	"displayname":       {"displayName", keep},
	"emails":            {"emails", keep},
	"active":            {"active", keep},
	"password":          {"password", refuse},
	"nickname":          {"nickName", drop},
	"profileurl":        {"profileUrl", drop},
	"title":             {"title", drop},
	"usertype":          {"userType", drop},
	"preferredlanguage": {"preferredLanguage", drop},
	"locale":            {"locale", drop},
	"timezone":          {"timezone", drop},
	"phonenumbers":      {"phoneNumbers", drop},
	"ims":               {"ims", drop},
	"photos":            {"photos", drop},
	"addresses":         {"addresses", drop},
	"entitlements":      {"entitlements", drop},
	"roles":             {"roles", drop},
	"x509certificates":  {"x509Certificates", drop},

	// The enterprise extension (RFC 7643, section 4.3) as a whole.
	strings.ToLower(enterpriseSchema): {enterpriseSchema, drop},
}

// groupAttrs lists the attributes of a Group (RFC 7643, sections 3.1 and
// 4.2) by lower-case name.
var groupAttrs = map[string]attr{
	"id":          {"id", readOnly},
	"meta":        {"meta", readOnly},
	"externalid":  {"externalId", keep},
	"displayname": {"displayName", keep},
	"members":     {"members", keep},
}

// nameSubs are the sub-attributes of a User's name, in lower case; only
// givenName and familyName are kept.
var nameSubs = []string{
	"givenname", "familyname", "formatted", "middlename", "honorificprefix", "honorificsuffix",
}

var errPassword = badRequest(typeInvalidValue,
	"password is not accepted: attest users set their own password, with MFA, when they enrol")

// maxPath is the longest path accepted, in bytes.
const maxPath = 512

// target is where a PATCH operation applies.
type target struct {
	attr   string            // lower-case attribute name
	sub    string            // lower-case sub-attribute, or ""
	filter filter.Expression // value filter of a multi-valued attribute, or nil
}

// parsePath parses the path of a PATCH operation, or a name in the value
// of one without a path, on a resource of the core schema core. skip
// reports an attribute of the extension ext, which is accepted and
// dropped; ext is empty for a resource without one.
func parsePath(raw, core, ext string) (t target, skip bool, err error) {
	switch {
	case len(raw) > maxPath:
		return target{}, false, badRequest(typeInvalidPath, "the path is longer than %d bytes", maxPath)
	case ext != "" && (strings.EqualFold(raw, ext) || hasPrefixFold(raw, ext+":")):
		return target{}, true, nil
	case hasPrefixFold(raw, core+":"):
		raw = raw[len(core)+1:]
	case hasPrefixFold(raw, "urn:"):
		return target{}, false, badRequest(typeNoTarget, "the path names a schema attest does not support")
	}
	p, err := filter.ParsePath([]byte(raw))
	if err != nil || p.AttributePath.URIPrefix != nil {
		return target{}, false, badRequest(typeInvalidPath, "the path is not a valid attribute path")
	}
	sub := p.AttributePath.SubAttributeName()
	if sub == "" {
		sub = p.SubAttributeName() // after a filter: emails[type eq "work"].value
	}
	t = target{attr: strings.ToLower(p.AttributePath.AttributeName), sub: strings.ToLower(sub),
		filter: p.ValueExpression}
	return t, false, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
