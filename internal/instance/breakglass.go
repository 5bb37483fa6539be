package instance

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
)

// The break-glass account is an emergency operator credential for when
// nobody can sign in: a passphrase, stored as an Argon2id hash, that only
// the command line on attest's host can use. No HTTP route accepts it.
// Each use mints a short-lived operator API key, raises a high-severity
// security event, and locks the account until its passphrase is rotated.
const (
	breakGlassName = "emergency"
	// breakGlassOwner marks the keys a use mints, so that rotating the
	// account revokes any still working.
	breakGlassOwner = "breakglass:" + breakGlassName
	// BreakGlassKeyTTL is how long the key a use mints works.
	BreakGlassKeyTTL = time.Hour
)

// Break-glass errors.
var (
	ErrBreakGlassExists  = errors.New("instance: the break-glass account exists: rotate it instead")
	ErrNoBreakGlass      = errors.New("instance: no break-glass account: create one with attest breakglass init")
	ErrBreakGlassUsed    = errors.New("instance: the break-glass account was used and must be rotated before it works again")
	ErrBreakGlassRefused = errors.New("instance: wrong break-glass passphrase")
)

// BreakGlassStatus describes the break-glass account.
type BreakGlassStatus struct {
	CreatedAt        time.Time
	LastUsedAt       time.Time
	RotationRequired bool
}

func newPassphrase() string {
	b := make([]byte, 20)
	rand.Read(b)
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return s[0:8] + "-" + s[8:16] + "-" + s[16:24] + "-" + s[24:32]
}

// BreakGlassStatus returns the account's state, ErrNoBreakGlass without one.
func (in *Instance) BreakGlassStatus(ctx context.Context) (*BreakGlassStatus, error) {
	st := &BreakGlassStatus{}
	var created int64
	var used sql.NullInt64
	err := in.DB.Read.QueryRowContext(ctx, in.DB.Rebind(`SELECT created_at, last_used_at, rotation_required FROM break_glass
		WHERE name = ?`), breakGlassName).Scan(&created, &used, &st.RotationRequired)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoBreakGlass
	}
	if err != nil {
		return nil, fmt.Errorf("instance: read break-glass account: %w", err)
	}
	st.CreatedAt = time.UnixMicro(created).UTC()
	if used.Valid {
		st.LastUsedAt = time.UnixMicro(used.Int64).UTC()
	}
	return st, nil
}

// SetBreakGlass creates the break-glass account (rotate false) or gives it
// a new passphrase (rotate true), which it returns to be shown once and
// kept offline. Both are recorded in the operator's trail.
func (in *Instance) SetBreakGlass(ctx context.Context, rotate bool, actor event.Actor, decorate func(*event.Event)) (string, error) {
	pass := newPassphrase()
	hash, err := in.Identity.Hasher.Hash(ctx, pass)
	if err != nil {
		return "", err
	}
	op, err := in.Operator(ctx)
	if err != nil {
		return "", err
	}
	action := "breakglass.create"
	if rotate {
		action = "breakglass.rotate"
	}
	ev := in.ChangeEvent(action, "security", actor, event.Target{Type: "break_glass", ID: breakGlassName})
	ev.Details = detailsJSON(map[string]any{"severity": "medium"})
	if decorate != nil {
		decorate(ev)
	}
	now := in.Now().UTC().UnixMicro()
	err = in.change(ctx, op, ev, func(ctx context.Context, tx *sql.Tx) error {
		if !rotate {
			_, err := tx.ExecContext(ctx, in.DB.Rebind(`INSERT INTO break_glass (name, password_hash, created_at) VALUES (?, ?, ?)
				ON CONFLICT (name) DO NOTHING`), breakGlassName, hash, now)
			if err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, in.DB.Rebind(`UPDATE break_glass SET password_hash = ?, rotation_required = FALSE
			WHERE name = ? AND (password_hash = ? OR ?)`), hash, breakGlassName, hash, rotate)
		if err != nil {
			return fmt.Errorf("instance: store break-glass account: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			if rotate {
				return ErrNoBreakGlass
			}
			return ErrBreakGlassExists
		}
		_, err = tx.ExecContext(ctx, in.DB.Rebind(`UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`),
			now, breakGlassOwner)
		return err
	})
	if err != nil {
		return "", err
	}
	return pass, nil
}

// UseBreakGlass checks the passphrase and mints an operator API key that
// works for BreakGlassKeyTTL. Every attempt, right or wrong, raises a
// high-severity security event; a use also marks the account for
// rotation, so that it works once per passphrase.
func (in *Instance) UseBreakGlass(ctx context.Context, passphrase, reason string, actor event.Actor,
	decorate func(*event.Event)) (access.Token, *access.Key, error) {
	op, err := in.Operator(ctx)
	if err != nil {
		return "", nil, err
	}
	var hash string
	var rotation bool
	err = in.DB.Read.QueryRowContext(ctx, in.DB.Rebind(`SELECT password_hash, rotation_required FROM break_glass WHERE name = ?`),
		breakGlassName).Scan(&hash, &rotation)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, ErrNoBreakGlass
	}
	if err != nil {
		return "", nil, fmt.Errorf("instance: read break-glass account: %w", err)
	}
	ok, _, verr := in.Identity.Hasher.Verify(ctx, hash, identity.NormalizePassword(strings.TrimSpace(passphrase)))
	ev := in.ChangeEvent("security.breakglass.use", "security", actor, event.Target{Type: "break_glass", ID: breakGlassName})
	ev.Details = detailsJSON(map[string]any{"severity": "high", "reason": reason})
	if decorate != nil {
		decorate(ev)
	}
	if verr != nil || !ok || rotation {
		ev.Outcome = event.Outcome{Result: "denied", Reason: map[bool]string{true: "rotation required", false: "wrong passphrase"}[ok && rotation]}
		if err := in.Record(ctx, op, ev); err != nil {
			return "", nil, err
		}
		if ok && rotation {
			return "", nil, ErrBreakGlassUsed
		}
		return "", nil, ErrBreakGlassRefused
	}
	id := access.NewKeyID()
	expires := in.Now().Add(BreakGlassKeyTTL).UTC().Truncate(time.Microsecond)
	var tok access.Token
	var key *access.Key
	err = in.change(ctx, op, ev, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, in.DB.Rebind(`UPDATE break_glass SET rotation_required = TRUE, last_used_at = ?
			WHERE name = ? AND rotation_required = FALSE`), in.Now().UTC().UnixMicro(), breakGlassName)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrBreakGlassUsed
		}
		tok, key, err = in.Keys.Create(ctx, tx, id, op.ID, access.RoleOperator, "break-glass", expires, breakGlassOwner)
		return err
	})
	if errors.Is(err, ErrBreakGlassUsed) {
		// Another use won the race: this attempt is on record as denied.
		ev.ID, ev.Outcome = "", event.Outcome{Result: "denied", Reason: "rotation required"}
		if rerr := in.Record(ctx, op, ev); rerr != nil {
			return "", nil, rerr
		}
	}
	if err != nil {
		return "", nil, err
	}
	return tok, key, nil
}
