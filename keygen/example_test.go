package keygen_test

import (
	"errors"
	"fmt"
	"os"

	"switchboard/keygen"
)

// The daemon opens one Generator at start, calls Next once per ALLOCATE and
// closes it at shutdown, after the requests that use it.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "keygen-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	cfg := keygen.DefaultConfig() // 9 digits, blocks of 4096, node 0 of 1
	cfg.Dir = dir                 // lease state, lock and (generated) secret live here
	// Normally left nil: generated at first start and kept in dir with mode
	// 0600. Fixed here so that the output is reproducible.
	cfg.Secret = []byte("switchboard-test-secret-0123456789")

	g, err := keygen.New(cfg, nil) // nil: the file store in cfg.Dir
	if err != nil {
		panic(err) // e.g. ErrBindingChanged, ErrSecret, ErrLocked, a disk error
	}
	defer g.Close()

	key, err := g.Next()
	switch {
	case errors.Is(err, keygen.ErrExhausted):
		// answer KEYS_EXHAUSTED
	case errors.Is(err, keygen.ErrUnavailable):
		// lease store failing and nothing buffered: answer an error, retry later
	case err != nil:
		panic(err)
	}
	fmt.Println(key)
	counter, _ := g.Permutation().Counter(key)
	fmt.Println(counter)
	// Output:
	// 646429085
	// 0
}
