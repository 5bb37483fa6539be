package auditlog

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/tenant"
	"github.com/google/uuid"
)

// Prepared is an event ready to be sequenced: its personal values committed
// and sealed, its index terms computed. Preparing is the part of an append
// that needs no lock, so request goroutines do it in parallel before
// handing events to the writer.
type Prepared struct {
	Event       *event.Event
	commitments []event.Commitment
	sealed      []byte
	terms       []index.Term
	text        string
	idTerm      index.Term
	leaf        *event.LeafTemplate
}

// keyer returns the term keyer of a tenant's index key.
func (l *Log) keyer(t *tenant.Tenant) *index.Keyer {
	if k, ok := l.keyers.Load(t.ID); ok {
		return k.(*index.Keyer)
	}
	k, _ := l.keyers.LoadOrStore(t.ID, index.NewKeyer(t.IndexKey))
	return k.(*index.Keyer)
}

// Prepare readies ev for tenant t. It sets the event's tenant, gives it an id
// when it has none, and fetches or creates its subject's key. It must not be
// called from inside a change function passed to Do.
func (l *Log) Prepare(ctx context.Context, t *tenant.Tenant, ev *event.Event) (*Prepared, error) {
	if err := l.keyring.SyncSealing(ctx); err != nil {
		return nil, fmt.Errorf("auditlog: subject keys: %w", err)
	}
	return l.prepare(ctx, t, ev)
}

func (l *Log) prepare(ctx context.Context, t *tenant.Tenant, ev *event.Event) (*Prepared, error) {
	ev.Tenant = t.Name
	if ev.ID == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("auditlog: generate event id: %w", err)
		}
		ev.ID = u.String()
	}
	p := &Prepared{Event: ev, idTerm: index.HashValue(index.FieldID, ev.ID)}
	vals := make([]personalValue, 0, len(l.personalPaths))
	for _, path := range l.personalPaths {
		if v, ok := ev.PersonalValue(path); ok {
			vals = append(vals, personalValue{path, v})
		}
	}
	if len(vals) > 0 {
		key, err := l.keyring.Active(ctx, t.ID, ev.Subject())
		if err != nil {
			return nil, fmt.Errorf("auditlog: subject key: %w", err)
		}
		pv := make([]personal.Value, len(vals))
		for i, v := range vals {
			pv[i] = personal.Value{Path: v.path, Data: v.data}
		}
		sums := make([]string, len(pv))
		key.CommitAll(t.Name, ev.ID, pv, sums)
		p.commitments = make([]event.Commitment, len(pv))
		for i, v := range pv {
			p.commitments[i] = event.Commitment{Path: v.Path, Value: sums[i]}
		}
		p.sealed = key.Seal(t.Name, ev.ID, pv)
	}
	p.terms = index.Terms(ev, l.keyer(t))
	p.text = index.Text(ev, l.IsPersonal)
	p.leaf = event.NewLeafTemplate(ev, p.commitments)
	return p, nil
}

// PrepareAll readies a batch of events for tenant t, creating the keys of
// all its new subjects in one transaction first.
func (l *Log) PrepareAll(ctx context.Context, t *tenant.Tenant, evs []*event.Event) ([]*Prepared, error) {
	subjects := make([]string, 0, len(evs))
	for _, ev := range evs {
		subjects = append(subjects, ev.Subject())
	}
	if err := l.keyring.SyncSealing(ctx); err != nil {
		return nil, fmt.Errorf("auditlog: subject keys: %w", err)
	}
	if err := l.keyring.Prefetch(ctx, t.ID, subjects); err != nil {
		return nil, fmt.Errorf("auditlog: subject keys: %w", err)
	}
	out := make([]*Prepared, len(evs))
	for i, ev := range evs {
		p, err := l.prepare(ctx, t, ev)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

type personalValue struct {
	path string
	data []byte
}

// personalPaths returns the paths of a personal set in the sorted order
// the leaf's "personal" object needs.
func personalPaths(set map[string]bool) []string {
	return slices.Sorted(maps.Keys(set))
}
