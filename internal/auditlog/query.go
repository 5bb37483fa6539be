package auditlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

// Filter selects events from a tenant's log. Empty fields do not filter.
type Filter struct {
	OccurredFrom, OccurredTo time.Time
	ReceivedFrom, ReceivedTo time.Time
	ActorID                  string
	Action                   string
	ActionPrefix             string
	Category                 string
	TargetType               string
	TargetID                 string
	Outcome                  string
	Source                   string
	ClientIP                 string
	// Text matches, case-insensitively, a substring of the action or of
	// the target's name.
	Text string
	// Limit bounds the page; zero means 50, and at most 1000 are returned.
	Limit int
	// Cursor continues an earlier query; it must come with the same filter.
	Cursor string
	// Asc lists oldest first; the default is newest first.
	Asc bool
}

// Page is one page of a query's results.
type Page struct {
	Items []*Record
	// Next continues the query, or is empty at its end.
	Next string
	// TreeSize is the log size the query reads, fixed by its first page so
	// that later pages are not disturbed by new events.
	TreeSize int64
}

// ErrBadCursor means a cursor is malformed or belongs to another query.
var ErrBadCursor = errors.New("cursor was not issued for this query")

// cursor is where the next page of a query starts. It carries a MAC under
// the tenant's index key over its position, the tenant and the filter, so
// that a cursor changed by hand, or taken to another query or tenant, is
// refused.
type cursor struct {
	Size int64  `json:"s"`
	Next int64  `json:"n"`
	MAC  string `json:"m"`
}

// mac returns the MAC of a cursor at size and next for filter f in tenant t.
func (c *cursor) mac(t *tenant.Tenant, f *Filter) string {
	g := *f
	g.Cursor, g.Limit = "", 0
	b, _ := json.Marshal(g)
	m := hmac.New(sha256.New, t.IndexKey)
	fmt.Fprintf(m, "attest/cursor/v1\x00%s\x00%d\x00%d\x00", t.Name, c.Size, c.Next)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// Validate checks the filter's values, naming the field at fault.
func (f *Filter) Validate() error {
	g := *f
	return g.normalize()
}

func (f *Filter) normalize() error {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 1000)
	if f.Category != "" && !slices.Contains(event.Categories, f.Category) {
		return &event.FieldError{Field: "category", Reason: "must be one of " + strings.Join(event.Categories, ", ")}
	}
	if f.Outcome != "" && !slices.Contains(event.Results, f.Outcome) {
		return &event.FieldError{Field: "outcome", Reason: "must be one of " + strings.Join(event.Results, ", ")}
	}
	if f.ClientIP != "" {
		ip, err := netip.ParseAddr(f.ClientIP)
		if err != nil {
			return &event.FieldError{Field: "client_ip", Reason: "must be an IPv4 or IPv6 address"}
		}
		f.ClientIP = ip.Unmap().String()
	}
	if f.TargetID != "" && f.TargetType == "" {
		return &event.FieldError{Field: "target_type", Reason: "is required with target_id"}
	}
	if f.Action != "" && f.ActionPrefix != "" {
		return &event.FieldError{Field: "action_prefix", Reason: "cannot be combined with action"}
	}
	for _, r := range []struct {
		name     string
		from, to time.Time
	}{{"occurred", f.OccurredFrom, f.OccurredTo}, {"received", f.ReceivedFrom, f.ReceivedTo}} {
		if !r.from.IsZero() && !r.to.IsZero() && r.to.Before(r.from) {
			return &event.FieldError{Field: r.name + "_to", Reason: "is before " + r.name + "_from"}
		}
	}
	return nil
}

// Query returns one page of the events of tenant t that match f.
func (l *Log) Query(ctx context.Context, t *tenant.Tenant, f Filter) (*Page, error) {
	if err := f.normalize(); err != nil {
		return nil, err
	}
	if err := l.keyring.Sync(ctx); err != nil {
		return nil, err
	}
	var cur *cursor
	if f.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		cur = &cursor{}
		if err != nil || json.Unmarshal(b, cur) != nil || !hmac.Equal([]byte(cur.MAC), []byte(cur.mac(t, &f))) ||
			cur.Size < 0 || cur.Next < 0 {
			return nil, ErrBadCursor
		}
	}
	q := l.indexQuery(t, &f)
	base := slices.Clone(q.All)
	var page *Page
	for attempt := 0; ; attempt++ {
		q.All, q.AnyOf = base, nil
		v, empty, err := l.queryView(ctx, t, []*Filter{&f}, []*index.Query{q})
		if err != nil {
			return nil, err
		}
		if empty[0] {
			return &Page{TreeSize: v.mem.Size}, nil
		}
		page, err = l.runQuery(ctx, t, &f, q, v, cur)
		if errors.Is(err, errStaleIndex) && attempt < 2 {
			if err := l.Sync(ctx, t); err != nil {
				return nil, fmt.Errorf("auditlog: catch up with the index: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if len(page.Items) > f.Limit {
		page.Items = page.Items[:f.Limit]
		last := page.Items[f.Limit-1].Sequence
		next := last
		if f.Asc {
			next = last + 1
		}
		c := cursor{Size: page.TreeSize, Next: next}
		c.MAC = c.mac(t, &f)
		b, _ := json.Marshal(c)
		page.Next = base64.RawURLEncoding.EncodeToString(b)
	}
	return page, nil
}

// indexQuery returns the conditions of f that the index can check.
func (l *Log) indexQuery(t *tenant.Tenant, f *Filter) *index.Query {
	q := &index.Query{Asc: f.Asc}
	add := func(fl index.Field, v string) {
		if v != "" {
			q.All = append(q.All, index.HashValue(fl, v))
		}
	}
	add(index.FieldActor, f.ActorID)
	add(index.FieldAction, f.Action)
	add(index.FieldCategory, f.Category)
	add(index.FieldOutcome, f.Outcome)
	add(index.FieldSource, f.Source)
	if f.TargetID != "" {
		q.All = append(q.All, index.TargetTerm(f.TargetType, f.TargetID))
	} else {
		add(index.FieldTargetType, f.TargetType)
	}
	if f.ClientIP != "" {
		q.All = append(q.All, l.keyer(t).Term(index.FieldIP, f.ClientIP))
	}
	if r := micros(f.OccurredFrom, f.OccurredTo); r != nil {
		q.Occurred = r
	}
	if r := micros(f.ReceivedFrom, f.ReceivedTo); r != nil {
		q.Received = r
	}
	return q
}

// queryView takes the index view that queries qs of filters fs read,
// completing each query with the alternatives that depend on it: the
// actions matching a prefix or a text. empty[i] means that nothing can
// match fs[i].
func (l *Log) queryView(ctx context.Context, t *tenant.Tenant, fs []*Filter, qs []*index.Query) (v *view, empty []bool, err error) {
	var terms []index.Term
	for _, q := range qs {
		terms = append(terms, q.All...)
	}
	if v, err = l.view(ctx, t, terms); err != nil {
		return nil, nil, err
	}
	empty = make([]bool, len(fs))
	again := false
	for i, f := range fs {
		if f.ActionPrefix == "" && f.Text == "" {
			continue
		}
		q := qs[i]
		if f.ActionPrefix != "" {
			group := actionAlternatives(v, func(a string) bool { return strings.HasPrefix(a, f.ActionPrefix) })
			if len(group) == 0 {
				empty[i] = true
				continue
			}
			q.AnyOf = append(q.AnyOf, group)
		}
		again = true
		// Short texts have no trigrams to look up: they are matched by
		// reading the events alone.
		if tt := index.TextTerms(f.Text); tt != nil {
			folded := index.Fold(f.Text)
			group := actionAlternatives(v, func(a string) bool { return strings.Contains(index.Fold(a), folded) })
			q.AnyOf = append(q.AnyOf, append(group, tt))
		}
	}
	if !again {
		return v, empty, nil
	}
	// The memtable view must hold the postings of these terms too.
	terms = terms[:0]
	for i, q := range qs {
		if !empty[i] {
			terms = append(terms, q.Terms()...)
		}
	}
	if v, err = l.view(ctx, t, terms); err != nil {
		return nil, nil, err
	}
	return v, empty, nil
}

// errStaleIndex means that a merge replaced segments of a reader's view
// before its snapshot began; the reader takes a new view.
var errStaleIndex = errors.New("auditlog: the index changed under the query")

// runQuery reads one page of q from v in a read snapshot.
func (l *Log) runQuery(ctx context.Context, t *tenant.Tenant, f *Filter, q *index.Query, v *view, cur *cursor) (*Page, error) {
	page := &Page{}
	err := l.db.ReadTx(ctx, func(rtx *sql.Tx) error {
		tx := store.Cache(rtx)
		defer tx.Close()
		size := int64(math.MaxInt64)
		if cur != nil {
			size = cur.Size
		}
		var err error
		if page.TreeSize, err = l.bound(ctx, tx, t, v, size, q); err != nil {
			return err
		}
		if cur != nil {
			if f.Asc {
				q.Lo = max(q.Lo, cur.Next)
			} else {
				q.Hi = min(q.Hi, cur.Next)
			}
		}
		var ferr error
		s := l.searcher(tx, v)
		needles := f.needles()
		err = s.Run(ctx, q, func(seqs []int64) bool {
			for _, seq := range seqs {
				leaf, sealed, err := l.entry(ctx, tx, t.ID, seq)
				if err != nil {
					ferr = err
					return false
				}
				c := &candidate{seq: seq, leaf: leaf, sealed: sealed}
				ok, err := l.match(ctx, t, f, needles, c)
				if err == nil && ok {
					err = l.restore(ctx, t, c)
				}
				if err != nil {
					ferr = err
					return false
				}
				if !ok {
					continue
				}
				page.Items = append(page.Items, c.rec)
				if len(page.Items) > f.Limit {
					return false
				}
			}
			return true
		})
		if err == nil {
			err = ferr
		}
		return err
	})
	return page, err
}

// bound reads the head of t's log in the snapshot tx reads and bounds q by
// it: below the tree size it returns, which is the smallest of the log's
// size, the index view's size and size, and from the first
// entry not expired. It fails with errStaleIndex when v no longer matches
// the snapshot.
func (l *Log) bound(ctx context.Context, tx store.Querier, t *tenant.Tenant, v *view, size int64, q *index.Query) (int64, error) {
	head, err := l.Head(ctx, tx, t.ID)
	if err != nil {
		return 0, err
	}
	if head.indexGen != v.gen {
		return 0, errStaleIndex
	}
	treeSize := min(head.Size, v.mem.Size, size)
	q.Hi = treeSize
	// Expired entries have no payload left to match or show.
	q.Lo = max(q.Lo, head.Expired)
	return treeSize, nil
}

// candidate is an entry an index query found, decoded at most once however
// many filters it is checked against.
type candidate struct {
	seq          int64
	leaf, sealed []byte
	rec          *Record // nil until decoded
	lf           *event.Leaf
	restored     bool
	// borrowed means that leaf is in a reader's scratch space: the record
	// decoded from it keeps a copy.
	borrowed bool
}

// match reports whether candidate c matches f, whose needles are given,
// decoding it when its leaf may match and restoring its personal values
// when f has conditions on them.
func (l *Log) match(ctx context.Context, t *tenant.Tenant, f *Filter, needles [][]byte, c *candidate) (bool, error) {
	// The canonical form of a matching event holds each exact value as it
	// is encoded: events without one are dropped before they are decoded.
	if !containsAll(c.leaf, needles) {
		return false, nil
	}
	if c.rec == nil {
		leaf := c.leaf
		if c.borrowed {
			leaf = bytes.Clone(leaf)
		}
		var err error
		if c.rec, c.lf, err = decodeRecord(c.seq, leaf); err != nil {
			return false, err
		}
	}
	if !f.matchesPublic(c.rec.Event) {
		return false, nil
	}
	if !f.onPersonal() {
		return true, nil
	}
	if err := l.restore(ctx, t, c); err != nil {
		return false, err
	}
	return f.matchesPersonal(c.rec), nil
}

// restore restores the personal values of a decoded candidate, once.
func (l *Log) restore(ctx context.Context, t *tenant.Tenant, c *candidate) error {
	if c.restored {
		return nil
	}
	c.restored = true
	return l.restorePersonal(ctx, t, c.rec, c.lf, c.sealed)
}

func micros(from, to time.Time) *index.Range {
	if from.IsZero() && to.IsZero() {
		return nil
	}
	r := &index.Range{}
	if !from.IsZero() {
		r.From = max(from.UnixMicro(), 1)
	}
	if !to.IsZero() {
		r.To = to.UnixMicro()
	}
	return r
}

// actionAlternatives returns, as single-term alternatives, the terms of the
// actions in the index's dictionaries that match.
func actionAlternatives(v *view, match func(string) bool) [][]index.Term {
	seen := map[string]bool{}
	var out [][]index.Term
	add := func(actions []string) {
		for _, a := range actions {
			if !seen[a] && match(a) {
				seen[a] = true
				out = append(out, []index.Term{index.HashValue(index.FieldAction, a)})
			}
		}
	}
	for _, m := range v.segs {
		add(m.Actions)
	}
	add(v.mem.Actions)
	return out
}

// needles returns canonical JSON fragments that the leaf of every event
// matching f contains: a member name and its value, encoded as a leaf
// encodes them.
func (f *Filter) needles() [][]byte {
	var out [][]byte
	add := func(name, v string) {
		if v != "" {
			out = append(out, event.AppendString(append([]byte{'"'}, name+`":`...), v))
		}
	}
	add("action", f.Action)
	add("category", f.Category)
	add("result", f.Outcome)
	add("id", f.ActorID)
	add("type", f.TargetType)
	add("id", f.TargetID)
	return out
}

func containsAll(b []byte, needles [][]byte) bool {
	for _, n := range needles {
		if !bytes.Contains(b, n) {
			return false
		}
	}
	return true
}

// matches checks a record against every condition of the filter. The index
// narrows the search; this decides.
func (f *Filter) matches(r *Record) bool {
	return f.matchesPublic(r.Event) && f.matchesPersonal(r)
}

// onPersonal reports whether f has conditions that matchesPersonal checks.
func (f *Filter) onPersonal() bool { return f.ClientIP != "" || f.Text != "" }

// matchesPersonal checks the conditions on personal values, which need the
// record's personal values restored.
func (f *Filter) matchesPersonal(r *Record) bool {
	ev := r.Event
	if f.ClientIP != "" && (slices.Contains(r.Erased, event.PathActorIP) || ev.Actor.IP != f.ClientIP) {
		return false
	}
	if f.Text != "" {
		q := index.Fold(f.Text)
		if !strings.Contains(index.Fold(ev.Action), q) && !strings.Contains(index.Fold(ev.Target.Name), q) {
			return false
		}
	}
	return true
}

// matchesPublic checks the conditions on the values the leaf holds.
func (f *Filter) matchesPublic(ev *event.Event) bool {
	in := func(t, from, to time.Time) bool {
		return (from.IsZero() || !t.Before(from)) && (to.IsZero() || !t.After(to))
	}
	eq := func(want, got string) bool { return want == "" || want == got }
	switch {
	case !in(ev.OccurredAt, f.OccurredFrom, f.OccurredTo), !in(ev.ReceivedAt, f.ReceivedFrom, f.ReceivedTo),
		!eq(f.ActorID, ev.Actor.ID), !eq(f.Action, ev.Action), !strings.HasPrefix(ev.Action, f.ActionPrefix),
		!eq(f.Category, ev.Category), !eq(f.TargetType, ev.Target.Type), !eq(f.TargetID, ev.Target.ID),
		!eq(f.Outcome, ev.Outcome.Result), !eq(f.Source, ev.Source.Name):
		return false
	}
	return true
}

// view is what a reader uses of the writer's index state.
type view struct {
	segs []*index.Meta
	gen  int64 // the index generation of segs
	mem  *index.MemView
}

// view captures the index state of tenant t with the memtable postings of
// terms. It is taken before the reader's snapshot, so every segment it lists
// is visible in that snapshot. When other processes have appended to the
// log, it first lets the writer catch up.
func (l *Log) view(ctx context.Context, t *tenant.Tenant, terms []index.Term) (*view, error) {
	for attempt := 0; ; attempt++ {
		// The committed head is read first: this process's writer adds to
		// its memtable before it commits, so a memtable captured after
		// the head covers it, unless another process appended.
		head, err := l.Head(ctx, l.db.Read, t.ID)
		if err != nil {
			return nil, err
		}
		st := l.state(t)
		st.mu.Lock()
		var snap *index.Snapshot
		segs, gen := slices.Clone(st.segs), st.indexGen
		if st.mem != nil {
			snap = st.mem.Snapshot()
		}
		st.mu.Unlock()
		if snap != nil && (snap.Size() >= head.Size || attempt > 0) {
			return &view{segs: segs, gen: gen, mem: snap.View(terms)}, nil
		}
		if attempt > 0 {
			return nil, errors.New("auditlog: the index could not catch up with the log")
		}
		if err := l.Sync(ctx, t); err != nil {
			return nil, fmt.Errorf("auditlog: catch up with the log: %w", err)
		}
	}
}

func (l *Log) searcher(tx store.Querier, v *view) *index.Searcher {
	return &index.Searcher{DB: l.db, Q: tx, Segments: v.segs, Mem: v.mem}
}
