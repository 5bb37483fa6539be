package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/attest/attest/internal/store"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
)

// The relying party passkeys are bound to when nothing else is configured:
// the self-signed localhost of a fresh data directory.
const (
	DefaultRPID   = "localhost"
	DefaultOrigin = "https://localhost:8443"
)

// PasskeyConfig names the relying party of WebAuthn ceremonies. A passkey
// registered for one RP ID is useless at any other, and a ceremony counts
// only when the browser says it ran on one of the origins.
type PasskeyConfig struct {
	// RPID is the domain passkeys are scoped to; default DefaultRPID.
	RPID string
	// RPName is what authenticators show for attest; default "attest".
	RPName string
	// Origins are the web origins (scheme, host and port) that ceremonies
	// may come from; default DefaultOrigin.
	Origins []string
}

// Passkey errors.
var (
	// ErrPasskeysUnconfigured means no valid relying party is configured:
	// every ceremony is refused.
	ErrPasskeysUnconfigured = errors.New("identity: passkeys are not configured")
	// ErrRegistrationExpired means no passkey registration is in progress
	// for the session: none was begun, it expired, or it was used.
	ErrRegistrationExpired = errors.New("identity: no passkey registration is in progress: begin one again")
	// ErrPasskeyRejected means a registration response did not verify:
	// another origin, relying party or challenge, or a malformed one.
	ErrPasskeyRejected = errors.New("identity: the passkey did not verify against the registration")
	// ErrPasskeyTaken means the credential is registered already.
	ErrPasskeyTaken = errors.New("identity: the passkey is registered already")
)

// CounterRegressionError refuses an assertion whose signature counter did
// not advance past the stored one, the mark of a cloned authenticator. The
// credential is flagged and never accepted again. It is an ErrBadCode.
type CounterRegressionError struct {
	CredentialID string // base64url, as the browser names it
	Stored       uint32
	Presented    uint32
}

func (e *CounterRegressionError) Error() string {
	return "identity: the authenticator's signature counter did not advance: it may be cloned"
}

// Unwrap makes the error an ErrBadCode.
func (e *CounterRegressionError) Unwrap() error { return ErrBadCode }

// Passkey is a registered WebAuthn credential, without its key.
type Passkey struct {
	ID   string // the credential id, base64url
	Name string
	// AAGUID names the authenticator model; all zeros when it says none.
	AAGUID string
	// CloneWarning is set once the credential presented a counter that
	// went backwards: it no longer signs in.
	CloneWarning bool
	CreatedAt    time.Time
	LastUsedAt   time.Time // zero before the first use
}

// Passkeys stores WebAuthn credentials and holds the relying party that
// verifies their ceremonies through go-webauthn.
type Passkeys struct {
	db  *store.DB
	now func() time.Time
	// rp is swapped whole by Configure while requests read it.
	rp atomic.Pointer[webauthn.WebAuthn]
}

// NewPasskeys returns the passkey store, with no relying party until
// Configure gives it one.
func NewPasskeys(db *store.DB, now func() time.Time) *Passkeys { return &Passkeys{db: db, now: now} }

// newDefaultPasskeys returns the passkey store with the default relying
// party, named as authenticator apps name attest. Defaults that failed to
// validate would leave it unconfigured, refusing every ceremony.
func newDefaultPasskeys(db *store.DB, name string, now func() time.Time) *Passkeys {
	pk := NewPasskeys(db, now)
	_ = pk.Configure(PasskeyConfig{RPName: name})
	return pk
}

// Configure sets the relying party, filling in the defaults, as when the
// server learns the address it serves at. Ceremonies already begun are
// checked against the new one.
func (pk *Passkeys) Configure(cfg PasskeyConfig) error {
	if cfg.RPID == "" {
		cfg.RPID = DefaultRPID
	}
	if cfg.RPName == "" {
		cfg.RPName = "attest"
	}
	if len(cfg.Origins) == 0 {
		cfg.Origins = []string{DefaultOrigin}
	}
	for _, o := range cfg.Origins {
		if err := checkOrigin(o); err != nil {
			return err
		}
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPName,
		RPOrigins:             cfg.Origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{ResidentKey: protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred},
		// attest requests no extensions and reads none of their outputs,
		// so one it did not ask for changes nothing; refusing it would
		// refuse the browsers and password managers that add them.
		ExtensionsUnsolicitedOutputPolicy: protocol.UnsolicitedOutputPolicyIgnore,
	})
	if err != nil {
		return fmt.Errorf("identity: passkey relying party: %w", err)
	}
	pk.rp.Store(wa)
	return nil
}

// checkOrigin accepts an HTTPS origin, or plain HTTP for localhost, with
// nothing after the host and port.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	bad := err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" ||
		u.User != nil
	if !bad && u.Scheme != "https" && (u.Scheme != "http" || u.Hostname() != "localhost") {
		bad = true
	}
	if bad {
		return fmt.Errorf("identity: passkey origin %q: want https://host[:port]", o)
	}
	return nil
}

func (pk *Passkeys) relyingParty() (*webauthn.WebAuthn, error) {
	wa := pk.rp.Load()
	if wa == nil {
		return nil, ErrPasskeysUnconfigured
	}
	return wa, nil
}

// passkeyUser is an account as go-webauthn sees it. The user handle is the
// account id: random, and no personal value.
type passkeyUser struct {
	u     *User
	creds []webauthn.Credential
}

func (p passkeyUser) WebAuthnID() []byte                         { return []byte(p.u.ID) }
func (p passkeyUser) WebAuthnName() string                       { return p.u.Email }
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

func (p passkeyUser) WebAuthnDisplayName() string {
	if p.u.Name != "" {
		return p.u.Name
	}
	return p.u.Email
}

// credentials reads a user's credentials as go-webauthn holds them. The
// stored counter and flag are authoritative over the serialized copy;
// usable leaves out flagged ones.
func (pk *Passkeys) credentials(ctx context.Context, q store.Querier, userID string,
	usable bool) ([]webauthn.Credential, error) {
	rows, err := q.QueryContext(ctx, pk.db.Rebind(`SELECT credential, sign_count, clone_warning
		FROM webauthn_credentials WHERE user_id = ? ORDER BY created_at, id`), userID)
	if err != nil {
		return nil, fmt.Errorf("identity: read passkeys: %w", err)
	}
	defer rows.Close()
	var out []webauthn.Credential
	for rows.Next() {
		var blob []byte
		var count int64
		var flagged bool
		if err := rows.Scan(&blob, &count, &flagged); err != nil {
			return nil, fmt.Errorf("identity: read passkey: %w", err)
		}
		var c webauthn.Credential
		if err := json.Unmarshal(blob, &c); err != nil {
			return nil, fmt.Errorf("identity: read passkey: %w", err)
		}
		c.Authenticator.SignCount, c.Authenticator.CloneWarning = uint32(count), flagged
		if usable && flagged {
			continue
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// List returns a user's passkeys, oldest first.
func (pk *Passkeys) List(ctx context.Context, q store.Querier, userID string) ([]*Passkey, error) {
	rows, err := q.QueryContext(ctx, pk.db.Rebind(`SELECT id, name, credential, clone_warning, created_at, last_used_at
		FROM webauthn_credentials WHERE user_id = ? ORDER BY created_at, id`), userID)
	if err != nil {
		return nil, fmt.Errorf("identity: list passkeys: %w", err)
	}
	defer rows.Close()
	out := []*Passkey{}
	for rows.Next() {
		var id, blob []byte
		var created int64
		var used sql.NullInt64
		p := &Passkey{}
		if err := rows.Scan(&id, &p.Name, &blob, &p.CloneWarning, &created, &used); err != nil {
			return nil, fmt.Errorf("identity: read passkey: %w", err)
		}
		var c webauthn.Credential
		if err := json.Unmarshal(blob, &c); err != nil {
			return nil, fmt.Errorf("identity: read passkey: %w", err)
		}
		p.ID, p.AAGUID = encodeCredentialID(id), aaguid(c)
		p.CreatedAt, p.LastUsedAt = time.UnixMicro(created).UTC(), fromMicros(used)
		out = append(out, p)
	}
	return out, rows.Err()
}

func encodeCredentialID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

func aaguid(c webauthn.Credential) string {
	id, err := uuid.FromBytes(c.Authenticator.AAGUID)
	if err != nil {
		return uuid.Nil.String()
	}
	return id.String()
}

// passkeyName checks the name a person gives a passkey.
func passkeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "passkey", nil
	}
	ok := utf8.RuneCountInString(name) <= 64 && store.StorableText(name)
	for _, r := range name {
		ok = ok && !unicode.IsControl(r)
	}
	if !ok {
		return "", &FieldError{"name", "must be at most 64 characters of text"}
	}
	return name, nil
}

// A registration waits in pending_logins under a key derived from its
// session: one per session, reachable only by that session's holder, and
// never usable as a login token (its purpose differs).
const registerPurpose = "webauthn_register"

func registrationKey(sessionID string) []byte {
	h := sha256.Sum256([]byte("attest/webauthn-register/v1\x00" + sessionID))
	return h[:]
}

// registrationSession is the go-webauthn view of a stored challenge. Only
// the challenge is stored; the rest is what BeginRegistration always uses.
func registrationSession(wa *webauthn.WebAuthn, u *User, challenge []byte) webauthn.SessionData {
	return webauthn.SessionData{Challenge: protocol.URLEncodedBase64(challenge).String(), RelyingPartyID: wa.Config.RPID,
		UserID: []byte(u.ID), UserVerification: protocol.VerificationPreferred,
		CredParams: webauthn.CredentialParametersDefault()}
}

// BeginPasskeyRegistration starts registering a passkey for the user of a
// session, in tx. It answers the options for navigator.credentials.create
// and keeps their challenge for five minutes, for PreparePasskey to spend;
// a new registration in the same session replaces the last. The caller
// has checked a fresh second factor.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, tx *sql.Tx, tenantID int64,
	userID, sessionID string) (*protocol.CredentialCreation, error) {
	wa, err := s.Passkeys.relyingParty()
	if err != nil {
		return nil, err
	}
	u, err := s.Users.ByID(ctx, tx, tenantID, userID)
	if err != nil {
		return nil, err
	}
	if u.Status != StatusActive {
		return nil, ErrNotActive
	}
	creds, err := s.Passkeys.credentials(ctx, tx, u.ID, false)
	if err != nil {
		return nil, err
	}
	exclude := make([]protocol.CredentialDescriptor, len(creds))
	for i := range creds {
		exclude[i] = creds[i].Descriptor()
	}
	cc, _, err := wa.BeginRegistration(passkeyUser{u: u, creds: creds}, webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, fmt.Errorf("identity: begin passkey registration: %w", err)
	}
	key, now := registrationKey(sessionID), s.Now().UTC()
	_, err = tx.ExecContext(ctx, s.DB.Rebind(`DELETE FROM pending_logins WHERE token_hash = ?`), key)
	if err == nil {
		_, err = tx.ExecContext(ctx, s.DB.Rebind(`INSERT INTO pending_logins (token_hash, user_id, purpose,
			credentials_version, challenge, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			key, u.ID, registerPurpose, u.CredentialsVersion, []byte(cc.Response.Challenge), now.UnixMicro(),
			now.Add(pendingTTL).UnixMicro())
	}
	if err != nil {
		return nil, fmt.Errorf("identity: store passkey registration: %w", err)
	}
	return cc, nil
}

// takeRegistration spends a session's registration, in a transaction of its
// own so that it is spent whether or not what follows verifies.
func (s *Service) takeRegistration(ctx context.Context, sessionID, userID string) ([]byte, int64, error) {
	var challenge []byte
	var version, expires int64
	key := registrationKey(sessionID)
	err := s.DB.InTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.DB.Rebind(`SELECT challenge, credentials_version, expires_at FROM pending_logins
			WHERE token_hash = ? AND purpose = ? AND user_id = ?`), key, registerPurpose, userID).
			Scan(&challenge, &version, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrRegistrationExpired
		}
		if err != nil {
			return fmt.Errorf("identity: read passkey registration: %w", err)
		}
		del, err := tx.ExecContext(ctx, s.DB.Rebind(`DELETE FROM pending_logins WHERE token_hash = ? AND purpose = ?`),
			key, registerPurpose)
		if err != nil {
			return fmt.Errorf("identity: spend passkey registration: %w", err)
		}
		if n, _ := del.RowsAffected(); n != 1 {
			return ErrRegistrationExpired // a concurrent finish spent it
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if !s.Now().Before(time.UnixMicro(expires)) || len(challenge) == 0 {
		return nil, 0, ErrRegistrationExpired
	}
	return challenge, version, nil
}

// PasskeyRegistration is a verified new passkey, waiting to be stored
// together with the audit event that records it.
type PasskeyRegistration struct {
	s         *Service
	user      *User
	sessionID string
	name      string
	version   int64
	cred      *webauthn.Credential
}

// ID is the new credential's id, base64url.
func (pr *PasskeyRegistration) ID() string { return encodeCredentialID(pr.cred.ID) }

// Name is the name the passkey is stored under.
func (pr *PasskeyRegistration) Name() string { return pr.name }

// AAGUID names the authenticator model.
func (pr *PasskeyRegistration) AAGUID() string { return aaguid(*pr.cred) }

// PreparePasskey verifies, with go-webauthn, a registration response (the
// PublicKeyCredential JSON from navigator.credentials.create) against the
// session's registration, which it spends, right or wrong. It answers a
// *FieldError for a malformed name or response, ErrRegistrationExpired
// when no registration is in force and ErrPasskeyRejected when the
// response does not verify.
func (s *Service) PreparePasskey(ctx context.Context, tenantID int64, userID, sessionID, name string,
	credential []byte) (*PasskeyRegistration, error) {
	name, err := passkeyName(name)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credential)
	if err != nil {
		return nil, &FieldError{"credential", "must be the PublicKeyCredential from navigator.credentials.create, as JSON"}
	}
	wa, err := s.Passkeys.relyingParty()
	if err != nil {
		return nil, err
	}
	u, err := s.Users.ByID(ctx, s.DB.Read, tenantID, userID)
	if err != nil {
		return nil, err
	}
	challenge, version, err := s.takeRegistration(ctx, sessionID, u.ID)
	if err != nil {
		return nil, err
	}
	cred, err := wa.CreateCredential(passkeyUser{u: u}, registrationSession(wa, u, challenge), parsed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPasskeyRejected, err)
	}
	return &PasskeyRegistration{s: s, user: u, sessionID: sessionID, name: name, version: version, cred: cred}, nil
}

// Apply stores the passkey in tx. It is a change of the user's factors:
// their other sessions end, and this one goes on under the new token it
// returns. A change of credentials since the registration began refuses
// it with ErrStaleProof.
func (pr *PasskeyRegistration) Apply(ctx context.Context, tx *sql.Tx) (SessionToken, *Passkey, error) {
	s := pr.s
	u, err := s.Users.ByID(ctx, tx, pr.user.TenantID, pr.user.ID)
	if err != nil {
		return "", nil, err
	}
	if u.Status != StatusActive {
		return "", nil, ErrNotActive
	}
	if u.CredentialsVersion != pr.version {
		return "", nil, ErrStaleProof
	}
	blob, err := json.Marshal(pr.cred)
	if err != nil {
		return "", nil, fmt.Errorf("identity: store passkey: %w", err)
	}
	now := s.Now().UTC().Truncate(time.Microsecond)
	_, err = tx.ExecContext(ctx, s.DB.Rebind(`INSERT INTO webauthn_credentials (id, user_id, name, credential, sign_count,
		created_at) VALUES (?, ?, ?, ?, ?, ?)`), pr.cred.ID, u.ID, pr.name, blob, int64(pr.cred.Authenticator.SignCount),
		now.UnixMicro())
	if store.IsUniqueViolation(err) {
		return "", nil, ErrPasskeyTaken
	}
	if err != nil {
		return "", nil, fmt.Errorf("identity: store passkey: %w", err)
	}
	if err := s.Users.bumpCredentials(ctx, tx, u.ID); err != nil {
		return "", nil, err
	}
	if err := endOtherSessions(ctx, s.DB, tx, u.ID, pr.sessionID, "factor added", now); err != nil {
		return "", nil, err
	}
	tok, err := s.Sessions.Rotate(ctx, tx, pr.sessionID)
	if err != nil {
		return "", nil, err
	}
	return tok, &Passkey{ID: pr.ID(), Name: pr.name, AAGUID: pr.AAGUID(), CreatedAt: now}, nil
}

// endOtherSessions ends every session of a user but one, in tx.
func endOtherSessions(ctx context.Context, db *store.DB, tx *sql.Tx, userID, keep, reason string, now time.Time) error {
	_, err := tx.ExecContext(ctx, db.Rebind(`UPDATE sessions SET revoked_at = ?, revoke_reason = ?
		WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`), now.UnixMicro(), reason, userID, keep)
	if err != nil {
		return fmt.Errorf("identity: end other sessions: %w", err)
	}
	return nil
}

// RemovePasskey deletes one of a user's passkeys, named by its base64url
// id, in tx. Like any factor removal it ends every session and API key of
// the user. ErrNoFactor when the user has no such passkey.
func (s *Service) RemovePasskey(ctx context.Context, tx *sql.Tx, userID, id string) error {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 {
		return ErrNoFactor
	}
	res, err := tx.ExecContext(ctx, s.DB.Rebind(`DELETE FROM webauthn_credentials WHERE id = ? AND user_id = ?`),
		raw, userID)
	if err != nil {
		return fmt.Errorf("identity: remove passkey: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNoFactor
	}
	if err := s.Users.bumpCredentials(ctx, tx, userID); err != nil {
		return err
	}
	return EndAll(ctx, s.DB, tx, userID, "factor removed", s.Now().UTC())
}

// BeginPasskeyLogin answers, in tx, the options for navigator.credentials.get
// that the second step of a pending login signs, and keeps their challenge
// in the pending login: a new one replaces the last, and PasskeyLogin spends
// it, right or wrong. ErrNoFactor when the account has no usable passkey.
func (s *Service) BeginPasskeyLogin(ctx context.Context, tx *sql.Tx,
	loginToken string) (*protocol.CredentialAssertion, error) {
	wa, err := s.Passkeys.relyingParty()
	if err != nil {
		return nil, err
	}
	p, err := s.pendingLogin(ctx, tx, loginToken)
	if err != nil {
		return nil, err
	}
	u, err := s.pendingAccount(ctx, tx, p)
	if err != nil {
		return nil, err
	}
	creds, err := s.Passkeys.credentials(ctx, tx, u.ID, true)
	if err != nil {
		return nil, err
	}
	if len(creds) == 0 {
		return nil, ErrNoFactor
	}
	ca, _, err := wa.BeginLogin(passkeyUser{u: u, creds: creds},
		webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, fmt.Errorf("identity: begin passkey login: %w", err)
	}
	_, err = tx.ExecContext(ctx, s.DB.Rebind(`UPDATE pending_logins SET challenge = ?
		WHERE token_hash = ? AND purpose = 'mfa'`), []byte(ca.Response.Challenge), secretHash(loginToken))
	if err != nil {
		return nil, fmt.Errorf("identity: store passkey challenge: %w", err)
	}
	return ca, nil
}

// takeChallenge spends the pending login's challenge in tx; nil when there
// is none to spend.
func (s *Service) takeChallenge(ctx context.Context, tx *sql.Tx, loginToken string) ([]byte, error) {
	var challenge []byte
	h := secretHash(loginToken)
	err := tx.QueryRowContext(ctx, s.DB.Rebind(`SELECT challenge FROM pending_logins WHERE token_hash = ?`), h).
		Scan(&challenge)
	if err != nil {
		return nil, fmt.Errorf("identity: read passkey challenge: %w", err)
	}
	if len(challenge) == 0 {
		return nil, nil
	}
	res, err := tx.ExecContext(ctx, s.DB.Rebind(`UPDATE pending_logins SET challenge = NULL
		WHERE token_hash = ? AND challenge = ?`), h, challenge)
	if err != nil {
		return nil, fmt.Errorf("identity: spend passkey challenge: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, nil // a concurrent attempt spent it
	}
	return challenge, nil
}

// PasskeyLogin checks the second step of a login with a WebAuthn assertion
// (the PublicKeyCredential JSON from navigator.credentials.get), verified
// by go-webauthn against the pending login's challenge, the relying party
// and the account's passkeys. It answers as SecondFactor does, with the
// same counters: a Proof for Gate, spending the pending login and the
// factor counter's failures; ErrBadCode for an assertion that does not
// verify, or reuses a challenge, and a *CounterRegressionError (an
// ErrBadCode too) for one whose signature counter went backwards, which
// flags the credential; ErrLoginExpired; a *ThrottledError; and a
// *FieldError for a response that is not an assertion at all.
func (s *Service) PasskeyLogin(ctx context.Context, loginToken string, credential []byte) (*Proof, *Attempt, error) {
	at := &Attempt{}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		return nil, at, &FieldError{"credential", "must be the PublicKeyCredential from navigator.credentials.get, as JSON"}
	}
	wa, err := s.Passkeys.relyingParty()
	if err != nil {
		return nil, at, err
	}
	return s.secondStep(ctx, loginToken, "webauthn", func(ctx context.Context, tx *sql.Tx, u *User) (error, error) {
		return s.verifyAssertion(ctx, tx, wa, u, loginToken, parsed)
	})
}

// verifyAssertion spends the pending login's challenge and checks the
// assertion against it, in tx. A refusal is its first result, committed
// with the failure it counts; the second is an error that rolls back.
func (s *Service) verifyAssertion(ctx context.Context, tx *sql.Tx, wa *webauthn.WebAuthn, u *User, loginToken string,
	parsed *protocol.ParsedCredentialAssertionData) (refusal, err error) {
	challenge, err := s.takeChallenge(ctx, tx, loginToken)
	if err != nil || challenge == nil {
		return ErrBadCode, err
	}
	creds, err := s.Passkeys.credentials(ctx, tx, u.ID, true)
	if err != nil {
		return nil, err
	}
	ids := make([][]byte, len(creds))
	for i := range creds {
		ids[i] = creds[i].ID
	}
	sd := webauthn.SessionData{Challenge: protocol.URLEncodedBase64(challenge).String(), RelyingPartyID: wa.Config.RPID,
		UserID: []byte(u.ID), AllowedCredentialIDs: ids, UserVerification: protocol.VerificationPreferred}
	cred, err := wa.ValidateLogin(passkeyUser{u: u, creds: creds}, sd, parsed)
	if err != nil {
		return ErrBadCode, nil
	}
	var stored uint32
	for _, c := range creds {
		if bytes.Equal(c.ID, cred.ID) {
			stored = c.Authenticator.SignCount
		}
	}
	now := s.Now().UTC().UnixMicro()
	if cred.Authenticator.CloneWarning {
		if _, err := tx.ExecContext(ctx, s.DB.Rebind(`UPDATE webauthn_credentials SET clone_warning = ? WHERE id = ?`),
			true, cred.ID); err != nil {
			return nil, fmt.Errorf("identity: flag passkey: %w", err)
		}
		return &CounterRegressionError{CredentialID: encodeCredentialID(cred.ID), Stored: stored,
			Presented: parsed.Response.AuthenticatorData.Counter}, nil
	}
	blob, err := json.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("identity: store passkey: %w", err)
	}
	// The counter advances only from the value this check read, so two
	// assertions bearing the same counter cannot both pass.
	upd, err := tx.ExecContext(ctx, s.DB.Rebind(`UPDATE webauthn_credentials SET sign_count = ?, credential = ?,
		last_used_at = ? WHERE id = ? AND sign_count = ? AND clone_warning = ?`),
		int64(cred.Authenticator.SignCount), blob, now, cred.ID, int64(stored), false)
	if err != nil {
		return nil, fmt.Errorf("identity: record passkey use: %w", err)
	}
	if n, _ := upd.RowsAffected(); n != 1 {
		return ErrBadCode, nil
	}
	return nil, nil
}
