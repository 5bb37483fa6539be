package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

// TestServeRecordsItsPosture checks that serve records how it serves and
// verifies every log, and that the controls reading those records pass
// against a real server: TLS 1.3 alone, a fresh certificate, rate limits
// and self audit on, every log verified intact.
func TestServeRecordsItsPosture(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		ts := start(t, opts, server.Config{RetentionDelay: 10 * time.Millisecond, RetentionInterval: -1})
		db := ts.in.DB
		var process, addr, tlsMin, tlsMax, subject string
		var rateLimits, selfAudit bool
		var notAfter int64
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := db.Read.QueryRow(`SELECT process, addr, tls_min, tls_max, cert_subject, cert_not_after, rate_limits,
				self_audit FROM service_posture`).Scan(&process, &addr, &tlsMin, &tlsMax, &subject, &notAfter, &rateLimits, &selfAudit)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no posture recorded: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.HasSuffix(ts.url, addr) || tlsMin != "TLS 1.3" || tlsMax != "TLS 1.3" || !rateLimits || !selfAudit ||
			!strings.Contains(subject, "localhost") || time.UnixMicro(notAfter).Before(time.Now().Add(30*24*time.Hour)) {
			t.Errorf("posture %s: addr %s, TLS %s to %s, certificate %s until %v, rate limits %v, self audit %v", process,
				addr, tlsMin, tlsMax, subject, time.UnixMicro(notAfter), rateLimits, selfAudit)
		}
		// The verification job ran as the retention job would: first a
		// moment after start.
		for {
			var n int
			db.Read.QueryRow(`SELECT COUNT(*) FROM log_verifications WHERE ok = TRUE`).Scan(&n)
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no verification recorded")
			}
			time.Sleep(20 * time.Millisecond)
		}
		var run controlRun
		ts.do("POST", "/api/v1/compliance/controls/validate", ts.operator, nil,
			`{"controls":["NET-01","NET-02","NET-03","LOG-03","LOG-02"]}`, http.StatusOK, &run)
		for _, id := range []string{"NET-01", "NET-02", "NET-03", "LOG-03", "LOG-02"} {
			if st, findings, _ := run.of(t, id); st != "pass" {
				t.Errorf("%s against a running server: %s %v, want pass", id, st, findings)
			}
		}
		if b := ts.waitTrail("operator", "&action=audit.log.verify", 1); !strings.Contains(string(b), `"audit.log.verify"`) {
			t.Errorf("the operator's trail lacks the verification: %s", b)
		}
	})
}
