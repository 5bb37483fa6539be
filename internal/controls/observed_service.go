package controls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// postureWindow is how recently a process must have reported its posture
// to count as live: serve reports every minute.
const postureWindow = 15 * time.Minute

// posture is one process's row of service_posture.
type posture struct {
	process, addr, tlsMin, tlsMax, certSubject string
	certNotAfter                               time.Time
	rateLimits, selfAudit                      bool
	seenAt                                     time.Time
}

// livePostures reads the posture of every process seen within the window.
func livePostures(ctx context.Context, sc Scope) ([]*posture, error) {
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT process, addr, tls_min, tls_max, cert_subject,
		cert_not_after, rate_limits, self_audit, seen_at FROM service_posture WHERE seen_at >= ? ORDER BY process`),
		sc.Now.Add(-postureWindow).UTC().UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("controls: read service posture: %w", err)
	}
	defer rows.Close()
	var out []*posture
	for rows.Next() {
		p := &posture{}
		var notAfter, seen int64
		if err := rows.Scan(&p.process, &p.addr, &p.tlsMin, &p.tlsMax, &p.certSubject, &notAfter, &p.rateLimits,
			&p.selfAudit, &seen); err != nil {
			return nil, fmt.Errorf("controls: read service posture: %w", err)
		}
		p.certNotAfter, p.seenAt = micros(notAfter), micros(seen)
		out = append(out, p)
	}
	return out, rows.Err()
}

const noProcess = "start attest serve: a running server records its posture every minute"

func selfAuditOn(ctx context.Context, sc Scope) (*Result, error) {
	r := result("LOG-03", sc.Now)
	ps, err := livePostures(ctx, sc)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if !p.selfAudit {
			r.Findings = append(r.Findings, Finding{"process:" + p.process, "serves without recording its requests"})
		}
	}
	if len(ps) == 0 {
		return r.judge(0, noProcess), nil
	}
	return r.judge(len(ps), "stop the listed processes and start attest serve, which always records its requests: "+
		"only attest bench serves without"), nil
}

func rateLimitsOn(ctx context.Context, sc Scope) (*Result, error) {
	r := result("NET-03", sc.Now)
	ps, err := livePostures(ctx, sc)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if !p.rateLimits {
			r.Findings = append(r.Findings, Finding{"process:" + p.process, "serves without rate limits"})
		}
	}
	if len(ps) == 0 {
		return r.judge(0, noProcess), nil
	}
	return r.judge(len(ps), "stop the listed processes and start attest serve, which always applies rate limits "+
		"(in process, or shared through --redis-url): only attest bench serves without"), nil
}

func certificateFresh(ctx context.Context, sc Scope) (*Result, error) {
	r := result("NET-02", sc.Now)
	ps, err := livePostures(ctx, sc)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		left := p.certNotAfter.Sub(sc.Now)
		switch {
		case left <= 0:
			r.Findings = append(r.Findings, Finding{"process:" + p.process, fmt.Sprintf("serves a certificate for %s "+
				"that expired %s", p.certSubject, p.certNotAfter.Format(time.RFC3339))})
		case left < 30*day:
			r.Findings = append(r.Findings, Finding{"process:" + p.process, fmt.Sprintf("serves a certificate for %s "+
				"that expires %s, within 30 days", p.certSubject, p.certNotAfter.Format(time.RFC3339))})
		}
	}
	if len(ps) == 0 {
		return r.judge(0, noProcess), nil
	}
	return r.judge(len(ps), "renew the certificate, put it where --tls-cert and --tls-key name, and restart serve; "+
		"the self-signed one in the data directory is remade when its files are removed"), nil
}

// probeTimeout bounds each TLS 1.2 probe.
const probeTimeout = 3 * time.Second

func tls13Only(ctx context.Context, sc Scope) (*Result, error) {
	r := result("NET-01", sc.Now)
	ps, err := livePostures(ctx, sc)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	probes := map[string]string{}
	for _, p := range ps {
		res := "process:" + p.process
		if p.tlsMin != "TLS 1.3" {
			r.Findings = append(r.Findings, Finding{res, "accepts " + p.tlsMin + ", below TLS 1.3"})
		}
		if !strings.HasPrefix(p.process, host+" ") {
			probes[p.process] = "not probed: it runs on another host"
			continue
		}
		accepted, what := probeTLS12(ctx, p.addr)
		probes[p.process] = what
		if accepted {
			r.Findings = append(r.Findings, Finding{res, "completed a TLS 1.2 handshake when probed at " + p.addr})
		}
	}
	r.Evidence["probes"] = probes
	if len(ps) == 0 {
		return r.judge(0, noProcess), nil
	}
	return r.judge(len(ps), "serve only through attest serve, whose listener takes TLS 1.3 alone; anything in front "+
		"of it (a load balancer, a proxy) must be set to TLS 1.3 as well"), nil
}

// probeTLS12 tries a TLS 1.2 handshake with the listener at addr. It
// reports whether the handshake completed, and what happened, for the
// evidence: a listener that cannot be reached proves nothing either way.
func probeTLS12(ctx context.Context, addr string) (accepted bool, what string) {
	addr = dialable(addr)
	d := net.Dialer{Timeout: probeTimeout}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, "could not connect, so not probed: " + err.Error()
	}
	defer conn.Close()
	// The probe asks whether the listener agrees to TLS 1.2 at all; who
	// the certificate names is beside the point, and nothing is sent over
	// the connection, so the certificate is not checked here alone.
	tc := tls.Client(conn, &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, ServerName: "localhost"})
	err = tc.HandshakeContext(ctx)
	if err == nil {
		return true, "accepted a TLS 1.2 handshake"
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return false, "refused TLS 1.2: " + alert.Error()
	}
	return false, "refused TLS 1.2: " + err.Error()
}

// dialable turns a listen address into one to dial: an unspecified host
// (all interfaces) is reached on loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if ip != nil && ip.To4() == nil {
			return net.JoinHostPort("::1", port)
		}
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
