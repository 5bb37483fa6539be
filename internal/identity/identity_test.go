package identity

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

func TestCanonicalEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Ana@Example.com", "ana@example.com"},
		{"  ana@example.com ", "ana@example.com"},
		{"ＡＮＡ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ana@example.com"},
		{"José@Example.com", "josé@example.com"},
	} {
		got, err := CanonicalEmail(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "ana", "@example.com", "ana@", "a@b@c", "ana@.example.com", "ana@example..com",
		"an a@example.com", "ana@example.com\x00", strings.Repeat("a", 250) + "@example.com"} {
		if _, err := CanonicalEmail(bad); err == nil {
			t.Errorf("CanonicalEmail(%q) succeeded", bad)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for _, ok := range []string{"correct horse battery staple", "Tr0ub4dor&3 but longer", "ünïcödé pässwörd 42",
		"Lopez, then six of my own words", "acme staff garden 1999"} {
		if err := CheckPassword(ok, "ana@example.com", "Ana Lopez", "acme"); err != nil {
			t.Errorf("CheckPassword(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"short", "password1234", "aaaaaaaaaaaaaa", "12345678901234",
		"ana@example.com1", "acmeacme12", strings.Repeat("x", MaxPasswordLen+1), "attestattest1", "\xff\xfe invalid utf8",
		// Built on the name or the address, whatever is around it.
		"LopezAcme2026", "lopezlopezlopez", "lopez lopez lopez", "example.com2026", "Lopez!!Acme!!12"} {
		if err := CheckPassword(bad, "ana@example.com", "Ana Lopez", "acme"); err == nil {
			t.Errorf("CheckPassword(%q) accepted it", bad)
		} else if strings.Contains(err.Error(), bad) {
			t.Errorf("the error %q repeats the password", err)
		}
	}
}

func TestHasher(t *testing.T) {
	ctx := context.Background()
	h := Hasher{Params: DefaultArgon2}
	s, err := h.Hash(ctx, "a long enough passphrase")
	if err != nil || !strings.HasPrefix(s, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("Hash = %q, %v", s, err)
	}
	if ok, rehash, err := h.Verify(ctx, s, "a long enough passphrase"); !ok || rehash || err != nil {
		t.Errorf("Verify(right) = %v, %v, %v", ok, rehash, err)
	}
	if ok, _, _ := h.Verify(ctx, s, "a long enough passphrasE"); ok {
		t.Error("a wrong password verified")
	}
	stronger := Hasher{Params: Argon2Params{MemoryKiB: 32 * 1024, Time: 2, Threads: 1}}
	if ok, rehash, _ := stronger.Verify(ctx, s, "a long enough passphrase"); !ok || !rehash {
		t.Errorf("a hash under older parameters: ok %v, rehash %v; want both", ok, rehash)
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		strings.Replace(s, "m=19456", "m=8", 1), strings.Replace(s, "$v=19$", "$v=16$", 1), s[:len(s)-3] + "!!!"} {
		if ok, _, err := h.Verify(ctx, bad, "a long enough passphrase"); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want a refusal", bad, ok, err)
		}
	}
}

// fixture is a user of a real database, with a clock the test moves.
type fixture struct {
	db  *store.DB
	svc *Service
	now atomic.Int64 // microseconds: the RFC's last vector lies past what nanoseconds reach
	u   *User
}

func newFixture(t testing.TB, db *store.DB) *fixture {
	t.Helper()
	f := &fixture{db: db}
	f.now.Store(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixMicro())
	clock := func() time.Time { return time.UnixMicro(f.now.Load()).UTC() }
	kek, err := personal.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	f.svc = NewService(db, kek, "attest test", clock)
	ctx := context.Background()
	var tenantID int64
	if err := db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO tenants (name, system, index_key, created_at) VALUES (?, FALSE, ?, 0)`),
			"t", []byte("k")); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT id FROM tenants WHERE name = 't'`).Scan(&tenantID); err != nil {
			return err
		}
		f.u = &User{ID: NewUserID(), TenantID: tenantID, Email: "ana@example.com", Display: "ana@example.com", Name: "Ana"}
		return f.svc.Users.Create(ctx, tx, f.u)
	}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) setTime(unix int64) { f.now.Store(unix * 1e6) }

func (f *fixture) add(d time.Duration) { f.now.Add(d.Microseconds()) }

// TestRFC6238Vectors checks TOTP verification against the SHA-1 vectors
// of RFC 6238, appendix B, at the times they name. attest's codes have six
// digits: the last six of the RFC's eight.
func TestRFC6238Vectors(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, _ storetest.Options) {
		f := newFixture(t, db)
		ctx := context.Background()
		secret := []byte("12345678901234567890")
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO totp_factors (user_id, secret, last_step, confirmed_at, created_at)
				VALUES (?, ?, 0, 0, 0)`), f.u.ID, f.svc.Factors.kek.Wrap(secret, totpAAD(f.u.ID)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, v := range []struct {
			unix int64
			code string
		}{{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"}, {1234567890, "89005924"},
			{2000000000, "69279037"}, {20000000000, "65353130"}} {
			f.setTime(v.unix)
			six := v.code[2:]
			if err := f.svc.Factors.VerifyTOTP(ctx, db.Write, f.u.ID, six); err != nil {
				t.Errorf("at %d, code %s: %v", v.unix, six, err)
			}
			// Spent: the same code again fails, as does the step before.
			if err := f.svc.Factors.VerifyTOTP(ctx, db.Write, f.u.ID, six); !errors.Is(err, ErrBadCode) {
				t.Errorf("at %d, code %s reused: %v, want ErrBadCode", v.unix, six, err)
			}
		}
		// Outside the skew, a right code for another time fails.
		f.setTime(20000000000 + 300)
		if err := f.svc.Factors.VerifyTOTP(ctx, db.Write, f.u.ID, "353130"); !errors.Is(err, ErrBadCode) {
			t.Errorf("an old code verified: %v", err)
		}
	})
}

// TestConcurrentCodeUse spends one TOTP code and one recovery code from
// many goroutines at once: each is accepted exactly once.
func TestConcurrentCodeUse(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, _ storetest.Options) {
		f := newFixture(t, db)
		ctx := context.Background()
		secret := []byte("12345678901234567890")
		var codes []string
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO totp_factors (user_id, secret, last_step, confirmed_at,
				created_at) VALUES (?, ?, 0, 0, 0)`), f.u.ID, f.svc.Factors.kek.Wrap(secret, totpAAD(f.u.ID))); err != nil {
				return err
			}
			var err error
			codes, err = f.svc.Factors.NewRecoveryCodes(ctx, tx, f.u.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		f.setTime(59)
		var totpOK, recOK atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				err := db.InTx(ctx, func(tx *sql.Tx) error { return f.svc.Factors.VerifyTOTP(ctx, tx, f.u.ID, "287082") })
				if err == nil {
					totpOK.Add(1)
				}
			}()
			go func() {
				defer wg.Done()
				err := db.InTx(ctx, func(tx *sql.Tx) error { return f.svc.Factors.UseRecoveryCode(ctx, tx, f.u.ID, codes[3]) })
				if err == nil {
					recOK.Add(1)
				}
			}()
		}
		wg.Wait()
		if totpOK.Load() != 1 || recOK.Load() != 1 {
			t.Errorf("accepted the TOTP code %d times and the recovery code %d times, want once each", totpOK.Load(), recOK.Load())
		}
	})
}

// TestConcurrentLockout sends many password attempts at once: no more
// than the budget's maximum are ever checked, and the counter locks.
func TestConcurrentLockout(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, _ storetest.Options) {
		f := newFixture(t, db)
		ctx := context.Background()
		c := PasswordCounter("t", f.u.Email)
		b := Budget{Free: 100, Max: 10, MaxDelay: time.Minute, Lockout: 30 * time.Minute, Window: time.Hour}
		var admitted, locked atomic.Int32
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := f.svc.Counters.Reserve(ctx, c, b)
				var te *ThrottledError
				switch {
				case err == nil:
					admitted.Add(1)
					if res.LockedNow {
						locked.Add(1)
					}
				case !errors.As(err, &te):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if admitted.Load() != int32(b.Max) || locked.Load() != 1 {
			t.Errorf("admitted %d attempts and locked %d times; want %d and 1", admitted.Load(), locked.Load(), b.Max)
		}
		if _, ok, _ := f.svc.Counters.Locked(ctx, db.Read, c, b); !ok {
			t.Error("the counter is not locked")
		}
		// The lockout lasts its time, then the counter starts afresh.
		f.add(31 * time.Minute)
		if _, err := f.svc.Counters.Reserve(ctx, c, b); err != nil {
			t.Errorf("after the lockout: %v", err)
		}
	})
}

// TestGrowingDelay checks that failures past the free ones wait longer
// each time.
func TestGrowingDelay(t *testing.T) {
	db, _ := storetest.OpenSQLite(t)
	f := newFixture(t, db)
	ctx := context.Background()
	c := PasswordCounter("t", f.u.Email)
	b := PasswordAccountBudget
	var waits []time.Duration
	for range b.Max + 2 {
		_, err := f.svc.Counters.Reserve(ctx, c, b)
		var te *ThrottledError
		for errors.As(err, &te) {
			if te.Locked {
				break
			}
			waits = append(waits, te.RetryAfter)
			f.add(te.RetryAfter)
			_, err = f.svc.Counters.Reserve(ctx, c, b)
		}
		if te != nil && te.Locked {
			break
		}
	}
	if len(waits) < 3 || waits[1] <= waits[0] || waits[2] <= waits[1] {
		t.Errorf("waits %v, want them growing", waits)
	}
	if _, ok, _ := f.svc.Counters.Locked(ctx, db.Read, c, b); !ok {
		t.Error("the account is not locked after the budget's maximum")
	}
}

// TestSuccessesRefundTheAddress checks that successful logins give back
// the address's reservation: an office behind one address that signs in
// many times is not locked out, while its failures still count.
func TestSuccessesRefundTheAddress(t *testing.T) {
	db, _ := storetest.OpenSQLite(t)
	f := newFixture(t, db)
	ctx := context.Background()
	c := IPCounter("198.51.100.7")
	for i := range 3 * ClientIPBudget.Max {
		if _, err := f.svc.Counters.Reserve(ctx, c, ClientIPBudget); err != nil {
			t.Fatalf("success %d: %v", i, err)
		}
		if err := f.svc.Counters.Refund(ctx, db.Write, c, ClientIPBudget); err != nil {
			t.Fatal(err)
		}
	}
	for range ClientIPBudget.Free {
		if _, err := f.svc.Counters.Reserve(ctx, c, ClientIPBudget); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Counters.Reserve(ctx, c, ClientIPBudget); err != nil {
		t.Fatal(err)
	}
	var te *ThrottledError
	if _, err := f.svc.Counters.Reserve(ctx, c, ClientIPBudget); !errors.As(err, &te) {
		t.Errorf("failures past the free ones: %v, want a delay", err)
	}
}
