// Package tenant keeps the registry of tenants: the operator's own scope and
// each customer organisation. Every record that belongs to a tenant carries
// its id.
package tenant

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
)

// Operator is the system tenant that holds the operator's own audit trail:
// tenant management, operator keys, and requests that name no tenant.
const Operator = "operator"

// Default is the tenant created on a fresh data directory.
const Default = "default"

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ValidateName checks a tenant name: a lowercase letter, then up to 62
// lowercase letters, digits or hyphens.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("tenant name %q must be a lowercase letter followed by up to 62 lowercase letters, digits or hyphens", name)
	}
	return nil
}

// Tenant is one tenant.
type Tenant struct {
	ID        int64
	Name      string
	System    bool
	CreatedAt time.Time
	// IndexKey keys the index terms of personal values.
	IndexKey []byte
}

// Registry reads and creates tenants, caching them: tenants are never
// renamed or deleted, so a cached tenant stays true.
type Registry struct {
	db  *store.DB
	kek *personal.Sealer

	mu     sync.Mutex
	byName map[string]*Tenant
	byID   map[int64]*Tenant
}

// NewRegistry returns a registry over db.
func NewRegistry(db *store.DB, kek *personal.Sealer) *Registry {
	return &Registry{db: db, kek: kek, byName: map[string]*Tenant{}, byID: map[int64]*Tenant{}}
}

func indexKeyAAD(name string) []byte { return []byte("attest/tenant-index-key/v1\x00" + name) }

// ErrExists is returned when creating a tenant whose name is taken.
var ErrExists = errors.New("tenant: a tenant with that name exists")

// Create adds a tenant in tx.
func (r *Registry) Create(ctx context.Context, tx *sql.Tx, name string, system bool, now time.Time) (*Tenant, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	t := &Tenant{Name: name, System: system, CreatedAt: now.UTC().Truncate(time.Microsecond), IndexKey: key}
	err := tx.QueryRowContext(ctx, r.db.Rebind(`INSERT INTO tenants (name, system, index_key, created_at)
		VALUES (?, ?, ?, ?) RETURNING id`), name, system, r.kek.Wrap(key, indexKeyAAD(name)),
		t.CreatedAt.UnixMicro()).Scan(&t.ID)
	if store.IsUniqueViolation(err) {
		return nil, fmt.Errorf("%w: %s", ErrExists, name)
	}
	if err != nil {
		return nil, fmt.Errorf("tenant: create %s: %w", name, err)
	}
	return t, nil
}

// ByName returns the tenant with the given name, or store.ErrNotFound.
func (r *Registry) ByName(ctx context.Context, name string) (*Tenant, error) {
	r.mu.Lock()
	t := r.byName[name]
	r.mu.Unlock()
	if t != nil {
		return t, nil
	}
	if !store.StorableText(name) {
		return nil, store.ErrNotFound
	}
	return r.load(ctx, `name = ?`, name)
}

// ByID returns the tenant with the given id, or store.ErrNotFound.
func (r *Registry) ByID(ctx context.Context, id int64) (*Tenant, error) {
	r.mu.Lock()
	t := r.byID[id]
	r.mu.Unlock()
	if t != nil {
		return t, nil
	}
	return r.load(ctx, `id = ?`, id)
}

func (r *Registry) load(ctx context.Context, where string, arg any) (*Tenant, error) {
	ts, err := r.query(ctx, where, arg)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, store.ErrNotFound
	}
	return ts[0], nil
}

// List returns every tenant, ordered by name.
func (r *Registry) List(ctx context.Context) ([]*Tenant, error) {
	return r.query(ctx, `1 = 1`, nil)
}

func (r *Registry) query(ctx context.Context, where string, arg any) ([]*Tenant, error) {
	q := `SELECT id, name, system, index_key, created_at FROM tenants WHERE ` + where + ` ORDER BY name`
	var args []any
	if arg != nil {
		args = append(args, arg)
	}
	rows, err := r.db.Read.QueryContext(ctx, r.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("tenant: query: %w", err)
	}
	defer rows.Close()
	var out []*Tenant
	for rows.Next() {
		t := &Tenant{}
		var wrapped []byte
		var created int64
		if err := rows.Scan(&t.ID, &t.Name, &t.System, &wrapped, &created); err != nil {
			return nil, fmt.Errorf("tenant: read: %w", err)
		}
		t.CreatedAt = time.UnixMicro(created).UTC()
		if t.IndexKey, err = r.kek.Unwrap(wrapped, indexKeyAAD(t.Name)); err != nil {
			return nil, fmt.Errorf("tenant %s: index key: %w", t.Name, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tenant: query: %w", err)
	}
	r.mu.Lock()
	for _, t := range out {
		r.byName[t.Name], r.byID[t.ID] = t, t
	}
	r.mu.Unlock()
	return out, nil
}
