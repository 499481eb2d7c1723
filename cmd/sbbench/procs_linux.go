package main

import "syscall"

// childAttr makes the kernel SIGKILL a scenario's process when sbbench
// dies, however it dies. (Linux ties the signal to the thread that
// started the child, not the process; the Go runtime keeps its threads
// for the life of the process, except one whose goroutine exits while
// locked to it, which nothing that starts processes here does.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
