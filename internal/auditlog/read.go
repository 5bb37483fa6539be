package auditlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// Record is one stored event as the read API returns it.
type Record struct {
	Sequence int64
	LeafHash tree.Hash
	// Leaf is the canonical leaf the tree commits to.
	Leaf []byte
	// Event is the decoded leaf with its personal values restored where
	// the subject's key still exists.
	Event *event.Event
	// Erased lists the personal paths whose values were destroyed.
	Erased []string
	// Committed lists the personal paths the leaf commits to.
	Committed []string
}

// Read returns the event at seq in the snapshot q reads, which must be below
// the snapshot's log size.
func (l *Log) Read(ctx context.Context, q store.Querier, t *tenant.Tenant, seq int64) (*Record, error) {
	if err := l.keyring.Sync(ctx); err != nil {
		return nil, err
	}
	head, err := l.Head(ctx, q, t.ID)
	if err != nil {
		return nil, err
	}
	if seq < head.Expired {
		return nil, fmt.Errorf("auditlog: entry %d: %w", seq, ErrExpired)
	}
	leaf, sealed, err := l.entry(ctx, q, t.ID, seq)
	if err != nil {
		return nil, err
	}
	return l.record(ctx, t, seq, leaf, sealed)
}

func (l *Log) record(ctx context.Context, t *tenant.Tenant, seq int64, leaf, sealed []byte) (*Record, error) {
	r, lf, err := decodeRecord(seq, leaf)
	if err != nil {
		return nil, err
	}
	return r, l.restorePersonal(ctx, t, r, lf, sealed)
}

// decodeRecord decodes a stored leaf into a record without its personal
// values.
func decodeRecord(seq int64, leaf []byte) (*Record, *event.Leaf, error) {
	ev, lf, err := event.DecodeLeaf(leaf)
	if err != nil {
		return nil, nil, &CorruptError{Sequence: seq, Err: err}
	}
	if ev.Sequence != seq {
		return nil, nil, fmt.Errorf("auditlog: the entry stored at %d says it is sequence %d", seq, ev.Sequence)
	}
	r := &Record{Sequence: seq, Leaf: leaf, Event: ev}
	for p := range lf.Personal {
		r.Committed = append(r.Committed, p)
	}
	return r, lf, nil
}

// CorruptError says that a stored entry cannot be read: the database was
// changed outside attest. It deliberately does not unwrap to the decoder's
// error, so that nobody reports it as a fault of the caller's request.
type CorruptError struct {
	Sequence int64
	Err      error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("auditlog: the stored entry %d cannot be read (attest verify tells what is wrong): %v", e.Sequence, e.Err)
}

// restorePersonal opens a record's sealed personal values, checked against
// their commitments, and puts them in place, or marks them erased.
func (l *Log) restorePersonal(ctx context.Context, t *tenant.Tenant, r *Record, lf *event.Leaf, sealed []byte) error {
	seq, ev := r.Sequence, r.Event
	r.LeafHash = tree.LeafHash(r.Leaf)
	vals, err := l.openPersonal(ctx, t, ev, lf, sealed)
	switch {
	case errors.Is(err, personal.ErrErased):
		r.Erased = r.Committed
	case err != nil:
		return fmt.Errorf("auditlog: personal values of %d: %w", seq, err)
	}
	for _, v := range vals {
		ev.SetPersonalValue(v.Path, v.Data)
	}
	return nil
}

// Inclusion is an inclusion proof of one entry in a tree.
type Inclusion struct {
	Sequence int64
	LeafHash tree.Hash
	TreeSize int64
	Root     tree.Hash
	Hashes   []tree.Hash
	// Checkpoint is the signed checkpoint at TreeSize, when one exists.
	Checkpoint []byte
}

// ErrBadSize means a requested tree size is beyond the log.
var ErrBadSize = errors.New("auditlog: tree size beyond the log")

// ProveInclusion proves entry seq in the tree of the given size; size 0
// means the latest signed checkpoint.
func (l *Log) ProveInclusion(ctx context.Context, q store.Querier, t *tenant.Tenant, seq, size int64) (*Inclusion, error) {
	var cpNote []byte
	if size == 0 {
		cp, err := l.LatestCheckpoint(ctx, q, t.ID)
		if err != nil {
			return nil, err
		}
		size, cpNote = cp.Size, cp.Note
	} else {
		head, err := l.Head(ctx, q, t.ID)
		if err != nil {
			return nil, err
		}
		if size > head.Size {
			return nil, fmt.Errorf("%w: size %d, log has %d entries", ErrBadSize, size, head.Size)
		}
		if cp, err := l.CheckpointAt(ctx, q, t.ID, size); err == nil {
			cpNote = cp.Note
		}
	}
	if seq < 0 || seq >= size {
		return nil, fmt.Errorf("%w: entry %d is not in a tree of size %d", store.ErrNotFound, seq, size)
	}
	r := tree.NewReader(l.db, q, t.ID)
	hashes, err := tree.ProveInclusion(ctx, r, size, seq)
	if err != nil {
		return nil, err
	}
	root, err := tree.TreeHash(ctx, r, size)
	if err != nil {
		return nil, err
	}
	leaf, err := r.HashReader(ctx).ReadHashes([]int64{storedLeafIndex(seq)})
	if err != nil {
		return nil, err
	}
	return &Inclusion{Sequence: seq, LeafHash: leaf[0], TreeSize: size, Root: root, Hashes: hashes, Checkpoint: cpNote}, nil
}

// Consistency is a consistency proof between two tree sizes.
type Consistency struct {
	Old, New         int64
	OldRoot, NewRoot tree.Hash
	Hashes           []tree.Hash
}

// ProveConsistency proves that the tree of size newer extends the tree of
// size older; newer 0 means the latest signed checkpoint.
func (l *Log) ProveConsistency(ctx context.Context, q store.Querier, t *tenant.Tenant, older, newer int64) (*Consistency, error) {
	if newer == 0 {
		cp, err := l.LatestCheckpoint(ctx, q, t.ID)
		if err != nil {
			return nil, err
		}
		newer = cp.Size
	}
	head, err := l.Head(ctx, q, t.ID)
	if err != nil {
		return nil, err
	}
	if newer > head.Size {
		return nil, fmt.Errorf("%w: size %d, log has %d entries", ErrBadSize, newer, head.Size)
	}
	if older < 0 || older > newer {
		return nil, fmt.Errorf("auditlog: no consistency proof from size %d to size %d", older, newer)
	}
	r := tree.NewReader(l.db, q, t.ID)
	c := &Consistency{Old: older, New: newer}
	if c.Hashes, err = tree.ProveConsistency(ctx, r, newer, older); err != nil {
		return nil, err
	}
	if c.OldRoot, err = tree.TreeHash(ctx, r, older); err != nil {
		return nil, err
	}
	if c.NewRoot, err = tree.TreeHash(ctx, r, newer); err != nil {
		return nil, err
	}
	return c, nil
}

// storedLeafIndex is the tlog stored-hash index of leaf n.
func storedLeafIndex(n int64) int64 {
	return tlog.StoredHashIndex(0, n)
}

// FindLeaf returns the sequence number of the entry with the given leaf
// hash, or store.ErrNotFound.
func (l *Log) FindLeaf(ctx context.Context, t *tenant.Tenant, leafHash tree.Hash) (int64, error) {
	for attempt := 0; ; attempt++ {
		seq, err := l.findLeaf(ctx, t, leafHash)
		if errors.Is(err, errStaleIndex) && attempt < 2 {
			if err := l.Sync(ctx, t); err != nil {
				return 0, fmt.Errorf("auditlog: catch up with the index: %w", err)
			}
			continue
		}
		return seq, err
	}
}

func (l *Log) findLeaf(ctx context.Context, t *tenant.Tenant, leafHash tree.Hash) (int64, error) {
	terms := []index.Term{index.LeafTerm(leafHash[:])}
	v, err := l.view(ctx, t, terms)
	if err != nil {
		return 0, err
	}
	found := int64(-1)
	err = l.db.ReadTx(ctx, func(tx *sql.Tx) error {
		head, err := l.Head(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		if head.indexGen != v.gen {
			return errStaleIndex
		}
		var ferr error
		s := l.searcher(tx, v)
		err = s.Run(ctx, &index.Query{All: terms, Hi: min(head.Size, v.mem.Size)}, func(seqs []int64) bool {
			for _, seq := range seqs {
				leaf, _, err := l.entry(ctx, tx, t.ID, seq)
				if err != nil {
					ferr = err
					return false
				}
				if tree.LeafHash(leaf) == leafHash {
					found = seq
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
	if err != nil {
		return 0, err
	}
	if found < 0 {
		return 0, store.ErrNotFound
	}
	return found, nil
}

// BundleLeaves returns the leaves stored so far in entry bundle idx of a
// tenant's log: all 256 of a full bundle, fewer of the last one.
func (l *Log) BundleLeaves(ctx context.Context, q store.Querier, t *tenant.Tenant, idx int64) ([][]byte, error) {
	b, err := l.readBundle(ctx, q, t.ID, idx*tree.TileWidth)
	if err != nil {
		return nil, err
	}
	return b.leaves, nil
}

// EncodeBundle encodes leaves as a C2SP entry bundle.
func EncodeBundle(leaves [][]byte) []byte { return encodeLeaves(leaves) }
