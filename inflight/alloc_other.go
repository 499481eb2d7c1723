//go:build !linux

package inflight

import "os"

// allocate is a no-op where fallocate(2) is not available: the file stays
// sparse (see alloc_linux.go).
func allocate(f *os.File, size int64) error { return nil }
