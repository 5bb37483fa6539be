package auditlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
)

// docs reads the events [from, to) of a tenant from the log and returns what
// the index keeps of them, the same terms the writer indexed when it
// appended them. An entry that cannot be read is indexed by its leaf hash
// alone and reported in the operational log: one damaged entry must not stop
// the log from taking new events, and attest verify names it.
func (l *Log) docs(ctx context.Context, q store.Querier, t *tenant.Tenant, from, to int64) ([]*index.Doc, error) {
	if from >= to {
		return nil, nil
	}
	rows, err := l.readRows(ctx, q, t.ID, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]*index.Doc, 0, to-from)
	next := from
	tiles := tree.NewReader(l.db, q, t.ID)
	for i := range rows {
		if rows[i].codec == codecExpired {
			// Only the leaf hashes are left: the index keeps each
			// expired entry under its leaf hash alone.
			for seq := max(rows[i].first, from); seq < min(rows[i].first+rows[i].count, to); seq++ {
				if seq != next {
					return nil, fmt.Errorf("auditlog: entry %d is missing from the stored log", next)
				}
				h, err := leafHash(ctx, tiles, seq)
				if err != nil {
					return nil, err
				}
				out = append(out, &index.Doc{Seq: seq, LeafTerm: index.LeafTerm(h[:]).Hash})
				next++
			}
			continue
		}
		b, err := rows[i].decode()
		if err != nil {
			return nil, fmt.Errorf("auditlog: %w", err)
		}
		for j, leaf := range b.leaves {
			seq := b.first + int64(j)
			if seq < from || seq >= to {
				continue
			}
			if seq != next {
				return nil, fmt.Errorf("auditlog: entry %d is missing from the stored log", next)
			}
			d, err := l.doc(ctx, t, seq, leaf, b.personal[j])
			var ce *CorruptError
			if errors.As(err, &ce) {
				l.log.Error("a stored entry cannot be read; it is left out of the search index", "tenant", t.Name,
					"sequence", seq, "error", ce.Err)
				h := tree.LeafHash(leaf)
				d, err = &index.Doc{Seq: seq, LeafTerm: index.LeafTerm(h[:]).Hash}, nil
			}
			if err != nil {
				return nil, err
			}
			out = append(out, d)
			next++
		}
	}
	if next != to {
		return nil, fmt.Errorf("auditlog: entry %d is missing from the stored log", next)
	}
	return out, nil
}

// doc returns the index doc of one stored entry.
func (l *Log) doc(ctx context.Context, t *tenant.Tenant, seq int64, leaf, sealed []byte) (*index.Doc, error) {
	ev, lf, err := event.DecodeLeaf(leaf)
	if err != nil {
		return nil, &CorruptError{Sequence: seq, Err: err}
	}
	if ev.Sequence != seq {
		return nil, &CorruptError{Sequence: seq, Err: fmt.Errorf("the entry says it is sequence %d", ev.Sequence)}
	}
	var ipErased bool
	if _, ok := lf.Personal[event.PathActorIP]; ok {
		// The client IP's term is keyed and needs the value itself.
		vals, err := l.openPersonal(ctx, t, ev, lf, sealed)
		if err != nil && !errors.Is(err, personal.ErrErased) {
			return nil, fmt.Errorf("auditlog: personal values of %d: %w", seq, err)
		}
		ipErased = err != nil
		for _, v := range vals {
			if v.Path == event.PathActorIP {
				ev.Actor.IP = string(v.Data)
			}
		}
	}
	committed := func(path string) bool { _, ok := lf.Personal[path]; return ok }
	h := tree.LeafHash(leaf)
	return &index.Doc{Seq: seq, ID: ev.ID, IDTerm: index.HashValue(index.FieldID, ev.ID).Hash,
		LeafTerm: index.LeafTerm(h[:]).Hash, Terms: index.Terms(ev, l.keyer(t)), Text: index.Text(ev, committed), Action: ev.Action,
		Occurred: ev.OccurredAt.UnixMicro(), Received: ev.ReceivedAt.UnixMicro(), IPErased: ipErased}, nil
}

// openPersonal decrypts an event's sealed personal values and checks each
// against the commitment in its leaf. It returns personal.ErrErased when the
// subject's key has been destroyed.
func (l *Log) openPersonal(ctx context.Context, t *tenant.Tenant, ev *event.Event, lf *event.Leaf, sealed []byte) ([]personal.Value, error) {
	if len(lf.Personal) == 0 {
		if len(sealed) != 0 {
			return nil, errors.New("sealed personal values stored for an event that commits to none")
		}
		return nil, nil
	}
	if len(sealed) == 0 {
		return nil, errors.New("the event commits to personal values but none are stored")
	}
	gen, err := personal.BlobGeneration(sealed)
	if err != nil {
		return nil, err
	}
	key, err := l.keyring.Generation(ctx, t.ID, ev.Subject(), gen)
	if err != nil {
		return nil, err
	}
	vals, err := key.Open(t.Name, ev.ID, sealed)
	if err != nil {
		return nil, err
	}
	if len(vals) != len(lf.Personal) {
		return nil, fmt.Errorf("%d personal values stored, %d committed", len(vals), len(lf.Personal))
	}
	sums := make([]string, len(vals))
	key.CommitAll(t.Name, ev.ID, vals, sums)
	for i, v := range vals {
		if want, ok := lf.Personal[v.Path]; !ok || sums[i] != want {
			return nil, fmt.Errorf("stored value of %s does not match its commitment", v.Path)
		}
	}
	return vals, nil
}

// leafHash returns the leaf hash of entry seq as the tree holds it, read
// through tiles, which keeps the tiles it reads.
func leafHash(ctx context.Context, tiles *tree.Reader, seq int64) (tree.Hash, error) {
	tile, err := tiles.Tile(ctx, tree.TileKey{Level: 0, Index: seq / tree.TileWidth})
	if err != nil {
		return tree.Hash{}, err
	}
	off := int(seq%tree.TileWidth) * tree.HashSize
	if off+tree.HashSize > len(tile) {
		return tree.Hash{}, fmt.Errorf("auditlog: the tree holds no leaf hash for entry %d", seq)
	}
	return tree.Hash(tile[off : off+tree.HashSize]), nil
}
