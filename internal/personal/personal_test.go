package personal_test

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/internal/personal"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
)

// Processes that create the same subjects' keys at once, each through a
// keyring of its own, all end up using one key per subject.
func TestConcurrentPrefetchCreatesOneKeyPerSubject(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB, _ storetest.Options) {
		ctx := context.Background()
		key := make([]byte, 32)
		rand.Read(key)
		kek, err := personal.NewSealer(key)
		if err != nil {
			t.Fatal(err)
		}
		const tenantID, procs = 1, 6
		subjects := make([]string, 40)
		for i := range subjects {
			subjects[i] = fmt.Sprintf("usr_%02d", i)
		}
		rings := make([]*personal.Keyring, procs)
		errs := make([]error, procs)
		var wg sync.WaitGroup
		for p := range rings {
			rings[p] = personal.NewKeyring(db, kek, time.Now)
			mine := slices.Clone(subjects)
			mrand.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			wg.Go(func() { errs[p] = rings[p].Prefetch(ctx, tenantID, mine) })
		}
		wg.Wait()
		for p, err := range errs {
			if err != nil {
				t.Fatalf("keyring %d: %v", p, err)
			}
		}
		for _, s := range subjects {
			var want string
			for p, kr := range rings {
				k, err := kr.Active(ctx, tenantID, s)
				if err != nil {
					t.Fatal(err)
				}
				// The same key commits a value to the same string.
				got := fmt.Sprintf("%d/%s", k.Generation, k.Commit("t", "e", "actor.email", []byte("a@b.example")))
				if p == 0 {
					want = got
				} else if got != want {
					t.Fatalf("subject %s: keyring %d uses key %s, keyring 0 %s", s, p, got, want)
				}
			}
		}
		var n int
		if err := db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM subjects`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(subjects) {
			t.Fatalf("%d subject keys stored for %d subjects", n, len(subjects))
		}
	})
}
