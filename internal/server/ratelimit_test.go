package server_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/attest/attest/internal/ratelimit"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/redis/go-redis/v9"
)

var loginN atomic.Int64

// badLogin is a failed login for a fresh email each time, so that only the
// address's bucket, not an account's failure counter, is in play.
func badLogin() string {
	return fmt.Sprintf(`{"tenant":"default","email":"x%d@example.com","password":"wrong wrong wrong"}`, loginN.Add(1))
}

// TestLoginRateLimit exhausts the login bucket of an address and checks
// the 429 and its Retry-After.
func TestLoginRateLimit(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	rates := testRates
	rates.LoginIP = ratelimit.Limit{Rate: 0.01, Burst: 3}
	ts := start(t, opts, server.Config{RateLimits: &rates})
	for range 3 {
		ts.do("POST", "/api/v1/auth/login", "", nil, badLogin(), http.StatusUnauthorized, nil)
	}
	resp := ts.do("POST", "/api/v1/auth/login", "", nil, badLogin(), http.StatusTooManyRequests, nil)
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q, want whole seconds", resp.Header.Get("Retry-After"))
	}
	// A forwarded header from a peer that is no trusted proxy changes
	// nothing: the bucket is the socket peer's.
	ts.do("POST", "/api/v1/auth/login", "", map[string]string{"X-Forwarded-For": "203.0.113.9"}, badLogin(),
		http.StatusTooManyRequests, nil)
	// Other routes draw on other buckets.
	ts.do("GET", "/api/v1/compliance/audit-trail", ts.operator, nil, "", http.StatusOK, nil)
}

// TestForwardedForBuckets checks that behind a trusted proxy each client
// gets its own bucket, and that a malformed header falls back to the
// proxy's own, never to a fresh one.
func TestForwardedForBuckets(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	rates := testRates
	rates.LoginIP = ratelimit.Limit{Rate: 0.01, Burst: 2}
	ts := start(t, opts, server.Config{RateLimits: &rates,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	for _, h := range []string{"198.51.100.1", "198.51.100.1"} {
		ts.do("POST", "/api/v1/auth/login", "", map[string]string{"X-Forwarded-For": h}, badLogin(), http.StatusUnauthorized, nil)
	}
	ts.do("POST", "/api/v1/auth/login", "", map[string]string{"X-Forwarded-For": "198.51.100.1"}, badLogin(),
		http.StatusTooManyRequests, nil)
	ts.do("POST", "/api/v1/auth/login", "", map[string]string{"X-Forwarded-For": "198.51.100.2"}, badLogin(),
		http.StatusUnauthorized, nil)
	// Malformed headers all land in the proxy's bucket.
	for i, h := range []string{"not-an-ip", "198.51.100.3, garbage", "[::1]:80"} {
		want := http.StatusUnauthorized
		if i >= 2 {
			want = http.StatusTooManyRequests
		}
		ts.do("POST", "/api/v1/auth/login", "", map[string]string{"X-Forwarded-For": h}, badLogin(), want, nil)
	}
}

// TestRedisSharedBuckets runs two servers on one Redis: what one spends,
// the other sees.
func TestRedisSharedBuckets(t *testing.T) {
	u := os.Getenv("ATTEST_TEST_REDIS_URL")
	if u == "" {
		t.Skip("ATTEST_TEST_REDIS_URL is not set: set it to redis://127.0.0.1:6379/0 to test shared rate limits")
	}
	ro, err := ratelimit.ParseRedisURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(ro)
	t.Cleanup(func() { rc.Close() })
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "attest-test:" + hex.EncodeToString(b) + ":"
	rates := testRates
	rates.LoginIP = ratelimit.Limit{Rate: 0.01, Burst: 2}
	_, o1 := storetest.OpenSQLite(t)
	_, o2 := storetest.OpenSQLite(t)
	a := start(t, o1, server.Config{RateLimits: &rates, Limiter: ratelimit.NewRedis(rc, prefix, nil)})
	z := start(t, o2, server.Config{RateLimits: &rates, Limiter: ratelimit.NewRedis(rc, prefix, nil)})
	a.do("POST", "/api/v1/auth/login", "", nil, badLogin(), http.StatusUnauthorized, nil)
	z.do("POST", "/api/v1/auth/login", "", nil, badLogin(), http.StatusUnauthorized, nil)
	a.do("POST", "/api/v1/auth/login", "", nil, badLogin(), http.StatusTooManyRequests, nil)
	z.do("POST", "/api/v1/auth/login", "", nil, badLogin(), http.StatusTooManyRequests, nil)

	// An unreachable Redis denies rather than admits.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { dead.Close() })
	_, o3 := storetest.OpenSQLite(t)
	d := start(t, o3, server.Config{RateLimits: &rates, Limiter: ratelimit.NewRedis(dead, prefix, nil)})
	d.do("POST", "/api/v1/auth/login", "", nil, badLogin(), http.StatusServiceUnavailable, nil)
	keys, _ := rc.Keys(t.Context(), prefix+"*").Result()
	if len(keys) > 0 {
		rc.Del(t.Context(), keys...)
	}
}
