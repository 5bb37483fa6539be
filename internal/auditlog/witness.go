package auditlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tree"
)

// The witness is the newest checkpoint this data directory signed for each
// tenant, kept as a file beside the signing key rather than in the
// database. Someone who can write to the database but not to the data
// directory can then neither delete the checkpoints to rewrite the log
// unnoticed nor have attest sign a rewritten one.

// ErrRefusedToSign means the log's stored state disagrees with its tiles or
// with a checkpoint signed before, so that no checkpoint may be signed for it
// until the log is verified and repaired.
var ErrRefusedToSign = errors.New("auditlog: refused to sign a checkpoint")

// Witnesses are named after their tenant, not after its row in the
// database, which a database writer could renumber.
const witnessSuffix = ".checkpoint"

func (l *Log) witnessPath(tenantName string) string {
	return filepath.Join(l.cfg.WitnessDir, tenantName+witnessSuffix)
}

// Witness returns the newest checkpoint this data directory signed for the
// tenant, opened under the log's own key, or nil when there is none.
func (l *Log) Witness(tenantName string) (*checkpoint.Checkpoint, []byte, error) {
	if l.cfg.WitnessDir == "" {
		return nil, nil, nil
	}
	msg, err := os.ReadFile(l.witnessPath(tenantName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("auditlog: read the checkpoint witness: %w", err)
	}
	vk, err := l.VerifierKey(tenantName)
	if err != nil {
		return nil, nil, err
	}
	cp, err := checkpoint.Open(msg, l.Origin(tenantName), vk)
	if err != nil {
		return nil, nil, fmt.Errorf("auditlog: the checkpoint witness %s: %w", l.witnessPath(tenantName), err)
	}
	l.noteWitness(tenantName, cp.Size)
	return cp, msg, nil
}

// HasWitness reports whether this data directory signed a log of that
// tenant name. A database that lacks such a tenant has lost it, and the
// name must not start a new log.
func (l *Log) HasWitness(tenantName string) bool {
	if l.cfg.WitnessDir == "" {
		return false
	}
	_, err := os.Stat(l.witnessPath(tenantName))
	return err == nil
}

// Witnessed returns the tenant names this data directory signed logs of.
func (l *Log) Witnessed() ([]string, error) {
	if l.cfg.WitnessDir == "" {
		return nil, nil
	}
	des, err := os.ReadDir(l.cfg.WitnessDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditlog: read the checkpoint witnesses: %w", err)
	}
	var names []string
	for _, de := range des {
		if name, ok := strings.CutSuffix(de.Name(), witnessSuffix); ok && !strings.HasPrefix(name, ".") {
			names = append(names, name)
		}
	}
	return names, nil
}

// noteWitness remembers the largest witnessed size of a tenant's log, so
// that checkpoint publishing notices a log that shrank below it.
func (l *Log) noteWitness(tenantName string, size int64) {
	l.witnessMu.Lock()
	defer l.witnessMu.Unlock()
	if l.witnessSizes == nil {
		l.witnessSizes = map[string]int64{}
	}
	l.witnessSizes[tenantName] = max(l.witnessSizes[tenantName], size)
}

// witnessSize is the largest witnessed size of the tenant's log known,
// reading the witness the first time.
func (l *Log) witnessSize(tenantName string) int64 {
	l.witnessMu.Lock()
	n, ok := l.witnessSizes[tenantName]
	l.witnessMu.Unlock()
	if !ok {
		if _, _, err := l.Witness(tenantName); err != nil {
			return 0
		}
		l.noteWitness(tenantName, 0)
		l.witnessMu.Lock()
		n = l.witnessSizes[tenantName]
		l.witnessMu.Unlock()
	}
	return n
}

// recordWitness keeps note as the tenant's witness unless the witness
// already records a larger tree. The file is replaced whole.
func (l *Log) recordWitness(tenantName string, size int64, note []byte) error {
	if l.cfg.WitnessDir == "" {
		return nil
	}
	if err := os.MkdirAll(l.cfg.WitnessDir, 0o700); err != nil {
		return fmt.Errorf("auditlog: checkpoint witness: %w", err)
	}
	unlock, err := lockWitness(l.cfg.WitnessDir)
	if err != nil {
		return fmt.Errorf("auditlog: checkpoint witness: lock: %w", err)
	}
	defer unlock()
	if old, _, err := l.Witness(tenantName); err == nil && old != nil && old.Size >= size {
		return nil
	}
	f, err := os.CreateTemp(l.cfg.WitnessDir, ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("auditlog: checkpoint witness: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(note); err != nil {
		f.Close()
		return fmt.Errorf("auditlog: checkpoint witness: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("auditlog: checkpoint witness: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("auditlog: checkpoint witness: %w", err)
	}
	if err := os.Rename(f.Name(), l.witnessPath(tenantName)); err != nil {
		return fmt.Errorf("auditlog: checkpoint witness: %w", err)
	}
	if err := syncDir(l.cfg.WitnessDir); err != nil {
		return fmt.Errorf("auditlog: checkpoint witness: %w", err)
	}
	l.noteWitness(tenantName, size)
	return nil
}

// errNothingToSign means the log's state is already covered by a stored
// checkpoint, signed meanwhile by another process.
var errNothingToSign = errors.New("auditlog: nothing to sign")

// provenHead returns the tenant's log state once the stored tiles prove its
// root and prove that the tree still has the roots of the newest stored
// checkpoint and of the witness: the log only grew since they were signed.
// The witness is read before the snapshot is taken, so that a checkpoint
// another process signs meanwhile is never mistaken for a rollback.
func (l *Log) provenHead(ctx context.Context, tenantID int64, tenantName string) (State, error) {
	w, _, err := l.Witness(tenantName)
	if err != nil {
		return State{}, fmt.Errorf("%w for %s: %v", ErrRefusedToSign, tenantName, err)
	}
	var head State
	err = l.db.ReadTx(ctx, func(tx *sql.Tx) error {
		if head, err = l.Head(ctx, tx, tenantID); err != nil {
			return err
		}
		size := head.Size
		tiles := tree.NewReader(l.db, tx, tenantID)
		got, err := tree.TreeHash(ctx, tiles, size)
		if err != nil {
			return fmt.Errorf("%w for %s at size %d: the stored tiles do not hold that tree: %v",
				ErrRefusedToSign, tenantName, size, err)
		}
		if got != head.Root {
			return fmt.Errorf("%w for %s at size %d: the log state's root is not the root of the stored tiles",
				ErrRefusedToSign, tenantName, size)
		}
		type prior struct {
			what string
			size int64
			root tree.Hash
		}
		var priors []prior
		switch last, err := l.LatestCheckpoint(ctx, tx, tenantID); {
		case err == nil:
			if last.Size == size {
				return errNothingToSign
			}
			priors = append(priors, prior{"the newest stored checkpoint", last.Size, last.Root})
		case !errors.Is(err, ErrNoCheckpoint):
			return err
		}
		if w != nil {
			priors = append(priors, prior{"the checkpoint this data directory signed last", w.Size, w.Root})
			// The witness is written after its checkpoint is stored.
			if w.Size <= size {
				_, err := l.CheckpointAt(ctx, tx, tenantID, w.Size)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("%w for %s: the checkpoint at size %d that this data directory signed is missing "+
						"from the database: checkpoints have been deleted", ErrRefusedToSign, tenantName, w.Size)
				}
				if err != nil {
					return err
				}
			}
		}
		for _, p := range priors {
			if p.size > size {
				return fmt.Errorf("%w for %s at size %d: %s is at size %d: the log has been truncated or rolled back",
					ErrRefusedToSign, tenantName, size, p.what, p.size)
			}
			got, err := tree.TreeHash(ctx, tiles, p.size)
			if err != nil {
				return fmt.Errorf("%w for %s: %v", ErrRefusedToSign, tenantName, err)
			}
			if got != p.root {
				return fmt.Errorf("%w for %s at size %d: the stored tree no longer has the root of %s at size %d: "+
					"the log has been rewritten", ErrRefusedToSign, tenantName, size, p.what, p.size)
			}
		}
		return nil
	})
	return head, err
}
