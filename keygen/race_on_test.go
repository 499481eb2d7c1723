//go:build race

package keygen

// raceEnabled scales down the sampled (not the exhaustive) permutation checks
// under the race detector, which slows the round function ~100-fold and has
// nothing to find in single-goroutine arithmetic.
const raceEnabled = true
