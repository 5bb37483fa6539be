package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attest/attest/internal/ratelimit"
	"github.com/redis/go-redis/v9"
)

// clock is a clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// impl makes one implementation of Limiter over a clock.
type impl struct {
	name string
	new  func(t *testing.T, now func() time.Time) ratelimit.Limiter
}

// impls are the implementations that every behaviour test runs against.
var impls = []impl{
	{"memory", func(t *testing.T, now func() time.Time) ratelimit.Limiter {
		return ratelimit.NewMemory(now)
	}},
	{"redis", func(t *testing.T, now func() time.Time) ratelimit.Limiter {
		return ratelimit.NewRedis(newRedisClient(t), testPrefix(t), now)
	}},
}

const redisURLVar = "ATTEST_TEST_REDIS_URL"

// newRedisClient returns a client of the Redis at $ATTEST_TEST_REDIS_URL,
// skipping the test if the variable is unset.
func newRedisClient(t testing.TB) *redis.Client {
	t.Helper()
	raw := os.Getenv(redisURLVar)
	if raw == "" {
		t.Skip(redisURLVar + " is not set; set it to a Redis URL such as " +
			"redis://127.0.0.1:6379/0 to run the Redis tests")
	}
	opts, err := ratelimit.ParseRedisURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping Redis at %s: %v", redisURLVar, err)
	}
	return c
}

// testPrefix returns a key prefix that no other test uses, and deletes the
// keys under it when the test ends.
func testPrefix(t testing.TB) string {
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "attest-test:ratelimit:" + hex.EncodeToString(b) + ":"
	c := newRedisClient(t)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("delete test keys: %v", err)
		}
	})
	return prefix
}

// step is one Take in a behaviour test, after moving the clock by advance.
type step struct {
	advance time.Duration
	key     string // "" means "k"
	n       int
	want    ratelimit.Decision
}

func allowed(remaining int) ratelimit.Decision {
	return ratelimit.Decision{Allowed: true, Remaining: remaining}
}

func refused(remaining int, retry time.Duration) ratelimit.Decision {
	return ratelimit.Decision{Remaining: remaining, RetryAfter: retry}
}

// Redis expires a bucket when, by Redis's real clock, it would be full, while
// these tests move a clock of their own. The limits are chosen so that no
// bucket is ever a few milliseconds short of full, and so none expires while
// a test runs.
var takeTests = []struct {
	name  string
	limit ratelimit.Limit
	steps []step
}{
	{"burst then refused", ratelimit.Limit{Rate: 1, Burst: 3}, []step{
		{n: 1, want: allowed(2)},
		{n: 1, want: allowed(1)},
		{n: 1, want: allowed(0)},
		{n: 1, want: refused(0, time.Second)},
		{n: 1, want: refused(0, time.Second)},
	}},
	{"refill", ratelimit.Limit{Rate: 1, Burst: 3}, []step{
		{n: 3, want: allowed(0)},
		{advance: 500 * time.Millisecond, n: 1, want: refused(0, 500*time.Millisecond)},
		{advance: 499999 * time.Microsecond, n: 1, want: refused(0, time.Microsecond)},
		{advance: time.Microsecond, n: 1, want: allowed(0)},
		{advance: 2500 * time.Millisecond, n: 1, want: allowed(1)},
	}},
	{"refill stops at burst", ratelimit.Limit{Rate: 1, Burst: 3}, []step{
		{n: 3, want: allowed(0)},
		{advance: time.Hour, n: 1, want: allowed(2)},
		{n: 2, want: allowed(0)},
		{n: 1, want: refused(0, time.Second)},
	}},
	{"rate with a repeating fraction", ratelimit.Limit{Rate: 3, Burst: 30}, []step{
		{n: 30, want: allowed(0)},
		{n: 1, want: refused(0, 333334*time.Microsecond)},
		{advance: 333333 * time.Microsecond, n: 1, want: refused(0, time.Microsecond)},
		{advance: time.Microsecond, n: 1, want: allowed(0)},
		{advance: 666666 * time.Microsecond, n: 2, want: allowed(0)},
	}},
	{"many small refills add up", ratelimit.Limit{Rate: 3, Burst: 30}, []step{
		{n: 30, want: allowed(0)},
		{advance: 100 * time.Millisecond, n: 1, want: refused(0, 233334*time.Microsecond)},
		{advance: 100 * time.Millisecond, n: 1, want: refused(0, 133334*time.Microsecond)},
		{advance: 100 * time.Millisecond, n: 1, want: refused(0, 33334*time.Microsecond)},
		{advance: 33334 * time.Microsecond, n: 1, want: allowed(0)},
	}},
	{"login, five per quarter hour", ratelimit.Limit{Rate: 5.0 / 900, Burst: 5}, []step{
		{n: 1, want: allowed(4)},
		{n: 4, want: allowed(0)},
		{n: 1, want: refused(0, 3*time.Minute)},
		{advance: 3 * time.Minute, n: 1, want: allowed(0)},
		{advance: 2 * time.Minute, n: 1, want: refused(0, time.Minute)},
	}},
	{"several tokens at once", ratelimit.Limit{Rate: 1, Burst: 10}, []step{
		{n: 7, want: allowed(3)},
		{n: 5, want: refused(3, 2*time.Second)},
		{n: 3, want: allowed(0)},
		{advance: 2 * time.Second, n: 2, want: allowed(0)},
		{n: 10, want: refused(0, 10*time.Second)},
	}},
	{"keys are separate", ratelimit.Limit{Rate: 0.5, Burst: 1}, []step{
		{key: "a", n: 1, want: allowed(0)},
		{key: "a", n: 1, want: refused(0, 2*time.Second)},
		{key: "b", n: 1, want: allowed(0)},
		{key: "a", n: 1, want: refused(0, 2*time.Second)},
	}},
	{"clock steps back", ratelimit.Limit{Rate: 1, Burst: 2}, []step{
		{n: 2, want: allowed(0)},
		{advance: -10 * time.Second, n: 1, want: refused(0, 11*time.Second)},
		{advance: 10 * time.Second, n: 1, want: refused(0, time.Second)},
		{advance: time.Second, n: 1, want: allowed(0)},
	}},
}

func TestTake(t *testing.T) {
	for _, im := range impls {
		for _, tt := range takeTests {
			t.Run(im.name+"/"+tt.name, func(t *testing.T) {
				c := newClock()
				l := im.new(t, c.Now)
				for i, s := range tt.steps {
					c.Advance(s.advance)
					key := s.key
					if key == "" {
						key = "k"
					}
					got, err := l.Take(t.Context(), key, tt.limit, s.n)
					if err != nil {
						t.Fatalf("step %d: Take: %v", i, err)
					}
					if got != s.want {
						t.Errorf("step %d: Take(%q, %d) = %+v, want %+v", i, key, s.n, got, s.want)
					}
				}
			})
		}
	}
}

func TestTakeInvalid(t *testing.T) {
	tests := []struct {
		name  string
		limit ratelimit.Limit
		n     int
	}{
		{"zero rate", ratelimit.Limit{Rate: 0, Burst: 1}, 1},
		{"negative rate", ratelimit.Limit{Rate: -1, Burst: 1}, 1},
		{"rate not a number", ratelimit.Limit{Rate: math.NaN(), Burst: 1}, 1},
		{"infinite rate", ratelimit.Limit{Rate: math.Inf(1), Burst: 1}, 1},
		{"zero burst", ratelimit.Limit{Rate: 1, Burst: 0}, 1},
		{"negative burst", ratelimit.Limit{Rate: 1, Burst: -1}, 1},
		{"burst too large", ratelimit.Limit{Rate: 1e9, Burst: ratelimit.MaxBurst + 1}, 1},
		{"refill too slow", ratelimit.Limit{Rate: 1e-9, Burst: 1}, 1},
		{"zero tokens", ratelimit.Limit{Rate: 1, Burst: 1}, 0},
		{"negative tokens", ratelimit.Limit{Rate: 1, Burst: 1}, -1},
		{"more tokens than burst", ratelimit.Limit{Rate: 1, Burst: 3}, 4},
	}
	for _, im := range impls {
		for _, tt := range tests {
			t.Run(im.name+"/"+tt.name, func(t *testing.T) {
				l := im.new(t, newClock().Now)
				got, err := l.Take(t.Context(), "k", tt.limit, tt.n)
				if !errors.Is(err, ratelimit.ErrInvalid) {
					t.Errorf("Take(%+v, %d): error %v, want ErrInvalid", tt.limit, tt.n, err)
				}
				if got != (ratelimit.Decision{}) {
					t.Errorf("Take(%+v, %d) = %+v, want a zero Decision", tt.limit, tt.n, got)
				}
			})
		}
	}
}

func TestTakeConcurrent(t *testing.T) {
	const goroutines, tries = 64, 10
	limit := ratelimit.Limit{Rate: 1, Burst: 100}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			l := im.new(t, newClock().Now)
			var admitted, failed atomic.Int64
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range tries {
						d, err := l.Take(t.Context(), "shared", limit, 1)
						if err != nil {
							failed.Add(1)
							continue
						}
						if d.Allowed {
							admitted.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				t.Fatalf("%d Takes failed", n)
			}
			if got := admitted.Load(); got != int64(limit.Burst) {
				t.Errorf("%d goroutines admitted %d with a frozen clock, want burst %d",
					goroutines, got, limit.Burst)
			}
		})
	}
}

func TestMemoryContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m := ratelimit.NewMemory(nil)
	got, err := m.Take(ctx, "k", ratelimit.Limit{Rate: 1, Burst: 1}, 1)
	if !errors.Is(err, context.Canceled) || got != (ratelimit.Decision{}) {
		t.Errorf("Take with a cancelled context = %+v, %v; want a zero Decision, %v",
			got, err, context.Canceled)
	}
}
