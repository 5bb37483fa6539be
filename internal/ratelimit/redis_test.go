package ratelimit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/ratelimit"
	"github.com/redis/go-redis/v9"
)

func TestRedisStoresHashedKey(t *testing.T) {
	c := newRedisClient(t)
	prefix := testPrefix(t)
	r := ratelimit.NewRedis(c, prefix, newClock().Now)
	const ip = "203.0.113.7"
	limit := ratelimit.Limit{Rate: 1, Burst: 10}
	if _, err := r.Take(t.Context(), ip, limit, 4); err != nil {
		t.Fatal(err)
	}

	keys, err := c.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(ip))
	want := prefix + hex.EncodeToString(sum[:])
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys under prefix = %q, want [%q]", keys, want)
	}

	fields, err := c.HGetAll(t.Context(), want).Result()
	if err != nil {
		t.Fatal(err)
	}
	for f, v := range fields {
		if strings.Contains(f, ip) || strings.Contains(v, ip) {
			t.Errorf("bucket field %s = %q holds the key in clear", f, v)
		}
	}
	if fields["tokens"] != "6000000" {
		t.Errorf("tokens = %q, want 6000000 millionths", fields["tokens"])
	}

	// Four tokens short at one a second: full again in 4s.
	ttl, err := c.PTTL(t.Context(), want).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 3*time.Second || ttl > 4*time.Second {
		t.Errorf("PTTL = %v, want the 4s until the bucket is full", ttl)
	}
}

func TestRedisUnreachable(t *testing.T) {
	c := redis.NewClient(&redis.Options{
		Addr:               "127.0.0.1:1",
		MaxRetries:         -1,
		DialTimeout:        time.Second,
		DialerRetries:      1,
		DialerRetryTimeout: time.Millisecond,
	})
	defer c.Close()
	r := ratelimit.NewRedis(c, "attest-test:", nil)
	got, err := r.Take(t.Context(), "k", ratelimit.Limit{Rate: 1, Burst: 1}, 1)
	if err == nil {
		t.Fatal("Take with Redis unreachable succeeded, want an error")
	}
	if got != (ratelimit.Decision{}) {
		t.Errorf("Take with Redis unreachable = %+v, want a zero Decision", got)
	}
}

// TestMemoryAgreesWithRedis runs one random sequence of Takes against both
// implementations and wants the same answer every time.
func TestMemoryAgreesWithRedis(t *testing.T) {
	c := newClock()
	r := ratelimit.NewRedis(newRedisClient(t), testPrefix(t), c.Now)
	m := ratelimit.NewMemory(c.Now)
	limits := []ratelimit.Limit{
		{Rate: 0.7, Burst: 4},
		{Rate: 5.0 / 900, Burst: 5},
		{Rate: 3, Burst: 30},
		{Rate: 10, Burst: 7},
	}
	// The clock moves at least 1ms a step, much faster than real time, and a
	// Take asks for at most half a burst, so Redis never expires a bucket
	// that Memory still holds short of full.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		c.Advance(time.Millisecond + time.Duration(rng.Int64N(int64(2*time.Second))))
		k := rng.IntN(len(limits))
		l := limits[k]
		key := string(rune('a' + k))
		n := 1 + rng.IntN(l.Burst/2)

		want, err := m.Take(t.Context(), key, l, n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Take(t.Context(), key, l, n)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("step %d: Take(%q, %+v, %d): Redis %+v, Memory %+v", i, key, l, n, got, want)
		}
	}
}

func TestParseRedisURL(t *testing.T) {
	opts, err := ratelimit.ParseRedisURL("redis://attest:s3cret@10.0.0.5:6380/2")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Addr != "10.0.0.5:6380" || opts.DB != 2 || opts.Username != "attest" ||
		opts.Password != "s3cret" {
		t.Errorf("ParseRedisURL = addr %q db %d user %q, want 10.0.0.5:6380 2 attest",
			opts.Addr, opts.DB, opts.Username)
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	tests := []struct {
		name, raw, reason string
	}{
		{"empty", "", "empty"},
		{"not a URL", "u:hunter2pw@cache:6379", "want a URL such as redis://"},
		{"scheme", "http://u:hunter2pw@cache:6379/0", "invalid URL scheme"},
		{"database", "redis://u:hunter2pw@cache:6379/zero", "invalid database number"},
		{"port", "redis://u:hunter2pw@cache:port/0", "invalid port"},
		{"escape in password", "redis://u:hunter%zz2pw@cache/0", "invalid URL escape"},
		{"slash in password", "redis://u:hun/ter2pw@cache:6379/0", "invalid port"},
		{"slash after digits in password", "redis://u:12/hunter2pw@cache/0", "invalid URL path"},
		{"unknown option", "redis://u:hunter2pw@cache/0?colour=blue", "unexpected option: colour"},
		{"bad option value", "redis://u:hunter2pw@cache/0?pool_size=hunter2pw",
			"invalid pool_size number"},
		{"unix without path", "unix://u:hunter2pw@", "empty unix socket path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ratelimit.ParseRedisURL(tt.raw)
			if err == nil {
				t.Fatalf("ParseRedisURL(%q) succeeded, want an error", tt.raw)
			}
			msg := err.Error()
			if !strings.Contains(msg, "--redis-url") || !strings.Contains(msg, tt.reason) {
				t.Errorf("error %q does not name --redis-url and %q", msg, tt.reason)
			}
			for _, secret := range []string{"hunter", "2pw", "ter2"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q contains part of the password", msg)
				}
			}
		})
	}
}
