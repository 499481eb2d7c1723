//go:build !linux

package main

import (
	"time"
)

// pin does nothing where the thread's timer slack cannot be set.
func (realClock) pin() (unpin func()) { return func() {} }

// shortSleep sleeps d on a Go timer.
func shortSleep(d time.Duration) { time.Sleep(d) }
