package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net/http"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// authzChecks loads POST /api/v1/authz/check over HTTPS, as the platform's
// services call it: a user with a custom role, asked about a platform
// action, from concurrent clients each on its own connection, with the
// self audit that records every answer.
func (r *run) authzChecks(ctx context.Context) error {
	def, err := r.in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		return err
	}
	u := &identity.User{ID: identity.NewUserID(), TenantID: def.ID, Email: "authz-bench@example.com",
		Display: "authz-bench@example.com", Name: "Authz Bench"}
	err = r.in.DB.InTx(ctx, func(tx *sql.Tx) error {
		if err := r.in.Identity.Users.Create(ctx, tx, u); err != nil {
			return err
		}
		role := &access.CustomRole{Name: "bench-listener", Permissions: []access.Permission{"recording.read"}}
		if err := r.in.Grants.CreateRole(ctx, tx, def.ID, role); err != nil {
			return err
		}
		return r.in.Grants.Grant(ctx, tx, def.ID, u.ID, access.Grant{Role: role.Name}, "bench")
	})
	if err != nil {
		return err
	}
	tok, _, err := r.in.CreateKey(ctx, def, access.RoleAuthz, "bench authz", time.Time{}, instance.SystemActor(), nil)
	if err != nil {
		return err
	}
	body := []byte(fmt.Sprintf(`{"subject":%q,"action":"recording.read","resource":{"type":"recording","id":"r-1"}}`, u.ID))
	for _, clients := range []int{16, 64} {
		const span = 5 * time.Second
		r.progress("asking POST /api/v1/authz/check from %d clients for %s", clients, span)
		n, lat, err := r.loadPost(ctx, r.url+"/api/v1/authz/check", tok.Reveal(), body, clients, span)
		if err != nil {
			return err
		}
		p50, _, p99 := percentiles(lat)
		r.add(Result{Name: fmt.Sprintf("POST /api/v1/authz/check over HTTPS, %d clients", clients),
			Value: float64(n) / span.Seconds(), Unit: "checks/s", P50: p50, P99: p99, N: n})
	}
	// A platform service listing recordings asks about each of them: the
	// batch route answers 50 questions a request, each recorded alone.
	var batch bytes.Buffer
	batch.WriteString(`{"checks":[`)
	for i := range authzBatch {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"subject":%q,"action":"recording.read","resource":{"type":"recording","id":"r-%d"}}`, u.ID, i)
	}
	batch.WriteString(`]}`)
	const clients, span = 16, 5 * time.Second
	r.progress("asking POST /api/v1/authz/check/batch, %d questions a request, from %d clients for %s", authzBatch, clients, span)
	n, lat, err := r.loadPost(ctx, r.url+"/api/v1/authz/check/batch", tok.Reveal(), batch.Bytes(), clients, span)
	if err != nil {
		return err
	}
	p50, _, p99 := percentiles(lat)
	r.add(Result{Name: fmt.Sprintf("POST /api/v1/authz/check/batch over HTTPS, %d a request, %d clients", authzBatch, clients),
		Value: float64(n*authzBatch) / span.Seconds(), Unit: "checks/s", P50: p50, P99: p99, N: n * authzBatch})
	return nil
}

// authzBatch is how many questions each batched request asks.
const authzBatch = 50

// loadPost sends body to url from n clients, each on its own connection,
// for span, and returns how many were answered 200 and their latencies.
func (r *run) loadPost(ctx context.Context, url, key string, body []byte, n int, span time.Duration) (int, []time.Duration, error) {
	return load(ctx, url, body, n, span, func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.pool},
			ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 1}}
	}, func(req *http.Request) {
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
	})
}
