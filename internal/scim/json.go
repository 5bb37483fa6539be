package scim

import (
	"errors"
	"slices"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// object is a JSON object whose member names are folded to lower case, as
// SCIM attribute names are case-insensitive (RFC 7643, section 2.1).
type object map[string]jsontext.Value

// decodeObject decodes a JSON object; what names it in errors. Invalid
// JSON, invalid UTF-8, trailing data and names that repeat, also when they
// differ only in case, are refused.
func decodeObject(data []byte, what string) (object, error) {
	if jsontext.Value(data).Kind() != '{' {
		if !jsontext.Value(data).IsValid() {
			return nil, syntaxError(json.Unmarshal(data, new(jsontext.Value)), what)
		}
		return nil, badRequest(typeInvalidSyntax, "%s must be a JSON object", what)
	}
	var raw map[string]jsontext.Value
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, syntaxError(err, what)
	}
	obj := make(object, len(raw))
	for name, v := range raw {
		folded := strings.ToLower(name)
		if _, dup := obj[folded]; dup {
			return nil, badRequest(typeInvalidSyntax, "%s has the attribute %s twice", what, quote(name))
		}
		obj[folded] = v
	}
	return obj, nil
}

// names returns the member names in order, so that operations apply the
// same way every time.
func (o object) names() []string {
	names := make([]string, 0, len(o))
	for n := range o {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// syntaxError describes a JSON decoding failure without quoting the input.
func syntaxError(err error, what string) error {
	var sx *jsontext.SyntacticError
	if !errors.As(err, &sx) {
		return badRequest(typeInvalidSyntax, "%s is not valid JSON", what)
	}
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return badRequest(typeInvalidSyntax, "%s has the attribute %s twice", what, quote(string(sx.JSONPointer)))
	}
	return badRequest(typeInvalidSyntax, "%s is not valid JSON (at byte %d)", what, sx.ByteOffset)
}

// quote quotes a name the client chose, cut short if it is long.
func quote(name string) string {
	const max = 64
	if len(name) > max {
		name = strings.ToValidUTF8(name[:max], "") + "..."
	}
	return `"` + strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), `"`, `\"`) + `"`
}

// decodeString reads a string attribute; null, or no value, is the empty
// string.
func decodeString(v jsontext.Value, attr string) (string, error) {
	var s string
	switch v.Kind() {
	case 'n', 0:
		return "", nil
	case '"':
		if err := json.Unmarshal(v, &s); err != nil {
			return "", syntaxError(err, attr)
		}
		return s, nil
	}
	return "", badRequest(typeInvalidValue, "%s must be a string", attr)
}

// decodeBool reads a boolean attribute. Microsoft Entra ID sends booleans
// as the strings "True" and "False", so strings are accepted in any case.
func decodeBool(v jsontext.Value, attr string) (bool, error) {
	switch v.Kind() {
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		s, err := decodeString(v, attr)
		switch {
		case err != nil:
			return false, err
		case strings.EqualFold(s, "true"):
			return true, nil
		case strings.EqualFold(s, "false"):
			return false, nil
		}
	}
	return false, badRequest(typeInvalidValue, "%s must be a boolean", attr)
}

// decodeList reads a multi-valued attribute. A single value stands for a
// list of one and null for an empty list.
func decodeList(v jsontext.Value, attr string) ([]jsontext.Value, error) {
	switch v.Kind() {
	case 'n':
		return nil, nil
	case '[':
		var list []jsontext.Value
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, syntaxError(err, attr)
		}
		return list, nil
	}
	return []jsontext.Value{v}, nil
}

// decodeSub reads the complex value of attr, whose sub-attributes must be
// among subs (lower case).
func decodeSub(v jsontext.Value, attr string, subs ...string) (object, error) {
	if v.Kind() != '{' {
		return nil, badRequest(typeInvalidValue, "%s must be an object", attr)
	}
	obj, err := decodeObject(v, attr)
	if err != nil {
		return nil, err
	}
	for _, n := range obj.names() {
		if !slices.Contains(subs, n) {
			return nil, badRequest(typeInvalidValue, "%s has no sub-attribute %s", attr, quote(n))
		}
	}
	return obj, nil
}

// checkSchemas checks the schemas attribute of a request, which must name
// want. Other schemas it names are not checked: the attributes are.
func checkSchemas(v jsontext.Value, want string) error {
	var list []string
	if v.Kind() == '[' && json.Unmarshal(v, &list) == nil {
		for _, s := range list {
			if strings.EqualFold(s, want) {
				return nil
			}
		}
	}
	return badRequest(typeInvalidSyntax, "schemas must be a list that includes %s", want)
}
