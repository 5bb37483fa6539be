package ratelimit

import (
	"fmt"
	"hash/maphash"
	"testing"
	"time"
)

// start is the time the tests' clocks read.
var start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func TestMemoryCap(t *testing.T) {
	now := start
	m := NewMemorySize(func() time.Time { return now }, 640)
	limit := Limit{Rate: 1, Burst: 10}
	for i := range 100_000 {
		if _, err := m.Take(t.Context(), fmt.Sprint("flood-", i), limit, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got != 640 {
		t.Errorf("after a flood of 100000 keys Len = %d, want the cap of 640", got)
	}
}

// TestMemoryEvictsFullestFirst drains a bucket and floods its Memory with
// new keys: the flood must make way among its own, nearly full, buckets.
func TestMemoryEvictsFullestFirst(t *testing.T) {
	now := start
	m := NewMemorySize(func() time.Time { return now }, 640)
	login := Limit{Rate: 5.0 / 900, Burst: 5}
	const victim = "login:victim@example.com"
	if d, err := m.Take(t.Context(), victim, login, 5); err != nil || !d.Allowed {
		t.Fatalf("drain: %+v, %v", d, err)
	}
	for i := range 100_000 {
		if _, err := m.Take(t.Context(), fmt.Sprint("login:flood-", i), login, 1); err != nil {
			t.Fatal(err)
		}
	}
	d, err := m.Take(t.Context(), victim, login, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed {
		t.Error("a flood of new keys evicted a drained bucket and reset it")
	}
}

func TestMemorySweep(t *testing.T) {
	now := start
	m := NewMemory(func() time.Time { return now })
	quick := Limit{Rate: 1, Burst: 1}    // full again 1s after a Take
	slow := Limit{Rate: 0.001, Burst: 1} // full again 1000s after a Take
	take := func(key string, l Limit) Decision {
		t.Helper()
		d, err := m.Take(t.Context(), key, l, 1)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// Fill the shard of "slow" with quick buckets.
	shard := maphash.String(m.seed, "slow") % shards
	s := &m.shards[shard]
	take("slow", slow)
	for i := 0; len(s.buckets) < 10; i++ {
		if key := fmt.Sprint("quick-", i); maphash.String(m.seed, key)%shards == shard {
			take(key, quick)
		}
	}

	// Sweeps come at most once a minute of the clock.
	now = now.Add(30 * time.Second)
	take("slow", slow)
	if got := len(s.buckets); got != 10 {
		t.Fatalf("after 30s the shard holds %d buckets, want all 10", got)
	}

	now = now.Add(time.Minute)
	take("slow", slow)
	if got := len(s.buckets); got != 1 {
		t.Errorf("after a sweep the shard holds %d buckets, want the one not yet full", got)
	}
	if take("slow", slow).Allowed {
		t.Error("a sweep dropped a bucket that was not full")
	}
}
