package keygen

import (
	"fmt"
	"math/bits"
)

// Limits of the configuration.
const (
	MinDigits = 6  // smallest key length
	MaxDigits = 18 // largest key length (10^18 < 2^63, so keys fit an int64 too)

	// MinSecretLen is the shortest secret accepted, in bytes (128 bits).
	MinSecretLen = 16
	// MaxBlockSize bounds Config.BlockSize (each buffered block costs 8 bytes
	// per counter, and a crash loses up to about two blocks).
	MaxBlockSize = 1 << 20
	// MaxNodes bounds NodeConfig.Count.
	MaxNodes = 1 << 16
)

// Default values of Config fields; a zero field means its default.
const (
	DefaultDigits    = 9
	DefaultBlockSize = 4096
	DefaultWarnAt    = 0.8
)

// Config configures a Generator. A Config is a plain value; zero fields mean
// the documented defaults.
type Config struct {
	// Digits is the key length D, 6–18. Keys are the integers in
	// [10^(D-1), 10^D): D digits, never a leading zero. Default 9. Cannot
	// change on an existing data directory (ErrBindingChanged).
	Digits int
	// BlockSize is the number of counters leased (made durable) at a time,
	// 1–MaxBlockSize. Larger blocks mean fewer disk writes and more keys lost
	// per crash (see docs/architecture.md). Default 4096.
	BlockSize uint64
	// Secret keys the permutation: at least MinSecretLen bytes, the same on
	// every node of a deployment. Default nil: load <Dir>/keygen.secret,
	// which Init generates from crypto/rand (single node only) and stores
	// with mode 0600 when it creates the key space; New never generates it.
	// Cannot change on an existing data directory.
	Secret []byte
	// Dir is the data directory holding the lease state, its lock and the
	// secret file. Required when Secret is nil or when New opens the default
	// FileStore. No default.
	Dir string
	// Node is this daemon's static share of the counter space. Default
	// {ID: 0, Count: 1}: the whole space.
	Node NodeConfig
	// WarnAt is the fraction of this node's partition, in (0, 1], from which
	// every further percent used logs a warning. Default 0.8.
	WarnAt float64
}

// NodeConfig statically partitions the counter space among Count daemons:
// node ID (0 ≤ ID < Count) owns the contiguous slice NodePartition returns.
// Every node must use the same Count, Digits and secret, and a distinct ID.
type NodeConfig struct {
	// ID is this node's index, 0 ≤ ID < Count. Default 0.
	ID int
	// Count is the number of nodes sharing the key space, 1–MaxNodes.
	// Default 1 (zero means 1).
	Count int
}

// DefaultConfig returns the configuration with every default filled in
// (Dir, which has no default, is empty).
func DefaultConfig() Config {
	return Config{
		Digits:    DefaultDigits,
		BlockSize: DefaultBlockSize,
		Node:      NodeConfig{ID: 0, Count: 1},
		WarnAt:    DefaultWarnAt,
	}
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Digits == 0 {
		c.Digits = DefaultDigits
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.Node.Count == 0 {
		c.Node.Count = 1
	}
	if c.WarnAt == 0 {
		c.WarnAt = DefaultWarnAt
	}
	return c
}

// Validate reports the first problem of c (after defaults are applied), as an
// error wrapping ErrInvalidConfig with a message an operator can act on.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Digits < MinDigits || c.Digits > MaxDigits:
		return fmt.Errorf("%w: digits is %d, must be %d–%d", ErrInvalidConfig, c.Digits, MinDigits, MaxDigits)
	case c.BlockSize > MaxBlockSize:
		return fmt.Errorf("%w: block size is %d, at most %d", ErrInvalidConfig, c.BlockSize, MaxBlockSize)
	case c.Secret != nil && len(c.Secret) < MinSecretLen:
		return fmt.Errorf("%w: secret is %d bytes, at least %d required", ErrInvalidConfig, len(c.Secret), MinSecretLen)
	case c.Secret == nil && c.Dir == "":
		return fmt.Errorf("%w: no secret and no data directory: set dir (the secret is kept there) or secret", ErrInvalidConfig)
	case !(c.WarnAt > 0 && c.WarnAt <= 1):
		return fmt.Errorf("%w: warn_at is %v, must be in (0, 1]", ErrInvalidConfig, c.WarnAt)
	}
	return c.Node.validate(c.Digits)
}

func (n NodeConfig) validate(digits int) error {
	if n.Count < 1 || n.Count > MaxNodes {
		return fmt.Errorf("%w: node count is %d, must be 1–%d", ErrInvalidConfig, n.Count, MaxNodes)
	}
	if n.ID < 0 || n.ID >= n.Count {
		return fmt.Errorf("%w: node id is %d, must be 0–%d (count %d)", ErrInvalidConfig, n.ID, n.Count-1, n.Count)
	}
	if uint64(n.Count) > DomainSize(digits) {
		return fmt.Errorf("%w: %d nodes for %d keys", ErrInvalidConfig, n.Count, DomainSize(digits))
	}
	return nil
}

// DomainSize returns N = 9·10^(D-1), the number of D-digit keys (and of
// counters). It panics if digits is outside MinDigits–MaxDigits.
func DomainSize(digits int) uint64 { return 9 * KeyOffset(digits) }

// KeyOffset returns 10^(D-1), the smallest D-digit key. It panics if digits
// is outside MinDigits–MaxDigits.
func KeyOffset(digits int) uint64 {
	if digits < MinDigits || digits > MaxDigits {
		panic(fmt.Sprintf("keygen: digits %d outside %d–%d", digits, MinDigits, MaxDigits))
	}
	o := uint64(1)
	for range digits - 1 {
		o *= 10
	}
	return o
}

// NodePartition returns the counters [lo, hi) that node owns among
// node.Count nodes for D-digit keys: the contiguous slice
// [⌊ID·N/Count⌋, ⌊(ID+1)·N/Count⌋) of [0, N). The slices of nodes 0..Count-1
// are disjoint and cover [0, N) exactly. node must be valid (Config.Validate).
func NodePartition(digits int, node NodeConfig) (lo, hi uint64) {
	n := DomainSize(digits)
	if node.Count <= 1 {
		return 0, n
	}
	return mulDiv(uint64(node.ID), n, uint64(node.Count)), mulDiv(uint64(node.ID+1), n, uint64(node.Count))
}

// mulDiv returns ⌊a·b/c⌋ without intermediate overflow; a ≤ c.
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, c)
	return q
}
