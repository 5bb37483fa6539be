package identity

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/attest/attest/internal/store"
)

// Budget is how many failures a counter allows: the first Free pass at
// once, each one after waits twice as long as the one before (from one
// second up to MaxDelay), and reaching Max locks the counter for Lockout or
// until an admin unlocks it. Failures older than Window are forgotten.
type Budget struct {
	Free     int
	Max      int
	MaxDelay time.Duration
	Lockout  time.Duration
	Window   time.Duration
}

// The default budgets. Password and second factor are counted apart, per
// canonical account; the client IP has a wider budget of its own, since
// many people may share one address.
var (
	PasswordAccountBudget = Budget{Free: 3, Max: 10, MaxDelay: time.Minute, Lockout: 30 * time.Minute, Window: 24 * time.Hour}
	SecondFactorBudget    = Budget{Free: 2, Max: 5, MaxDelay: time.Minute, Lockout: 30 * time.Minute, Window: 24 * time.Hour}
	ClientIPBudget        = Budget{Free: 20, Max: 100, MaxDelay: 10 * time.Second, Lockout: 15 * time.Minute, Window: time.Hour}
)

func (b Budget) delay(failures int) time.Duration {
	if failures <= b.Free {
		return 0
	}
	d := time.Second << min(failures-b.Free-1, 20)
	return min(d, b.MaxDelay)
}

// ThrottledError refuses an attempt before it is checked: the counter is
// waiting out its delay, or is locked.
type ThrottledError struct {
	RetryAfter time.Duration
	Locked     bool
}

func (e *ThrottledError) Error() string {
	if e.Locked {
		return "identity: too many failed attempts: locked"
	}
	return "identity: too many failed attempts: wait before trying again"
}

// Counter names a failure counter. Its stored key is a hash, so that no
// email or address is kept in clear.
type Counter struct {
	Kind string // "password", "mfa", "ip"
	ID   string
}

func (c Counter) key() []byte {
	h := sha256.Sum256([]byte("attest/login-counter/v1\x00" + c.Kind + "\x00" + c.ID))
	return h[:]
}

// PasswordCounter counts password failures of a canonical email in a
// tenant named as the client named it, whether or not the tenant or an
// account exists: so that locking one reveals nothing about either.
func PasswordCounter(tenantName, email string) Counter {
	return Counter{"password", strings.ToLower(tenantName) + "\x00" + email}
}

// SecondFactorCounter counts second-factor failures of an account.
func SecondFactorCounter(userID string) Counter { return Counter{"mfa", userID} }

// IPCounter counts login failures from a client address; IPv6 addresses
// count by their /64, which one host can fill at will.
func IPCounter(ip string) Counter { return Counter{"ip", AddressGroup(ip)} }

// AddressGroup is the unit an address is counted and limited by: an IPv4
// address itself, an IPv6 address's /64 network.
func AddressGroup(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// Counters keeps failure counters in the database, shared by every replica.
type Counters struct {
	db  *store.DB
	now func() time.Time
}

// NewCounters returns the counter store.
func NewCounters(db *store.DB, now func() time.Time) *Counters { return &Counters{db: db, now: now} }

// Reservation is an attempt counted as a failure until it succeeds.
type Reservation struct {
	Failures int
	// LockedNow tells whether this attempt reached the budget's maximum,
	// locking the counter: the caller records the lockout.
	LockedNow bool
}

// Reserve counts an attempt as a failure before it is checked, so that
// concurrent attempts cannot together exceed the budget: each takes its
// place under the row's lock. It returns a *ThrottledError, counting
// nothing, when the counter is waiting out a delay or locked. A successful
// attempt calls Clear.
func (cs *Counters) Reserve(ctx context.Context, c Counter, b Budget) (*Reservation, error) {
	var res *Reservation
	err := cs.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = cs.reserve(ctx, tx, c, b)
		return err
	})
	return res, err
}

func (cs *Counters) reserve(ctx context.Context, tx *sql.Tx, c Counter, b Budget) (*Reservation, error) {
	now := cs.now().UTC()
	k := c.key()
	if _, err := tx.ExecContext(ctx, cs.db.Rebind(`INSERT INTO login_counters (counter_key, failures, first_failure_at,
		last_failure_at, locked_until) VALUES (?, 0, ?, ?, 0) ON CONFLICT (counter_key) DO NOTHING`),
		k, now.UnixMicro(), now.UnixMicro()); err != nil {
		return nil, fmt.Errorf("identity: count attempt: %w", err)
	}
	q := `SELECT failures, first_failure_at, locked_until FROM login_counters WHERE counter_key = ?`
	if cs.db.Dialect == store.Postgres {
		q += ` FOR UPDATE`
	}
	var failures int
	var first, locked int64
	if err := tx.QueryRowContext(ctx, cs.db.Rebind(q), k).Scan(&failures, &first, &locked); err != nil {
		return nil, fmt.Errorf("identity: count attempt: %w", err)
	}
	if wait := time.UnixMicro(locked).Sub(now); wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait, Locked: failures >= b.Max}
	}
	if failures >= b.Max || now.Sub(time.UnixMicro(first)) > b.Window {
		// A lockout served out, or failures too old to count.
		failures, first = 0, now.UnixMicro()
	}
	failures++
	until := now.Add(b.delay(failures))
	lockedNow := failures >= b.Max
	if lockedNow {
		until = now.Add(b.Lockout)
	}
	if _, err := tx.ExecContext(ctx, cs.db.Rebind(`UPDATE login_counters SET failures = ?, first_failure_at = ?,
		last_failure_at = ?, locked_until = ? WHERE counter_key = ?`),
		failures, first, now.UnixMicro(), until.UnixMicro(), k); err != nil {
		return nil, fmt.Errorf("identity: count attempt: %w", err)
	}
	return &Reservation{Failures: failures, LockedNow: lockedNow}, nil
}

// Clear forgets a counter's failures, after a successful attempt or an
// admin's unlock. It reports whether there was anything to forget.
func (cs *Counters) Clear(ctx context.Context, q store.Querier, c Counter) (bool, error) {
	res, err := q.ExecContext(ctx, cs.db.Rebind(`DELETE FROM login_counters WHERE counter_key = ?`), c.key())
	if err != nil {
		return false, fmt.Errorf("identity: clear counter: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Refund gives back the failure a successful attempt reserved, for a
// counter shared by many accounts, such as a client address's, which a
// success must not reset for all of them.
func (cs *Counters) Refund(ctx context.Context, q store.Querier, c Counter, b Budget) error {
	_, err := q.ExecContext(ctx, cs.db.Rebind(`UPDATE login_counters SET failures = failures - 1,
		locked_until = CASE WHEN failures - 1 <= ? THEN 0 ELSE locked_until END
		WHERE counter_key = ? AND failures > 0 AND failures < ?`), b.Free, c.key(), b.Max)
	if err != nil {
		return fmt.Errorf("identity: refund attempt: %w", err)
	}
	return nil
}

// Locked reports whether a counter is locked, and until when.
func (cs *Counters) Locked(ctx context.Context, q store.Querier, c Counter, b Budget) (time.Time, bool, error) {
	var failures int
	var locked int64
	err := q.QueryRowContext(ctx, cs.db.Rebind(`SELECT failures, locked_until FROM login_counters WHERE counter_key = ?`),
		c.key()).Scan(&failures, &locked)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("identity: read counter: %w", err)
	}
	until := time.UnixMicro(locked).UTC()
	return until, failures >= b.Max && until.After(cs.now()), nil
}
