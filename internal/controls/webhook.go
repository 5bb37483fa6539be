package controls

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// Webhook delivery limits.
const (
	// MaxAttempts is how many times an alert is offered to its webhook
	// before it is marked failed.
	MaxAttempts = 5
	// WebhookTimeout bounds one delivery, connection to answer.
	WebhookTimeout = 10 * time.Second
	// retryBase is the wait after the first failed attempt; each next
	// one waits twice as long.
	retryBase = 30 * time.Second
	// deliverWindow is how old an alert may be and still be delivered: a
	// webhook set today does not receive last month's alerts.
	deliverWindow = 24 * time.Hour
	// deliverBatch bounds the alerts one round picks up, and deliverers
	// how many it sends at once.
	deliverBatch = 100
	deliverers   = 8
)

// Webhook is the JSON body of an alert's delivery.
type Webhook struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Control     string    `json:"control"`
	Name        string    `json:"name"`
	Previous    Status    `json:"previous"`
	Status      Status    `json:"status"`
	Result      string    `json:"result"`
	Findings    []Finding `json:"findings"`
	Remediation string    `json:"remediation"`
	RaisedAt    time.Time `json:"raised_at"`
}

// Sign is the Attest-Signature header of body sent at timestamp ts (Unix
// seconds, the Attest-Timestamp header): "sha256=" and the hex HMAC-SHA256
// of ts + "." + body under secret.
func Sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Deliverer sends alerts to their tenants' webhooks and records each
// attempt in the alert and in the tenant's trail.
type Deliverer struct {
	in     *instance.Instance
	client *http.Client

	mu   sync.Mutex           // guards next
	next map[string]time.Time // alert id -> earliest next attempt
}

// NewDeliverer returns a Deliverer that posts with client, whose
// redirect policy and timeout it replaces: redirects are never followed,
// and a delivery gets WebhookTimeout. A nil client dials public and
// public addresses, never loopback, link-local, multicast or unspecified
// ones, so that no webhook reaches attest's own host or a cloud metadata
// service; private addresses only for the operator tenant's webhook, so
// that a customer tenant cannot probe the operator's network.
func NewDeliverer(in *instance.Instance, client *http.Client) *Deliverer {
	var c http.Client
	if client != nil {
		c = *client
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		d := &net.Dialer{Timeout: WebhookTimeout, ControlContext: refuseLocal}
		tr.DialContext = d.DialContext
		// Through a proxy the dial would check the proxy's address, not
		// the receiver's: webhooks go direct.
		tr.Proxy = nil
		c.Transport = tr
	}
	c.Timeout = WebhookTimeout
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Deliverer{in: in, client: &c, next: map[string]time.Time{}}
}

var (
	errLocalAddress = errors.New("the address is loopback, link-local, multicast or unspecified, which webhooks " +
		"may not reach")
	errPrivateAddress = errors.New("the address is private, which only the operator's webhook may reach")
)

// privateOK marks a delivery's context as one that may reach private
// addresses: the operator tenant's.
type privateOK struct{}

func refuseLocal(ctx context.Context, _, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errLocalAddress
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return errLocalAddress
	}
	local, private := AddrClass(ip)
	if local {
		return errLocalAddress
	}
	if private && ctx.Value(privateOK{}) == nil {
		return errPrivateAddress
	}
	return nil
}

// AddrClass says whether a webhook may never reach ip (local: loopback,
// link-local, multicast, unspecified) or only the operator's may
// (private: RFC 1918, unique local, site-local, shared address space).
// An IPv4 address carried in an IPv6 one (mapped, compatible, NAT64,
// 6to4) is judged as the IPv4 address, since that is where it leads.
func AddrClass(ip netip.Addr) (local, private bool) {
	ip = ip.Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(ip), netip.MustParsePrefix("::/96").Contains(ip) &&
			!ip.IsUnspecified() && !ip.IsLoopback():
			return AddrClass(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case netip.MustParsePrefix("2002::/16").Contains(ip):
			return AddrClass(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case netip.MustParsePrefix("fec0::/10").Contains(ip):
			return false, true
		}
	}
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() ||
		(ip.Is4() && ip.As4()[0] == 0) {
		return true, false
	}
	return false, ip.IsPrivate() || sharedSpace.Contains(ip)
}

// sharedSpace is the carrier-grade NAT range of RFC 6598, private in all
// but name.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// pending is an alert waiting for its webhook.
type pending struct {
	Webhook
	tenantID      int64
	attempts      int
	url, secret   string
	resultPayload []byte
}

// Round delivers the alerts that wait for their webhook and are due, and
// returns how many it attempted.
func (d *Deliverer) Round(ctx context.Context) (int, error) {
	ps, err := d.pending(ctx)
	if err != nil {
		return 0, err
	}
	now := d.in.Now()
	d.mu.Lock()
	due := ps[:0]
	for _, p := range ps {
		if at, ok := d.next[p.ID]; !ok || !now.Before(at) {
			due = append(due, p)
		}
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, deliverers)
	errs := make([]error, len(due))
	for i, p := range due {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = d.deliver(ctx, p)
		}()
	}
	wg.Wait()
	return len(due), errors.Join(errs...)
}

func (d *Deliverer) pending(ctx context.Context) ([]*pending, error) {
	rows, err := d.in.DB.Read.QueryContext(ctx, d.in.DB.Rebind(`SELECT a.id, a.tenant_id, a.control_id, a.previous, a.status,
		a.result_id, a.raised_at, a.webhook_attempts, s.webhook_url, s.webhook_secret, r.result
		FROM control_alerts a JOIN compliance_settings s ON s.tenant_id = a.tenant_id
		JOIN control_results r ON r.id = a.result_id
		WHERE a.webhook_state IN ('', 'retry') AND s.webhook_url <> '' AND a.raised_at > ?
		ORDER BY a.raised_at, a.id LIMIT ?`), d.in.Now().Add(-deliverWindow).UnixMicro(), deliverBatch)
	if err != nil {
		return nil, fmt.Errorf("controls: read pending alerts: %w", err)
	}
	defer rows.Close()
	var out []*pending
	for rows.Next() {
		p := &pending{}
		var prev, st string
		var raised int64
		if err := rows.Scan(&p.ID, &p.tenantID, &p.Control, &prev, &st, &p.Result, &raised, &p.attempts, &p.url, &p.secret,
			&p.resultPayload); err != nil {
			return nil, fmt.Errorf("controls: read pending alert: %w", err)
		}
		p.Previous, p.Status, p.RaisedAt = Status(prev), Status(st), micros(raised)
		out = append(out, p)
	}
	return out, rows.Err()
}

// deliver makes one attempt at p and records its outcome.
func (d *Deliverer) deliver(ctx context.Context, p *pending) error {
	t, err := d.in.Tenants.ByID(ctx, p.tenantID)
	if err != nil {
		return err
	}
	p.Tenant, p.Name = t.Name, p.Control
	if c, ok := ByID(p.Control); ok {
		p.Name = c.Name
	}
	var r Result
	if err := json.Unmarshal(p.resultPayload, &r); err != nil {
		return fmt.Errorf("controls: read result %s: %w", p.Result, err)
	}
	p.Findings, p.Remediation = r.Findings, r.Remediation
	if p.Findings == nil {
		p.Findings = []Finding{}
	}
	pctx := ctx
	if t.Name == tenant.Operator {
		pctx = context.WithValue(ctx, privateOK{}, true)
	}
	code, problem, final := d.post(pctx, p)
	return d.record(ctx, t, p, code, problem, final)
}

// post sends p to its webhook and returns the answer's status code and,
// when it was not a success, what went wrong, in words that carry no
// part of the address or the secret. final is set for a problem no retry
// can mend: the settings are wrong.
func (d *Deliverer) post(ctx context.Context, p *pending) (code int, problem string, final bool) {
	u, err := url.Parse(p.url)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return 0, "webhook_url is not an https URL without credentials", true
	}
	if p.secret == "" {
		return 0, "webhook_secret is not set, and alerts are never sent unsigned", true
	}
	body, err := json.Marshal(p.Webhook)
	if err != nil {
		return 0, "the alert could not be encoded", true
	}
	ts := strconv.FormatInt(d.in.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, "webhook_url is not a valid URL", true
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "attest-webhook")
	req.Header.Set("Attest-Timestamp", ts)
	req.Header.Set("Attest-Signature", Sign(p.secret, ts, body))
	req.Header.Set("Attest-Alert", p.ID)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, describe(err), false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return c, "", false
	case c >= 300 && c < 400:
		return c, fmt.Sprintf("the receiver answered %d, a redirect, which is not followed", c), false
	default:
		return c, fmt.Sprintf("the receiver answered %d", c), false
	}
}

// describe words a transport error by its kind alone: neither the URL
// nor what the network answered, which a tenant reading its alerts could
// otherwise use to map the networks attest reaches.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return fmt.Sprintf("no answer within %s", WebhookTimeout)
	}
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.Is(err, errLocalAddress):
		return errLocalAddress.Error()
	case errors.Is(err, errPrivateAddress):
		return errPrivateAddress.Error()
	case errors.As(err, &dns):
		return "the host name did not resolve"
	case errors.As(err, &cert), errors.As(err, &rec), errors.As(err, &alert):
		return "the TLS handshake failed"
	}
	return "could not connect"
}

// record stores the outcome of an attempt and its control.alert.delivery
// event in one transaction, and schedules the next attempt.
func (d *Deliverer) record(ctx context.Context, t *tenant.Tenant, p *pending, code int, problem string, final bool) error {
	now := d.in.Now().UTC()
	attempts := p.attempts + 1
	state := "delivered"
	var delivered any
	switch {
	case problem == "":
		delivered = now.UnixMicro()
	case final || attempts >= MaxAttempts:
		state = "failed"
	default:
		state = "retry"
	}
	ev := d.in.ChangeEvent("control.alert.delivery", "system", instance.SystemActor(),
		event.Target{Type: "control", ID: p.Control, Name: p.Name})
	details := map[string]any{"alert": p.ID, "attempt": attempts, "state": state}
	if code != 0 {
		details["status_code"] = code
	}
	if problem != "" {
		details["error"] = problem
		ev.Outcome.Result, ev.Outcome.Reason = "failure", problem
	}
	ev.Details = canonical(details)
	ev.Clean()
	pe, err := d.in.Log.Prepare(ctx, t, ev)
	if err != nil {
		return err
	}
	_, err = d.in.Log.Do(ctx, t, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, d.in.DB.Rebind(`UPDATE control_alerts SET webhook_state = ?, webhook_attempts = ?,
			webhook_error = ?, delivered_at = ? WHERE id = ? AND webhook_attempts = ?`), state, attempts, problem, delivered,
			p.ID, p.attempts)
		if err != nil {
			return fmt.Errorf("controls: record delivery: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("controls: alert %s was delivered meanwhile", p.ID)
		}
		return nil
	}, pe)
	d.mu.Lock()
	defer d.mu.Unlock()
	if state == "retry" {
		d.next[p.ID] = now.Add(retryBase << (attempts - 1))
	} else {
		delete(d.next, p.ID)
	}
	return err
}
