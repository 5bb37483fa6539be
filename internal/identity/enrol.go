package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/attest/attest/internal/store"
)

// Enrolment links: a secret an admin hands to a person, which lets them set
// a password and enrol a second factor. It is the proof a password thief
// lacks.
const (
	DefaultEnrolmentTTL = 24 * time.Hour
	MaxEnrolmentTTL     = 7 * 24 * time.Hour
)

// ErrEnrolmentInvalid means an enrolment token is unknown, used or expired.
var ErrEnrolmentInvalid = errors.New("identity: the enrolment link is invalid, used or expired: ask an admin for a new one")

// Enrolment is a stored enrolment link.
type Enrolment struct {
	TenantID int64
	// UserID is the account it enrols; empty for a link that creates a
	// new account, such as the first owner's.
	UserID    string
	Role      string // the role a created account receives
	ExpiresAt time.Time
}

// IssueEnrolment stores a new enrolment link in tx and returns its token.
// A link for an existing account replaces that account's unused links.
func (s *Service) IssueEnrolment(ctx context.Context, tx *sql.Tx, e *Enrolment, createdBy string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = DefaultEnrolmentTTL
	}
	if ttl > MaxEnrolmentTTL {
		return "", &FieldError{"expires_in_hours", fmt.Sprintf("must be at most %d", int(MaxEnrolmentTTL/time.Hour))}
	}
	now := s.Now().UTC()
	e.ExpiresAt = now.Add(ttl).Truncate(time.Microsecond)
	var user any
	if e.UserID != "" {
		user = e.UserID
		if _, err := tx.ExecContext(ctx, s.DB.Rebind(`DELETE FROM enrolments WHERE user_id = ? AND used_at IS NULL`), e.UserID); err != nil {
			return "", fmt.Errorf("identity: replace enrolment links: %w", err)
		}
	}
	_, tok := newSecret(enrolmentPrefix)
	_, err := tx.ExecContext(ctx, s.DB.Rebind(`INSERT INTO enrolments (token_hash, tenant_id, user_id, role, created_by,
		created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`), secretHash(tok), e.TenantID, user, e.Role, createdBy,
		now.UnixMicro(), e.ExpiresAt.UnixMicro())
	if err != nil {
		return "", fmt.Errorf("identity: store enrolment link: %w", err)
	}
	return tok, nil
}

// CancelEnrolments deletes, in tx, the account's unused enrolment links.
func (s *Service) CancelEnrolments(ctx context.Context, tx *sql.Tx, userID string) error {
	if _, err := tx.ExecContext(ctx, s.DB.Rebind(`DELETE FROM enrolments WHERE user_id = ? AND used_at IS NULL`), userID); err != nil {
		return fmt.Errorf("identity: cancel enrolment links: %w", err)
	}
	return nil
}

// Enrolment returns the enrolment link a token names, while it is in force.
func (s *Service) Enrolment(ctx context.Context, q store.Querier, tok string) (*Enrolment, error) {
	if _, _, ok := splitSecret(tok, enrolmentPrefix); !ok {
		return nil, ErrEnrolmentInvalid
	}
	e := &Enrolment{}
	var user sql.NullString
	var expires int64
	err := q.QueryRowContext(ctx, s.DB.Rebind(`SELECT tenant_id, user_id, role, expires_at FROM enrolments
		WHERE token_hash = ? AND used_at IS NULL`), secretHash(tok)).Scan(&e.TenantID, &user, &e.Role, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrEnrolmentInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read enrolment link: %w", err)
	}
	e.UserID, e.ExpiresAt = user.String, time.UnixMicro(expires).UTC()
	if !s.Now().Before(e.ExpiresAt) {
		return nil, ErrEnrolmentInvalid
	}
	return e, nil
}

// EnrolStart is the first step of an enrolment, checked and with its
// password hashed, ready to apply in a transaction.
type EnrolStart struct {
	s        *Service
	token    string
	link     *Enrolment
	email    string // canonical; for a link that creates the account
	display  string
	name     string
	hash     string // "" keeps the account's password
	NewUser  bool
	Existing *User
	// UserID is the account's ID: the existing account's, or the one
	// Apply gives the account it creates, so that the step's audit event
	// names it.
	UserID string
}

// PrepareEnrolment checks the first step of an enrolment: the link, and for
// a link that creates an account its email and name, and the password,
// which an account without one must set. tenantName feeds the password
// rules.
func (s *Service) PrepareEnrolment(ctx context.Context, tok, email, name, password, tenantName string) (*EnrolStart, error) {
	link, err := s.Enrolment(ctx, s.DB.Read, tok)
	if err != nil {
		return nil, err
	}
	es := &EnrolStart{s: s, token: tok, link: link}
	if link.UserID == "" {
		es.NewUser = true
		if es.email, err = CanonicalEmail(email); err != nil {
			// The field is named once, as a FieldError names it.
			return nil, &FieldError{"email", strings.TrimPrefix(err.Error(), "email ")}
		}
		if err := checkName(name); err != nil {
			return nil, err
		}
		es.display, es.name = email, name
		es.UserID = NewUserID()
	} else {
		if email != "" || name != "" {
			return nil, &FieldError{"email", "this link enrols an existing account: leave email and name out"}
		}
		if es.Existing, err = s.Users.ByID(ctx, s.DB.Read, link.TenantID, link.UserID); err != nil {
			return nil, ErrEnrolmentInvalid
		}
		if es.Existing.Status != StatusActive {
			return nil, ErrEnrolmentInvalid
		}
		es.email, es.name, es.UserID = es.Existing.Email, es.Existing.Name, es.Existing.ID
	}
	if password == "" {
		if es.NewUser || !es.Existing.HasPassword {
			return nil, &FieldError{"password", "required: the account has no password yet"}
		}
		return es, nil
	}
	if err := CheckPassword(password, es.email, es.name, tenantName); err != nil {
		return nil, err // a *PasswordError, which names its field
	}
	if es.hash, err = s.Hasher.Hash(ctx, NormalizePassword(password)); err != nil {
		return nil, err
	}
	return es, nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return &FieldError{"name", "required"}
	case len(name) > MaxNameLen:
		return &FieldError{"name", fmt.Sprintf("must be at most %d bytes", MaxNameLen)}
	case !store.StorableText(name):
		return &FieldError{"name", "must be text without control characters"}
	}
	return nil
}

// Apply carries out the first step in tx: it creates the account (calling
// created, which grants the link's role, in the same transaction), stores
// the password, and begins a TOTP enrolment whose secret it returns. The
// account's new factor takes effect at FinishEnrolment.
func (es *EnrolStart) Apply(ctx context.Context, tx *sql.Tx, created func(*User) error) (*User, *TOTPEnrolment, error) {
	s := es.s
	link, err := s.Enrolment(ctx, tx, es.token)
	if err != nil {
		return nil, nil, err
	}
	// The link must still be as it was checked: a first step that bound a
	// new-account link to its account meanwhile has spent that part of it.
	if es.NewUser != (link.UserID == "") || (!es.NewUser && link.UserID != es.UserID) {
		return nil, nil, ErrEnrolmentInvalid
	}
	u := es.Existing
	if es.NewUser {
		u = &User{ID: es.UserID, TenantID: link.TenantID, Email: es.email, Display: es.display, Name: es.name}
		if err := s.Users.Create(ctx, tx, u); err != nil {
			return nil, nil, err
		}
		if created != nil {
			if err := created(u); err != nil {
				return nil, nil, err
			}
		}
		// Bound only while unbound: of two first steps at once, on a
		// database that lets both read the link unbound, one binds it.
		res, err := tx.ExecContext(ctx, s.DB.Rebind(`UPDATE enrolments SET user_id = ? WHERE token_hash = ?
			AND user_id IS NULL`), u.ID, secretHash(es.token))
		if err != nil {
			return nil, nil, fmt.Errorf("identity: bind enrolment link: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, nil, fmt.Errorf("identity: bind enrolment link: %w", err)
		} else if n != 1 {
			return nil, nil, ErrEnrolmentInvalid
		}
	}
	if es.hash != "" {
		if err := s.Users.setPasswordHash(ctx, tx, u.ID, es.hash, !es.NewUser); err != nil {
			return nil, nil, err
		}
		u.HasPassword = true
		if !es.NewUser {
			if err := EndAll(ctx, s.DB, tx, u.ID, "password reset by an enrolment link", s.Now().UTC()); err != nil {
				return nil, nil, err
			}
		}
	}
	te, err := s.Factors.BeginTOTP(ctx, tx, u.ID, s.Issuer, u.Email)
	if err != nil {
		return nil, nil, err
	}
	return u, te, nil
}

// Enrolled is a completed enrolment: the proof for Gate and the recovery
// codes to show once.
type Enrolled struct {
	Proof         *Proof
	RecoveryCodes []string
}

// FinishEnrolment confirms the TOTP factor begun by Apply with a code from
// the authenticator, in tx: it replaces any earlier TOTP factor and
// recovery codes, spends the link, and ends the account's other sessions,
// since its factors changed. The returned proof lets the caller mint a
// session through Gate in the same transaction.
func (s *Service) FinishEnrolment(ctx context.Context, tx *sql.Tx, tok, code string) (*Enrolled, error) {
	link, err := s.Enrolment(ctx, tx, tok)
	if err != nil {
		return nil, err
	}
	if link.UserID == "" {
		return nil, &FieldError{"token", "set a password and begin the enrolment first"}
	}
	u, err := s.Users.ByID(ctx, tx, link.TenantID, link.UserID)
	if err != nil || u.Status != StatusActive || !u.HasPassword {
		return nil, ErrEnrolmentInvalid
	}
	if err := s.Factors.ConfirmTOTP(ctx, tx, u.ID, code); err != nil {
		return nil, err
	}
	codes, err := s.Factors.NewRecoveryCodes(ctx, tx, u.ID)
	if err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, s.DB.Rebind(`UPDATE enrolments SET used_at = ? WHERE token_hash = ? AND used_at IS NULL`),
		s.Now().UTC().UnixMicro(), secretHash(tok))
	if err != nil {
		return nil, fmt.Errorf("identity: spend enrolment link: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, ErrEnrolmentInvalid
	}
	if err := s.Users.bumpCredentials(ctx, tx, u.ID); err != nil {
		return nil, err
	}
	if err := EndAll(ctx, s.DB, tx, u.ID, "second factor changed", s.Now().UTC()); err != nil {
		return nil, err
	}
	return &Enrolled{Proof: &Proof{user: u, factor: "totp", version: u.CredentialsVersion + 1}, RecoveryCodes: codes}, nil
}
