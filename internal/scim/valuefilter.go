package scim

import (
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	filter "github.com/scim2/filter-parser/v2"
)

// getter returns the value of a sub-attribute of one value of a
// multi-valued attribute, for a value filter to compare: a string or a
// bool, whether strings compare case-exact, and false if there is no such
// sub-attribute.
type getter func(sub string) (v any, exact, ok bool)

var errValueFilter = badRequest(typeInvalidFilter,
	`a filter in a path may only compare sub-attributes with eq, and, or and not, such as [type eq "work"]`)

// matches reports whether the value filter e matches the value get reads.
func matches(e filter.Expression, get getter) (bool, error) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		return matchesAttr(e, get)
	case *filter.LogicalExpression:
		l, err := matches(e.Left, get)
		if err != nil {
			return false, err
		}
		r, err := matches(e.Right, get)
		if err != nil {
			return false, err
		}
		if strings.EqualFold(string(e.Operator), string(filter.AND)) {
			return l && r, nil
		}
		return l || r, nil
	case *filter.NotExpression:
		m, err := matches(e.Expression, get)
		return !m, err
	}
	return false, errValueFilter
}

func matchesAttr(e *filter.AttributeExpression, get getter) (bool, error) {
	p := e.AttributePath
	if !strings.EqualFold(string(e.Operator), string(filter.EQ)) || p.URIPrefix != nil || p.SubAttribute != nil {
		return false, errValueFilter
	}
	v, exact, ok := get(strings.ToLower(p.AttributeName))
	if !ok {
		return false, badRequest(typeInvalidFilter, "a filter in the path names an unknown sub-attribute %s",
			quote(p.AttributeName))
	}
	switch v := v.(type) {
	case bool:
		want, ok := filterBool(e.CompareValue)
		return ok && v == want, nil
	case string:
		want, ok := filterString(e.CompareValue)
		if exact {
			return ok && v == want, nil
		}
		return ok && strings.EqualFold(v, want), nil
	}
	return false, errValueFilter
}

// filterString returns a compared value of a filter as a string. The
// parser leaves JSON escapes in place, so they are undone here.
func filterString(v any) (string, bool) {
	s, ok := v.(string)
	if !ok || !strings.Contains(s, `\`) {
		return s, ok
	}
	b, err := jsontext.AppendUnquote(nil, `"`+s+`"`)
	return string(b), err == nil
}

// filterBool returns a compared value of a filter as a bool, from true,
// false or the same in a string.
func filterBool(v any) (bool, bool) {
	if b, ok := v.(bool); ok {
		return b, true
	}
	s, _ := filterString(v)
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}
