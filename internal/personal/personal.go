// Package personal protects the personal values in audit events so that a
// subject can later be erased without touching a single hash in the log.
//
// Each data subject has a random secret, stored wrapped under the instance's
// key-encryption key. From it two keys are derived with HKDF: one seals the
// subject's personal values (XChaCha20-Poly1305, random 192-bit nonces), the
// other makes the keyed commitments (HMAC-SHA-256) that take the values'
// place in the log leaf. Destroying the secret makes the sealed values
// unreadable and the commitments unlinkable to any guess, while the leaf and
// every proof that includes it stay exactly as they were.
package personal

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/attest/attest/internal/store"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"
)

// ErrErased is returned when a subject's key has been destroyed.
var ErrErased = errors.New("personal: subject erased")

// Sealer wraps secrets under the key-encryption key.
type Sealer struct {
	aead cipher.AEAD
}

// LoadOrCreateKEK reads the 32-byte key-encryption key at path, or creates it
// with mode 0600.
func LoadOrCreateKEK(path string) (s *Sealer, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b = make([]byte, chacha20poly1305.KeySize)
		rand.Read(b)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("personal: create key directory: %w", err)
		}
		enc := []byte(base64.StdEncoding.EncodeToString(b) + "\n")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("personal: create key-encryption key: %w", err)
		}
		_, err = f.Write(enc)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, false, fmt.Errorf("personal: write key-encryption key: %w", err)
		}
		created = true
	} else if err != nil {
		return nil, false, fmt.Errorf("personal: read key-encryption key: %w", err)
	} else {
		b, err = base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
		if err != nil || len(b) != chacha20poly1305.KeySize {
			return nil, false, fmt.Errorf("personal: %s does not hold a 32-byte base64 key", path)
		}
	}
	s, err = NewSealer(b)
	return s, created, err
}

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("personal: key-encryption key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Wrap seals secret, binding it to aad.
func (s *Sealer) Wrap(secret, aad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, secret, aad)
}

// Unwrap opens what Wrap sealed with the same aad.
func (s *Sealer) Unwrap(wrapped, aad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(wrapped) < ns {
		return nil, errors.New("personal: wrapped key too short")
	}
	out, err := s.aead.Open(nil, wrapped[:ns], wrapped[ns:], aad)
	if err != nil {
		return nil, errors.New("personal: wrapped key does not open under this key-encryption key")
	}
	return out, nil
}

// SubjectKey holds the derived keys of one generation of a subject's secret.
type SubjectKey struct {
	Subject    string
	Generation int64
	aead       cipher.AEAD
	// mu guards mac, an HMAC-SHA-256 under the commitment key. One per
	// key, reused under a lock, costs less than a pool: pools empty at
	// every collection, and a new HMAC costs two hash blocks and three
	// allocations.
	mu  sync.Mutex
	mac hash.Hash
}

func deriveSubjectKey(subject string, gen int64, secret []byte) (*SubjectKey, error) {
	encKey, err := hkdf.Key(sha256.New, secret, nil, "attest personal seal v1", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("personal: derive seal key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, secret, nil, "attest personal commit v1", 32)
	if err != nil {
		return nil, fmt.Errorf("personal: derive commitment key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(encKey)
	if err != nil {
		return nil, fmt.Errorf("personal: seal key: %w", err)
	}
	k := &SubjectKey{Subject: subject, Generation: gen, aead: aead}
	k.mac = hmac.New(sha256.New, macKey)
	return k, nil
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Commit returns the keyed commitment to one personal value of an event, as
// unpadded base64url. The message binds the tenant, the event id and the
// field path, so that a commitment cannot be moved to another event or field.
func (k *SubjectKey) Commit(tenant, eventID, path string, value []byte) string {
	var out [1]string
	k.CommitAll(tenant, eventID, []Value{{Path: path, Data: value}}, out[:])
	return out[0]
}

// CommitAll computes the commitments of several values of one event into
// out, which must be as long as values.
func (k *SubjectKey) CommitAll(tenant, eventID string, values []Value, out []string) {
	var buf [256]byte
	var sum [sha256.Size]byte
	var enc [64]byte
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, v := range values {
		k.mac.Reset()
		b := append(buf[:0], "attest/commit/v1"...)
		b = appendField(b, tenant)
		b = appendField(b, eventID)
		b = appendField(b, v.Path)
		b = binary.AppendUvarint(b, uint64(len(v.Data)))
		k.mac.Write(b)
		k.mac.Write(v.Data)
		out[i] = string(base64.RawURLEncoding.AppendEncode(enc[:0], k.mac.Sum(sum[:0])))
	}
}

// Value is one personal value of an event.
type Value struct {
	Path string
	Data []byte
}

const (
	blobVersion    = 1
	flagCompressed = 1
	// compressAbove is the plaintext size from which sealed values are
	// compressed first: below it zstd's frame costs more than it saves.
	compressAbove = 200
)

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
)

func aad(tenant, eventID string, gen int64) []byte {
	b := append([]byte("attest/personal/v1"), 0)
	b = appendField(b, tenant)
	b = appendField(b, eventID)
	return binary.AppendUvarint(b, uint64(gen))
}

// Seal encrypts the personal values of one event. The result names the key
// generation that sealed it, so that it can be opened after the subject has
// been given a new key.
func (k *SubjectKey) Seal(tenant, eventID string, values []Value) []byte {
	n := 0
	for _, v := range values {
		n += len(v.Path) + len(v.Data) + 2*binary.MaxVarintLen32
	}
	pt := make([]byte, 0, n)
	for _, v := range values {
		pt = appendField(pt, v.Path)
		pt = binary.AppendUvarint(pt, uint64(len(v.Data)))
		pt = append(pt, v.Data...)
	}
	flags := byte(0)
	if len(pt) > compressAbove {
		pt = zenc.EncodeAll(pt, nil)
		flags |= flagCompressed
	}
	out := make([]byte, 0, 2+binary.MaxVarintLen64+k.aead.NonceSize()+len(pt)+k.aead.Overhead())
	out = append(out, blobVersion, flags)
	out = binary.AppendUvarint(out, uint64(k.Generation))
	nonceAt := len(out)
	out = append(out, make([]byte, k.aead.NonceSize())...)
	rand.Read(out[nonceAt:])
	return k.aead.Seal(out, out[nonceAt:], pt, aad(tenant, eventID, k.Generation))
}

// BlobGeneration returns the key generation a sealed blob names.
func BlobGeneration(blob []byte) (int64, error) {
	if len(blob) < 3 || blob[0] != blobVersion {
		return 0, errors.New("personal: unknown sealed-value format")
	}
	g, n := binary.Uvarint(blob[2:])
	if n <= 0 {
		return 0, errors.New("personal: malformed sealed value")
	}
	return int64(g), nil
}

// Open decrypts what Seal produced for the same tenant and event.
func (k *SubjectKey) Open(tenant, eventID string, blob []byte) ([]Value, error) {
	gen, err := BlobGeneration(blob)
	if err != nil {
		return nil, err
	}
	if gen != k.Generation {
		return nil, fmt.Errorf("personal: sealed under key generation %d, not %d", gen, k.Generation)
	}
	_, n := binary.Uvarint(blob[2:])
	rest := blob[2+n:]
	ns := k.aead.NonceSize()
	if len(rest) < ns {
		return nil, errors.New("personal: malformed sealed value")
	}
	pt, err := k.aead.Open(nil, rest[:ns], rest[ns:], aad(tenant, eventID, gen))
	if err != nil {
		return nil, errors.New("personal: sealed value does not open: altered, or sealed for another event")
	}
	if blob[1]&flagCompressed != 0 {
		if pt, err = zdec.DecodeAll(pt, nil); err != nil {
			return nil, fmt.Errorf("personal: decompress sealed value: %w", err)
		}
	}
	var vals []Value
	for len(pt) > 0 {
		p, rest, ok := readField(pt)
		if !ok {
			return nil, errors.New("personal: malformed sealed value")
		}
		d, rest, ok := readField(rest)
		if !ok {
			return nil, errors.New("personal: malformed sealed value")
		}
		vals = append(vals, Value{Path: string(p), Data: d})
		pt = rest
	}
	return vals, nil
}

func readField(b []byte) (field, rest []byte, ok bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return nil, nil, false
	}
	return b[n : n+int(l)], b[n+int(l):], true
}

// Keyring finds and creates subject keys, caching them in memory.
type Keyring struct {
	db  *store.DB
	kek *Sealer
	now func() time.Time

	mu sync.Mutex
	// erasures is the newest row of the erasures table this process has
	// seen; clears counts how often the caches were emptied, so that a key
	// read from the database before an erasure is not cached after it.
	erasures int64
	clears   uint64
	synced   time.Time // when Sync last read the erasures
	// active caches each subject's current key, by tenant and subject.
	active map[ref]*SubjectKey
	// byGen caches keys by generation, for reading older values.
	byGen map[genRef]*SubjectKey
}

type ref struct {
	tenant  int64
	subject string
}

type genRef struct {
	ref
	gen int64
}

// maxCached bounds each cache; a full cache is simply cleared.
const maxCached = 200000

// NewKeyring returns a keyring over db, wrapping secrets with kek.
func NewKeyring(db *store.DB, kek *Sealer, now func() time.Time) *Keyring {
	if now == nil {
		now = time.Now
	}
	return &Keyring{db: db, kek: kek, now: now, active: map[ref]*SubjectKey{}, byGen: map[genRef]*SubjectKey{}}
}

func wrapAAD(tenantID int64, subject string, gen int64) []byte {
	b := append([]byte("attest/subject/v1"), 0)
	b = binary.AppendUvarint(b, uint64(tenantID))
	b = appendField(b, subject)
	return binary.AppendUvarint(b, uint64(gen))
}

// Active returns the subject's current key, creating the subject's first key,
// or a new generation after an erasure, when there is none.
func (kr *Keyring) Active(ctx context.Context, tenantID int64, subject string) (*SubjectKey, error) {
	r := ref{tenantID, subject}
	kr.mu.Lock()
	k, clears := kr.active[r], kr.clears
	kr.mu.Unlock()
	if k != nil {
		return k, nil
	}
	k, err := kr.loadActive(ctx, kr.db.Read, tenantID, subject)
	if errors.Is(err, store.ErrNotFound) {
		k, err = kr.create(ctx, tenantID, subject)
	}
	if err != nil {
		return nil, err
	}
	kr.mu.Lock()
	if kr.clears == clears {
		if len(kr.active) >= maxCached {
			clear(kr.active)
		}
		kr.active[r] = k
	}
	kr.mu.Unlock()
	return k, nil
}

// Prefetch makes sure every subject in subjects has a current key, creating
// the missing ones in a single transaction, so that a batch of events with
// many new subjects does not queue one transaction per subject.
func (kr *Keyring) Prefetch(ctx context.Context, tenantID int64, subjects []string) error {
	var missing []string
	kr.mu.Lock()
	clears := kr.clears
	seen := map[string]bool{}
	for _, s := range subjects {
		if kr.active[ref{tenantID, s}] == nil && !seen[s] {
			seen[s] = true
			missing = append(missing, s)
		}
	}
	kr.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	// Concurrent batches create keys in one order, so that on PostgreSQL
	// two of them never wait on each other's rows.
	slices.Sort(missing)
	found := map[string]*SubjectKey{}
	err := kr.db.ReadTx(ctx, func(rtx *sql.Tx) error {
		q := store.Cache(rtx)
		defer q.Close()
		for _, s := range missing {
			k, err := kr.loadActive(ctx, q, tenantID, s)
			if err == nil {
				found[s] = k
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(found) < len(missing) {
		err := kr.db.InTx(ctx, func(wtx *sql.Tx) error {
			// Statements prepared once for the whole batch of subjects.
			tx := store.Cache(wtx)
			defer tx.Close()
			for _, s := range missing {
				if found[s] != nil {
					continue
				}
				k, err := kr.createTx(ctx, tx, tenantID, s)
				if err != nil {
					return err
				}
				found[s] = k
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	kr.mu.Lock()
	if kr.clears == clears {
		if len(kr.active)+len(found) >= maxCached {
			clear(kr.active)
		}
		for s, k := range found {
			kr.active[ref{tenantID, s}] = k
		}
	}
	kr.mu.Unlock()
	return nil
}

func (kr *Keyring) loadActive(ctx context.Context, q store.Querier, tenantID int64, subject string) (*SubjectKey, error) {
	var gen int64
	var wrapped []byte
	err := q.QueryRowContext(ctx, kr.db.Rebind(`SELECT generation, wrapped_key FROM subjects
		WHERE tenant_id = ? AND subject = ? AND erased_at IS NULL ORDER BY generation DESC LIMIT 1`),
		tenantID, subject).Scan(&gen, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("personal: read subject key: %w", err)
	}
	return kr.unwrap(tenantID, subject, gen, wrapped)
}

func (kr *Keyring) unwrap(tenantID int64, subject string, gen int64, wrapped []byte) (*SubjectKey, error) {
	secret, err := kr.kek.Unwrap(wrapped, wrapAAD(tenantID, subject, gen))
	if err != nil {
		return nil, err
	}
	return deriveSubjectKey(subject, gen, secret)
}

func (kr *Keyring) create(ctx context.Context, tenantID int64, subject string) (*SubjectKey, error) {
	var k *SubjectKey
	err := kr.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		k, err = kr.createTx(ctx, tx, tenantID, subject)
		return err
	})
	return k, err
}

// createTx returns the subject's current key, creating it in tx when no
// other process has since done so.
func (kr *Keyring) createTx(ctx context.Context, tx store.Querier, tenantID int64, subject string) (*SubjectKey, error) {
	existing, err := kr.loadActive(ctx, tx, tenantID, subject)
	if err == nil {
		return existing, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	// The newest generation decides, read in one statement: a key another
	// process committed since the look above is used, not overtaken by a
	// second live generation.
	var gen int64
	var erasedAt sql.NullInt64
	var wrapped []byte
	err = tx.QueryRowContext(ctx, kr.db.Rebind(`SELECT generation, erased_at, wrapped_key FROM subjects
		WHERE tenant_id = ? AND subject = ? ORDER BY generation DESC LIMIT 1`), tenantID, subject).Scan(&gen, &erasedAt, &wrapped)
	switch {
	case err == nil && !erasedAt.Valid && wrapped != nil:
		return kr.unwrap(tenantID, subject, gen, wrapped)
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("personal: read subject generation: %w", err)
	}
	gen++
	secret := make([]byte, 32)
	rand.Read(secret)
	// Another process creating the same subject's key meanwhile wins: on
	// PostgreSQL the insert waits for its transaction and then finds the
	// row, which this transaction, reading committed rows, then uses.
	res, err := tx.ExecContext(ctx, kr.db.Rebind(`INSERT INTO subjects (tenant_id, subject, generation, wrapped_key, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), tenantID, subject, gen, kr.kek.Wrap(secret, wrapAAD(tenantID, subject, gen)),
		kr.now().UTC().UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("personal: store subject key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("personal: store subject key: %w", err)
	} else if n == 0 {
		return kr.loadActive(ctx, tx, tenantID, subject)
	}
	return deriveSubjectKey(subject, gen, secret)
}

// Generation returns a subject's key of the given generation, for reading
// values sealed under it. It returns ErrErased when that key was destroyed.
func (kr *Keyring) Generation(ctx context.Context, tenantID int64, subject string, gen int64) (*SubjectKey, error) {
	r := genRef{ref{tenantID, subject}, gen}
	kr.mu.Lock()
	k, clears := kr.byGen[r], kr.clears
	kr.mu.Unlock()
	if k != nil {
		return k, nil
	}
	var wrapped []byte
	var erasedAt sql.NullInt64
	err := kr.db.Read.QueryRowContext(ctx, kr.db.Rebind(`SELECT wrapped_key, erased_at FROM subjects
		WHERE tenant_id = ? AND subject = ? AND generation = ?`), tenantID, subject, gen).Scan(&wrapped, &erasedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("personal: read subject key: %w", err)
	}
	if erasedAt.Valid || wrapped == nil {
		return nil, ErrErased
	}
	k, err = kr.unwrap(tenantID, subject, gen, wrapped)
	if err != nil {
		return nil, err
	}
	kr.mu.Lock()
	if kr.clears == clears {
		if len(kr.byGen) >= maxCached {
			clear(kr.byGen)
		}
		kr.byGen[r] = k
	}
	kr.mu.Unlock()
	return k, nil
}

// ErrUnknownSubject means a tenant holds no key of a subject: no event of
// that subject with personal values was ever stored there.
var ErrUnknownSubject = errors.New("personal: the tenant holds no personal values of this subject")

// Erasure is what erasing a subject did.
type Erasure struct {
	// Generations is the number of the subject's keys destroyed now; zero
	// when every one of them had been destroyed before.
	Generations int64
	// ErasedAt is when the subject's last key was destroyed.
	ErasedAt time.Time
}

// EraseTx destroys, in tx, every key of the subject in the tenant, so that
// the personal values sealed under them can never be opened again, and
// records the erasure for every process holding keys in memory (see Sync).
// The commitments in the log stay as they are: no hash changes. The
// subject's next event starts a new generation with a new key.
func (kr *Keyring) EraseTx(ctx context.Context, tx store.Querier, tenantID int64, subject string) (*Erasure, error) {
	var total, live int64
	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, kr.db.Rebind(`SELECT COUNT(*), COUNT(*) - COUNT(erased_at), MAX(erased_at)
		FROM subjects WHERE tenant_id = ? AND subject = ?`), tenantID, subject).Scan(&total, &live, &last); err != nil {
		return nil, fmt.Errorf("personal: read subject keys: %w", err)
	}
	if total == 0 {
		return nil, ErrUnknownSubject
	}
	if live == 0 {
		return &Erasure{ErasedAt: time.UnixMicro(last.Int64).UTC()}, nil
	}
	now := kr.now().UTC().Truncate(time.Microsecond)
	res, err := tx.ExecContext(ctx, kr.db.Rebind(`UPDATE subjects SET wrapped_key = NULL, erased_at = ?
		WHERE tenant_id = ? AND subject = ? AND erased_at IS NULL`), now.UnixMicro(), tenantID, subject)
	if err != nil {
		return nil, fmt.Errorf("personal: destroy subject keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("personal: destroy subject keys: %w", err)
	}
	if _, err := tx.ExecContext(ctx, kr.db.Rebind(`INSERT INTO erasures (tenant_id, subject, generations, erased_at)
		VALUES (?, ?, ?, ?)`), tenantID, subject, n, now.UnixMicro()); err != nil {
		return nil, fmt.Errorf("personal: record erasure: %w", err)
	}
	return &Erasure{Generations: n, ErasedAt: now}, nil
}

// Forget drops every cached key. Call it once an erasure has committed.
func (kr *Keyring) Forget() {
	kr.mu.Lock()
	kr.forgetLocked()
	kr.mu.Unlock()
}

func (kr *Keyring) forgetLocked() {
	clear(kr.active)
	clear(kr.byGen)
	kr.clears++
}

// Sync drops every cached key when a subject has been erased since the last
// call, by this process or another one on the same database. Every
// operation that opens or seals personal values calls it first, so that a
// key destroyed before the operation began is never used by it.
func (kr *Keyring) Sync(ctx context.Context) error {
	start := time.Now()
	var last int64
	if err := kr.db.Reads().QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM erasures`).Scan(&last); err != nil {
		return fmt.Errorf("personal: read erasures: %w", err)
	}
	kr.mu.Lock()
	if last != kr.erasures {
		kr.forgetLocked()
		kr.erasures = last
	}
	kr.synced = start
	kr.mu.Unlock()
	return nil
}

// SyncSealing is Sync for operations that only seal new values, done at
// most once every SealSync. A key another process destroyed within that
// time may still seal an event's values, which then read as erased with
// the rest: no value is ever opened with a destroyed key, since every
// operation that opens one calls Sync.
func (kr *Keyring) SyncSealing(ctx context.Context) error {
	kr.mu.Lock()
	fresh := time.Since(kr.synced) < SealSync
	kr.mu.Unlock()
	if fresh {
		return nil
	}
	return kr.Sync(ctx)
}

// SealSync is how often sealing looks for erasures made by other
// processes. An erasure in the same process takes effect at once.
const SealSync = 250 * time.Millisecond
