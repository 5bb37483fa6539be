package identity

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/attest/attest/internal/store"
)

// Policy is a tenant's session policy.
type Policy struct {
	// Idle ends a session no person has used for this long.
	Idle time.Duration
	// Absolute ends a session this long after it began, used or not.
	Absolute time.Duration
	// MaxSessions bounds the live sessions of one user.
	MaxSessions int
	// OnLimit says what a new session does at the bound: LimitEndOldest
	// ends the oldest, LimitRefuse refuses the new one.
	OnLimit string
	// InactiveDays disables accounts unused for this many days.
	InactiveDays int
}

// What a new session does when its user is at the session limit.
const (
	LimitEndOldest = "end_oldest"
	LimitRefuse    = "refuse"
)

// DefaultPolicy applies to a tenant that has set none.
var DefaultPolicy = Policy{Idle: 15 * time.Minute, Absolute: 12 * time.Hour, MaxSessions: 3, OnLimit: LimitEndOldest,
	InactiveDays: 90}

// Validate checks a policy's bounds and names the field at fault.
func (p Policy) Validate() error {
	switch {
	case p.Idle < time.Minute || p.Idle > 24*time.Hour:
		return &FieldError{"idle_minutes", "must be between 1 and 1440"}
	case p.Absolute < p.Idle || p.Absolute > 30*24*time.Hour:
		return &FieldError{"absolute_hours", "must be at least the idle timeout and at most 720 hours"}
	case p.MaxSessions < 1 || p.MaxSessions > 100:
		return &FieldError{"max_sessions", "must be between 1 and 100"}
	case p.OnLimit != LimitEndOldest && p.OnLimit != LimitRefuse:
		return &FieldError{"on_limit", `must be "end_oldest" or "refuse"`}
	case p.InactiveDays < 30 || p.InactiveDays > 3650:
		return &FieldError{"inactive_days", "must be between 30 and 3650"}
	}
	return nil
}

// FieldError says which field of a request is wrong and why.
type FieldError struct{ Field, Reason string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Session is a person's signed-in session, without its token.
type Session struct {
	ID          string
	TenantID    int64
	UserID      string
	Factor      string    // the second factor that began it
	MFAAt       time.Time // when a second factor was last verified in it
	ElevationID string
	IP          string
	UserAgent   string
	CreatedAt   time.Time
	LastActive  time.Time
	ExpiresAt   time.Time
	RevokedAt   time.Time
	Reason      string
}

// SessionToken is a session's secret, shown once. It never prints itself.
type SessionToken string

// LogValue redacts the token to its session id.
func (t SessionToken) LogValue() slog.Value {
	id, _, ok := splitSecret(string(t), sessionPrefix)
	if !ok {
		return slog.StringValue("(malformed session token)")
	}
	return slog.StringValue(sessionPrefix + id + "_REDACTED")
}

// String redacts the token.
func (t SessionToken) String() string { return t.LogValue().String() }

// Reveal returns the token itself, for the one time it is handed over.
func (t SessionToken) Reveal() string { return string(t) }

// Token prefixes: each kind of secret is told apart by its first letters,
// so that one kind is never accepted where another is expected.
const (
	sessionPrefix   = "ats_"
	loginPrefix     = "atl_"
	enrolmentPrefix = "ate_"
)

func newSecret(prefix string) (id, token string) {
	id = randomID("", 10)
	return id, prefix + id + "_" + randomID("", 32)
}

func splitSecret(tok, prefix string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(tok, prefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(secret) != 52 {
		return "", "", false
	}
	return id, secret, true
}

func secretHash(tok string) []byte {
	h := sha256.Sum256([]byte("attest/secret/v1\x00" + tok))
	return h[:]
}

// IsSessionToken reports whether a credential has the form of a session
// token, as opposed to an API key.
func IsSessionToken(tok string) bool { return strings.HasPrefix(tok, sessionPrefix) }

// Session errors. A client is told only that it is not signed in.
var (
	ErrNoSession    = errors.New("identity: no such session")
	ErrSessionEnded = errors.New("identity: session ended")
	ErrSessionLimit = errors.New("identity: the user has as many sessions as the policy allows")
)

// Sessions stores sessions and session policies.
type Sessions struct {
	db  *store.DB
	now func() time.Time
}

// NewSessions returns the session store.
func NewSessions(db *store.DB, now func() time.Time) *Sessions { return &Sessions{db: db, now: now} }

// Policy returns tenant tenantID's session policy.
func (ss *Sessions) Policy(ctx context.Context, q store.Querier, tenantID int64) (Policy, error) {
	p := DefaultPolicy
	var idle, abs int64
	err := q.QueryRowContext(ctx, ss.db.Rebind(`SELECT idle_seconds, absolute_seconds, max_sessions, on_limit, inactive_days
		FROM session_policies WHERE tenant_id = ?`), tenantID).Scan(&idle, &abs, &p.MaxSessions, &p.OnLimit, &p.InactiveDays)
	if errors.Is(err, sql.ErrNoRows) {
		return DefaultPolicy, nil
	}
	if err != nil {
		return p, fmt.Errorf("identity: read session policy: %w", err)
	}
	p.Idle, p.Absolute = time.Duration(idle)*time.Second, time.Duration(abs)*time.Second
	return p, nil
}

// SetPolicy stores a tenant's session policy in tx.
func (ss *Sessions) SetPolicy(ctx context.Context, tx *sql.Tx, tenantID int64, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, ss.db.Rebind(`INSERT INTO session_policies (tenant_id, idle_seconds, absolute_seconds,
		max_sessions, on_limit, inactive_days, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET idle_seconds = excluded.idle_seconds,
		absolute_seconds = excluded.absolute_seconds, max_sessions = excluded.max_sessions,
		on_limit = excluded.on_limit, inactive_days = excluded.inactive_days, updated_at = excluded.updated_at`),
		tenantID, int64(p.Idle/time.Second), int64(p.Absolute/time.Second), p.MaxSessions, p.OnLimit, p.InactiveDays,
		ss.now().UTC().UnixMicro())
	if err != nil {
		return fmt.Errorf("identity: store session policy: %w", err)
	}
	return nil
}

const sessionColumns = `s.id, s.tenant_id, s.user_id, s.factor, s.mfa_at, s.elevation_id, s.ip, s.user_agent,
	s.created_at, s.last_active_at, s.expires_at, s.revoked_at, s.revoke_reason`

func scanSession(sc interface{ Scan(...any) error }, extra ...any) (*Session, error) {
	s := &Session{}
	var elev sql.NullString
	var mfa, created, last, expires int64
	var revoked sql.NullInt64
	dest := []any{&s.ID, &s.TenantID, &s.UserID, &s.Factor, &mfa, &elev, &s.IP, &s.UserAgent, &created, &last,
		&expires, &revoked, &s.Reason}
	if err := sc.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	s.ElevationID = elev.String
	s.MFAAt, s.CreatedAt = time.UnixMicro(mfa).UTC(), time.UnixMicro(created).UTC()
	s.LastActive, s.ExpiresAt = time.UnixMicro(last).UTC(), time.UnixMicro(expires).UTC()
	s.RevokedAt = fromMicros(revoked)
	return s, nil
}

// live reports whether a session is still in force under policy p at now.
func (s *Session) live(p Policy, now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt) && now.Before(s.CreatedAt.Add(p.Absolute)) &&
		now.Sub(s.LastActive) < p.Idle
}

// NewSessionID returns a fresh session id, for the audit event that
// records the session's start.
func NewSessionID() string { return randomID("ses_", 10) }

// mint stores a new session in tx and returns its token. Only Gate calls
// it: every session passes the gate.
func (ss *Sessions) mint(ctx context.Context, tx *sql.Tx, id string, u *User, factor string, meta Meta) (SessionToken, *Session, error) {
	p, err := ss.Policy(ctx, tx, u.TenantID)
	if err != nil {
		return "", nil, err
	}
	now := ss.now().UTC().Truncate(time.Microsecond)
	live, err := ss.userSessions(ctx, tx, u.ID, p, now)
	if err != nil {
		return "", nil, err
	}
	if over := len(live) - p.MaxSessions + 1; over > 0 {
		if p.OnLimit == LimitRefuse {
			return "", nil, ErrSessionLimit
		}
		for _, old := range live[:over] {
			if err := ss.revoke(ctx, tx, old.ID, "session limit: a newer session began", now); err != nil {
				return "", nil, err
			}
		}
	}
	_, tok := newSecret(sessionPrefix)
	s := &Session{ID: id, TenantID: u.TenantID, UserID: u.ID, Factor: factor, MFAAt: now, IP: meta.IP,
		UserAgent: meta.UserAgent, CreatedAt: now, LastActive: now, ExpiresAt: now.Add(p.Absolute)}
	_, err = tx.ExecContext(ctx, ss.db.Rebind(`INSERT INTO sessions (id, token_hash, tenant_id, user_id, factor, mfa_at, ip,
		user_agent, created_at, last_active_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		s.ID, secretHash(tok), s.TenantID, s.UserID, factor, now.UnixMicro(), meta.IP, meta.UserAgent, now.UnixMicro(),
		now.UnixMicro(), s.ExpiresAt.UnixMicro())
	if err != nil {
		return "", nil, fmt.Errorf("identity: store session: %w", err)
	}
	return SessionToken(tok), s, nil
}

// userSessions lists a user's live sessions, oldest first.
func (ss *Sessions) userSessions(ctx context.Context, q store.Querier, userID string, p Policy, now time.Time) ([]*Session, error) {
	rows, err := q.QueryContext(ctx, ss.db.Rebind(`SELECT `+sessionColumns+` FROM sessions s
		WHERE s.user_id = ? AND s.revoked_at IS NULL ORDER BY s.created_at, s.id`), userID)
	if err != nil {
		return nil, fmt.Errorf("identity: list sessions: %w", err)
	}
	defer rows.Close()
	var out []*Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("identity: read session: %w", err)
		}
		if s.live(p, now) {
			out = append(out, s)
		}
	}
	return out, rows.Err()
}

// List returns a user's live sessions, oldest first.
func (ss *Sessions) List(ctx context.Context, q store.Querier, tenantID int64, userID string) ([]*Session, error) {
	p, err := ss.Policy(ctx, q, tenantID)
	if err != nil {
		return nil, err
	}
	return ss.userSessions(ctx, q, userID, p, ss.now().UTC())
}

// Get returns a session of tenant tenantID by id.
func (ss *Sessions) Get(ctx context.Context, q store.Querier, tenantID int64, id string) (*Session, error) {
	if !store.StorableText(id) {
		return nil, ErrNoSession
	}
	s, err := scanSession(q.QueryRowContext(ctx, ss.db.Rebind(`SELECT `+sessionColumns+` FROM sessions s
		WHERE s.id = ? AND s.tenant_id = ?`), id, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read session: %w", err)
	}
	return s, nil
}

func (ss *Sessions) revoke(ctx context.Context, tx *sql.Tx, id, reason string, now time.Time) error {
	_, err := tx.ExecContext(ctx, ss.db.Rebind(`UPDATE sessions SET revoked_at = ?, revoke_reason = ?
		WHERE id = ? AND revoked_at IS NULL`), now.UnixMicro(), reason, id)
	if err != nil {
		return fmt.Errorf("identity: end session: %w", err)
	}
	return nil
}

// Revoke ends a session of tenant tenantID in tx; ErrNoSession when the
// tenant has no such live session.
func (ss *Sessions) Revoke(ctx context.Context, tx *sql.Tx, tenantID int64, id, reason string) error {
	if !store.StorableText(id) {
		return ErrNoSession
	}
	res, err := tx.ExecContext(ctx, ss.db.Rebind(`UPDATE sessions SET revoked_at = ?, revoke_reason = ?
		WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL`), ss.now().UTC().UnixMicro(), reason, id, tenantID)
	if err != nil {
		return fmt.Errorf("identity: end session: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNoSession
	}
	return nil
}

// Rotate gives a live session a new token in tx, for a change of its
// privileges: the old token stops working in the same commit.
func (ss *Sessions) Rotate(ctx context.Context, tx *sql.Tx, id string) (SessionToken, error) {
	_, tok := newSecret(sessionPrefix)
	res, err := tx.ExecContext(ctx, ss.db.Rebind(`UPDATE sessions SET token_hash = ? WHERE id = ? AND revoked_at IS NULL`),
		secretHash(tok), id)
	if err != nil {
		return "", fmt.Errorf("identity: rotate session: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return "", ErrSessionEnded
	}
	return SessionToken(tok), nil
}

// touchEvery is the fraction of the idle timeout after which a request
// moves a session's idle clock: a write at most every thirtieth of it, so
// that a busy session costs few writes and the clock errs by little.
const touchEvery = 30

// Principal is a validated session with its user, and what the
// authorizer needs of them, read in the same query: the user's role grants
// and the session's elevation.
type Principal struct {
	Session   *Session
	User      *User
	Policy    Policy
	Grants    []GrantRow
	Elevation *ElevationRow // nil when the session has none
}

// GrantRow is one role a user holds, as stored: Permissions is the custom
// role's comma-separated list, empty for a built-in role.
type GrantRow struct {
	Role                   string
	PeriodStart, PeriodEnd time.Time
	Permissions            string
	Custom                 bool
}

// ElevationRow is a session's elevation as stored.
type ElevationRow struct {
	ID, Status, SessionID, Permissions string
	ExpiresAt                          time.Time
}

// Validate returns the live session of a token. A person's request (touch)
// resets its idle clock; background polling does not. A malformed,
// unknown, ended or expired token, or one whose user is no longer active,
// is an error.
func (ss *Sessions) Validate(ctx context.Context, tok string, touch bool) (*Principal, error) {
	if _, _, ok := splitSecret(tok, sessionPrefix); !ok {
		return nil, ErrNoSession
	}
	var pr *Principal
	var err error
	if werr := ss.db.Warm(ctx, func() { pr, err = ss.load(ctx, tok) }); werr != nil {
		return nil, werr
	}
	if err != nil {
		return nil, err
	}
	now := ss.now().UTC()
	if !pr.Session.live(pr.Policy, now) {
		return pr, ErrSessionEnded
	}
	if pr.User.Status != StatusActive {
		return pr, ErrNotActive
	}
	if touch && now.Sub(pr.Session.LastActive) > pr.Policy.Idle/touchEvery {
		if _, err := ss.db.Write.ExecContext(ctx, ss.db.Rebind(`UPDATE sessions SET last_active_at = ?
			WHERE id = ? AND last_active_at < ?`), now.UnixMicro(), pr.Session.ID, now.UnixMicro()); err != nil {
			return nil, fmt.Errorf("identity: record session activity: %w", err)
		}
		pr.Session.LastActive = now
	}
	return pr, nil
}

func (ss *Sessions) load(ctx context.Context, tok string) (*Principal, error) {
	rows, err := ss.db.Reads().QueryContext(ctx, ss.db.Rebind(`SELECT `+sessionColumns+`, u.status, u.email, u.name,
		p.idle_seconds, p.absolute_seconds, g.role, g.period_start, g.period_end, r.permissions,
		e.status, e.session_id, e.permissions, e.expires_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		LEFT JOIN session_policies p ON p.tenant_id = s.tenant_id
		LEFT JOIN role_grants g ON g.user_id = s.user_id
		LEFT JOIN roles r ON r.tenant_id = g.tenant_id AND r.name = g.role
		LEFT JOIN elevations e ON e.id = s.elevation_id
		WHERE s.token_hash = ? ORDER BY g.role`), secretHash(tok))
	if err != nil {
		return nil, fmt.Errorf("identity: read session: %w", err)
	}
	defer rows.Close()
	var pr *Principal
	for rows.Next() {
		u := &User{}
		var status string
		var idle, abs, start, end, elExp sql.NullInt64
		var role, perms, elStatus, elSession, elPerms sql.NullString
		s, err := scanSession(rows, &status, &u.Email, &u.Name, &idle, &abs, &role, &start, &end, &perms,
			&elStatus, &elSession, &elPerms, &elExp)
		if err != nil {
			return nil, fmt.Errorf("identity: read session: %w", err)
		}
		if pr == nil {
			u.ID, u.TenantID, u.Status = s.UserID, s.TenantID, Status(status)
			pr = &Principal{Session: s, User: u, Policy: DefaultPolicy}
			if idle.Valid {
				pr.Policy.Idle, pr.Policy.Absolute = time.Duration(idle.Int64)*time.Second, time.Duration(abs.Int64)*time.Second
			}
			if elStatus.Valid {
				pr.Elevation = &ElevationRow{ID: s.ElevationID, Status: elStatus.String, SessionID: elSession.String,
					Permissions: elPerms.String, ExpiresAt: fromMicros(elExp)}
			}
		}
		if role.Valid {
			pr.Grants = append(pr.Grants, GrantRow{Role: role.String, PeriodStart: fromMicros(start), PeriodEnd: fromMicros(end),
				Permissions: perms.String, Custom: perms.Valid})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("identity: read session: %w", err)
	}
	if pr == nil {
		return nil, ErrNoSession
	}
	return pr, nil
}
