package scim

import (
	"net/http"
	"strings"
)

// The discovery endpoints of RFC 7644, section 4. They describe what this
// package does and need no Backend.

type supported struct {
	Supported bool `json:"supported"`
}

type serviceProviderConfigJSON struct {
	Schemas               []string   `json:"schemas"`
	Patch                 supported  `json:"patch"`
	Bulk                  bulkJSON   `json:"bulk"`
	Filter                filterJSON `json:"filter"`
	ChangePassword        supported  `json:"changePassword"`
	Sort                  supported  `json:"sort"`
	ETag                  supported  `json:"etag"`
	AuthenticationSchemes []authJSON `json:"authenticationSchemes"`
	Meta                  metaJSON   `json:"meta"`
}

type bulkJSON struct {
	Supported      bool `json:"supported"`
	MaxOperations  int  `json:"maxOperations"`
	MaxPayloadSize int  `json:"maxPayloadSize"`
}

type filterJSON struct {
	Supported  bool `json:"supported"`
	MaxResults int  `json:"maxResults"`
}

type authJSON struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Primary     bool   `json:"primary"`
}

func serviceProviderConfig(rq *request) error {
	writeJSON(rq.w, http.StatusOK, serviceProviderConfigJSON{
		Schemas:        []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		Patch:          supported{true},
		Filter:         filterJSON{Supported: true, MaxResults: MaxCount},
		ChangePassword: supported{false},
		AuthenticationSchemes: []authJSON{{
			Type:        "oauthbearertoken",
			Name:        "Bearer token",
			Description: "A bearer token that attest issues for provisioning, sent as Authorization: Bearer <token>.",
			Primary:     true,
		}},
		Meta: metaJSON{ResourceType: "ServiceProviderConfig", Location: rq.location("ServiceProviderConfig")},
	})
	return nil
}

type resourceTypeJSON struct {
	Schemas     []string `json:"schemas"`
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Endpoint    string   `json:"endpoint"`
	Description string   `json:"description"`
	Schema      string   `json:"schema"`
	Meta        metaJSON `json:"meta"`
}

func (rq *request) resourceTypes() []resourceTypeJSON {
	rt := func(name, endpoint, schema, desc string) resourceTypeJSON {
		return resourceTypeJSON{Schemas: []string{"urn:ietf:params:scim:schemas:core:2.0:ResourceType"},
			ID: name, Name: name, Endpoint: endpoint, Description: desc, Schema: schema,
			Meta: metaJSON{ResourceType: "ResourceType", Location: rq.location("ResourceTypes", name)}}
	}
	return []resourceTypeJSON{
		rt("User", "/Users", userSchema, "A person with an attest account in this tenant."),
		rt("Group", "/Groups", groupSchema, "A named set of users of this tenant."),
	}
}

func listResourceTypes(rq *request) error {
	types := rq.resourceTypes()
	writeJSON(rq.w, http.StatusOK, newList(len(types), 1, types))
	return nil
}

func getResourceType(rq *request) error {
	for _, t := range rq.resourceTypes() {
		if strings.EqualFold(t.ID, rq.r.PathValue("name")) {
			writeJSON(rq.w, http.StatusOK, t)
			return nil
		}
	}
	return &apiError{status: http.StatusNotFound, detail: "no resource type has this name"}
}

type schemaJSON struct {
	Schemas     []string         `json:"schemas"`
	ID          string           `json:"id"`
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Attributes  []schemaAttrJSON `json:"attributes"`
	Meta        metaJSON         `json:"meta"`
}

type schemaAttrJSON struct {
	Name            string           `json:"name"`
	Type            string           `json:"type"`
	MultiValued     bool             `json:"multiValued"`
	Description     string           `json:"description"`
	Required        bool             `json:"required"`
	CanonicalValues []string         `json:"canonicalValues,omitempty"`
	CaseExact       bool             `json:"caseExact"`
	Mutability      string           `json:"mutability"`
	Returned        string           `json:"returned"`
	Uniqueness      string           `json:"uniqueness"`
	ReferenceTypes  []string         `json:"referenceTypes,omitempty"`
	SubAttributes   []schemaAttrJSON `json:"subAttributes,omitempty"`
}

// attrDef is a readWrite, single-valued, optional attribute of type typ
// that is returned by default and need not be unique.
func attrDef(name, typ, desc string, subs ...schemaAttrJSON) schemaAttrJSON {
	return schemaAttrJSON{Name: name, Type: typ, Description: desc, Mutability: "readWrite",
		Returned: "default", Uniqueness: "none", SubAttributes: subs}
}

func multi(a schemaAttrJSON) schemaAttrJSON                { a.MultiValued = true; return a }
func mutability(m string, a schemaAttrJSON) schemaAttrJSON { a.Mutability = m; return a }

func userSchemaAttrs() []schemaAttrJSON {
	userName := attrDef("userName", "string", "The unique name the user signs in with, often an email address.")
	userName.Required, userName.Uniqueness = true, "server"
	emailType := attrDef("type", "string", "What the address is for.")
	emailType.CanonicalValues = []string{"work", "home", "other"}
	ref := attrDef("$ref", "reference", "The URI of the group.")
	ref.ReferenceTypes = []string{"Group"}
	return []schemaAttrJSON{
		userName,
		attrDef("name", "complex", "The parts of the user's name.",
			attrDef("givenName", "string", "The given, or first, name."),
			attrDef("familyName", "string", "The family, or last, name.")),
		attrDef("displayName", "string", "The name to show for the user."),
		multi(attrDef("emails", "complex", "Email addresses of the user.",
			attrDef("value", "string", "The address."),
			emailType,
			attrDef("primary", "boolean", "Whether this is the main address; at most one is."))),
		attrDef("active", "boolean", "Whether the user may sign in. Setting it false ends the user's sessions."),
		mutability("readOnly", multi(attrDef("groups", "complex", "The groups the user belongs to.",
			mutability("readOnly", attrDef("value", "string", "The id of the group.")),
			mutability("readOnly", ref),
			mutability("readOnly", attrDef("display", "string", "The displayName of the group."))))),
	}
}

func groupSchemaAttrs() []schemaAttrJSON {
	displayName := attrDef("displayName", "string", "The name of the group.")
	displayName.Required = true
	ref := attrDef("$ref", "reference", "The URI of the member.")
	ref.ReferenceTypes = []string{"User"}
	return []schemaAttrJSON{
		displayName,
		multi(attrDef("members", "complex", "The users in the group.",
			mutability("immutable", attrDef("value", "string", "The id of the user.")),
			mutability("immutable", ref),
			mutability("readOnly", attrDef("display", "string", "The userName of the user.")))),
	}
}

func (rq *request) schemas() []schemaJSON {
	s := func(id, name, desc string, attrs []schemaAttrJSON) schemaJSON {
		return schemaJSON{Schemas: []string{"urn:ietf:params:scim:schemas:core:2.0:Schema"},
			ID: id, Name: name, Description: desc, Attributes: attrs,
			Meta: metaJSON{ResourceType: "Schema", Location: rq.location("Schemas", id)}}
	}
	return []schemaJSON{
		s(userSchema, "User", "The user attributes attest keeps.", userSchemaAttrs()),
		s(groupSchema, "Group", "The group attributes attest keeps.", groupSchemaAttrs()),
	}
}

func listSchemas(rq *request) error {
	schemas := rq.schemas()
	writeJSON(rq.w, http.StatusOK, newList(len(schemas), 1, schemas))
	return nil
}

func getSchema(rq *request) error {
	for _, s := range rq.schemas() {
		if strings.EqualFold(s.ID, rq.r.PathValue("id")) {
			writeJSON(rq.w, http.StatusOK, s)
			return nil
		}
	}
	return &apiError{status: http.StatusNotFound, detail: "no schema has this id"}
}
