//go:build !linux

package local

import "syscall"

// procAttr puts the app in its own process group, so that stopping it stops
// its children too.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
