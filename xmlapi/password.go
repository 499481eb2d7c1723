package xmlapi

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Algorithm names a password hashing scheme for HashPassword.
type Algorithm string

// Supported algorithms.
const (
	// Bcrypt hashes with bcrypt at bcrypt.DefaultCost (10).
	Bcrypt Algorithm = "bcrypt"
	// Argon2id hashes with argon2id (RFC 9106 second recommended option:
	// m=64 MiB, t=3, p=4) and a 16-byte random salt, written as a PHC
	// string.
	Argon2id Algorithm = "argon2id"
)

// Bounds on argon2id parameters read from a config, so that a typo cannot
// make every login allocate gigabytes.
const (
	maxArgonMemKiB = 1 << 20 // 1 GiB
	maxArgonTime   = 64
	maxArgonKeyLen = 128
)

// HashPassword hashes password for an Account's password_hash.
func HashPassword(alg Algorithm, password []byte) (string, error) {
	switch alg {
	case Bcrypt:
		h, err := bcrypt.GenerateFromPassword(password, bcrypt.DefaultCost)
		if err != nil {
			return "", fmt.Errorf("xmlapi: %w", err)
		}
		return string(h), nil
	case Argon2id:
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return "", fmt.Errorf("xmlapi: salt: %w", err)
		}
		const m, t, p = 64 << 10, 3, 4
		key := argon2.IDKey(password, salt, t, m, p, 32)
		return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, t, p,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
	}
	return "", fmt.Errorf("xmlapi: unknown algorithm %q (bcrypt or argon2id)", alg)
}

// passwordHash is a parsed password_hash.
type passwordHash struct {
	bcrypt []byte // the whole bcrypt hash, or nil
	// argon2id
	salt, key     []byte
	mem, time     uint32
	threads       uint8
	argonVersion  int
	argonKeyBytes uint32
}

// parseHash recognises a bcrypt or argon2id hash and checks its parameters.
func parseHash(s string) (*passwordHash, error) {
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return nil, fmt.Errorf("%w: bcrypt: %w", ErrBadHash, err)
		}
		return &passwordHash{bcrypt: []byte(s)}, nil
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case s == "":
		return nil, fmt.Errorf("%w: required", ErrBadHash)
	}
	// Never echo the value: it may be a password pasted by mistake.
	return nil, ErrBadHash
}

// parseArgon2id parses "$argon2id$v=19$m=65536,t=3,p=4$<salt>$<key>".
func parseArgon2id(s string) (*passwordHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return nil, fmt.Errorf("%w: argon2id: want $argon2id$v=19$m=…,t=…,p=…$salt$hash", ErrBadHash)
	}
	h := &passwordHash{}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return nil, fmt.Errorf("%w: argon2id: missing version", ErrBadHash)
	}
	ver, err := strconv.Atoi(v)
	if err != nil || ver != argon2.Version {
		return nil, fmt.Errorf("%w: argon2id: version %q, want %d", ErrBadHash, v, argon2.Version)
	}
	h.argonVersion = ver
	var gotM, gotT, gotP bool
	for _, kv := range strings.Split(parts[3], ",") {
		k, val, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: argon2id: parameter %q", ErrBadHash, kv)
		}
		switch k {
		case "m":
			h.mem, gotM = uint32(n), true
		case "t":
			h.time, gotT = uint32(n), true
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("%w: argon2id: p=%d above 255", ErrBadHash, n)
			}
			h.threads, gotP = uint8(n), true
		default:
			return nil, fmt.Errorf("%w: argon2id: unknown parameter %q", ErrBadHash, k)
		}
	}
	switch {
	case !gotM || !gotT || !gotP:
		return nil, fmt.Errorf("%w: argon2id: m, t and p are required", ErrBadHash)
	case h.time < 1 || h.time > maxArgonTime:
		return nil, fmt.Errorf("%w: argon2id: t=%d not in 1..%d", ErrBadHash, h.time, maxArgonTime)
	case h.threads < 1:
		return nil, fmt.Errorf("%w: argon2id: p must be at least 1", ErrBadHash)
	case h.mem < 8*uint32(h.threads) || h.mem > maxArgonMemKiB:
		return nil, fmt.Errorf("%w: argon2id: m=%d not in %d..%d KiB", ErrBadHash, h.mem, 8*uint32(h.threads), maxArgonMemKiB)
	}
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, fmt.Errorf("%w: argon2id: salt must be at least 8 bytes of unpadded base64", ErrBadHash)
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > maxArgonKeyLen {
		return nil, fmt.Errorf("%w: argon2id: hash must be 16..%d bytes of unpadded base64", ErrBadHash, maxArgonKeyLen)
	}
	h.argonKeyBytes = uint32(len(h.key))
	return h, nil
}

// verify reports whether password matches h, in time independent of where
// the two differ.
func (h *passwordHash) verify(password []byte) bool {
	if h.bcrypt != nil {
		return bcrypt.CompareHashAndPassword(h.bcrypt, password) == nil
	}
	key := argon2.IDKey(password, h.salt, h.time, h.mem, h.threads, h.argonKeyBytes)
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// params names the work a check against h costs: the algorithm and its
// cost parameters, not the salt or the hash. Two hashes with equal params
// cost the same to verify.
func (h *passwordHash) params() string {
	if h.bcrypt != nil {
		c, _ := bcrypt.Cost(h.bcrypt) // parseHash checked it
		return fmt.Sprintf("bcrypt:%d", c)
	}
	return fmt.Sprintf("argon2id:v=%d,m=%d,t=%d,p=%d,len=%d", h.argonVersion, h.mem, h.time, h.threads, h.argonKeyBytes)
}

// bcryptB64 is bcrypt's own base64 alphabet.
var bcryptB64 = base64.NewEncoding("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789").WithPadding(base64.NoPadding)

// dummyLike returns a hash with h's params, random salt and random digest,
// which therefore matches no password: checking against it costs exactly
// what checking against h costs. It is built without running the hash, so
// that start-up stays fast whatever the costs configured.
func dummyLike(h *passwordHash) (*passwordHash, error) {
	salt := make([]byte, 16)
	sum := make([]byte, 23)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("xmlapi: dummy hash: %w", err)
	}
	if _, err := rand.Read(sum); err != nil {
		return nil, fmt.Errorf("xmlapi: dummy hash: %w", err)
	}
	if h.bcrypt != nil {
		c, err := bcrypt.Cost(h.bcrypt)
		if err != nil {
			return nil, err
		}
		return parseHash(fmt.Sprintf("$2a$%02d$%s%s", c, bcryptB64.EncodeToString(salt), bcryptB64.EncodeToString(sum)[:31]))
	}
	d := *h
	d.salt = make([]byte, len(h.salt))
	d.key = make([]byte, len(h.key))
	if _, err := rand.Read(d.salt); err != nil {
		return nil, fmt.Errorf("xmlapi: dummy hash: %w", err)
	}
	if _, err := rand.Read(d.key); err != nil {
		return nil, fmt.Errorf("xmlapi: dummy hash: %w", err)
	}
	return &d, nil
}
