package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/attest/attest/internal/identity"
)

// Thresholds of the login threat detector, each over a ten-minute window.
const (
	detectWindow = 10 * time.Minute
	// stuffingAccounts distinct accounts failing from one address look
	// like a list of stolen credentials being tried.
	stuffingAccounts = 20
	// sprayAccounts distinct accounts failing with one password look like
	// a common password sprayed across the tenant.
	sprayAccounts = 10
	// enumerationMisses failures for emails no account has, from one
	// address, look like someone finding out who has an account.
	enumerationMisses = 20
	// detectMaxKeys bounds what one window remembers.
	detectMaxKeys = 100000
)

// detector watches failed logins for credential stuffing, password
// spraying and account enumeration, and raises a security event the first
// time each crosses its threshold in a window. Passwords are remembered
// only as an HMAC under a key that lives in this process alone.
type detector struct {
	key []byte

	mu       sync.Mutex // guards what follows
	start    time.Time
	byIP     map[string]map[string]bool // address -> accounts failed
	misses   map[string]int             // address -> unknown-account failures
	byPass   map[string]map[string]bool // password tag -> accounts failed
	reported map[string]bool
}

func newDetector() *detector {
	k := make([]byte, 32)
	rand.Read(k)
	return &detector{key: k}
}

// passwordTag is the keyed hash a failed password is remembered by.
func (d *detector) passwordTag(password string) string {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(password))
	return string(m.Sum(nil)[:12])
}

// failure is one failed password step: which threats it now crosses.
func (d *detector) failure(now time.Time, ip, account, passTag string, known bool) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.start) > detectWindow || d.byIP == nil {
		d.start = now
		d.byIP, d.misses, d.byPass = map[string]map[string]bool{}, map[string]int{}, map[string]map[string]bool{}
		d.reported = map[string]bool{}
	}
	var out []string
	if add(d.byIP, ip, account) >= stuffingAccounts && !d.reported["stuffing:"+ip] {
		d.reported["stuffing:"+ip] = true
		out = append(out, "security.credential_stuffing")
	}
	if passTag != "" && add(d.byPass, passTag, account) >= sprayAccounts && !d.reported["spray:"+passTag] {
		d.reported["spray:"+passTag] = true
		out = append(out, "security.password_spraying")
	}
	if !known && len(d.misses) < detectMaxKeys {
		d.misses[ip]++
		if d.misses[ip] >= enumerationMisses && !d.reported["enum:"+ip] {
			d.reported["enum:"+ip] = true
			out = append(out, "security.account_enumeration")
		}
	}
	return out
}

func add(m map[string]map[string]bool, k, v string) int {
	set, ok := m[k]
	if !ok {
		if len(m) >= detectMaxKeys {
			return 0
		}
		set = map[string]bool{}
		m[k] = set
	}
	if len(set) < detectMaxKeys {
		set[v] = true
	}
	return len(set)
}

// observe feeds a login step's outcome to the detector and records each
// threat it finds.
func (d *detector) observe(rq *request, step string, at *identity.Attempt, result string) {
	if step != "password" || result != "failure" || at == nil {
		return
	}
	account := rq.loginAccount
	threats := d.failure(rq.s.in.Now(), rq.ip, account, rq.passwordTag, at.User != nil)
	for _, th := range threats {
		rq.s.securityEvent(rq, th, "high", map[string]any{"window_minutes": int(detectWindow / time.Minute),
			"client_ip": rq.ip})
	}
}
