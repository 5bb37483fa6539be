package ratelimit

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBuckets is the number of buckets a Memory made by NewMemory
// holds at most.
const DefaultMaxBuckets = 1_000_000

const (
	// shards is the number of independently locked maps in a Memory.
	shards = 64
	// sweepEvery is how often, in microseconds of the clock, a shard is
	// swept of buckets that have refilled to full.
	sweepEvery = int64(time.Minute / time.Microsecond)
	// evictSample is how many buckets a full shard looks at to choose the
	// one that makes way for a new key.
	evictSample = 16
)

// Memory is a Limiter that keeps its buckets in process. It suits a single
// replica, and tests.
type Memory struct {
	now      func() time.Time
	seed     maphash.Seed
	perShard int // most buckets in one shard
	shards   [shards]shard
}

// shard is one part of a Memory's buckets, chosen by a hash of the key.
type shard struct {
	// mu guards the fields below.
	mu      sync.Mutex
	buckets map[string]entry
	sweepAt int64 // microseconds since the Unix epoch of the next sweep

	// Keep neighbouring shards off one cache line.
	_ [40]byte
}

// entry is a bucket and when it will be full.
type entry struct {
	b    bucket
	full int64 // microseconds since the Unix epoch
}

// NewMemory returns an in-process Limiter holding at most
// DefaultMaxBuckets buckets; now is the clock (nil means time.Now).
func NewMemory(now func() time.Time) *Memory {
	return NewMemorySize(now, DefaultMaxBuckets)
}

// NewMemorySize is NewMemory holding at most maxBuckets buckets, rounded up
// to a multiple of 64; maxBuckets <= 0 means DefaultMaxBuckets.
//
// When the buckets of a key's shard are at their cap, a new key makes way by
// evicting, of a random sample of 16 buckets there, the one that will be full
// soonest. Evicting a full bucket loses nothing, and the bucket closest to
// full is the one whose loss grants its key the fewest extra tokens. It also
// means that a flood of new keys, each leaving its bucket nearly full, evicts
// its own buckets before a bucket that has been drained, such as that of an
// account under a password-guessing attack. Evicting the oldest bucket
// instead would let such a flood reset the drained bucket.
func NewMemorySize(now func() time.Time, maxBuckets int) *Memory {
	if now == nil {
		now = time.Now
	}
	if maxBuckets <= 0 {
		maxBuckets = DefaultMaxBuckets
	}
	m := &Memory{now: now, seed: maphash.MakeSeed(), perShard: (maxBuckets + shards - 1) / shards}
	for i := range m.shards {
		m.shards[i].buckets = make(map[string]entry)
	}
	return m
}

// Take implements Limiter. It returns ctx's error if ctx is done.
func (m *Memory) Take(ctx context.Context, key string, l Limit, n int) (Decision, error) {
	if err := check(l, n); err != nil {
		return Decision{}, err
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	now := m.now().UnixMicro()
	s := &m.shards[maphash.String(m.seed, key)%shards]

	s.mu.Lock()
	defer s.mu.Unlock()
	if now >= s.sweepAt {
		s.sweepLocked(now)
	}
	return s.takeLocked(key, now, l, n, m.perShard), nil
}

// Len returns the number of buckets m holds.
func (m *Memory) Len() int {
	total := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		total += len(s.buckets)
		s.mu.Unlock()
	}
	return total
}

// takeLocked takes n tokens from key's bucket, making the bucket if need be
// in a shard that holds at most capacity buckets.
func (s *shard) takeLocked(key string, now int64, l Limit, n, capacity int) Decision {
	e, ok := s.buckets[key]
	if !ok {
		if len(s.buckets) >= capacity {
			s.evictLocked(now)
		}
		// The caller's key may share memory with a larger string.
		key = strings.Clone(key)
		e.b = full(now, l)
	}
	d := e.b.take(now, l, n)
	e.full = e.b.fullAt(l)
	s.buckets[key] = e
	return d
}

// sweepLocked drops the buckets that are full at now and schedules the next
// sweep.
func (s *shard) sweepLocked(now int64) {
	for k, e := range s.buckets {
		if e.full <= now {
			delete(s.buckets, k)
		}
	}
	s.sweepAt = now + sweepEvery
}

// evictLocked drops one bucket: the first full one found, or else the one of
// a random sample that will be full soonest.
func (s *shard) evictLocked(now int64) {
	victim, soonest, seen := "", int64(0), 0
	// Map iteration starts at a random place, which makes the sample.
	for k, e := range s.buckets {
		if e.full <= now {
			victim = k
			break
		}
		if seen == 0 || e.full < soonest {
			victim, soonest = k, e.full
		}
		if seen++; seen == evictSample {
			break
		}
	}
	delete(s.buckets, victim)
}
