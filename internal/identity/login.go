package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
)

// Meta describes the client of a login.
type Meta struct {
	IP        string
	UserAgent string
}

// Login errors.
var (
	// ErrInvalidCredentials answers a wrong password and an unknown,
	// disabled or password-less account alike.
	ErrInvalidCredentials = errors.New("identity: invalid email or password")
	// ErrEnrolmentRequired means the password was right but the account
	// has no second factor: it must enrol, through a link an admin issues.
	ErrEnrolmentRequired = errors.New("identity: a second factor is required: enrol one with an enrolment link")
	// ErrLoginExpired means a pending login is unknown, expired, used, or
	// was abandoned after too many wrong codes.
	ErrLoginExpired = errors.New("identity: the login has expired: sign in with your password again")
	// ErrMFARequired means no second factor was verified: no session.
	ErrMFARequired = errors.New("identity: a verified second factor is required")
	// ErrStaleProof means the account's credentials changed after the
	// factor was verified.
	ErrStaleProof = errors.New("identity: the account's credentials changed during the login")
)

// Pending logins last five minutes and survive three wrong codes.
const (
	pendingTTL      = 5 * time.Minute
	pendingFailures = 3
)

// Proof is evidence that a user verified a second factor just now. Only
// this package makes one, and only after the factor verified; Gate is the
// only way to turn one into a session.
type Proof struct {
	user    *User
	factor  string
	version int64
}

// User is the account the proof is for.
func (p *Proof) User() *User { return p.user }

// Factor is the kind of factor verified: "totp", "webauthn", "recovery".
func (p *Proof) Factor() string { return p.factor }

// SecondFactors lists the kinds of factor a Proof, and so a session,
// may record.
var SecondFactors = []string{"totp", "webauthn", "recovery"}

// Service is the login state machine: password, then second factor, then
// session, with the counters that throttle each step.
type Service struct {
	DB       *store.DB
	Users    *Users
	Factors  *Factors
	Sessions *Sessions
	Counters *Counters
	Groups   *Groups
	// Passkeys holds WebAuthn credentials and the relying party; the
	// server may Configure it with the origins it serves.
	Passkeys *Passkeys
	Hasher   Hasher
	// Issuer names attest in authenticator apps.
	Issuer string
	Now    func() time.Time
}

// NewService wires the identity stores over db.
func NewService(db *store.DB, kek *personal.Sealer, issuer string, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{DB: db, Users: NewUsers(db, now), Factors: NewFactors(db, kek, now), Sessions: NewSessions(db, now),
		Counters: NewCounters(db, now), Groups: NewGroups(db, now), Passkeys: newDefaultPasskeys(db, issuer, now),
		Hasher: Hasher{Params: DefaultArgon2}, Issuer: issuer, Now: now}
}

// Gate mints a session, in tx, for the user a proof names: the one way
// any session begins. It refuses a missing proof, an account no longer
// active, and a proof made before the account's credentials last changed.
func (s *Service) Gate(ctx context.Context, tx *sql.Tx, sessionID string, p *Proof, meta Meta) (SessionToken, *Session, error) {
	if p == nil || p.user == nil || p.factor == "" {
		return "", nil, ErrMFARequired
	}
	u, err := s.Users.ByID(ctx, tx, p.user.TenantID, p.user.ID)
	if err != nil {
		return "", nil, err
	}
	if u.Status != StatusActive {
		return "", nil, ErrNotActive
	}
	if u.CredentialsVersion != p.version {
		return "", nil, ErrStaleProof
	}
	tok, sess, err := s.Sessions.mint(ctx, tx, sessionID, u, p.factor, meta)
	if err != nil {
		return "", nil, err
	}
	if err := s.Users.markLogin(ctx, tx, u.ID, sess.CreatedAt); err != nil {
		return "", nil, err
	}
	return tok, sess, nil
}

// Attempt says what a login step did, for its audit event and metrics,
// whether it succeeded or not.
type Attempt struct {
	User *User // nil when no account has the email
	// Counter results: a reservation that reached its budget locked it.
	AccountLocked bool
	IPLocked      bool
	Failures      int
}

// LoginStart is a password step that passed: the pending login's token,
// usable only for the second step, and the factors the user may use.
type LoginStart struct {
	Token   string
	Factors []string
}

// BeginLogin checks a password. It answers ErrInvalidCredentials for a
// wrong password and for an unknown, inactive or password-less account,
// after the same work; a *ThrottledError when the account's or client's
// counter is waiting or locked; ErrEnrolmentRequired when the password is
// right but there is no second factor. Success yields no session: only a
// pending login for the second step.
func (s *Service) BeginLogin(ctx context.Context, tenantID int64, tenantName, email, password string, meta Meta) (*LoginStart, *Attempt, error) {
	at := &Attempt{}
	canon, emailErr := CanonicalEmail(email)
	if emailErr != nil {
		canon = "(invalid)"
	}
	ipRes, err := s.Counters.Reserve(ctx, IPCounter(meta.IP), ClientIPBudget)
	if err != nil {
		return nil, at, err
	}
	at.IPLocked = ipRes.LockedNow
	acct := PasswordCounter(tenantName, canon)
	res, err := s.Counters.Reserve(ctx, acct, PasswordAccountBudget)
	if err != nil {
		return nil, at, err
	}
	at.AccountLocked, at.Failures = res.LockedNow, res.Failures

	var u *User
	dummy := dummyHash()
	hash := dummy
	if emailErr == nil {
		u, err = s.Users.ByEmail(ctx, s.DB.Read, tenantID, canon)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, at, err
		}
	}
	if u != nil {
		at.User = u
		h, err := s.Users.passwordHash(ctx, s.DB.Read, u.ID)
		if err != nil {
			return nil, at, err
		}
		if h != "" && u.Status == StatusActive {
			hash = h
		}
	}
	ok, rehash, err := s.Hasher.Verify(ctx, hash, NormalizePassword(password))
	if err != nil && !errors.Is(err, errBadHash) {
		return nil, at, err
	}
	if !ok || hash == dummy {
		return nil, at, ErrInvalidCredentials
	}
	at.AccountLocked = false
	if _, err := s.Counters.Clear(ctx, s.DB.Write, acct); err != nil {
		return nil, at, err
	}
	if err := s.Counters.Refund(ctx, s.DB.Write, IPCounter(meta.IP), ClientIPBudget); err != nil {
		return nil, at, err
	}
	if rehash {
		s.rehash(ctx, u.ID, password)
	}
	kinds, err := s.Factors.Kinds(ctx, s.DB.Read, u.ID)
	if err != nil {
		return nil, at, err
	}
	if len(kinds) == 0 {
		return nil, at, ErrEnrolmentRequired
	}
	_, tok := newSecret(loginPrefix)
	now := s.Now().UTC()
	_, err = s.DB.Write.ExecContext(ctx, s.DB.Rebind(`INSERT INTO pending_logins (token_hash, user_id, purpose,
		credentials_version, created_at, expires_at) VALUES (?, ?, 'mfa', ?, ?, ?)`),
		secretHash(tok), u.ID, u.CredentialsVersion, now.UnixMicro(), now.Add(pendingTTL).UnixMicro())
	if err != nil {
		return nil, at, fmt.Errorf("identity: store pending login: %w", err)
	}
	return &LoginStart{Token: tok, Factors: kinds}, at, nil
}

// rehash replaces a hash made under older parameters; failing to is no
// reason to refuse the login.
func (s *Service) rehash(ctx context.Context, userID, password string) {
	h, err := s.Hasher.Hash(ctx, NormalizePassword(password))
	if err != nil {
		return
	}
	s.DB.InTx(ctx, func(tx *sql.Tx) error { return s.Users.setPasswordHash(ctx, tx, userID, h, false) })
}

// pending is a stored pending login.
type pending struct {
	userID   string
	version  int64
	failures int
}

func (s *Service) pendingLogin(ctx context.Context, q store.Querier, tok string) (*pending, error) {
	if _, _, ok := splitSecret(tok, loginPrefix); !ok {
		return nil, ErrLoginExpired
	}
	p := &pending{}
	var expires int64
	err := q.QueryRowContext(ctx, s.DB.Rebind(`SELECT user_id, credentials_version, failures, expires_at
		FROM pending_logins WHERE token_hash = ? AND purpose = 'mfa'`), secretHash(tok)).Scan(&p.userID, &p.version, &p.failures, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrLoginExpired
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read pending login: %w", err)
	}
	if !s.Now().Before(time.UnixMicro(expires)) || p.failures >= pendingFailures {
		return nil, ErrLoginExpired
	}
	return p, nil
}

// PendingUser returns the account a pending login belongs to, for the
// tenant and audit event of the second step.
func (s *Service) PendingUser(ctx context.Context, tok string) (*User, error) {
	p, err := s.pendingLogin(ctx, s.DB.Read, tok)
	if err != nil {
		return nil, err
	}
	return s.pendingAccount(ctx, s.DB.Read, p)
}

// SecondFactor checks the second step of a login: a TOTP code or a
// recovery code against the pending login's account. It answers a Proof
// for Gate, spending the pending login, the code and the factor counter's
// failures; ErrBadCode for a wrong, reused or expired code (three of them
// abandon the pending login); ErrLoginExpired for a pending login that is
// not in force; a *ThrottledError when the account's second-factor counter
// is waiting or locked.
func (s *Service) SecondFactor(ctx context.Context, loginToken, kind, code string) (*Proof, *Attempt, error) {
	if !slices.Contains([]string{"totp", "recovery"}, kind) {
		return nil, &Attempt{}, ErrNoFactor
	}
	return s.secondStep(ctx, loginToken, kind, func(ctx context.Context, tx *sql.Tx, u *User) (error, error) {
		var err error
		if kind == "totp" {
			err = s.Factors.VerifyTOTP(ctx, tx, u.ID, code)
		} else {
			err = s.Factors.UseRecoveryCode(ctx, tx, u.ID, code)
		}
		if errors.Is(err, ErrBadCode) || errors.Is(err, ErrNoFactor) {
			return ErrBadCode, nil
		}
		return nil, err
	})
}

// secondStep is the second step of a login with any factor: the pending
// login read, the account's second-factor counter reserved, and, in one
// transaction, verify run against the account. verify answers a refusal,
// which is committed with the failure it counts on the pending login (three
// abandon it), or an error, which rolls back. Success spends the pending
// login and clears the counter, and answers the Proof for Gate.
func (s *Service) secondStep(ctx context.Context, loginToken, factor string,
	verify func(ctx context.Context, tx *sql.Tx, u *User) (refusal, err error)) (*Proof, *Attempt, error) {
	at := &Attempt{}
	p, err := s.pendingLogin(ctx, s.DB.Read, loginToken)
	if err != nil {
		return nil, at, err
	}
	if at.User, err = s.pendingAccount(ctx, s.DB.Read, p); err != nil {
		return nil, at, err
	}
	res, err := s.Counters.Reserve(ctx, SecondFactorCounter(p.userID), SecondFactorBudget)
	if err != nil {
		return nil, at, err
	}
	at.AccountLocked, at.Failures = res.LockedNow, res.Failures
	var proof *Proof
	var refused error
	err = s.DB.InTx(ctx, func(tx *sql.Tx) error {
		p, err := s.pendingLogin(ctx, tx, loginToken)
		if err != nil {
			return err
		}
		u, err := s.pendingAccount(ctx, tx, p)
		if err != nil {
			return err
		}
		at.User = u
		if refused, err = verify(ctx, tx, u); err != nil {
			return err
		}
		if refused != nil {
			_, err = tx.ExecContext(ctx, s.DB.Rebind(`UPDATE pending_logins SET failures = failures + 1 WHERE token_hash = ?`),
				secretHash(loginToken))
			return err
		}
		del, err := tx.ExecContext(ctx, s.DB.Rebind(`DELETE FROM pending_logins WHERE token_hash = ?`), secretHash(loginToken))
		if err != nil {
			return fmt.Errorf("identity: spend pending login: %w", err)
		}
		if n, _ := del.RowsAffected(); n != 1 {
			return ErrLoginExpired
		}
		if _, err := s.Counters.Clear(ctx, tx, SecondFactorCounter(u.ID)); err != nil {
			return err
		}
		proof = &Proof{user: u, factor: factor, version: p.version}
		return nil
	})
	if err != nil {
		return nil, at, err
	}
	if refused != nil {
		return nil, at, refused
	}
	at.AccountLocked = false
	return proof, at, nil
}

// pendingAccount is the account a pending login is for.
func (s *Service) pendingAccount(ctx context.Context, q store.Querier, p *pending) (*User, error) {
	var tenantID int64
	err := q.QueryRowContext(ctx, s.DB.Rebind(`SELECT tenant_id FROM users WHERE id = ?`), p.userID).Scan(&tenantID)
	if err != nil {
		return nil, ErrLoginExpired
	}
	u, err := s.Users.ByID(ctx, q, tenantID, p.userID)
	if err != nil {
		return nil, ErrLoginExpired
	}
	return u, nil
}

// PasswordChange is a checked new password, hashed outside any
// transaction so that the hashing holds no lock.
type PasswordChange struct {
	s    *Service
	user *User
	hash string
}

// PreparePasswordChange checks a signed-in user's current password and the
// new one against the rules, and hashes the new one.
func (s *Service) PreparePasswordChange(ctx context.Context, u *User, current, next string, context ...string) (*PasswordChange, error) {
	h, err := s.Users.passwordHash(ctx, s.DB.Read, u.ID)
	if err != nil {
		return nil, err
	}
	if h == "" {
		h = dummyHash()
	}
	ok, _, err := s.Hasher.Verify(ctx, h, NormalizePassword(current))
	if err != nil || !ok || h == dummyHash() {
		return nil, ErrInvalidCredentials
	}
	if NormalizePassword(next) == NormalizePassword(current) {
		return nil, &PasswordError{"must differ from the current one"}
	}
	if err := CheckPassword(next, append(context, u.Email, u.Name)...); err != nil {
		return nil, err
	}
	nh, err := s.Hasher.Hash(ctx, NormalizePassword(next))
	if err != nil {
		return nil, err
	}
	return &PasswordChange{s: s, user: u, hash: nh}, nil
}

// Apply stores the new password in tx and ends every session and API key
// of the user: the user signs in again.
func (pc *PasswordChange) Apply(ctx context.Context, tx *sql.Tx) error {
	if err := pc.s.Users.setPasswordHash(ctx, tx, pc.user.ID, pc.hash, true); err != nil {
		return err
	}
	return EndAll(ctx, pc.s.DB, tx, pc.user.ID, "password changed", pc.s.Now().UTC())
}
