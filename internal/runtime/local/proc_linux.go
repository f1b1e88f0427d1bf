package local

import "syscall"

// procAttr puts the app in its own process group, so that stopping it stops
// its children too, and kills it if prenv serve dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
