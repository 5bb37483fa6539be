package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Limit is a bucket's shape: Rate tokens per second refill, Burst capacity.
type Limit struct {
	// Rate is the refill in tokens per second; it must be positive and finite.
	Rate float64
	// Burst is the most tokens the bucket holds, and so the most one Take
	// may ask for; it must be between 1 and MaxBurst.
	Burst int
}

// Decision is what one Take answered.
type Decision struct {
	// Allowed reports whether the tokens were taken.
	Allowed bool
	// Remaining is the number of whole tokens left in the bucket afterwards.
	Remaining int
	// RetryAfter is positive only when refused: the time until the bucket
	// holds the tokens that were asked for, which for a Take of one token is
	// the time until one token is available.
	RetryAfter time.Duration
}

// Limiter takes tokens from named buckets. Implementations are safe for
// concurrent use.
type Limiter interface {
	// Take refills the bucket named key to the current time and takes n
	// tokens from it if it holds that many; otherwise it takes none. A key
	// seen for the first time names a full bucket of shape l.
	//
	// Take returns an error wrapping ErrInvalid if l or n is invalid, and an
	// error when the bucket cannot be reached; in both cases the Decision is
	// zero and it is the caller's policy whether to admit the request.
	Take(ctx context.Context, key string, l Limit, n int) (Decision, error)
}

// MaxBurst is the largest Burst a Limit may have, so that a bucket's count
// of millionths of a token stays exact in a float64.
const MaxBurst = 1 << 30

// MaxRefill is the longest a Limit may take to refill an empty bucket
// (Burst / Rate), so that refill times stay exact in microseconds.
const MaxRefill = 366 * 24 * time.Hour

// ErrInvalid reports a Limit or token count that Take cannot honour.
var ErrInvalid = errors.New("ratelimit: invalid argument")

// check validates a Limit and a count of tokens to take from it.
func check(l Limit, n int) error {
	switch {
	case !(l.Rate > 0) || math.IsInf(l.Rate, 1):
		return fmt.Errorf("%w: rate must be a positive finite number of tokens per second, got %v",
			ErrInvalid, l.Rate)
	case l.Burst <= 0:
		return fmt.Errorf("%w: burst must be positive, got %d", ErrInvalid, l.Burst)
	case l.Burst > MaxBurst:
		return fmt.Errorf("%w: burst must be at most %d, got %d", ErrInvalid, MaxBurst, l.Burst)
	case float64(l.Burst)/l.Rate > MaxRefill.Seconds():
		return fmt.Errorf("%w: burst %d at rate %v/s takes longer than %v to refill",
			ErrInvalid, l.Burst, l.Rate, MaxRefill)
	case n <= 0:
		return fmt.Errorf("%w: tokens to take must be positive, got %d", ErrInvalid, n)
	case n > l.Burst:
		return fmt.Errorf("%w: cannot take %d tokens from a bucket of burst %d",
			ErrInvalid, n, l.Burst)
	}
	return nil
}

// micro is the number of microseconds in a second and of millionths of a
// token in a token.
const micro = 1e6

// bucket is the state of one token bucket. The Lua script in take.lua does
// the same arithmetic on the same state; change both together.
type bucket struct {
	tokens float64 // millionths of a token
	last   int64   // microseconds since the Unix epoch of the last refill
}

// full returns a full bucket of shape l at time now.
func full(now int64, l Limit) bucket {
	return bucket{tokens: float64(l.Burst) * micro, last: now}
}

// take refills b to now and takes n tokens from it if it holds them.
func (b *bucket) take(now int64, l Limit, n int) Decision {
	if now > b.last {
		// The conversion rounds the product on its own, so that no
		// platform fuses it with the sum and Go agrees with Lua.
		b.tokens += float64(float64(now-b.last) * l.Rate)
		b.last = now
	}
	b.tokens = min(b.tokens, float64(l.Burst)*micro)

	need := float64(n) * micro
	if b.tokens < need {
		// A clock reading before the last refill waits from the refill.
		retry := time.Duration(wait(b.tokens, need, l.Rate)+b.last-now) * time.Microsecond
		return Decision{Remaining: b.remaining(), RetryAfter: retry}
	}
	b.tokens -= need
	return Decision{Allowed: true, Remaining: b.remaining()}
}

// remaining returns the whole tokens in b.
func (b *bucket) remaining() int {
	return int(math.Floor(b.tokens / micro))
}

// fullAt returns when b will have refilled to full, in microseconds since
// the Unix epoch.
func (b *bucket) fullAt(l Limit) int64 {
	return b.last + wait(b.tokens, float64(l.Burst)*micro, l.Rate)
}

// wait returns the whole microseconds after which a bucket refilling at rate
// grows from have to at least want millionths of a token, using the same sum
// that take uses, so that a retry after the wait is admitted.
func wait(have, want, rate float64) int64 {
	if have >= want {
		return 0
	}
	t := math.Ceil((want - have) / rate)
	for have+float64(t*rate) < want {
		t++
	}
	return int64(t)
}
