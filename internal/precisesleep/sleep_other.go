//go:build !linux

package precisesleep

import "time"

// Pin does nothing where the thread's timer slack cannot be set.
func Pin() (unpin func()) { return func() {} }

// Sleep sleeps d on a Go timer.
func Sleep(d time.Duration) { time.Sleep(d) }
