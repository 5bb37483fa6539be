// Package ratelimit limits how fast clients may call attest's HTTP API with
// token buckets: one bucket per client IP, account or API key, with stricter
// limits on login.
//
// A bucket holds at most Burst tokens and refills at Rate tokens per second.
// Each request takes n tokens (usually 1) or, when the bucket holds fewer,
// takes none and is told how long to wait. Two Limiter implementations share
// the same arithmetic and so answer alike for the same clock readings:
// Memory keeps buckets in process, Redis keeps them in a Redis server shared
// by every replica.
//
// # Arithmetic
//
// Time is counted in whole microseconds read from an injected clock, and
// tokens in millionths of a token, held in a float64. A refill is then the
// elapsed microseconds times Rate, with no division: exact for a whole-number
// Rate, since every count stays below 2^53, and otherwise rounded only in the
// last bit of a double. No fraction of a token is dropped between calls, so a
// bucket polled every millisecond refills as fast as one left alone. Redis
// runs the same operations in Lua, whose numbers are the same IEEE doubles,
// so both implementations give the same answers. A clock that steps backwards
// refills nothing and never moves a bucket's last-refill time back.
//
// # Forgetting buckets
//
// A bucket that has refilled to full answers as a new bucket of the same
// Limit would, so dropping it changes no decision. Memory drops such buckets
// by sweeping a shard when a Take reaches it a minute or more, by the clock,
// after its last sweep; Redis sets each bucket's key to expire when the
// bucket will be full. Memory also caps the number of buckets it holds, so
// that a flood of new keys cannot grow it without bound; see [NewMemorySize]
// for which bucket makes way.
//
// # Denying on error
//
// Take returns an error and a zero Decision when it cannot decide, for
// example when Redis is unreachable. Whether to refuse or admit the request
// then is the caller's policy.
package ratelimit
