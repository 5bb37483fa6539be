// Package auditlog is attest's tamper-evident audit trail: one append-only
// RFC 6962 Merkle tree per tenant, whose leaves are the canonical form of the
// stored events.
//
// Every append goes through one writer goroutine per process, which groups
// whatever is waiting into one database transaction: the entries, the tree
// tiles, the log state and, when a segment fills, the search index commit
// together or not at all. Several processes (attest serve and the one-shot
// commands) may append to the same database; each transaction re-reads the
// tenant's log state under the database's write lock and reloads its cached
// view when another process has moved the log on.
package auditlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/attest/attest/internal/archive"
	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/index"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/attest/attest/internal/tree"
	"golang.org/x/sync/semaphore"
)

// Config configures a Log. The zero value of each field has the documented
// default.
type Config struct {
	// Instance names this attest instance in checkpoint origins, which are
	// Instance + "/" + tenant name. Required.
	Instance string
	// Personal lists the event paths treated as personal data; nil means
	// event.DefaultPersonal. "original" is always personal.
	Personal []string
	// MaxBatch bounds the events in one transaction; zero means 8192.
	MaxBatch int
	// Linger is how long the writer waits for more events before it
	// commits a batch of events that were only enqueued, which nobody
	// waits on; zero means 20ms, negative not at all. A batch anyone
	// waits on commits at once.
	Linger time.Duration
	// QueueEvents bounds the events waiting for the writer; zero means
	// 65536. A full queue makes submitters wait.
	QueueEvents int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages; nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives measurements; nil means none.
	Metrics *Metrics
	// WitnessDir, when set, is a directory outside the database where the
	// log keeps the newest checkpoint it signed for each tenant, which
	// signing and verification then hold the log to.
	WitnessDir string
	// Archive keeps the archive segments of entries older than their
	// tenant's hot window; nil means entries are never archived, and
	// archived ones cannot be read.
	Archive archive.Store
}

// Log is the audit trail of every tenant in one database.
type Log struct {
	db      *store.DB
	cfg     Config
	keyring *personal.Keyring
	tenants *tenant.Registry
	key     *checkpoint.Key

	witnessMu    sync.Mutex
	witnessSizes map[string]int64 // largest witnessed size of each tenant's log
	log          *slog.Logger
	metrics      *Metrics
	personal     map[string]bool
	// personalPaths are the keys of personal in the sorted order of a
	// leaf's "personal" object.
	personalPaths []string
	bundles       *bundleCache
	archIdx       archiveIndexes
	keyers        sync.Map // tenant id -> *index.Keyer

	queue    chan *op
	entryBuf entryBuffers // the writer's
	segs     chan segmentJob
	room     *semaphore.Weighted
	stopped  chan struct{}
	done     chan struct{}

	obs observers

	closeMu sync.RWMutex // held for reading while submitting, for writing to close
	closed  bool

	mu     sync.Mutex
	states map[int64]*tenantState

	// verifySnapshotHook, when set, runs each time Verify has read the log
	// state of its snapshot: tests change the log there, under the walk.
	verifySnapshotHook func()
}

// ErrClosed is returned by appends after Close.
var ErrClosed = errors.New("auditlog: closed")

// Open returns a Log and starts its writer. key signs checkpoints.
func Open(db *store.DB, cfg Config, keyring *personal.Keyring, tenants *tenant.Registry, key *checkpoint.Key) (*Log, error) {
	if cfg.Instance == "" {
		return nil, errors.New("auditlog: instance name is required")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 8192
	}
	if cfg.Linger == 0 {
		cfg.Linger = 20 * time.Millisecond
	}
	if cfg.QueueEvents <= 0 {
		cfg.QueueEvents = 65536
	}
	cfg.QueueEvents = max(cfg.QueueEvents, cfg.MaxBatch)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Personal == nil {
		cfg.Personal = event.DefaultPersonal
	}
	pers := map[string]bool{event.PathOriginal: true}
	for _, p := range cfg.Personal {
		if !slices.Contains(event.ConfigurablePersonal, p) {
			return nil, fmt.Errorf("auditlog: %q cannot be declared personal; choose from %v", p, event.ConfigurablePersonal)
		}
		pers[p] = true
	}
	l := &Log{db: db, cfg: cfg, keyring: keyring, tenants: tenants, key: key, log: cfg.Logger,
		metrics: cfg.Metrics, personal: pers, personalPaths: personalPaths(pers), bundles: newBundleCache(2048),
		queue: make(chan *op, 1024), segs: make(chan segmentJob, 16), room: semaphore.NewWeighted(int64(cfg.QueueEvents)),
		stopped: make(chan struct{}), done: make(chan struct{}), states: map[int64]*tenantState{}}
	if err := db.Prepare(context.Background(), sqlInsertEntries, sqlDeleteFragments, sqlUpdateState,
		l.sqlLockState(), tree.SQLWriteTile); err != nil {
		return nil, err
	}
	go l.run()
	go l.buildSegments()
	return l, nil
}

// Origin returns the checkpoint origin of a tenant's log.
func (l *Log) Origin(tenantName string) string { return l.cfg.Instance + "/" + tenantName }

// VerifierKey returns the signed-note verifier key of a tenant's log.
func (l *Log) VerifierKey(tenantName string) (string, error) {
	return checkpoint.VerifierKey(l.Origin(tenantName), l.key.Public)
}

// Tenants returns the tenant registry the log uses.
func (l *Log) Tenants() *tenant.Registry { return l.tenants }

// Keyring returns the subject keyring the log uses.
func (l *Log) Keyring() *personal.Keyring { return l.keyring }

// DB returns the log's database.
func (l *Log) DB() *store.DB { return l.db }

// IsPersonal reports whether a path is treated as personal data.
func (l *Log) IsPersonal(path string) bool { return l.personal[path] }

// Close stops accepting appends, commits everything already submitted, and
// stops the writer. It returns when the writer has finished.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if !l.closed {
		l.closed = true
		close(l.stopped)
	}
	l.closeMu.Unlock()
	<-l.done
	return nil
}

// tenantState is what the writer knows of one tenant's log. The writer alone
// changes it; mu orders readers of mem and segs against those changes.
type tenantState struct {
	t *tenant.Tenant

	// Fields below are touched only by the writer goroutine, except where
	// noted.
	loaded       bool
	size         int64
	root         tree.Hash
	lastReceived int64
	edge         *tree.Edge
	open         *bundle // entries of the block being filled

	// building is set while a segment of this tenant's memtable is being
	// built and written.
	building bool

	mu   sync.Mutex // guards mem, segs and indexGen for readers
	mem  *index.Memtable
	segs []*index.Meta
	// indexGen is the log state's index generation that segs reflect:
	// a merge replaces segments and moves it on.
	indexGen int64
}

func (l *Log) state(t *tenant.Tenant) *tenantState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.states[t.ID]
	if st == nil {
		st = &tenantState{t: t}
		l.states[t.ID] = st
	}
	return st
}

func (l *Log) now() time.Time { return l.cfg.Now().UTC() }

// State is a tenant's log head as committed.
type State struct {
	Size int64
	Root tree.Hash
	// Archived is the end of the entries moved out of the database into
	// archive segments: [0, Archived) live in archives.
	Archived int64
	// Expired is the end of the entries whose payloads retention deleted:
	// of [0, Expired) only the leaf hashes remain, in the tree.
	Expired int64

	indexGen int64 // the index generation; see tenantState.indexGen
}

// Head returns the committed size and root of a tenant's log.
func (l *Log) Head(ctx context.Context, q store.Querier, tenantID int64) (State, error) {
	var s State
	var root []byte
	err := q.QueryRowContext(ctx, l.db.Rebind(`SELECT size, root, index_gen, archived_end, expired_end
		FROM log_state WHERE tenant_id = ?`), tenantID).Scan(&s.Size, &root, &s.indexGen, &s.Archived, &s.Expired)
	if err != nil {
		if isNoRows(err) {
			return State{Root: tree.EmptyRoot}, nil
		}
		return s, fmt.Errorf("auditlog: read log state: %w", err)
	}
	if len(root) != tree.HashSize {
		return s, fmt.Errorf("auditlog: log state of tenant %d has a malformed root", tenantID)
	}
	s.Root = tree.Hash(root)
	return s, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
