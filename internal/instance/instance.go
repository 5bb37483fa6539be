// Package instance opens an attest data directory and its database, creating
// what a fresh one lacks (the database schema, the log signing key, the
// key-encryption key, the operator and default tenants), and wires the audit
// log to them. serve and every one-shot command start here.
package instance

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/archive"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/checkpoint"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json/jsontext"
)

// Options say which data directory and database to open.
type Options struct {
	// DataDir holds keys, the TLS certificate and, without DatabaseURL, the
	// SQLite database. Required.
	DataDir string
	// DatabaseURL selects PostgreSQL.
	DatabaseURL string
	// Name is the instance name used in checkpoint origins when the
	// database is created; later it is read from the database.
	Name string
	// Personal overrides the personal field paths.
	Personal []string
	// Log tunes the audit log.
	Log auditlog.Config
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages.
	Logger *slog.Logger
	// MustExist refuses a data directory or database that attest serve has
	// not initialised, instead of initialising it: a mistyped path must not
	// look like an empty, intact log.
	MustExist bool
}

// ErrNotInitialised means MustExist found no attest instance.
var ErrNotInitialised = errors.New("instance: not an attest data directory or database")

// Instance is an open attest data directory.
type Instance struct {
	DB         *store.DB
	Name       string
	KEK        *personal.Sealer
	Keyring    *personal.Keyring
	Tenants    *tenant.Registry
	Keys       *access.Keys
	Grants     *access.Grants
	Elevations *access.Elevations
	Identity   *identity.Service
	SigningKey *checkpoint.Key
	Log        *auditlog.Log
	Now        func() time.Time
	// Logger receives operational messages.
	Logger *slog.Logger

	dataDir string
}

// Paths inside a data directory.
const (
	SigningKeyFile = "log-signing.key"
	// WitnessDir, under the data directory, keeps the newest checkpoint
	// signed for each tenant.
	WitnessDir = "checkpoints"
	// ArchiveDir, under the data directory, keeps archive segments unless
	// an S3-compatible bucket is configured.
	ArchiveDir = "archive"
	KEKFile    = "kek.key"
)

// Open opens the data directory and database, creating and migrating what
// is missing.
func Open(ctx context.Context, opts Options) (*Instance, error) {
	if opts.DataDir == "" {
		return nil, errors.New("instance: data directory is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MustExist {
		if err := checkExists(ctx, opts); err != nil {
			return nil, err
		}
	}
	key, created, err := checkpoint.LoadOrCreateKey(filepath.Join(opts.DataDir, SigningKeyFile))
	if err != nil {
		return nil, err
	}
	if created {
		opts.Logger.Info("created log signing key", "key", key, "path", filepath.Join(opts.DataDir, SigningKeyFile))
	}
	kek, _, err := personal.LoadOrCreateKEK(filepath.Join(opts.DataDir, KEKFile))
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, store.Options{DataDir: opts.DataDir, URL: opts.DatabaseURL})
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	in := &Instance{DB: db, KEK: kek, SigningKey: key, Now: opts.Now, Logger: opts.Logger, dataDir: opts.DataDir}
	in.Keyring = personal.NewKeyring(db, kek, opts.Now)
	in.Tenants = tenant.NewRegistry(db, kek)
	in.Keys = access.NewKeys(db, opts.Now)
	in.Grants = access.NewGrants(db, opts.Now)
	in.Elevations = access.NewElevations(db, opts.Now)
	if in.Name, err = instanceName(ctx, db, opts.DataDir, opts.Name); err != nil {
		db.Close()
		return nil, err
	}
	// Authenticator apps show the issuer beside each code.
	issuer := in.Name
	if !strings.Contains(strings.ToLower(issuer), "attest") {
		issuer = "attest " + issuer
	}
	in.Identity = identity.NewService(db, kek, issuer, opts.Now)
	cfg := opts.Log
	if cfg.Archive == nil {
		if cfg.Archive, err = archive.NewDir(filepath.Join(opts.DataDir, ArchiveDir)); err != nil {
			db.Close()
			return nil, err
		}
	}
	cfg.Instance = in.Name
	cfg.WitnessDir = filepath.Join(opts.DataDir, WitnessDir)
	cfg.Now = opts.Now
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	if opts.Personal != nil {
		cfg.Personal = opts.Personal
	}
	if in.Log, err = auditlog.Open(db, cfg, in.Keyring, in.Tenants, key); err != nil {
		db.Close()
		return nil, err
	}
	if err := in.Log.RegisterKey(ctx); err != nil {
		in.Close()
		return nil, err
	}
	if err := in.ensureTenants(ctx); err != nil {
		in.Close()
		return nil, err
	}
	return in, nil
}

func checkExists(ctx context.Context, opts Options) error {
	for _, f := range []string{SigningKeyFile, KEKFile} {
		if _, err := os.Stat(filepath.Join(opts.DataDir, f)); err != nil {
			return fmt.Errorf("%w: %s has no %s (run attest serve --data-dir %s to create one)", ErrNotInitialised,
				opts.DataDir, f, opts.DataDir)
		}
	}
	if opts.DatabaseURL == "" {
		if _, err := os.Stat(filepath.Join(opts.DataDir, "attest.db")); err != nil {
			return fmt.Errorf("%w: %s has no database (run attest serve --data-dir %s to create one)", ErrNotInitialised,
				opts.DataDir, opts.DataDir)
		}
		return nil
	}
	db, err := store.Open(ctx, store.Options{DataDir: opts.DataDir, URL: opts.DatabaseURL})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CheckSchema(ctx); err != nil && !errors.Is(err, store.ErrSchemaTooNew) {
		return fmt.Errorf("%w: the database has no attest schema (run attest serve to create it)", ErrNotInitialised)
	}
	return nil
}

// Close flushes the audit log and closes the database.
func (in *Instance) Close() error {
	in.Log.Close()
	return in.DB.Close()
}

// DataDir is the instance's data directory.
func (in *Instance) DataDir() string { return in.dataDir }

// ErrLostTenant means the database lacks what the data directory proves it
// held: an instance record or a tenant whose log was signed.
var ErrLostTenant = errors.New("instance: the database has lost what this data directory signed")

func instanceName(ctx context.Context, db *store.DB, dataDir, want string) (string, error) {
	var name string
	err := db.Read.QueryRowContext(ctx, `SELECT value FROM instance WHERE name = 'name'`).Scan(&name)
	if err == nil {
		return name, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("instance: read name: %w", err)
	}
	// A data directory that signed logs before belongs to a database that
	// had an instance record: this one has been wiped or replaced.
	if des, err := os.ReadDir(filepath.Join(dataDir, WitnessDir)); err == nil && len(des) > 0 {
		return "", fmt.Errorf("%w: the database has no instance record, but %s holds checkpoints this data directory "+
			"signed: the database was wiped or is not this directory's; restore it from a backup",
			ErrLostTenant, filepath.Join(dataDir, WitnessDir))
	}
	if want == "" {
		b := make([]byte, 4)
		rand.Read(b)
		want = "attest-" + hex.EncodeToString(b)
	}
	if err := ValidateName(want); err != nil {
		return "", err
	}
	if _, err := db.Write.ExecContext(ctx, db.Rebind(`INSERT INTO instance (name, value) VALUES ('name', ?)
		ON CONFLICT (name) DO NOTHING`), want); err != nil {
		return "", fmt.Errorf("instance: store name: %w", err)
	}
	err = db.Write.QueryRowContext(ctx, `SELECT value FROM instance WHERE name = 'name'`).Scan(&name)
	if err != nil {
		return "", fmt.Errorf("instance: read name: %w", err)
	}
	return name, nil
}

// ValidateName checks an instance name for use in checkpoint origins: a
// schema-less URL path of letters, digits and . - _ / with no spaces or plus
// signs.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > 200 {
		return fmt.Errorf("instance name must have 1 to 200 characters")
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '/'
		if !ok {
			return fmt.Errorf("instance name %q may contain only letters, digits and . - _ /", name)
		}
	}
	return nil
}

// SystemActor is the actor of changes attest makes on its own.
func SystemActor() event.Actor {
	return event.Actor{Type: "system", ID: "attest"}
}

// ensureTenants creates the operator and default tenants of a fresh
// database, each creation logged in the operator's trail.
func (in *Instance) ensureTenants(ctx context.Context) error {
	for _, name := range []string{tenant.Operator, tenant.Default} {
		if _, err := in.Tenants.ByName(ctx, name); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := in.CreateTenant(ctx, name, name == tenant.Operator, SystemActor(), nil); err != nil &&
			!errors.Is(err, tenant.ErrExists) {
			return err
		}
	}
	return nil
}

// CreateTenant creates a tenant and records it in the operator's trail in
// the same transaction. decorate, when set, completes the audit event (the
// request, the source).
func (in *Instance) CreateTenant(ctx context.Context, name string, system bool, actor event.Actor, decorate func(*event.Event)) error {
	if err := tenant.ValidateName(name); err != nil {
		return err
	}
	if _, err := in.Tenants.ByName(ctx, name); errors.Is(err, store.ErrNotFound) && in.Log.HasWitness(name) {
		return fmt.Errorf("%w: this data directory signed a log of tenant %q before (%s), which the database no "+
			"longer holds: the database has lost it; restore the database from a backup rather than start a new log "+
			"under the same name and key", ErrLostTenant, name, filepath.Join(in.dataDir, WitnessDir, name+".checkpoint"))
	}
	op, err := in.operatorTenant(ctx, name == tenant.Operator)
	if err != nil {
		return err
	}
	ev := in.ChangeEvent("tenant.create", "admin", actor, event.Target{Type: "tenant", ID: name, Name: name})
	if decorate != nil {
		decorate(ev)
	}
	var created *tenant.Tenant
	change := func(ctx context.Context, tx *sql.Tx) error {
		t, err := in.Tenants.Create(ctx, tx, name, system, in.Now())
		created = t
		return err
	}
	if op == nil {
		// The operator tenant itself: create it first, then log into it.
		if err := in.DB.InTx(ctx, func(tx *sql.Tx) error { return change(ctx, tx) }); err != nil {
			return err
		}
		op = created
		ev.Clean()
		p, err := in.Log.Prepare(ctx, op, ev)
		if err != nil {
			return err
		}
		_, err = in.Log.Append(ctx, op, []*auditlog.Prepared{p})
		return err
	}
	ev.Clean()
	p, err := in.Log.Prepare(ctx, op, ev)
	if err != nil {
		return err
	}
	_, err = in.Log.Do(ctx, op, change, p)
	return err
}

func (in *Instance) operatorTenant(ctx context.Context, creatingIt bool) (*tenant.Tenant, error) {
	t, err := in.Tenants.ByName(ctx, tenant.Operator)
	if errors.Is(err, store.ErrNotFound) && creatingIt {
		return nil, nil
	}
	return t, err
}

// Operator returns the operator tenant.
func (in *Instance) Operator(ctx context.Context) (*tenant.Tenant, error) {
	return in.Tenants.ByName(ctx, tenant.Operator)
}

// ChangeEvent returns a success event of attest's own for a change.
func (in *Instance) ChangeEvent(action, category string, actor event.Actor, target event.Target) *event.Event {
	ev := event.New()
	ev.OccurredAt = in.Now().UTC()
	ev.Source = event.Source{Name: "attest"}
	ev.Actor = actor
	ev.Action = action
	ev.Category = category
	ev.Target = target
	ev.Outcome = event.Outcome{Result: "success"}
	return ev
}

// CreateKey creates an API key in tenant t and records it in t's trail in
// the same transaction. A key a person creates belongs to them.
func (in *Instance) CreateKey(ctx context.Context, t *tenant.Tenant, role access.Role, name string, expires time.Time,
	actor event.Actor, decorate func(*event.Event)) (access.Token, *access.Key, error) {
	var owner string
	if actor.Type == "user" && !strings.HasPrefix(actor.ID, "host:") {
		owner = actor.ID
	}
	return in.CreateOwnedKey(ctx, t, role, name, expires, owner, actor, decorate)
}

// CreateOwnedKey is CreateKey for a key that belongs to owner, a user id or
// a marker such as the break-glass account's: revoking the owner's access
// revokes the key.
func (in *Instance) CreateOwnedKey(ctx context.Context, t *tenant.Tenant, role access.Role, name string, expires time.Time,
	owner string, actor event.Actor, decorate func(*event.Event)) (access.Token, *access.Key, error) {
	id := access.NewKeyID()
	ev := in.ChangeEvent("apikey.create", "admin", actor, event.Target{Type: "api_key", ID: id, Name: name})
	ev.Details = detailsJSON(map[string]any{"role": string(role), "tenant": t.Name})
	if decorate != nil {
		decorate(ev)
	}
	ev.Clean()
	p, err := in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return "", nil, err
	}
	var tok access.Token
	var key *access.Key
	_, err = in.Log.Do(ctx, t, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		tok, key, err = in.Keys.Create(ctx, tx, id, t.ID, role, name, expires, owner)
		return err
	}, p)
	if err != nil {
		return "", nil, err
	}
	return tok, key, nil
}

// RevokeKey revokes an API key of tenant t (any tenant when t is the
// operator) and records it in the key's tenant's trail.
func (in *Instance) RevokeKey(ctx context.Context, scope *tenant.Tenant, id string, actor event.Actor, decorate func(*event.Event)) (*access.Key, error) {
	var tenantID int64
	if scope.Name != tenant.Operator {
		tenantID = scope.ID
	}
	k, err := in.Keys.Get(ctx, in.DB.Read, tenantID, id)
	if err != nil {
		return nil, err
	}
	owner, err := in.Tenants.ByID(ctx, k.TenantID)
	if err != nil {
		return nil, err
	}
	ev := in.ChangeEvent("apikey.revoke", "admin", actor, event.Target{Type: "api_key", ID: id, Name: k.Name})
	if decorate != nil {
		decorate(ev)
	}
	ev.Clean()
	p, err := in.Log.Prepare(ctx, owner, ev)
	if err != nil {
		return nil, err
	}
	_, err = in.Log.Do(ctx, owner, func(ctx context.Context, tx *sql.Tx) error {
		return in.Keys.Revoke(ctx, tx, id)
	}, p)
	if err != nil {
		return nil, err
	}
	k.RevokedAt = in.Now().UTC()
	return k, nil
}

// RecordAccess records in tenant t's trail, and waits for its commit, an
// access about to hand data over, such as an export: the data leaves only
// once it is on record.
func (in *Instance) RecordAccess(ctx context.Context, t *tenant.Tenant, action string, actor event.Actor,
	details map[string]any, decorate func(*event.Event)) error {
	ev := in.ChangeEvent(action, "data_access", actor, event.Target{Type: "tenant", ID: t.Name, Name: t.Name})
	if len(details) > 0 {
		ev.Details = detailsJSON(details)
	}
	if decorate != nil {
		decorate(ev)
	}
	return in.Record(ctx, t, ev)
}

// Record appends one event attest assembled itself to tenant t's trail and
// waits for its commit.
func (in *Instance) Record(ctx context.Context, t *tenant.Tenant, ev *event.Event) error {
	ev.Clean()
	p, err := in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return err
	}
	rs, err := in.Log.Append(ctx, t, []*auditlog.Prepared{p})
	if err == nil && len(rs) == 1 && rs[0].Err != nil {
		err = rs[0].Err
	}
	return err
}

// ErasureError says why an erasure request cannot be carried out as given.
type ErasureError struct {
	Field  string // "subject" or "reason"
	Reason string
}

func (e *ErasureError) Error() string { return e.Field + ": " + e.Reason }

// CheckErasure returns an *ErasureError when subject or reason cannot be
// used: a subject no event can hold, or a missing or unstorable reason.
func CheckErasure(subject, reason string) error {
	switch {
	case subject == "":
		return &ErasureError{"subject", "an actor id is required"}
	case len(subject) > event.MaxActorID:
		return &ErasureError{"subject", fmt.Sprintf("longer than %d bytes, so no event holds it", event.MaxActorID)}
	case event.CleanText(subject, event.MaxActorID) != subject:
		return &ErasureError{"subject", "holds a control character or invalid UTF-8, so no event holds it"}
	case strings.TrimSpace(reason) == "":
		return &ErasureError{"reason", "required: say why, such as the request it answers"}
	case len(reason) > event.MaxReason:
		return &ErasureError{"reason", fmt.Sprintf("longer than %d bytes", event.MaxReason)}
	case event.CleanText(reason, event.MaxReason) != reason || access.UnsafeText(reason):
		return &ErasureError{"reason", "holds a control character, a bidirectional formatting character or invalid UTF-8"}
	}
	return nil
}

// OwnActor reports whether subject is one of attest's own actors: an API
// key ("apikey:...") or a user of the host's command line ("host:..."),
// whose personal values in attest's own trail are the evidence of what
// they did with it.
func OwnActor(subject string) bool {
	return strings.HasPrefix(subject, "apikey:") || strings.HasPrefix(subject, "host:")
}

// EraseSubject destroys the keys of every personal value of subject (an
// actor id) in tenant t, in the same transaction as the audit event that
// records it. The event names the subject and the reason, never an erased
// value. Afterwards those values read as erased in every query and export,
// while every leaf, hash and proof stays as it was. Erasing a subject whose
// keys are all destroyed already succeeds with zero generations; a subject
// the tenant holds no personal values of is personal.ErrUnknownSubject.
func (in *Instance) EraseSubject(ctx context.Context, t *tenant.Tenant, subject, reason string, actor event.Actor,
	decorate func(*event.Event)) (*personal.Erasure, error) {
	if err := CheckErasure(subject, reason); err != nil {
		return nil, err
	}
	ev := in.ChangeEvent("privacy.subject.erase", "data_change", actor, event.Target{Type: "subject", ID: subject})
	ev.Details = detailsJSON(map[string]any{"reason": reason})
	if decorate != nil {
		decorate(ev)
	}
	ev.Clean()
	p, err := in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return nil, err
	}
	var done *personal.Erasure
	_, err = in.Log.Do(ctx, t, func(ctx context.Context, tx *sql.Tx) error {
		pol, err := in.Log.Policy(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		if pol.LegalHold {
			return fmt.Errorf("%w (%s); release the hold before erasing", auditlog.ErrLegalHold, pol.HoldReason)
		}
		done, err = in.Log.Keyring().EraseTx(ctx, tx, t.ID, subject)
		return err
	}, p)
	// Forgotten even on failure: a commit whose answer was lost may have
	// destroyed the keys all the same.
	in.Log.Keyring().Forget()
	if err != nil {
		return nil, err
	}
	if done.Generations > 0 {
		if err := in.DB.Scrub(ctx); err != nil {
			in.Logger.Warn("the destroyed subject keys may linger in the database's write-ahead log until it is "+
				"written over", "error", err)
		}
	}
	return done, nil
}

// detailsJSON encodes a small details object in canonical form.
func detailsJSON(v map[string]any) jsontext.Value {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	val := jsontext.Value(b)
	if err := val.Canonicalize(); err != nil {
		panic(err)
	}
	return val
}

// ClaimBootstrap reports whether the caller is the first ever to ask, and so
// should create the bootstrap operator key. Later calls, by any process,
// return false.
func (in *Instance) ClaimBootstrap(ctx context.Context) (bool, error) {
	res, err := in.DB.Write.ExecContext(ctx, in.DB.Rebind(`INSERT INTO instance (name, value) VALUES ('bootstrap_key', ?)
		ON CONFLICT (name) DO NOTHING`), in.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return false, fmt.Errorf("instance: claim bootstrap: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
