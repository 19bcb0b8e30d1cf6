package sim

import (
	"hash/fnv"
	"math/rand/v2"
)

// Seed makes the random streams of one run. Each model draws from its own
// named stream, so adding draws to one model never shifts another's, and
// the same seed replays the same run.
type Seed uint64

// Stream returns the PCG stream called name under seed s.
func (s Seed) Stream(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(uint64(s), h.Sum64()))
}
