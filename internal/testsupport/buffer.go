package testsupport

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that a logger (or a process's stderr) writes
// while the test reads it. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Reset forgets what was written.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// Sync makes a Buffer a zapcore.WriteSyncer (a log sink in tests).
func (b *Buffer) Sync() error { return nil }
