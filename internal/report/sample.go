package report

import (
	"crypto/sha256"
	"math/rand/v2"
	"slices"
)

// SampleRule states how large each sample is.
const SampleRule = "every item of a population of 25 or fewer; 25 items of a population of 26 to 250; " +
	"40 items of a larger population. Items are drawn without replacement with ChaCha8 seeded from " +
	"SHA-256(seed || population name), so the same seed draws the same items."

// SampleSize returns the size of the sample of a population of n.
func SampleSize(n int) int {
	switch {
	case n <= 25:
		return n
	case n <= 250:
		return 25
	}
	return 40
}

// Sample is the items drawn from one population.
type Sample struct {
	Population     string `json:"population"`
	PopulationSize int    `json:"population_size"`
	Size           int    `json:"size"`
	// Sequences are the log sequence numbers of the items drawn, in order.
	Sequences []int64 `json:"sequences"`
	Rows      []Row   `json:"rows"`
}

// Draw draws the sample of a population from rows, oldest first, with the
// seed given: the same seed, population and rows draw the same sample.
func Draw(seed []byte, population string, rows []Row) *Sample {
	return draw(seed, population, rows)
}

func draw(seed []byte, population string, rows []Row) *Sample {
	k := SampleSize(len(rows))
	s := &Sample{Population: population, PopulationSize: len(rows), Size: k, Sequences: []int64{}, Rows: []Row{}}
	h := sha256.New()
	h.Write(seed)
	h.Write([]byte(population))
	var key [32]byte
	copy(key[:], h.Sum(nil))
	r := rand.New(rand.NewChaCha8(key))
	picked := r.Perm(len(rows))[:k]
	slices.Sort(picked)
	for _, i := range picked {
		s.Sequences = append(s.Sequences, rows[i].Sequence)
		s.Rows = append(s.Rows, rows[i])
	}
	return s
}
