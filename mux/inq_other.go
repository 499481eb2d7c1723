//go:build !linux

package mux

// inqFd cannot tell on this platform.
func inqFd(int) (int, bool) { return 0, false }
