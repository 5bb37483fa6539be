package identity

import (
	"context"
	"database/sql"
	"encoding/base32"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attest/attest/internal/store/storetest"
	"github.com/pquerna/otp/totp"
)

// BenchmarkArgon2id is one password hash under DefaultArgon2.
func BenchmarkArgon2id(b *testing.B) {
	h := Hasher{Params: DefaultArgon2}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(context.Background(), "a bench passphrase of length"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLogin is a whole login on SQLite: the password step (counters,
// Argon2id, pending login), the TOTP step (counter, code spent) and the
// gate that mints the session, from parallel clients, each with an account
// of its own. The clock moves one TOTP step per login so every code is
// fresh. It reports logins per second.
func BenchmarkLogin(b *testing.B) {
	db, _ := storetest.OpenSQLite(b)
	f := newFixture(b, db)
	ctx := context.Background()
	hash, err := f.svc.Hasher.Hash(ctx, NormalizePassword("a bench passphrase of length"))
	if err != nil {
		b.Fatal(err)
	}
	secret := []byte("12345678901234567890")
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	const accounts = 64
	users := make([]*User, accounts)
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		for i := range users {
			u := &User{ID: NewUserID(), TenantID: f.u.TenantID, Email: NewUserID() + "@example.com", Name: "Bench"}
			u.Display = u.Email
			if err := f.svc.Users.Create(ctx, tx, u); err != nil {
				return err
			}
			if err := f.svc.Users.setPasswordHash(ctx, tx, u.ID, hash, false); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO totp_factors (user_id, secret, last_step, confirmed_at,
				created_at) VALUES (?, ?, 0, 0, 0)`), u.ID, f.svc.Factors.kek.Wrap(secret, totpAAD(u.ID))); err != nil {
				return err
			}
			users[i] = u
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		u := users[next.Add(1)%accounts]
		for pb.Next() {
			f.add(30 * time.Second)
			st, _, err := f.svc.BeginLogin(ctx, u.TenantID, "t", u.Email, "a bench passphrase of length", Meta{IP: "192.0.2.1"})
			if err != nil {
				b.Fatal(err)
			}
			code, _ := totp.GenerateCode(enc, time.UnixMicro(f.now.Load()))
			proof, _, err := f.svc.SecondFactor(ctx, st.Token, "totp", code)
			if err != nil {
				// Another client moved the clock between reading it and
				// verifying: the code belongs to a step already past.
				continue
			}
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				_, _, err := f.svc.Gate(ctx, tx, NewSessionID(), proof, Meta{IP: "192.0.2.1"})
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}
