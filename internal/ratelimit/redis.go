package ratelimit

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed take.lua
var takeLua string

// takeScript is run with EVALSHA, falling back to EVAL when the server does
// not have it cached.
var takeScript = redis.NewScript(takeLua)

// Redis is a Limiter that keeps its buckets in Redis, so that every replica
// of attest draws on the same buckets. One Lua script refills and takes
// atomically, so concurrent Takes never admit more than a bucket holds.
//
// A bucket is a hash under prefix followed by the hex SHA-256 of the key, so
// that client IPs and email addresses are not stored in clear. The hash is
// not keyed: a short key, such as an IPv4 address, can still be recovered by
// hashing every candidate. A bucket's key expires when the bucket will have
// refilled to full, at which point it answers as a new bucket would.
//
// The time comes from the caller's clock, not from Redis's TIME, so that
// tests control it and so that Memory and Redis share one arithmetic.
// Replicas should therefore keep their clocks synchronised (NTP is enough).
// The script never moves a bucket's last refill back, so a replica whose
// clock lags refills nothing until its clock passes the bucket's; a replica
// whose clock runs ahead by d can grant at most d×Rate tokens early, once,
// and never more than Burst. The expiry runs on Redis's clock, so a Redis
// clock ahead of the replicas' by d drops buckets up to d early, with the
// same bound.
type Redis struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time
}

// NewRedis returns a Limiter keeping its buckets in client under keys that
// start with prefix; now is the clock (nil means time.Now).
func NewRedis(client redis.UniversalClient, prefix string, now func() time.Time) *Redis {
	if now == nil {
		now = time.Now
	}
	return &Redis{client: client, prefix: prefix, now: now}
}

// Take implements Limiter.
func (r *Redis) Take(ctx context.Context, key string, l Limit, n int) (Decision, error) {
	if err := check(l, n); err != nil {
		return Decision{}, err
	}
	keys := []string{r.key(key)}
	now := r.now().UnixMicro()

	res, err := takeScript.Run(ctx, r.client, keys, now, l.Rate, l.Burst, n).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis take: %w", err)
	}
	if len(res) != 3 {
		return Decision{}, fmt.Errorf("ratelimit: redis take: got %d values, want 3", len(res))
	}
	return Decision{
		Allowed:    res[0] == 1,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
	}, nil
}

// key returns the Redis key of the bucket named key.
func (r *Redis) key(key string) string {
	sum := sha256.Sum256([]byte(key))
	return r.prefix + hex.EncodeToString(sum[:])
}
