package index

import (
	"fmt"
	"slices"
)

// Zone is the range of the times of the events in one column page of a
// segment: its offsets [i*columnPage, (i+1)*columnPage). A time range query
// reads only the pages whose zone it overlaps.
type Zone struct {
	MinOccurred int64 `json:"o0"`
	MaxOccurred int64 `json:"o1"`
	MinReceived int64 `json:"r0"`
	MaxReceived int64 `json:"r1"`
}

func (z Zone) match(q *Query) bool {
	return (q.Occurred == nil || q.Occurred.overlaps(z.MinOccurred, z.MaxOccurred)) &&
		(q.Received == nil || q.Received.overlaps(z.MinReceived, z.MaxReceived))
}

// zonesOf returns the zone of each column page of the given columns.
func zonesOf(occurred, received []int64) []Zone {
	var out []Zone
	for off := 0; off < len(occurred); off += columnPage {
		end := min(off+columnPage, len(occurred))
		var z Zone
		z.MinOccurred, z.MaxOccurred = minMax(occurred[off:end])
		z.MinReceived, z.MaxReceived = minMax(received[off:end])
		out = append(out, z)
	}
	return out
}

// pageCount is the number of column pages of the segment.
func (m *Meta) pageCount() int { return int((m.End - m.First + columnPage - 1) / columnPage) }

// zones returns the segment's page zones, or nil when it has none. A
// segment of one page has the zone of its bounds.
func (m *Meta) zones() []Zone {
	if len(m.Zones) == m.pageCount() {
		return m.Zones
	}
	if m.pageCount() == 1 {
		return []Zone{{m.MinOccurred, m.MaxOccurred, m.MinReceived, m.MaxReceived}}
	}
	return nil
}

// mergedZones returns the page zones of a segment merged from group, or nil
// when one of them has none. Segments start at multiples of SegmentSize,
// a multiple of columnPage, so their pages line up.
func mergedZones(group []*Meta) []Zone {
	var out []Zone
	for _, g := range group {
		z := g.zones()
		if z == nil {
			return nil
		}
		out = append(out, z...)
	}
	return out
}

// inZones returns the part of the ascending candidates of segment m that
// lie in pages whose zone the query's time ranges overlap; all of them when
// the segment has no zones or the query no ranges.
func (m *Meta) inZones(q *Query, cands []int64) []int64 {
	zs := m.zones()
	if zs == nil || q.Occurred == nil && q.Received == nil {
		return cands
	}
	kept := cands[:0]
	for _, seq := range cands {
		if zs[(seq-m.First)/columnPage].match(q) {
			kept = append(kept, seq)
		}
	}
	return kept
}

// zoneRanges returns the ranges [lo, hi) within [lo, hi) of the pages of
// segment m whose zone the query's time ranges overlap.
func (m *Meta) zoneRanges(q *Query, lo, hi int64) [][2]int64 {
	zs := m.zones()
	if zs == nil || q.Occurred == nil && q.Received == nil {
		return [][2]int64{{lo, hi}}
	}
	var out [][2]int64
	for i, z := range zs {
		start := m.First + int64(i)*columnPage
		a, b := max(start, lo), min(start+columnPage, hi)
		if a >= b || !z.match(q) {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == a {
			out[n-1][1] = b
		} else {
			out = append(out, [2]int64{a, b})
		}
	}
	return out
}

// MetaCheck collects what a segment's metadata must say of the events it
// covers: the bounds of their times, those of each column page, and their
// actions. Verification feeds it the events rebuilt from the log, since
// metadata that says too little would hide events from queries.
type MetaCheck struct {
	m       *Meta
	zones   []Zone
	seen    []bool
	actions map[string]bool
}

// NewMetaCheck starts the check of segment m.
func NewMetaCheck(m *Meta) *MetaCheck {
	return &MetaCheck{m: m, zones: make([]Zone, m.pageCount()), seen: make([]bool, m.pageCount()),
		actions: map[string]bool{}}
}

// Add adds one event of the segment.
func (c *MetaCheck) Add(d *Doc) {
	p := int((d.Seq - c.m.First) / columnPage)
	if p < 0 || p >= len(c.zones) {
		return
	}
	z := &c.zones[p]
	if !c.seen[p] {
		*z = Zone{d.Occurred, d.Occurred, d.Received, d.Received}
		c.seen[p] = true
	}
	z.MinOccurred, z.MaxOccurred = min(z.MinOccurred, d.Occurred), max(z.MaxOccurred, d.Occurred)
	z.MinReceived, z.MaxReceived = min(z.MinReceived, d.Received), max(z.MaxReceived, d.Received)
	c.actions[d.Action] = true
}

// Problem says what the metadata gets wrong, and the first sequence number
// it concerns; what is empty when the metadata is right.
func (c *MetaCheck) Problem() (seq int64, what string) {
	m := c.m
	var all Zone
	for i, z := range c.zones {
		if i == 0 {
			all = z
			continue
		}
		all = Zone{min(all.MinOccurred, z.MinOccurred), max(all.MaxOccurred, z.MaxOccurred),
			min(all.MinReceived, z.MinReceived), max(all.MaxReceived, z.MaxReceived)}
	}
	if got := (Zone{m.MinOccurred, m.MaxOccurred, m.MinReceived, m.MaxReceived}); got != all {
		return m.First, fmt.Sprintf("its time bounds %+v are not those of its events, %+v", got, all)
	}
	if m.Zones != nil && !slices.Equal(m.Zones, c.zones) {
		for i := range c.zones {
			if i >= len(m.Zones) || m.Zones[i] != c.zones[i] {
				return m.First + int64(i)*columnPage, fmt.Sprintf("the time bounds of its events [%d, %d) are not those it lists",
					m.First+int64(i)*columnPage, min(m.First+int64(i+1)*columnPage, m.End))
			}
		}
		return m.First, "it lists time bounds for pages it does not have"
	}
	want := make([]string, 0, len(c.actions))
	for a := range c.actions {
		want = append(want, a)
	}
	slices.Sort(want)
	if !slices.Equal(m.Actions, want) {
		return m.First, fmt.Sprintf("its list of actions (%d) is not that of its events (%d)", len(m.Actions), len(want))
	}
	return 0, ""
}
