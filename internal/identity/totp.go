package identity

import (
	"context"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what every authenticator app understands (RFC 6238 with
// SHA-1, six digits, 30-second steps), accepting one step of clock skew
// either side.
const (
	totpPeriod = 30
	totpSkew   = 1
)

var totpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Factors stores second factors: TOTP secrets and recovery codes.
type Factors struct {
	db  *store.DB
	kek *personal.Sealer
	now func() time.Time
}

// NewFactors returns the factor store; kek seals TOTP secrets at rest.
func NewFactors(db *store.DB, kek *personal.Sealer, now func() time.Time) *Factors {
	return &Factors{db: db, kek: kek, now: now}
}

func totpAAD(userID string) []byte { return []byte("attest/totp/v1\x00" + userID) }

// TOTPEnrolment is a TOTP secret being enrolled, shown once.
type TOTPEnrolment struct {
	Secret string // base32, for manual entry
	URI    string // otpauth:// URI, for a QR code
}

// BeginTOTP generates a new, unconfirmed TOTP secret for a user in tx,
// replacing any unconfirmed one. A confirmed factor stays in force until
// ConfirmTOTP replaces it.
func (f *Factors) BeginTOTP(ctx context.Context, tx *sql.Tx, userID, issuer, account string) (*TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: totpPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, fmt.Errorf("identity: generate TOTP secret: %w", err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(key.Secret())
	if err != nil {
		return nil, fmt.Errorf("identity: generate TOTP secret: %w", err)
	}
	if err := f.storePending(ctx, tx, userID, raw); err != nil {
		return nil, err
	}
	return &TOTPEnrolment{Secret: key.Secret(), URI: key.URL()}, nil
}

// pendingUser is where an unconfirmed secret waits: a row of its own, so
// that enrolling a new authenticator never disturbs the confirmed one.
func pendingUser(userID string) string { return userID + "#pending" }

func (f *Factors) storePending(ctx context.Context, tx *sql.Tx, userID string, raw []byte) error {
	sealed := f.kek.Wrap(raw, totpAAD(pendingUser(userID)))
	_, err := tx.ExecContext(ctx, f.db.Rebind(`DELETE FROM totp_pending WHERE user_id = ?`), userID)
	if err == nil {
		_, err = tx.ExecContext(ctx, f.db.Rebind(`INSERT INTO totp_pending (user_id, secret, created_at) VALUES (?, ?, ?)`),
			userID, sealed, f.now().UTC().UnixMicro())
	}
	if err != nil {
		return fmt.Errorf("identity: store TOTP secret: %w", err)
	}
	return nil
}

// ErrBadCode means a one-time code, recovery code or assertion did not
// verify: wrong, reused, expired or for another account.
var ErrBadCode = errors.New("identity: the code is wrong, expired or already used")

// ErrNoFactor means the user has no factor of the kind asked for.
var ErrNoFactor = errors.New("identity: no such factor enrolled")

// ConfirmTOTP checks a code against the pending secret and, when it
// matches, makes that secret the user's TOTP factor in tx, with the code's
// time step already spent.
func (f *Factors) ConfirmTOTP(ctx context.Context, tx *sql.Tx, userID, code string) error {
	var sealed []byte
	err := tx.QueryRowContext(ctx, f.db.Rebind(`SELECT secret FROM totp_pending WHERE user_id = ?`), userID).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNoFactor
	}
	if err != nil {
		return fmt.Errorf("identity: read TOTP secret: %w", err)
	}
	raw, err := f.kek.Unwrap(sealed, totpAAD(pendingUser(userID)))
	if err != nil {
		return fmt.Errorf("identity: open TOTP secret: %w", err)
	}
	step, ok := matchStep(raw, code, f.now())
	if !ok {
		return ErrBadCode
	}
	now := f.now().UTC().UnixMicro()
	if _, err := tx.ExecContext(ctx, f.db.Rebind(`DELETE FROM totp_factors WHERE user_id = ?`), userID); err != nil {
		return fmt.Errorf("identity: replace TOTP factor: %w", err)
	}
	_, err = tx.ExecContext(ctx, f.db.Rebind(`INSERT INTO totp_factors (user_id, secret, last_step, confirmed_at, created_at)
		VALUES (?, ?, ?, ?, ?)`), userID, f.kek.Wrap(raw, totpAAD(userID)), step, now, now)
	if err == nil {
		_, err = tx.ExecContext(ctx, f.db.Rebind(`DELETE FROM totp_pending WHERE user_id = ?`), userID)
	}
	if err != nil {
		return fmt.Errorf("identity: store TOTP factor: %w", err)
	}
	return nil
}

// matchStep finds the time step, within the skew, whose code is code.
func matchStep(secret []byte, code string, now time.Time) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != int(totpOpts.Digits) {
		return 0, false
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	cur := now.Unix() / totpPeriod
	matched, found := int64(0), false
	// Every candidate is checked, so the time taken does not say which one
	// matched.
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		ok, err := hotp.ValidateCustom(code, uint64(cur+d), enc, totpOpts)
		if err == nil && ok && !found {
			matched, found = cur+d, true
		}
	}
	return matched, found
}

// VerifyTOTP checks a code against the user's confirmed TOTP factor and
// spends its time step: the stored last step advances in the same
// statement that checks it is older, so a code is accepted once, even by
// concurrent requests, and no older code is accepted after it.
func (f *Factors) VerifyTOTP(ctx context.Context, q store.Querier, userID, code string) error {
	var sealed []byte
	var last int64
	err := q.QueryRowContext(ctx, f.db.Rebind(`SELECT secret, last_step FROM totp_factors WHERE user_id = ?`), userID).Scan(&sealed, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNoFactor
	}
	if err != nil {
		return fmt.Errorf("identity: read TOTP factor: %w", err)
	}
	raw, err := f.kek.Unwrap(sealed, totpAAD(userID))
	if err != nil {
		return fmt.Errorf("identity: open TOTP factor: %w", err)
	}
	step, ok := matchStep(raw, code, f.now())
	if !ok || step <= last {
		return ErrBadCode
	}
	res, err := q.ExecContext(ctx, f.db.Rebind(`UPDATE totp_factors SET last_step = ? WHERE user_id = ? AND last_step < ?`),
		step, userID, step)
	if err != nil {
		return fmt.Errorf("identity: spend TOTP code: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrBadCode
	}
	return nil
}

// Kinds lists the kinds of second factor a user has enrolled: "totp",
// "webauthn", "recovery" (unused codes remain).
func (f *Factors) Kinds(ctx context.Context, q store.Querier, userID string) ([]string, error) {
	var totpN, waN, recN int
	err := q.QueryRowContext(ctx, f.db.Rebind(`SELECT
		(SELECT COUNT(*) FROM totp_factors WHERE user_id = ?),
		(SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?),
		(SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL)`), userID, userID, userID).
		Scan(&totpN, &waN, &recN)
	if err != nil {
		return nil, fmt.Errorf("identity: read factors: %w", err)
	}
	var out []string
	if totpN > 0 {
		out = append(out, "totp")
	}
	if waN > 0 {
		out = append(out, "webauthn")
	}
	if recN > 0 {
		out = append(out, "recovery")
	}
	return out, nil
}

// RemoveTOTP deletes the user's TOTP factor in tx.
func (f *Factors) RemoveTOTP(ctx context.Context, tx *sql.Tx, userID string) (bool, error) {
	res, err := tx.ExecContext(ctx, f.db.Rebind(`DELETE FROM totp_factors WHERE user_id = ?`), userID)
	if err != nil {
		return false, fmt.Errorf("identity: remove TOTP factor: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
