//go:build !linux

package main

import "syscall"

// childAttr: without Pdeathsig, processes are stopped by procSet.stop only.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
