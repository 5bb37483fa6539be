package ratelimit_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/attest/attest/internal/ratelimit"
)

// benchKeys are the keys the benchmarks spread their Takes over.
var benchKeys = func() []string {
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("ip:198.51.%d.%d", i>>8, i&0xff)
	}
	return keys
}()

// benchTake runs Takes on l in parallel, each goroutine walking the keys
// from its own place.
func benchTake(b *testing.B, l ratelimit.Limiter) {
	limit := ratelimit.Limit{Rate: 10, Burst: 100}
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1) * 7919)
		for pb.Next() {
			i++
			if _, err := l.Take(b.Context(), benchKeys[i%len(benchKeys)], limit, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkMemoryTake(b *testing.B) {
	benchTake(b, ratelimit.NewMemory(nil))
}

func BenchmarkRedisTake(b *testing.B) {
	benchTake(b, ratelimit.NewRedis(newRedisClient(b), testPrefix(b), nil))
}
