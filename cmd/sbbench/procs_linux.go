package main

import "syscall"

// childAttr makes the kernel SIGKILL a scenario's process when sbbench
// dies, however it dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
