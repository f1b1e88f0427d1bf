package golden

import "syscall"

// dieWithParent has the kernel kill the child when prenv dies, even by
// kill -9, so a restore never outlives its build.
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
