package scim

import (
	"net/url"
	"strconv"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// Page sizes of list requests.
const (
	// DefaultCount is the page size of a list request that names none.
	DefaultCount = 100
	// MaxCount is the largest page a list request gets; a larger count is
	// cut to it, as RFC 7644 section 3.4.2.4 allows.
	MaxCount = 200
)

// maxFilter is the longest filter accepted, in bytes.
const maxFilter = 1024

// listResponse is a page of resources.
type listResponse[T any] struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	StartIndex   int      `json:"startIndex"`
	ItemsPerPage int      `json:"itemsPerPage"`
	Resources    []T      `json:"Resources"`
}

func newList[T any](total, start int, items []T) listResponse[T] {
	if items == nil {
		items = []T{}
	}
	return listResponse[T]{Schemas: []string{listSchema}, TotalResults: total, StartIndex: start,
		ItemsPerPage: len(items), Resources: items}
}

// listQuery is what a list request asks for.
type listQuery struct {
	filter       Filter
	start, count int
}

// parseList reads the filter, startIndex and count parameters. filters are
// the attributes the filter may name, spelled as the schema does.
func parseList(q url.Values, core string, filters []string) (listQuery, error) {
	lq := listQuery{start: 1, count: DefaultCount}
	var err error
	if s := q.Get("startIndex"); s != "" {
		if lq.start, err = strconv.Atoi(s); err != nil {
			return lq, badRequest(typeInvalidValue, "startIndex must be an integer")
		}
	}
	if s := q.Get("count"); s != "" {
		if lq.count, err = strconv.Atoi(s); err != nil {
			return lq, badRequest(typeInvalidValue, "count must be an integer")
		}
	}
	lq.start = max(lq.start, 1)
	lq.count = min(max(lq.count, 0), MaxCount)
	lq.filter, err = parseFilter(q.Get("filter"), core, filters)
	return lq, err
}

// parseFilter accepts a filter of the form `attr eq "value"` with attr one
// of filters, in any case, optionally after the core schema's URN.
func parseFilter(raw, core string, filters []string) (Filter, error) {
	if raw == "" {
		return Filter{}, nil
	}
	refuse := badRequest(typeInvalidFilter, `the filter must have the form ATTR eq "VALUE", with ATTR one of %s`,
		strings.Join(filters, ", "))
	if len(raw) > maxFilter {
		return Filter{}, refuse
	}
	e, err := filter.ParseFilter([]byte(raw))
	if err != nil {
		return Filter{}, refuse
	}
	ae, ok := e.(*filter.AttributeExpression)
	if !ok || !strings.EqualFold(string(ae.Operator), string(filter.EQ)) {
		return Filter{}, refuse
	}
	p := ae.AttributePath
	if p.URIPrefix != nil && !strings.EqualFold(*p.URIPrefix, core) {
		return Filter{}, refuse
	}
	name := p.AttributeName
	if p.SubAttribute != nil {
		name += "." + *p.SubAttribute
	}
	value, ok := filterString(ae.CompareValue)
	if !ok {
		return Filter{}, refuse
	}
	for _, f := range filters {
		if strings.EqualFold(name, f) {
			return Filter{Attr: strings.ToLower(f), Value: value}, nil
		}
	}
	return Filter{}, refuse
}
