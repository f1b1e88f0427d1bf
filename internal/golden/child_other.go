//go:build !linux

package golden

import "syscall"

// dieWithParent does nothing where the kernel cannot kill a child with its
// parent; the next build stops the interrupted build's postgres, which ends
// its restore.
func dieWithParent(*syscall.SysProcAttr) {}
