package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"

	"github.com/attest/attest/internal/store"
)

// RecoveryCodes is how many recovery codes a set holds.
const RecoveryCodes = 10

// Each code is 80 random bits, written as four groups of four base32
// letters: enough that the stored SHA-256 cannot be searched offline.
func newRecoveryCode() string {
	b := make([]byte, 10)
	rand.Read(b)
	s := idEncoding.EncodeToString(b)
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

func recoveryHash(userID, code string) []byte {
	c := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(code), "-", ""), " ", ""))
	h := sha256.Sum256([]byte("attest/recovery/v1\x00" + userID + "\x00" + c))
	return h[:]
}

// NewRecoveryCodes replaces the user's recovery codes in tx with a fresh
// set, which it returns to be shown once: the old set stops working.
func (f *Factors) NewRecoveryCodes(ctx context.Context, tx *sql.Tx, userID string) ([]string, error) {
	if _, err := tx.ExecContext(ctx, f.db.Rebind(`DELETE FROM recovery_codes WHERE user_id = ?`), userID); err != nil {
		return nil, fmt.Errorf("identity: revoke recovery codes: %w", err)
	}
	now := f.now().UTC().UnixMicro()
	codes := make([]string, RecoveryCodes)
	for i := range codes {
		codes[i] = newRecoveryCode()
		if _, err := tx.ExecContext(ctx, f.db.Rebind(`INSERT INTO recovery_codes (user_id, code_hash, created_at)
			VALUES (?, ?, ?)`), userID, recoveryHash(userID, codes[i]), now); err != nil {
			return nil, fmt.Errorf("identity: store recovery code: %w", err)
		}
	}
	return codes, nil
}

// UseRecoveryCode spends one recovery code: the statement that checks it
// is unused marks it used, so a code works once even under concurrent
// requests.
func (f *Factors) UseRecoveryCode(ctx context.Context, q store.Querier, userID, code string) error {
	res, err := q.ExecContext(ctx, f.db.Rebind(`UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ?
		AND used_at IS NULL`), f.now().UTC().UnixMicro(), userID, recoveryHash(userID, code))
	if err != nil {
		return fmt.Errorf("identity: spend recovery code: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrBadCode
	}
	return nil
}

// RemainingRecoveryCodes counts the user's unused recovery codes.
func (f *Factors) RemainingRecoveryCodes(ctx context.Context, q store.Querier, userID string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, f.db.Rebind(`SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`),
		userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("identity: count recovery codes: %w", err)
	}
	return n, nil
}
