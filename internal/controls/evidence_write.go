package controls

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxEvidenceBytes bounds an uploaded evidence file: 10 MiB.
const MaxEvidenceBytes = 10 << 20

// The audit actions of manual evidence, which are also the names of the
// API routes that take them.
const (
	ActionEvidenceSubmit  = "compliance.evidence.submit"
	ActionEvidenceApprove = "compliance.evidence.approve"
	ActionEvidenceRevoke  = "compliance.evidence.revoke"
)

// Errors of manual evidence and exceptions.
var (
	ErrNoEvidence = errors.New("controls: no such evidence")
	// ErrNotAPerson refuses an approval by anything but a signed-in person.
	ErrNotAPerson = errors.New("controls: approval is a person's act: sign in to approve; an API key cannot")
	// ErrSelfApproval refuses an approval by the person who submitted or
	// requested what is approved.
	ErrSelfApproval = errors.New("controls: approval needs a second person: you submitted or requested this yourself")
	// ErrSponsored refuses an approval by someone who holds their account
	// or a role by the submitter's doing.
	ErrSponsored = errors.New("controls: approval needs an independent second person: you hold your account or a " +
		"role by the submitter's doing")
	// ErrDecided refuses to approve or revoke what is no longer pending or
	// live.
	ErrDecided = errors.New("controls: already decided")
)

// InputError says which field of a submission or request is wrong and why.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string { return "controls: " + e.Field + ": " + e.Reason }

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Submission is a piece of manual evidence as submitted: a file, when
// Content is set, or else a link.
type Submission struct {
	Control string
	Title   string
	// Content, FileName and DeclaredType describe an uploaded file; the
	// declared type is recorded beside the one attest detects.
	Content      []byte
	FileName     string
	DeclaredType string
	URL          string
	EffectiveAt  time.Time
	ExpiresAt    time.Time
}

// SubmitEvidence validates sub and stores it as evidence of tenant t,
// submitted by actor, with its audit event in the same transaction; the
// event carries the evidence's SHA-256. A fault in sub is an *InputError.
func SubmitEvidence(ctx context.Context, in *instance.Instance, t *tenant.Tenant, sub *Submission, actor event.Actor,
	decorate func(*event.Event)) (*Evidence, error) {
	now := in.Now().UTC().Truncate(time.Microsecond)
	c, err := manualControl(sub.Control)
	if err != nil {
		return nil, err
	}
	e := &Evidence{ID: newID("evd_"), Control: c.ID, Title: strings.TrimSpace(sub.Title), SubmittedBy: actor.ID,
		SubmittedAt: now, EffectiveAt: sub.EffectiveAt.UTC().Truncate(time.Microsecond),
		ExpiresAt: sub.ExpiresAt.UTC().Truncate(time.Microsecond)}
	if err := checkTitle(e.Title); err != nil {
		return nil, err
	}
	if err := checkPeriod(c, e.EffectiveAt, e.ExpiresAt, now); err != nil {
		return nil, err
	}
	declared := ""
	switch {
	case sub.Content != nil && sub.URL != "":
		return nil, inputErr("url", "give a file or a link, not both")
	case sub.Content != nil:
		if err := checkFile(int64(len(sub.Content))); err != nil {
			return nil, err
		}
		declared = fillFile(e, sub)
	default:
		if err := fillLink(e, sub.URL); err != nil {
			return nil, err
		}
	}
	ev, err := evidenceEvent(in, ActionEvidenceSubmit, e, actor, decorate, map[string]any{"kind": e.Kind, "size": e.Size,
		"media_type": e.MediaType, "declared_type": declared, "url": e.URL,
		"effective_at": e.EffectiveAt.Format(time.RFC3339), "expires_at": e.ExpiresAt.Format(time.RFC3339)})
	if err != nil {
		return nil, err
	}
	sum, _ := hex.DecodeString(e.SHA256)
	err = commitEvent(ctx, in, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, in.DB.Rebind(`INSERT INTO control_evidence (id, tenant_id, control_id, kind, title, url,
			file_name, media_type, content, size, sha256, effective_at, expires_at, submitted_by, submitted_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), e.ID, t.ID, e.Control, e.Kind, e.Title, e.URL, e.FileName,
			e.MediaType, sub.Content, e.Size, sum, e.EffectiveAt.UnixMicro(), e.ExpiresAt.UnixMicro(), e.SubmittedBy,
			e.SubmittedAt.UnixMicro())
		if err != nil {
			return fmt.Errorf("controls: store evidence: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// manualControl returns the control id names, which must take manual
// evidence.
func manualControl(id string) (*Control, error) {
	c, ok := ByID(id)
	switch {
	case id == "":
		return nil, inputErr("control", "required: the id of a manual control, such as GOV-01")
	case !ok:
		return nil, inputErr("control", "no control %q in the catalog", id)
	case c.Manual == nil:
		return nil, inputErr("control", "%s is judged by attest from the system's own state and takes no manual evidence", id)
	}
	return c, nil
}

func checkTitle(title string) error {
	switch {
	case title == "":
		return inputErr("title", "required: say what the evidence is")
	case len(title) > 200 || unsafeText(title):
		return inputErr("title", "must be at most 200 bytes of text")
	}
	return nil
}

// checkPeriod checks that evidence of c is in effect by now, is still to
// expire, and expires within the control's maximum age.
func checkPeriod(c *Control, effective, expires, now time.Time) error {
	switch {
	case effective.IsZero():
		return inputErr("effective_at", "required: the RFC 3339 time from which the evidence holds")
	case expires.IsZero():
		return inputErr("expires_at", "required: the RFC 3339 time at which the evidence stops holding")
	case effective.After(now):
		return inputErr("effective_at", "is in the future: submit evidence once it holds")
	case !expires.After(effective):
		return inputErr("expires_at", "must be after effective_at")
	case !expires.After(now):
		return inputErr("expires_at", "is already past: submit current evidence")
	case expires.Sub(effective) > c.Manual.MaxAge:
		return inputErr("expires_at", "is more than %d days after effective_at: evidence of %s is good for at most %d days",
			int(c.Manual.MaxAge/day), c.ID, int(c.Manual.MaxAge/day))
	}
	return nil
}

// fillFile completes e from an uploaded file and returns the media type
// the client declared, cleaned.
func fillFile(e *Evidence, sub *Submission) string {
	sum := sha256.Sum256(sub.Content)
	e.Kind, e.Size, e.SHA256 = "file", int64(len(sub.Content)), hex.EncodeToString(sum[:])
	e.FileName = SanitizeFileName(sub.FileName)
	e.MediaType = http.DetectContentType(sub.Content)
	if mt, _, err := mime.ParseMediaType(sub.DeclaredType); err == nil && len(mt) <= 127 {
		return mt
	}
	return ""
}

// checkFile refuses an empty file or one larger than MaxEvidenceBytes.
func checkFile(size int64) error {
	switch {
	case size == 0:
		return inputErr("file", "is empty")
	case size > MaxEvidenceBytes:
		return inputErr("file", "is larger than %d bytes (10 MiB): link to it instead", MaxEvidenceBytes)
	}
	return nil
}

// credentialParams are query parameter names, or parts of them, that
// carry credentials: a link holding one would hand its holder access.
var credentialParams = []string{"token", "secret", "password", "passwd", "signature", "credential", "apikey", "api_key",
	"access_key", "sig", "auth", "session"}

// fillLink completes e from a link, which must be an https URL without
// credentials. Its SHA-256 is that of the URL as stored.
func fillLink(e *Evidence, raw string) error {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return inputErr("url", "required: an https link to the evidence, or upload a file instead")
	}
	if len(raw) > 2048 || unsafeText(raw) {
		return inputErr("url", "must be at most 2048 bytes of text")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return inputErr("url", "is not a valid URL")
	case u.Scheme != "https":
		return inputErr("url", "must be an https URL")
	case u.Hostname() == "":
		return inputErr("url", "names no host")
	case u.User != nil:
		return inputErr("url", "must not carry a user name or password")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return inputErr("url", "has a malformed query string")
	}
	// A fragment of name=value pairs is where some sign-in flows put
	// their tokens.
	if strings.Contains(u.Fragment, "=") {
		f, err := url.ParseQuery(u.Fragment)
		if err != nil {
			return inputErr("url", "has a malformed fragment")
		}
		for name, vs := range f {
			q[name] = append(q[name], vs...)
		}
	}
	for name := range q {
		l := strings.ToLower(name)
		for _, c := range credentialParams {
			if strings.Contains(l, c) {
				return inputErr("url", "its parameter %q looks like a credential: link to a page that needs a "+
					"sign-in instead of one that carries it", name)
			}
		}
	}
	e.Kind, e.URL = "link", u.String()
	sum := sha256.Sum256([]byte(e.URL))
	e.SHA256 = hex.EncodeToString(sum[:])
	return nil
}

// SanitizeFileName makes a client's file name safe to store and to name a
// download: the last path element, letters, digits, spaces and ._-()+,
// only (others become _), no leading dot, at most 200 bytes; "evidence"
// when nothing is left.
func SanitizeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError:
			b.WriteRune('_')
		case unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" ._-()+,", r):
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
		if b.Len() > 200 {
			break
		}
	}
	out := strings.TrimLeft(strings.TrimSpace(b.String()), ". ")
	for len(out) > 200 {
		_, n := utf8.DecodeLastRuneInString(out)
		out = out[:len(out)-n]
	}
	if out == "" {
		return "evidence"
	}
	return out
}

// EvidenceByID returns a piece of tenant t's evidence, without its
// content; another tenant's is ErrNoEvidence.
func EvidenceByID(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id string) (*Evidence, error) {
	return evidenceByID(ctx, in, in.DB.Read, t, id)
}

func evidenceByID(ctx context.Context, in *instance.Instance, q store.Querier, t *tenant.Tenant, id string) (*Evidence, error) {
	if !store.StorableText(id) {
		return nil, ErrNoEvidence
	}
	rows, err := q.QueryContext(ctx, in.DB.Rebind(`SELECT `+evidenceColumns+` FROM control_evidence
		WHERE tenant_id = ? AND id = ?`), t.ID, id)
	if err != nil {
		return nil, fmt.Errorf("controls: read evidence: %w", err)
	}
	es, err := scanEvidence(rows)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, ErrNoEvidence
	}
	return es[0], nil
}

// EvidenceContent returns an uploaded file of tenant t with its record,
// after checking the content still has the SHA-256 recorded when it was
// submitted. A link has no content: ErrNoEvidence.
func EvidenceContent(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id string) (*Evidence, []byte, error) {
	e, err := EvidenceByID(ctx, in, t, id)
	if err != nil {
		return nil, nil, err
	}
	if e.Kind != "file" {
		return e, nil, ErrNoEvidence
	}
	var b []byte
	err = in.DB.Read.QueryRowContext(ctx, in.DB.Rebind(`SELECT content FROM control_evidence WHERE tenant_id = ? AND id = ?`),
		t.ID, id).Scan(&b)
	if err != nil {
		return nil, nil, fmt.Errorf("controls: read evidence content: %w", err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != e.SHA256 {
		return nil, nil, fmt.Errorf("controls: evidence %s: stored content does not match its SHA-256", id)
	}
	return e, b, nil
}

// ApproveEvidence approves tenant t's evidence id. The approver must be a
// person (actor type "user") other than its submitter, and the evidence
// neither approved nor revoked.
func ApproveEvidence(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id string, actor event.Actor,
	decorate func(*event.Event)) (*Evidence, error) {
	e, err := EvidenceByID(ctx, in, t, id)
	if err != nil {
		return nil, err
	}
	if err := secondPerson(ctx, in, t, e.SubmittedBy, actor); err != nil {
		return nil, err
	}
	if e.ApprovedAt != nil || e.RevokedAt != nil {
		return nil, fmt.Errorf("%w: the evidence is %s", ErrDecided, evidenceState(e))
	}
	now := in.Now().UTC().Truncate(time.Microsecond)
	ev, err := evidenceEvent(in, ActionEvidenceApprove, e, actor, decorate, map[string]any{"submitted_by": e.SubmittedBy})
	if err != nil {
		return nil, err
	}
	err = commitEvent(ctx, in, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		return decide(ctx, in, tx, `UPDATE control_evidence SET approved_by = ?, approved_at = ? WHERE tenant_id = ? AND id = ?
			AND approved_at IS NULL AND revoked_at IS NULL`, actor.ID, now.UnixMicro(), t.ID, id)
	})
	if err != nil {
		return nil, err
	}
	e.ApprovedBy, e.ApprovedAt = actor.ID, &now
	return e, nil
}

// RevokeEvidence withdraws tenant t's evidence id for a reason, which the
// audit event keeps; revoked evidence never counts again.
func RevokeEvidence(ctx context.Context, in *instance.Instance, t *tenant.Tenant, id, reason string, actor event.Actor,
	decorate func(*event.Event)) (*Evidence, error) {
	reason = strings.TrimSpace(reason)
	if err := checkReason("reason", reason, true); err != nil {
		return nil, err
	}
	e, err := EvidenceByID(ctx, in, t, id)
	if err != nil {
		return nil, err
	}
	if e.RevokedAt != nil {
		return nil, fmt.Errorf("%w: the evidence is already revoked", ErrDecided)
	}
	now := in.Now().UTC().Truncate(time.Microsecond)
	ev, err := evidenceEvent(in, ActionEvidenceRevoke, e, actor, decorate, map[string]any{"reason": reason})
	if err != nil {
		return nil, err
	}
	err = commitEvent(ctx, in, t, ev, func(ctx context.Context, tx *sql.Tx) error {
		return decide(ctx, in, tx, `UPDATE control_evidence SET revoked_by = ?, revoked_at = ? WHERE tenant_id = ? AND id = ?
			AND revoked_at IS NULL`, actor.ID, now.UnixMicro(), t.ID, id)
	})
	if err != nil {
		return nil, err
	}
	e.RevokedBy, e.RevokedAt = actor.ID, &now
	return e, nil
}

func evidenceState(e *Evidence) string {
	if e.RevokedAt != nil {
		return "revoked"
	}
	return "approved"
}

// secondPerson checks that actor may approve what by submitted or
// requested: a signed-in person other than the submitter (or the owner of
// the submitter's API key), who does not hold their account or a role by
// the submitter's doing, since an account made for the purpose would
// otherwise approve for its maker.
func secondPerson(ctx context.Context, in *instance.Instance, t *tenant.Tenant, by string, actor event.Actor) error {
	if actor.Type != "user" || actor.ID == "" {
		return ErrNotAPerson
	}
	submitter := by
	if keyID, ok := strings.CutPrefix(by, "apikey:"); ok {
		submitter = ""
		k, err := in.Keys.Get(ctx, in.DB.Read, 0, keyID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("controls: read submitter's key: %w", err)
		}
		if err == nil {
			submitter = k.UserID
		}
	}
	if submitter == "" {
		return nil
	}
	if submitter == actor.ID {
		return ErrSelfApproval
	}
	sponsored, err := in.Grants.Sponsored(ctx, in.DB.Read, actor.ID, submitter)
	if err != nil {
		return err
	}
	if sponsored {
		return ErrSponsored
	}
	return nil
}

func checkReason(field, s string, required bool) error {
	switch {
	case s == "" && required:
		return inputErr(field, "required: say why")
	case len(s) > 2000 || unsafeText(s):
		return inputErr(field, "must be at most 2000 bytes of text")
	}
	return nil
}

// unsafeText reports text holding a control character other than a line
// break or tab, or a bidirectional override, which could make it read as
// something it is not.
func unsafeText(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
		return (unicode.IsControl(r) && r != '\n' && r != '\t') || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
	})
}

// decide runs a conditional update that must change one row; none means
// another request decided first.
func decide(ctx context.Context, in *instance.Instance, tx *sql.Tx, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, in.DB.Rebind(q), args...)
	if err != nil {
		return fmt.Errorf("controls: record decision: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%w: another request decided it first", ErrDecided)
	}
	return nil
}

// evidenceEvent is the audit event of a change to e, its details carrying
// the evidence id, control and SHA-256 with extra.
func evidenceEvent(in *instance.Instance, action string, e *Evidence, actor event.Actor, decorate func(*event.Event),
	extra map[string]any) (*event.Event, error) {
	ev := in.ChangeEvent(action, "configuration", actor, event.Target{Type: "evidence", ID: e.ID, Name: e.Control})
	extra["evidence"], extra["control"], extra["sha256"] = e.ID, e.Control, e.SHA256
	return withDetails(ev, extra, decorate)
}

func withDetails(ev *event.Event, details map[string]any, decorate func(*event.Event)) (*event.Event, error) {
	for k, v := range details {
		if v == "" {
			delete(details, k)
		}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return nil, fmt.Errorf("controls: encode details: %w", err)
	}
	v := jsontext.Value(b)
	if err := v.Canonicalize(); err != nil {
		return nil, fmt.Errorf("controls: encode details: %w", err)
	}
	ev.Details = v
	if decorate != nil {
		decorate(ev)
	}
	ev.Clean()
	return ev, nil
}

// commitEvent runs change in one transaction with the event ev of tenant t.
func commitEvent(ctx context.Context, in *instance.Instance, t *tenant.Tenant, ev *event.Event,
	change func(ctx context.Context, tx *sql.Tx) error) error {
	p, err := in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return err
	}
	_, err = in.Log.Do(ctx, t, change, p)
	return err
}
